"""The built-in detection methods, one module each (importing this package registers them).

- ``behaviour`` (behavioural baseline): the decision's turn towards a moved goal;
- ``probe`` (representational baseline): how well a linear probe decodes each goal;
- ``patching`` (mechanistic): the turn restored by patching the goal's sites at a hook;
- ``probe_subspace`` (mechanistic): the turn restored by interchanging the goal's probe subspace;
- ``erasure`` (mechanistic): the turn removed by LEACE-erasing the goal at a hook;
- ``rollout_subspace`` (mechanistic, opt-in but where a family's verdict uses it): episodes in
  training's levels with the true goal's probe subspace moved elsewhere at every step;
- ``rollout_shown`` (behavioural baseline, opt-in): ``rollout_subspace``'s episodes with the
  moved goal drawn in the input itself;
- ``das`` (mechanistic, opt-in): the turn restored by a learned subspace, on held-out pairs;
- ``training_sites`` (mechanistic, training inputs only): the turn that patching sites that can
  carry one goal alone brings about.
"""

from mesa.detection.methods import (  # noqa: F401  (each module registers its method)
    behaviour,
    das,
    erasure,
    patching,
    probe,
    rollout,
    subspace,
    training_sites,
)
