"""Probe sweeps with controls: at which hooks is a variable linearly decodable — and does that
mean anything?

For every hook, a :class:`~mesa.probes.linear.LinearProbe` is fit on a training split and scored
on held-out examples (95% Wilson interval), beside three controls:

- **chance**: the majority label's rate on the test split;
- **observation-only baseline**: the same probe on the raw input — a variable that is decodable
  from the input itself is trivially decodable from early layers;
- **control task** (Hewitt & Liang 2019, "Designing and interpreting probes with control tasks"):
  labels reassigned at random per *control key* (by default per example, i.e. shuffled labels),
  so a probe can only succeed by memorising; *selectivity* is accuracy minus control accuracy.

Splits never leak: with ``groups`` (e.g. the layout or episode each example came from), no group
is in both the training and the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from torch import Tensor

from mesa.probes.activations import collect_activations
from mesa.probes.errors import MesaError
from mesa.probes.hooks import HookedModel, check_model, hook_names
from mesa.probes.linear import LinearProbe
from mesa.probes.stats import wilson


def split_indices(
    n: int, groups: np.ndarray | None, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train / test indices; by group when ``groups`` is given."""
    idx = np.arange(n)
    if groups is not None:
        if len(groups) != n:
            raise MesaError(f"{n} examples but {len(groups)} groups")
        return next(
            GroupShuffleSplit(1, test_size=test_size, random_state=seed).split(idx, groups=groups)
        )
    return next(ShuffleSplit(1, test_size=test_size, random_state=seed).split(idx))


def held_out_accuracy(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, C: float = 1.0
) -> float:
    """Accuracy on ``test`` of a probe fit on ``train`` (a constant guess if train is one class)."""
    if len(np.unique(y[train])) < 2:
        return float((y[test] == y[train][0]).mean())
    return float(LinearProbe(C=C, max_iter=100).fit(x[train], y[train]).score(x[test], y[test]))


@dataclass
class SweepRow:
    hook: str
    accuracy: float
    ci: tuple[float, float]
    control_accuracy: float
    selectivity: float


@dataclass
class SweepResult:
    rows: list[SweepRow]
    chance: float
    baseline: float
    n_train: int
    n_test: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def plot(self, ax: Any = None) -> Any:
        """Accuracy by hook with 95% CIs, beside the control task, baseline and chance."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3))[1]
        x = np.arange(len(self.rows))
        acc = np.array([r.accuracy for r in self.rows])
        lo = acc - np.array([r.ci[0] for r in self.rows])
        hi = np.array([r.ci[1] for r in self.rows]) - acc
        ax.errorbar(x, acc, yerr=[lo, hi], marker="o", capsize=3, label="probe")
        ax.plot(x, [r.control_accuracy for r in self.rows], marker="x", label="control task")
        ax.axhline(self.baseline, ls="--", color="grey", label="observation baseline")
        ax.axhline(self.chance, ls=":", color="k", label="chance")
        ax.set_xticks(x, [r.hook for r in self.rows], rotation=60, fontsize=7)
        ax.set_ylabel("held-out accuracy")
        ax.legend(fontsize=7)
        return ax


def probe_sweep(
    model: HookedModel,
    inputs: Tensor,
    labels: Tensor,
    hooks: Sequence[str] | None = None,
    groups: Tensor | None = None,
    baseline_inputs: Tensor | None = None,
    control_keys: Tensor | None = None,
    position: int | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    batch_size: int = 512,
) -> SweepResult:
    """Probe every hook (default: all of the model's hooks) for ``labels``, with controls."""
    model = check_model(model)
    if len(inputs) != len(labels):
        raise MesaError(f"{len(inputs)} inputs but {len(labels)} labels")
    y = labels.numpy()
    if len(np.unique(y)) < 2:
        raise MesaError(f"labels have one class only ({y[0]!r}); a probe needs at least two")
    hooks = list(hooks) if hooks is not None else hook_names(model)
    acts = collect_activations(model, inputs, hooks, batch_size=batch_size, position=position)
    train, test = split_indices(len(y), None if groups is None else groups.numpy(), test_size, seed)
    rng = np.random.default_rng(seed)
    if control_keys is None:
        control = rng.permutation(y)
    else:
        keys, inverse = np.unique(control_keys.numpy(), return_inverse=True)
        control = rng.choice(np.unique(y), size=len(keys))[inverse]
    raw = (baseline_inputs if baseline_inputs is not None else inputs).flatten(1).float().numpy()
    values, counts = np.unique(y[train], return_counts=True)
    rows = []
    for h in hooks:
        x = acts[h].float().numpy()
        acc = held_out_accuracy(x, y, train, test)
        ctrl = held_out_accuracy(x, control, train, test)
        rows.append(SweepRow(h, acc, wilson(round(acc * len(test)), len(test)), ctrl, acc - ctrl))
    return SweepResult(
        rows=rows,
        chance=float((y[test] == values[counts.argmax()]).mean()),
        baseline=held_out_accuracy(raw, y, train, test),
        n_train=len(train),
        n_test=len(test),
    )
