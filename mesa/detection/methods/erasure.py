"""``erasure``: a goal's linear information removed — how much goal-following goes with it.

LEACE (least-squares concept erasure) is the smallest affine edit after which no linear classifier
recovers the goal from a hook's activation (at the read-out). Erasing goal ``v`` at ``h`` in both
runs of each pair and measuring the directed effect again gives the absolute drop
``E_v(h) = Delta_v - Delta_v(erased at h)``: the goal-following that depends on linearly available
information at ``h``. The erasers are fit on the probe inputs, the goals of a hook sharing one
covariance estimate (:func:`mesa.probes.fit_erasers`); a goal the decision does not follow
(``Delta_v <= 0``) has nothing to remove and is not erased.
"""

from __future__ import annotations

import torch

from mesa.detection.data import input_layer
from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.probes.erasure import erasing_hook, fit_erasers
from mesa.tasks.base import GOALS


@register_detector("erasure")
class Erasure(Detector):
    """Score ``E_true+ / (E_true+ + E_spur+)`` with ``E_v = max_h E_v(h)`` past the input."""

    summary = "the turn towards a moved goal removed by LEACE-erasing the goal at a hook"

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        directed = {g: d.directed(g) for g in GOALS}
        goals = [g for g in GOALS if directed[g] > 0 and len(torch.unique(d.labels(g))) >= 2]
        hooks = [h for h in d.hooks if not input_layer(h)]
        if not hooks:
            return self.not_computable("no hook past the input layer")
        per_hook = {h: dict.fromkeys(GOALS, 0.0) for h in hooks}
        for h in hooks:
            if not goals:
                break
            erasers = fit_erasers(d.acts[h], [d.labels(g) for g in goals])
            for g, (eraser, _) in zip(goals, erasers, strict=True):
                fn = erasing_hook(eraser, d.position)
                per_hook[h][g] = directed[g] - d.erased_effect(g, h, fn)
        effect = {g: max(per_hook[h][g] for h in hooks) for g in GOALS}
        return self.result(effect, per_hook, "directed effect removed by erasing the goal")
