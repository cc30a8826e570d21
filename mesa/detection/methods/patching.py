"""``patching``: where each goal is *used* — interchange interventions at the goal's sites.

For pairs that move goal ``v`` only, run the base input with a hook's activation at the pair's
intervention sites (``Task.intervention_sites``: the grid cells or positions where base and source
differ, and the position where a transformer gathers its answer) taken from the source run. The
shift this restores towards the source's goal, in absolute terms, is ``I_v(h)``: about
``Delta_v`` where the goal's information flows through those sites at ``h``, about 0 where it
does not or where the decision ignores the goal.

Patching a whole layer at a complete cut of the network would restore everything at any layer
and say nothing about *which* goal is used, so hooks without the input's sites (a policy's dense
features) are reported but not scored, and neither is the input layer, where patching the sites
is the counterfactual input itself.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mesa.detection.data import input_layer
from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.probes.patching import patching_hook
from mesa.tasks.base import GOALS


def sites_effect(d: Any, goal: str, hook: str) -> float | None:
    """``I_v(h)`` for patching the pairs' sites at ``hook``; None where the hook holds no sites
    or the goal has none."""
    ps = d.pairs[goal]
    if ps.sites is None or d.site_mask(d.source_acts[goal][hook][:1], ps.sites[:1]) is None:
        return None

    def intervention(src: Tensor, rows: Tensor) -> Any:
        return patching_hook(src, d.site_mask(src, ps.sites[rows]))

    return float(d.restored(goal, hook, intervention))


@register_detector("patching")
class Patching(Detector):
    """Score ``I_true+ / (I_true+ + I_spur+)`` with ``I_v = max_h I_v(h)`` over the hooks past
    the input layer that hold the input's sites."""

    summary = "the turn towards a moved goal restored by patching its sites at a hook"

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        per_hook: dict[str, dict[str, float]] = {}
        for h in d.hooks:
            if input_layer(h):
                continue
            values = {g: sites_effect(d, g, h) for g in GOALS}
            if all(v is not None for v in values.values()):
                per_hook[h] = {g: float(v) for g, v in values.items() if v is not None}
        if not per_hook:
            return self.not_computable("no hook past the input layer holds the input's sites")
        effect = {g: max(per_hook[h][g] for h in per_hook) for g in GOALS}
        return self.result(effect, per_hook, "directed shift restored by patching the sites")
