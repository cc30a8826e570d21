"""Concept erasure with LEACE, applied inside a forward pass.

LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form") is the
smallest affine edit of a representation after which *no* linear classifier can predict the
concept better than a constant. If a model's behaviour depends on a concept only through
linearly available information at a hook, erasing it there should remove that dependence; the
drop in a metric after erasure (:func:`erasure_effect`) measures how much the behaviour *uses*
that information at that hook.

Following the fitter / frozen result split of the ``concept-erasure`` package: an
:class:`ErasureFitter` accumulates statistics with ``update(acts, labels)`` batch by batch, and
``.eraser`` is an immutable callable. Activations are erased as flattened vectors per example
(for a conv hook, the whole ``C*H*W`` map; for a sequence hook, one chosen position).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from concept_erasure import LeaceEraser, LeaceFitter
from jaxtyping import Float, Int
from torch import Tensor

from mesa.errors import MesaError
from mesa.probes.hooks import HookedModel, check_hooks, check_model


class ErasureFitter:
    """Accumulates activation / label statistics for LEACE, batch by batch."""

    def __init__(self, dim: int, n_classes: int) -> None:
        if n_classes < 2:
            raise MesaError("erasure needs at least two classes of the concept")
        self.n_classes = n_classes
        self._fitter = LeaceFitter(dim, n_classes, dtype=torch.float32)

    def update(self, acts: Float[Tensor, "n d"], labels: Int[Tensor, " n"]) -> ErasureFitter:
        acts = acts.flatten(1).float()
        if len(acts) != len(labels):
            raise MesaError(f"{len(acts)} activations but {len(labels)} labels")
        if torch.isnan(acts).any():
            raise MesaError("NaN activations given to the erasure fitter")
        if int(labels.min()) < 0 or int(labels.max()) >= self.n_classes:
            raise MesaError(f"labels must be class indices in 0..{self.n_classes - 1}")
        z = torch.nn.functional.one_hot(labels.long(), self.n_classes).float()
        self._fitter.update(acts, z)
        return self

    @property
    def eraser(self) -> LeaceEraser:
        return self._fitter.eraser


def fit_eraser(acts: Float[Tensor, "n d"], labels: Tensor) -> tuple[LeaceEraser, Tensor]:
    """A LEACE eraser for ``labels`` (any values; returned as the sorted class values)."""
    classes, idx = torch.unique(labels, return_inverse=True)
    return ErasureFitter(acts.flatten(1).shape[1], len(classes)).update(acts, idx).eraser, classes


def erasing_hook(eraser: Callable[[Tensor], Tensor], position: int | None = None):
    """A forward hook that erases the concept from a hook's activation (flattened per example,
    or at one ``position`` of a sequence hook)."""

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        if position is None:
            return eraser(act.flatten(1).float()).reshape(act.shape).to(act.dtype)
        act = act.clone()
        act[:, position] = eraser(act[:, position].flatten(1).float()).reshape(
            act[:, position].shape
        )
        return act

    return hook


@torch.no_grad()
def erasure_effect(
    model: HookedModel,
    inputs: Tensor,
    hook: str,
    eraser: Callable[[Tensor], Tensor],
    metric: Callable[[Tensor], Tensor],
    position: int | None = None,
) -> dict[str, float]:
    """The metric before and after erasing at ``hook``, and the drop."""
    model = check_model(model)
    check_hooks(model, hook)
    before = float(metric(model(inputs)))
    after = float(
        metric(model.run_with_hooks(inputs, fwd_hooks=[(hook, erasing_hook(eraser, position))]))
    )
    return {"before": before, "after": after, "drop": before - after}
