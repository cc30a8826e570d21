"""``probe_subspace``: a goal *represented and used* — interchange the goal's probe subspace.

At each hook, the linear probe for goal ``v`` (fit as the ``probe`` method fits it) spans a
subspace: the row space of its class weights, centred (a ``k``-class probe reads ``k - 1``
directions). Interchanging only that subspace of the hook's activation (at the read-out) from
the source run into the base run — a subspace interchange intervention, with the subspace read
off a probe instead of learned (as ``das`` learns it) — restores a shift towards the source's
goal, ``P_v(h)``, in absolute terms: large only where the goal is both linearly represented *and*
read from that representation by the rest of the network. The input layer is left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mesa.detection.data import input_layer
from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.probes.subspace import subspace_hook
from mesa.tasks.base import GOALS


def probe_basis(probe: Any) -> Tensor:
    """Orthonormal rows spanning a fitted probe's decision directions (centred class weights)."""
    w = torch.as_tensor(probe.coef_, dtype=torch.float64)
    w = w - w.mean(0) if len(w) > 1 else w
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    keep = s > s.max() * 1e-6
    return vh[keep].float()


def subspace_effect(
    d: Any, goal: str, hook: str, basis: Tensor, rows: Tensor | None = None
) -> float:
    """The directed shift restored by interchanging ``basis``'s subspace at ``hook``."""

    def intervention(src: Tensor, batch_rows: Tensor) -> Any:
        return subspace_hook(src, basis, position=d.position)

    return float(d.restored(goal, hook, intervention, rows))


def probe_subspace_turn(d: Any, goal: str, hook: str) -> tuple[float, int]:
    """``(turn, dimensions)``: the directed shift restored by interchanging ``goal``'s probe
    subspace at ``hook`` over the informative pairs, and the subspace's dimension; ``(0.0, 0)``
    where no probe could be fit. Measured once per model (``probe_subspace`` and
    ``rollout_subspace`` both read it)."""

    def measure() -> tuple[float, int]:
        probe = d.fitted_probe(goal, hook)
        if probe is None:
            return 0.0, 0
        basis = probe_basis(probe)
        return subspace_effect(d, goal, hook, basis), len(basis)

    return d.once(("probe_subspace_turn", goal, hook), measure)  # type: ignore[no-any-return]


@register_detector("probe_subspace")
class ProbeSubspace(Detector):
    """Score ``P_true+ / (P_true+ + P_spur+)`` with ``P_v = max_h P_v(h)`` past the input."""

    summary = "the turn towards a moved goal restored by interchanging its probe's subspace"

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        per_hook: dict[str, dict[str, float]] = {}
        dims: dict[str, dict[str, int]] = {}
        for h in d.hooks:
            if input_layer(h):
                continue
            per_hook[h], dims[h] = {}, {}
            for g in GOALS:
                per_hook[h][g], dims[h][g] = probe_subspace_turn(d, g, h)
        if not per_hook:
            return self.not_computable("no hook past the input layer")
        effect = {g: max(per_hook[h][g] for h in per_hook) for g in GOALS}
        return self.result(
            effect, per_hook, "directed shift restored by the probe subspace", subspace_dims=dims
        )
