"""``rollout_subspace``: an OOD test run inside the model, in training's own levels.

One-step methods read a decision at single states; some policies pursue their true goal only as
a weak pull over many steps (coin's, ``experiments/goal_pursuit.md``), which no single state
shows. This method rolls the policy out in episodes as training shows them at ``p = 0`` (the
goals together) and, at every step, interchanges the true goal's linear-probe subspace at one
hook from the same state drawn with the true goal at another cell ``c2``
(:meth:`mesa.Task.moved_goal_rollouts`). The input never separates the goals: only the goal's
represented position moves. Of the counted episodes, the share that reaches ``c2`` first is the
true goal's effect, the share that reaches the goals' training place first the spurious goal's,
and the score ``moved / (moved + training)`` estimates the OOD preference ``b``.

The hook is the one where the ``probe_subspace`` interchange restores the most turn towards a
moved true goal (past the input layer). Where a probe's subspace holds nearly all of a hook's
change (``experiments/internal_ood.md`` measures it), the interchange is nearly a whole patch of
that hook. The method runs where the task declares the test (the gridworlds; not ``keys`` nor
sequence tasks) and is opt-in, except for families whose verdict is made of it
(:attr:`mesa.Task.rule_methods`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from mesa.detection.data import input_layer
from mesa.detection.methods.subspace import probe_basis, subspace_effect
from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.probes.subspace import subspace_hook
from mesa.tasks.base import Task

#: Episodes rolled out (before the off-path ones are kept); seeded from the detection's seed.
EPISODES = 1000


@register_detector("rollout_subspace")
class RolloutSubspace(Detector):
    """Score ``moved / (moved + training)``: of episodes in training's levels with the true
    goal's probe subspace interchanged towards another cell at every step, the share reaching
    that cell first against the share reaching the goals' training place first."""

    default = False
    summary = "episodes in training's levels with the true goal's probe subspace moved elsewhere"
    episodes: ClassVar[int] = EPISODES

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        if type(d.task).moved_goal_rollouts is Task.moved_goal_rollouts:  # not overridden
            return self.not_computable(f"task {d.task.name!r} declares no moved-goal rollouts")
        hooks = [h for h in d.hooks if not input_layer(h)]
        probes = {h: d.fitted_probe("true", h) for h in hooks}
        bases = {h: probe_basis(p) for h, p in probes.items() if p is not None}
        if not bases:
            return self.not_computable("no probe for the true goal past the input layer")
        turn = {h: subspace_effect(d, "true", h, basis) for h, basis in bases.items()}
        hook = max(turn, key=lambda h: turn[h])
        basis = bases[hook].to(d.device)

        def policy(inputs: Tensor, moved: Tensor) -> Any:
            _, cache = d.hm.cache(d.on_device(moved), [hook])
            return d.run(inputs, [(hook, subspace_hook(cache[hook], basis, position=d.position))])

        counts = d.task.moved_goal_rollouts(policy, self.episodes, d.seed + 7)
        if not counts["episodes"]:
            return self.not_computable("no episode had a cell off the path to the goal")
        effect = {"true": counts["moved"], "spurious": counts["training"]}
        return self.result(
            effect,
            {hook: dict(effect)},
            "share of episodes reaching the moved true goal / the goals' training place first",
            hook=hook,
            episodes=counts["episodes"],
            subspace_dims=len(basis),
            turn_by_hook=turn,
        )
