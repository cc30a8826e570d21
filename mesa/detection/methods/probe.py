"""``probe``: what is *represented* — held-out linear-probe accuracy for each goal at each hook.

At every hook a :class:`~mesa.probes.LinearProbe` is fit on three quarters of the probe inputs
(split by layout, so no layout is in both parts) and scored on the rest (95% Wilson interval),
beside chance (the majority label) and the same probe on the raw input. Its *selectivity*
``(accuracy - chance) / (1 - chance)`` is 0 at chance and 1 for a perfect probe. Both goals are
usually represented whichever one a model pursues, so this is a baseline: what a model *uses*
needs an intervention.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mesa.detection.registry import Detector, MethodResult, register_detector
from mesa.probes.stats import wilson
from mesa.tasks.base import GOALS

#: A hook *represents* a goal when its probe's selectivity reaches this.
REPRESENTED_SELECTIVITY = 0.5

#: Observation-only baseline accuracies by data set (see :func:`_baseline`).
_BASELINES: dict[str, float] = {}


def _raw_features(inputs: Tensor) -> np.ndarray:
    if not inputs.dtype.is_floating_point:
        vocab = int(inputs.max()) + 1
        return torch.nn.functional.one_hot(inputs.long(), vocab).flatten(1).float().numpy()
    return inputs.flatten(1).float().numpy()


def _held_out(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from mesa.probes.linear import LinearProbe

    if len(np.unique(y[train])) < 2:
        return float((y[test] == y[train][0]).mean())
    return float(LinearProbe().fit(x[train], y[train]).score(x[test], y[test]))


def _baseline(inputs: Tensor, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """The raw-input probe's held-out accuracy. It depends on the data alone, not on the model,
    so a process that detects many models on the same probe data (a zoo worker) fits it once."""
    parts = (inputs.numpy(), y, train, test)
    digest = hashlib.sha1(repr([(a.dtype.str, a.shape) for a in parts]).encode())
    for a in parts:
        digest.update(np.ascontiguousarray(a).tobytes())
    key = digest.hexdigest()
    if key not in _BASELINES:
        if len(_BASELINES) >= 64:
            _BASELINES.clear()
        _BASELINES[key] = _held_out(_raw_features(inputs), y, train, test)
    return _BASELINES[key]


def decodability(d: Any, goal: str) -> dict[str, Any]:
    """``{"chance", "baseline", "hooks": {hook: {"accuracy", "ci", "selectivity"}}}``."""
    train, test = d.split
    y = d.labels(goal).numpy()
    values, counts = np.unique(y[train], return_counts=True)
    chance = float((y[test] == values[counts.argmax()]).mean())
    out: dict[str, Any] = {"chance": chance, "hooks": {}}
    out["baseline"] = chance if len(values) < 2 else _baseline(d.probe.inputs, y, train, test)
    for h in d.hooks:
        probe = d.fitted_probe(goal, h)
        acc = chance if probe is None else float(probe.score(d.acts[h].numpy()[test], y[test]))
        sel = max(0.0, (acc - chance) / max(1e-9, 1 - chance))
        ci = wilson(round(acc * len(test)), len(test))
        out["hooks"][h] = {"accuracy": acc, "ci": ci, "selectivity": sel}
    return out


@register_detector("probe")
class Probe(Detector):
    """Score ``R_true / (R_true + R_spur)`` with ``R_v`` the best selectivity over hooks."""

    evidence = "representational"
    summary = "held-out linear-probe accuracy of each goal at each hook (what is represented)"

    def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
        dec = {g: decodability(d, g) for g in GOALS}
        per_hook = {h: {g: dec[g]["hooks"][h]["selectivity"] for g in GOALS} for h in d.hooks}
        effect = {g: max(per_hook[h][g] for h in d.hooks) for g in GOALS}
        return self.result(
            effect,
            per_hook,
            "probe selectivity (accuracy - chance) / (1 - chance), held out",
            decodability=dec,
            represented_at={
                g: [h for h in d.hooks if per_hook[h][g] >= REPRESENTED_SELECTIVITY] for g in GOALS
            },
        )
