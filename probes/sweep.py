"""Probe sweeps with controls: at which hooks is a variable linearly decodable — and does that
mean anything?

For every hook, a :class:`~mesa.probes.linear.LinearProbe` is fit on a training split and scored
on held-out examples (95% Wilson interval), beside three controls:

- **chance**: the majority label's rate on the test split;
- **observation-only baseline**: the same probe on the raw input — a variable that is decodable
  from the input itself is trivially decodable from early layers;
- **control task**: labels reassigned at random per *control key* (by default per example, i.e.
  shuffled labels), so a probe can only succeed by memorising; *selectivity* is accuracy minus
  control accuracy.

Splits never leak: with ``groups`` (e.g. the layout or episode each example came from), no group
is in both the training and the test split.

Labels must be classes: continuous values (non-integer floats) are refused, to be discretised
first; integer-valued floats are taken as classes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit
from torch import Tensor, nn

from mesa.probes.activations import collect, position_axis_problem
from mesa.probes.checks import Array, as_tensor, class_labels
from mesa.probes.errors import MesaError
from mesa.probes.hooks import Hooked, hooked
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


def _numpy(x: Array | None) -> np.ndarray | None:
    return None if x is None else x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def default_hooks(hm: Hooked, inputs: Tensor, position: int | None) -> list[str]:
    """Every hook that runs on ``inputs``; with a ``position``, only those laid out ``[batch,
    pos, ...]`` along the model's positions (the most common length of axis 1 among hooks with
    three or more axes), leaving out 2-D hooks and attention patterns and scores."""
    acts = hm.fired(inputs[:2])
    if not acts:
        raise MesaError("no hook of the model gives one batch-first tensor per forward pass")
    if position is None:
        return list(acts)
    seq = {h: a.shape for h, a in acts.items() if position_axis_problem(h, a.shape) is None}
    if not seq:
        raise MesaError("no hook of the model has a position axis; use position=None")
    n_pos = Counter(shape[1] for shape in seq.values()).most_common(1)[0][0]
    return [h for h, shape in seq.items() if shape[1] == n_pos]


def probe_sweep(
    model: nn.Module,
    inputs: Array,
    labels: Array,
    hooks: Sequence[str] | None = None,
    groups: Array | None = None,
    baseline_inputs: Array | None = None,
    control_keys: Array | None = None,
    position: int | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    batch_size: int = 512,
) -> SweepResult:
    """Probe each hook for ``labels`` (class labels), with controls.

    ``hooks`` defaults to every hook that runs in the model's forward pass; with a ``position``,
    to those that have a position axis there (``[batch, pos, ...]``; see :func:`default_hooks`).
    A named hook without one is refused.
    """
    hm = hooked(model)
    inputs = hm.inputs(inputs)
    y = class_labels(labels, len(inputs), of="inputs").numpy()
    if len(np.unique(y)) < 2:
        raise MesaError(f"labels have one class only ({y[0]!r}); a probe needs at least two")
    hooks = hm.check(hooks) if hooks is not None else default_hooks(hm, inputs, position)
    acts = collect(hm, inputs, hooks, batch_size, position)
    train, test = split_indices(len(y), _numpy(groups), test_size, seed)
    rng = np.random.default_rng(seed)
    keys = _numpy(control_keys)
    if keys is None:
        control = rng.permutation(y)
    else:
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        control = rng.choice(np.unique(y), size=len(unique_keys))[inverse]
    raw = inputs if baseline_inputs is None else as_tensor(baseline_inputs, "baseline inputs")
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
        baseline=held_out_accuracy(raw.flatten(1).float().numpy(), y, train, test),
        n_train=len(train),
        n_test=len(test),
    )
