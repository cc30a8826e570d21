"""Decodability and erasure evidence at each hook (see :mod:`mesa.detection`).

Activations are read where the decision is made: the whole flattened feature map for a policy
(goals are places on the grid), the last position for a transformer (where it answers).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from concept_erasure import LeaceEraser
from torch import Tensor

from mesa.detection.causal import informative
from mesa.probes.erasure import erasing_hook, fit_erasers
from mesa.probes.stats import wilson
from mesa.probes.sweep import held_out_accuracy, split_indices


def _readout(act: Tensor, kind: str) -> Tensor:
    return act[:, -1] if kind == "sequence" else act.flatten(1)


@torch.no_grad()
def flat_activations(
    model: Any, inputs: Tensor, hooks: list[str], kind: str, batch_size: int = 512
) -> dict[str, Tensor]:
    """``{hook: [n, d]}`` read-out activations over ``inputs``, in batches."""
    parts: dict[str, list[Tensor]] = {h: [] for h in hooks}
    for i in range(0, len(inputs), batch_size):
        _, cache = model.run_with_cache(inputs[i : i + batch_size], names_filter=hooks.__contains__)
        for h in hooks:
            parts[h].append(_readout(cache[h], kind).float())
    return {h: torch.cat(v) for h, v in parts.items()}


def _raw_features(inputs: Tensor) -> np.ndarray:
    if inputs.dtype in (torch.long, torch.int32, torch.int64):
        vocab = int(inputs.max()) + 1
        return torch.nn.functional.one_hot(inputs, vocab).flatten(1).float().numpy()
    return inputs.flatten(1).float().numpy()


#: Observation-only baseline accuracies by data set (see :func:`_baseline`).
_BASELINES: dict[str, float] = {}


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
        _BASELINES[key] = held_out_accuracy(_raw_features(inputs), y, train, test)
    return _BASELINES[key]


def decodability(
    acts: dict[str, Tensor],
    inputs: Tensor,
    labels: Tensor,
    groups: Tensor | None,
    seed: int,
    test_size: float = 0.25,
) -> dict[str, Any]:
    """Held-out probe accuracy per hook (95% Wilson CI), chance and the raw-input baseline.

    The split is by ``groups`` (layouts) when given, so no layout is in both train and test.
    """
    y = labels.numpy()
    train, test = split_indices(len(y), None if groups is None else groups.numpy(), test_size, seed)
    out: dict[str, Any] = {}
    values, counts = np.unique(y[train], return_counts=True)
    majority = values[counts.argmax()]
    out["chance"] = float((y[test] == majority).mean())
    if len(values) < 2:  # a constant label: nothing to decode
        out["baseline"] = out["chance"]
        for h in acts:
            out[h] = {"accuracy": out["chance"], "ci": (out["chance"], out["chance"])}
        return out
    out["baseline"] = _baseline(inputs, y, train, test)
    for h, a in acts.items():
        acc = held_out_accuracy(a.numpy(), y, train, test)
        out[h] = {"accuracy": acc, "ci": wilson(round(acc * len(test)), len(test))}
    return out


def fit_goal_erasers(
    acts: dict[str, Tensor], labels: dict[str, Tensor], hooks: list[str]
) -> dict[str, dict[str, LeaceEraser]]:
    """``{goal: {hook: eraser}}``: LEACE erasers fit on the probe split's activations, one per
    goal with two or more values; the goals of a hook share one covariance estimate
    (:func:`mesa.probes.erasure.fit_erasers`)."""
    goals = [v for v, y in labels.items() if len(torch.unique(y)) >= 2]
    erasers: dict[str, dict[str, LeaceEraser]] = {v: {} for v in goals}
    for h in hooks:
        fitted = fit_erasers(acts[h], [labels[v] for v in goals]) if goals else []
        for v, (eraser, _) in zip(goals, fitted, strict=True):
            erasers[v][h] = eraser
    return erasers


@torch.no_grad()
def erasure_effects(
    model: Any,
    kind: str,
    erasers: dict[str, LeaceEraser],
    base: Tensor,
    source: Tensor,
    follow: Tensor,
    directed: float,
    hooks: list[str],
    batch_size: int = 256,
) -> dict[str, float]:
    """``E_v(h) = 1 - Delta_v(erased at h) / Delta_v``: the share of the decision's shift towards
    the moved goal (:mod:`mesa.detection.causal`) that LEACE erasure of the goal at ``h``
    (``erasers[h]``, :func:`fit_goal_erasers`) removes; 0 where the decision does not follow
    the goal or the goal has no eraser (one value only)."""
    keep = informative(follow)
    if not erasers or directed <= 0 or not keep.any():
        return dict.fromkeys(hooks, 0.0)
    base, source, follow = base[keep], source[keep], follow[keep]
    position = -1 if kind == "sequence" else None
    effects = {}
    for h in hooks:
        erase = [(h, erasing_hook(erasers[h], position))]
        shift = []
        for i in range(0, len(base), batch_size):
            pb, ps = (
                model.run_with_hooks(x[i : i + batch_size], fwd_hooks=erase) for x in (base, source)
            )
            if kind == "sequence":
                pb, ps = pb[:, -1], ps[:, -1]
            diff = torch.softmax(ps.float(), -1) - torch.softmax(pb.float(), -1)
            shift.append((diff * follow[i : i + batch_size]).sum(-1))
        effects[h] = max(-1.0, min(1.0, 1 - float(torch.cat(shift).mean()) / directed))
    return effects
