"""``das``: a goal's subspace *learned* — distributed alignment search, judged on held-out pairs.

Where ``probe_subspace`` takes the subspace a probe finds, DAS learns a ``k``-dimensional one at
each hook by gradient descent, with the model frozen: interchanging it from source into base must
make the model pursue the source's goal (the target is the set of outputs that pursue it: any action
on a shortest path, or the answer token). Half of the informative pairs train it; on the other half
the method reports the interchange-intervention accuracy (IIA) and the directed shift restored,
``A_v(h)``, in absolute terms. It costs a training run per hook and goal, so it is not in the
default method set (``mesa detect --methods das``); its cost is measured in
``experiments/das_cost.md``.
"""

from __future__ import annotations

import math
from typing import Any

from mesa.detection.data import input_layer
from mesa.detection.methods.subspace import subspace_effect
from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.errors import MesaError
from mesa.probes.subspace import fit_das
from mesa.tasks.base import GOALS

#: Subspace size, optimisation steps and minibatch of each fit.
K, STEPS, BATCH = 8, 150, 128
#: A goal needs at least this many informative pairs for a fit and a held-out half.
MIN_PAIRS = 20


def _fit(d: Any, goal: str, hook: str) -> tuple[float, float] | None:
    """``(held-out IIA, held-out directed shift restored)``, or None without enough pairs."""
    ps = d.pairs[goal]
    # a pair whose source leaves no output pursuing the goal (the agent already on its cell) has
    # nothing for the learned subspace to make the model do: it cannot train or judge DAS
    idx = (ps.informative & ps.target.any(-1)).nonzero().squeeze(1)
    if len(idx) < MIN_PAIRS:
        return None
    dim = d.acts[hook].shape[1]
    das = fit_das(
        d.model,
        ps.base[idx],
        ps.source[idx],
        ps.target[idx],
        hook,
        k=min(K, dim),
        position=d.position,
        steps=STEPS,
        seed=d.seed,
        batch_size=BATCH,
        test_size=0.5,
    )
    held_out = idx[das.test_index]
    shift = subspace_effect(d, goal, hook, das.basis.detach(), rows=held_out)
    return float(das.held_out_iia or 0.0), shift


@register_detector("das")
class DistributedAlignmentSearch(Detector):
    """Score ``A_true+ / (A_true+ + A_spur+)`` with ``A_v = max_h A_v(h)`` past the input."""

    default = False
    summary = "the turn restored by a learned (DAS) subspace of each goal, on held-out pairs"

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        per_hook: dict[str, dict[str, float]] = {}
        iia: dict[str, dict[str, float]] = {}
        notes = []
        for h in d.hooks:
            if input_layer(h):
                continue
            per_hook[h], iia[h] = {}, {}
            for g in GOALS:
                try:
                    fit = _fit(d, g, h)
                except MesaError as e:  # e.g. no gradient path from this hook: say so, go on
                    notes.append(f"{h}: {e}")
                    fit = None
                nan = float("nan")
                iia[h][g], per_hook[h][g] = fit if fit is not None else (nan, nan)
        if not per_hook:
            return self.not_computable("no hook past the input layer")
        fitted = {g: [v[g] for v in per_hook.values() if not math.isnan(v[g])] for g in GOALS}
        missing = [g for g in GOALS if not fitted[g]]
        if missing:  # an unfitted goal is not a goal without effect: no score, say why
            why = "; ".join(notes) or f"fewer than {MIN_PAIRS} informative pairs"
            return self.not_computable(f"DAS could not be fit for {', '.join(missing)}: {why}")
        effect = {g: max(fitted[g]) for g in GOALS}
        unit = "directed shift restored by the learned subspace, held-out pairs"
        return self.result(effect, per_hook, unit, "; ".join(notes), held_out_iia=iia, k=K)
