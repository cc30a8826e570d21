"""Checks of what callers hand to mesa.probes, shared by its functions: each mistake becomes one
line (:class:`~mesa.probes.errors.MesaError`) instead of an error from deep inside torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mesa.probes.errors import MesaError

#: What mesa.probes accepts for inputs, labels and activations: numpy arrays are converted.
Array = Tensor | np.ndarray


def as_tensor(x: Any, what: str = "inputs") -> Tensor:
    """``x`` as a tensor (numpy arrays are converted), refusing anything else and empty input."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise MesaError(f"{what} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim == 0 or len(x) == 0:
        raise MesaError(f"{what} are empty (shape {tuple(x.shape)}): need at least one example")
    return x


def check_discrete(labels: Any, what: str = "labels") -> None:
    """Refuse labels that are not classes: non-integer floats (a regression target) would be
    taken as thousands of classes, one per value."""
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if y.dtype.kind == "c":
        raise MesaError(f"{what} are complex numbers; class labels are needed")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise MesaError(f"{what} contain NaN or infinity; class labels are needed")
        if (y != np.round(y)).any():
            raise MesaError(
                f"{what} are continuous (non-integer floats); class labels are needed: "
                "discretise them first (e.g. into bins with np.digitize or torch.bucketize)"
            )


def class_labels(labels: Any, n: int, what: str = "labels", of: str = "examples") -> Tensor:
    """``labels`` as a 1-D tensor of ``n`` class labels (numpy converted), after the checks."""
    y = as_tensor(labels, what)
    if y.ndim != 1 or len(y) != n:
        raise MesaError(f"{n} {of} need {n} {what} in one dimension, got {tuple(y.shape)}")
    check_discrete(y, what)
    return y


def scalar(metric: Callable[[Any], Any], output: Any) -> float:
    """``metric(output)`` as a float, refusing a metric that does not return one number."""
    value = metric(output)
    t = value if isinstance(value, Tensor) else torch.as_tensor(value)
    if t.numel() != 1:
        raise MesaError(
            "the metric must return one number for a batch (e.g. a mean over it); "
            f"it returned shape {tuple(t.shape)}"
        )
    return float(t)
