"""Concept erasure with LEACE, applied inside a forward pass.

LEACE (least-squares concept erasure) is the smallest affine edit of a representation after which
*no* linear classifier can predict the concept better than a constant. If a model's behaviour
depends on a concept only through linearly available information at a hook, erasing it there should
remove that dependence; the drop in a metric after erasure (:func:`erasure_effect`) measures how
much the behaviour *uses* that information at that hook.

Following the fitter / frozen result split of the ``concept-erasure`` package: an
:class:`ErasureFitter` accumulates statistics with ``update(acts, labels)`` batch by batch, and
``.eraser`` is an immutable callable. :func:`fit_erasers` fits several concepts of activations
held in memory at once, sharing one covariance estimate (the same erasers, computed faster).
Activations are erased as flattened vectors per example (for a conv hook, the whole ``C*H*W``
map; for a sequence hook, one chosen position).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from concept_erasure import LeaceEraser, LeaceFitter, optimal_linear_shrinkage
from jaxtyping import Float, Int
from torch import Tensor, nn

from mesa.probes.activations import at_position
from mesa.probes.checks import Array, as_tensor, class_labels, scalar
from mesa.probes.errors import MesaError
from mesa.probes.hooks import hooked


def _checked(acts: Array, concepts: Sequence[Array]) -> tuple[Tensor, list[Tensor]]:
    """``acts`` flattened per example as float32 and each concept's labels as a tensor (numpy
    arrays converted), after checking them."""
    x = as_tensor(acts, "activations").flatten(1).float()
    labels = [class_labels(y, len(x), "labels", of="activations") for y in concepts]
    if torch.isnan(x).any():
        raise MesaError("NaN activations given to the erasure fitter")
    return x, labels


class ErasureFitter:
    """Accumulates activation / label statistics for LEACE, batch by batch."""

    def __init__(self, dim: int, n_classes: int) -> None:
        if n_classes < 2:
            raise MesaError("erasure needs at least two classes of the concept")
        self.n_classes = n_classes
        self._fitter = LeaceFitter(dim, n_classes, dtype=torch.float32)

    def update(self, acts: Float[Array, "n d"], labels: Int[Array, " n"]) -> ErasureFitter:
        x, (labels,) = _checked(acts, [labels])
        if int(labels.min()) < 0 or int(labels.max()) >= self.n_classes:
            raise MesaError(f"labels must be class indices in 0..{self.n_classes - 1}")
        z = torch.nn.functional.one_hot(labels.long(), self.n_classes).float()
        self._fitter.update(x, z)
        return self

    @property
    def eraser(self) -> LeaceEraser:
        return self._fitter.eraser


def fit_eraser(acts: Float[Array, "n d"], labels: Array) -> tuple[LeaceEraser, Tensor]:
    """A LEACE eraser for ``labels`` (class labels of any values, not continuous ones; returned as
    the sorted class values). Tensors or numpy arrays."""
    return fit_erasers(acts, [labels])[0]


#: Singular values of the whitened cross-covariance below this are dropped (LeaceFitter's
#: default ``svd_tol``).
SVD_TOL = 0.01


@torch.no_grad()
def fit_erasers(
    acts: Float[Array, "n d"], concepts: Sequence[Array], shrinkage: bool = True
) -> list[tuple[LeaceEraser, Tensor]]:
    """LEACE erasers for several concepts of the same activations: ``(eraser, classes)`` for each
    array of labels in ``concepts`` (class labels of any values, not continuous ones; ``classes``
    are the sorted values). Tensors or numpy arrays.

    The erasers are ``concept_erasure.LeaceFitter``'s with its defaults (affine, trace of the
    covariance not allowed to grow; ``shrinkage`` as there), equal to them up to float32
    rounding (tested). Written out here for speed: LeaceFitter estimates the covariance and
    eigendecomposes it once per concept and forms several d x d products (whitening,
    unwhitening, the trace check); here one estimate and eigendecomposition serve every concept
    and everything after it is a rank-k product. On a conv policy's 880-unit layer (2,000
    examples, one CPU thread) LeaceFitter took 0.19-0.21 s a concept; this takes about 0.13 s for
    the first and 0.01 s for each further one (``experiments/bench_erasure.py``).
    """
    x, concepts = _checked(acts, concepts)
    n, d = x.shape
    if n < 2:
        raise MesaError(f"erasure needs at least two examples, got {n}")
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc
    cov = (cov + cov.T) / 2
    sigma = optimal_linear_shrinkage(cov / n, n) if shrinkage else cov / (n - 1)
    lam, vecs = torch.linalg.eigh(sigma)
    mask = lam > lam[-1] * d * torch.finfo(lam.dtype).eps  # torch.linalg.pinv's threshold
    lam = lam.clamp_min(0.0)
    whiten = torch.where(mask, lam.rsqrt(), 0.0)  # W = V diag(whiten) V' = sigma^(-1/2)
    unwhiten = torch.where(mask, lam.sqrt(), 0.0)  # W^+ = sigma^(1/2)
    out = []
    for labels in concepts:
        classes, idx = torch.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise MesaError("erasure needs at least two classes of the concept")
        z = torch.nn.functional.one_hot(idx, len(classes)).float()
        sigma_xz = xc.T @ (z - z.mean(0)) / (n - 1)
        u, s, _ = torch.linalg.svd(vecs @ (whiten[:, None] * (vecs.T @ sigma_xz)), False)
        u = u * (s > SVD_TOL)
        vu = vecs.T @ u
        left = vecs @ (unwhiten[:, None] * vu)  # W^+ u
        right = (whiten[:, None] * vu).T @ vecs.T  # u' W
        left, right = _constrain_trace(left, right, u, sigma)
        out.append((LeaceEraser(left, right, bias=mean), classes))
    return out


def _trace_of_product(a: Tensor, b: Tensor) -> Tensor:
    """tr(a @ b) without forming the product."""
    return (a * b.T).sum()


def _constrain_trace(
    left: Tensor, right: Tensor, u: Tensor, sigma: Tensor
) -> tuple[Tensor, Tensor]:
    """LeaceFitter's ``constrain_cov_trace`` in rank-k form: if the erasure P = I - left @ right
    would raise the covariance's trace, mix it with the orthogonal projection Q = I - u u' so
    that the trace stays. I - (a P + (1 - a) Q) = [a left, (1 - a) u] @ [right; u'], which is
    the factorisation returned (LeaceFitter re-factorises the same matrix with an SVD)."""
    old = torch.trace(sigma)
    s_left, s_u = sigma @ left, sigma @ u
    r_s_l = right @ s_left
    # tr(P S P') = tr S - 2 tr(R S L) + tr((R S R') (L' L))
    new = old - 2 * torch.trace(r_s_l) + _trace_of_product(right @ sigma @ right.T, left.T @ left)
    if new <= old:
        return left, right
    u_s_u = u.T @ s_u
    # tr(P S Q') and tr(Q S Q'), expanded the same way
    y = 2 * (
        old - torch.trace(r_s_l) - torch.trace(u_s_u) + _trace_of_product(right @ s_u, u.T @ left)
    )
    z = old - 2 * torch.trace(u_s_u) + _trace_of_product(u_s_u, u.T @ u)
    x, w = new, old
    discr = torch.sqrt(4 * w * x - 4 * w * y + 4 * w * z - 4 * x * z + y**2)
    alpha1 = (-y / 2 + z - discr / 2) / (x - y + z)
    alpha2 = (-y / 2 + z + discr / 2) / (x - y + z)
    alpha = torch.where(alpha1 > 0, alpha1, alpha2).clamp(0, 1)
    return torch.cat([alpha * left, (1 - alpha) * u], 1), torch.cat([right, u.T], 0)


def _eraser_on(eraser: Callable[[Tensor], Tensor], device: torch.device) -> Any:
    """A LEACE eraser with its matrices on ``device`` (itself where they are there already);
    any other eraser as it is."""
    if not isinstance(eraser, LeaceEraser) or eraser.proj_right.device == device:
        return eraser
    bias = None if eraser.bias is None else eraser.bias.to(device)
    return LeaceEraser(eraser.proj_left.to(device), eraser.proj_right.to(device), bias)


def erasing_hook(eraser: Callable[[Tensor], Tensor], position: int | None = None):
    """A forward hook that erases the concept from a hook's activation (flattened per example,
    or at one ``position`` of a sequence hook)."""

    on_device: dict[torch.device, Callable[[Tensor], Tensor]] = {}

    def erase(x: Tensor) -> Tensor:
        flat = x.flatten(1).float()
        d = eraser.proj_right.shape[1] if isinstance(eraser, LeaceEraser) else flat.shape[1]
        if flat.shape[1] != d:
            raise MesaError(
                f"the eraser was fit on {d} features; the hook's activation has {flat.shape[1]}"
                + (" per example" if position is None else f" at position {position}")
            )
        if x.device not in on_device:  # erasers fit on CPU activations, used where the model is
            on_device[x.device] = _eraser_on(eraser, x.device)
        return on_device[x.device](flat).reshape(x.shape).to(x.dtype)

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        if position is None:
            return erase(act)
        erased = erase(at_position(act, position, getattr(hook, "name", None)))
        act = act.clone()
        act[:, position] = erased
        return act

    return hook


@torch.no_grad()
def erasure_effect(
    model: nn.Module,
    inputs: Array,
    hook: str,
    eraser: Callable[[Tensor], Tensor],
    metric: Callable[[Tensor], Tensor],
    position: int | None = None,
) -> dict[str, float]:
    """The metric (one number per batch) before and after erasing at ``hook``, and the drop."""
    hm = hooked(model)
    hm.check(hook)
    inputs = hm.inputs(inputs)
    before = scalar(metric, hm.run(inputs))
    after = scalar(metric, hm.run(inputs, [(hook, erasing_hook(eraser, position))]))
    return {"before": before, "after": after, "drop": before - after}
