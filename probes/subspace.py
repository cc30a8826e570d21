"""Subspace interchange interventions and distributed alignment search (DAS).

An *interchange intervention* runs the model on a base input while replacing the component of a
hook's activation that lies in a subspace with that of a source input (Geiger et al. 2021,
"Causal abstractions of neural networks"). If a variable is encoded in that subspace, the output
should follow the source's value of the variable: the share of pairs for which it does is the
*interchange-intervention accuracy* (IIA).

The subspace can be given (a probe's weight direction, any basis), or learned: DAS (Geiger et
al. 2023, "Finding alignments between interpretable causal variables and distributed neural
representations"; Wu et al. 2023, "Interpretability at scale") learns an orthogonal rotation
whose first ``k`` coordinates, swapped from source into base, make the model produce the
counterfactual label — trained by gradient descent with the model frozen.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mesa.probes.errors import MesaError
from mesa.probes.hooks import HookedModel, check_hooks, check_model


def _orthonormal(basis: Tensor) -> Tensor:
    basis = basis.float()
    if basis.ndim == 1:
        basis = basis[None]
    q, _ = torch.linalg.qr(basis.T)
    return q.T  # [k, d], orthonormal rows


def _interchange(act: Tensor, src: Tensor, basis: Tensor, position: int | None) -> Tensor:
    def swap(a: Tensor, s: Tensor) -> Tensor:
        shape = a.shape
        a, s = a.flatten(1), s.flatten(1)
        return (a + (s - a) @ basis.T @ basis).reshape(shape)

    if position is None:
        return swap(act, src)
    act = act.clone()
    act[:, position] = swap(act[:, position], src[:, position])
    return act


@torch.no_grad()
def interchange_subspace(
    model: HookedModel,
    base: Tensor,
    source: Tensor,
    hook: str,
    basis: Float[Tensor, "k d"],
    position: int | None = None,
) -> Tensor:
    """Output on ``base`` with the ``basis`` subspace of ``hook`` taken from ``source``."""
    model = check_model(model)
    check_hooks(model, hook)
    if base.shape != source.shape:
        raise MesaError(
            f"base and source differ in shape: {tuple(base.shape)} vs {tuple(source.shape)}"
        )
    q = _orthonormal(basis)
    _, cache = model.run_with_cache(source, names_filter=lambda n: n == hook)
    src = cache[hook]
    return model.run_with_hooks(  # type: ignore[no-any-return]
        base, fwd_hooks=[(hook, lambda act, hook=None: _interchange(act, src, q, position))]
    )


def _answer(out: Tensor) -> Tensor:
    return out[:, -1] if out.ndim == 3 else out


class DAS(nn.Module):
    """A learned rotation whose first ``k`` coordinates hold a causal variable at one hook."""

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        if not 1 <= k <= dim:
            raise MesaError(f"subspace size k must be in 1..{dim}, got {k}")
        self.k = k
        self.rotation = nn.utils.parametrizations.orthogonal(nn.Linear(dim, dim, bias=False))

    @property
    def basis(self) -> Tensor:
        """The learned subspace as ``k`` orthonormal rows."""
        weight: Tensor = self.rotation.weight  # type: ignore[assignment]
        return weight[: self.k]


def fit_das(
    model: HookedModel,
    base: Tensor,
    source: Tensor,
    labels: Tensor,
    hook: str,
    k: int = 1,
    position: int | None = None,
    steps: int = 300,
    lr: float = 0.01,
    seed: int = 0,
) -> DAS:
    """Learn a ``k``-dimensional subspace at ``hook`` such that interchanging it from source into
    base makes the model output ``labels`` (the counterfactual answers)."""
    model = check_model(model)
    check_hooks(model, hook)
    if not len(base) == len(source) == len(labels):
        raise MesaError(
            f"base, source and labels differ in length: {len(base)}, {len(source)}, {len(labels)}"
        )
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=lambda n: n == hook)
    src = cache[hook]
    a_src = src if position is None else src[:, position]
    torch.manual_seed(seed)
    das = DAS(a_src[0].numel(), k)
    opt = torch.optim.Adam(das.parameters(), lr=lr)
    for p in model.parameters():  # type: ignore[attr-defined]
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            q = das.basis

            def hook_fn(act: Tensor, hook: Any = None, q: Tensor = q) -> Tensor:
                return _interchange(act, src, q, position)

            out = _answer(model.run_with_hooks(base, fwd_hooks=[(hook, hook_fn)]))
            loss = nn.functional.cross_entropy(out.float(), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():  # type: ignore[attr-defined]
            p.requires_grad_(True)
    return das


@torch.no_grad()
def interchange_accuracy(
    model: HookedModel,
    base: Tensor,
    source: Tensor,
    labels: Tensor,
    hook: str,
    basis: Tensor,
    position: int | None = None,
) -> float:
    """IIA: the share of pairs whose intervened output's argmax equals the counterfactual label."""
    out = _answer(interchange_subspace(model, base, source, hook, basis, position))
    return float((out.argmax(-1) == labels).float().mean())
