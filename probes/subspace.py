"""Subspace interchange interventions and distributed alignment search (DAS).

An *interchange intervention* runs the model on a base input while replacing the component of a
hook's activation that lies in a subspace with that of a source input. If a variable is encoded in
that subspace, the output should follow the source's value of the variable: the share of pairs for
which it does is the *interchange-intervention accuracy* (IIA).

The subspace can be given (a probe's weight direction, any basis), or learned: DAS learns an
orthogonal rotation whose first ``k`` coordinates, swapped from source into base, make the model
produce the counterfactual output — trained by minibatch gradient descent with the model frozen. IIA
on pairs held out of the fit (``test_size``) says whether the subspace generalises rather than fits
the training pairs.

**Targets.** The counterfactual output of each pair is given either as class labels ``[n]``
(integers: the one right output) or as a mask ``[n, K]`` (bool or non-negative floats) of the
acceptable outputs, e.g. every action on a shortest path to a goal. With labels the loss is the
cross-entropy; with a mask it is ``-log(sum_k p_k * mask_k)`` (the probability put on acceptable
outputs, weighted). A pair counts towards IIA when the output's argmax is its label, or lies
inside its mask (``mask > 0``).

**Read-out.** The output compared with the target is the model's logits ``[batch, K]``; for a
sequence model's ``[batch, pos, K]`` it is the **last position** (where a model answers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float, Shaped
from torch import Tensor, nn

from mesa.probes.activations import at_position
from mesa.probes.checks import Array, as_tensor, class_labels
from mesa.probes.errors import MesaError
from mesa.probes.hooks import Hooked, hooked


def _orthonormal(basis: Tensor) -> Tensor:
    basis = basis.float()
    if basis.ndim == 1:
        basis = basis[None]
    q, _ = torch.linalg.qr(basis.T)
    return q.T  # [k, d], orthonormal rows


def _at(act: Tensor, position: int | None, hook: str) -> Tensor:
    """``act`` at ``position`` (all of it for None), checked."""
    return act if position is None else at_position(act, position, hook)


def _interchange(act: Tensor, src: Tensor, basis: Tensor, position: int | None) -> Tensor:
    basis, src = basis.to(act.device), src.to(act.device)  # no copy where already there

    def swap(a: Tensor, s: Tensor) -> Tensor:
        shape = a.shape
        a, s = a.flatten(1), s.flatten(1)
        return (a + (s - a) @ basis.T @ basis).reshape(shape)

    if position is None:
        return swap(act, src)
    act = act.clone()
    act[:, position] = swap(act[:, position], src[:, position])
    return act


def _swapping(src: Tensor, basis: Tensor, position: int | None) -> Any:
    """A hook function interchanging the ``basis`` subspace from ``src`` into the activation."""
    return lambda act, hook=None: _interchange(act, src, basis, position)


def subspace_hook(
    source: Tensor, basis: Float[Array, "k d"], position: int | None = None
) -> Callable[..., Tensor]:
    """A hook function that interchanges the subspace spanned by ``basis`` (rows, any; made
    orthonormal here) from ``source`` (the hook's activation on the source inputs) into the
    activation, flattened per example or at one ``position`` of ``[batch, pos, ...]``."""
    q = _orthonormal(torch.as_tensor(basis))
    return _swapping(source, q, position)


def _pair(hm: Hooked, base: Any, source: Any) -> tuple[Tensor, Tensor]:
    base, source = hm.inputs(base, "base inputs"), hm.inputs(source, "source inputs")
    if base.shape != source.shape:
        raise MesaError(
            f"base and source differ in shape: {tuple(base.shape)} vs {tuple(source.shape)}"
        )
    return base, source


def _source_acts(hm: Hooked, source: Tensor, hook: str, batch_size: int | None) -> Tensor:
    """The source inputs' activations at ``hook``, computed in batches, without gradients."""
    step = batch_size or len(source)
    with torch.no_grad():
        parts = [
            hm.cache(source[i : i + step], [hook])[1][hook] for i in range(0, len(source), step)
        ]
    src = torch.cat(parts)
    if not src.is_floating_point():
        raise MesaError(f"hook {hook!r} holds {src.dtype} values; a subspace needs float ones")
    return src


def _checked_basis(basis: Any, src: Tensor, position: int | None, hook: str) -> Tensor:
    basis = torch.as_tensor(basis)
    d = _at(src, position, hook)[0].numel()
    if basis.ndim not in (1, 2) or basis.shape[-1] != d:
        raise MesaError(
            f"basis has shape {tuple(basis.shape)}; the hook's activation has {d} entries per "
            "example" + ("" if position is None else " at that position") + ", so [k, {d}] needed"
        )
    return _orthonormal(basis)


@torch.no_grad()
def interchange_subspace(
    model: nn.Module,
    base: Array,
    source: Array,
    hook: str,
    basis: Float[Array, "k d"],
    position: int | None = None,
) -> Tensor:
    """Output on ``base`` with the ``basis`` subspace of ``hook`` taken from ``source``."""
    hm = hooked(model)
    hm.check(hook)
    base, source = _pair(hm, base, source)
    src = _source_acts(hm, source, hook, None)
    q = _checked_basis(basis, src, position, hook)
    return hm.run(base, [(hook, _swapping(src, q, position))])  # type: ignore[no-any-return]


def _answer(out: Any) -> Tensor:
    """The read-out compared with targets: logits ``[batch, K]``, the last position of
    ``[batch, pos, K]``."""
    if not isinstance(out, Tensor) or out.ndim not in (2, 3):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise MesaError(
            f"the model's output is {shape}; subspace interventions read logits [batch, K], or "
            "[batch, pos, K] at the last position"
        )
    return out[:, -1] if out.ndim == 3 else out


def _targets(target: Any, n: int) -> Tensor:
    """Class labels ``[n]`` (long) or a mask ``[n, K]`` of acceptable outputs (float)."""
    t = as_tensor(target, "targets")
    if t.ndim == 1:
        if t.dtype == torch.bool:
            raise MesaError("1-D targets are class labels; give a bool mask as [n, K]")
        return class_labels(t, n, "targets").long()
    if t.ndim != 2 or len(t) != n:
        raise MesaError(
            f"{n} pairs need targets [{n}] (class labels) or [{n}, K] (a mask of acceptable "
            f"outputs), got {tuple(t.shape)}"
        )
    mask = t.float()
    if not torch.isfinite(mask).all() or (mask < 0).any():
        raise MesaError("a target mask must hold non-negative finite weights (or bools)")
    if not (mask > 0).any(1).all():
        row = int((~(mask > 0).any(1)).nonzero()[0])
        raise MesaError(f"target mask row {row} accepts no output")
    return mask


def _check_width(logits: Tensor, target: Tensor) -> None:
    k = logits.shape[-1]
    if target.ndim == 2 and target.shape[1] != k:
        raise MesaError(f"the target mask has {target.shape[1]} columns; the model gives {k}")
    if target.ndim == 1 and (int(target.min()) < 0 or int(target.max()) >= k):
        raise MesaError(f"target labels must be output classes 0..{k - 1}")


def _check_learnable(out: Tensor, target: Tensor, hook: str) -> None:
    """Refuse, after the first intervened forward pass, what DAS cannot learn from."""
    _check_width(out, target)
    if not out.requires_grad:
        raise MesaError(
            f"the model's output does not depend differentiably on hook {hook!r} "
            "(no gradient path), so DAS cannot learn there; pick a hook upstream"
        )


def _log_prob(logits: Tensor, target: Tensor) -> Tensor:
    """Per pair: log of the probability on the label, or on the mask (``log sum_k p_k m_k``)."""
    log_p = torch.log_softmax(logits.float(), -1)
    if target.ndim == 1:
        return log_p.gather(1, target[:, None])[:, 0]
    return torch.logsumexp(log_p + target.log(), -1)  # log 0 = -inf: outside the mask


def _hits(logits: Tensor, target: Tensor) -> Tensor:
    """Per pair: whether the output's argmax is the label, or inside the mask."""
    top = logits.argmax(-1)
    return top == target if target.ndim == 1 else target.gather(1, top[:, None])[:, 0] > 0


class DAS(nn.Module):
    """A learned rotation whose first ``k`` coordinates hold a causal variable at one hook.

    After :func:`fit_das`, ``held_out_iia`` is the IIA on the pairs held out of the fit (None
    when none were), ``test_index`` their indices, and ``train_iia`` the IIA on the fitted pairs.
    """

    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        if not 1 <= k <= dim:
            raise MesaError(f"subspace size k must be in 1..{dim}, got {k}")
        self.k = k
        self.rotation = nn.utils.parametrizations.orthogonal(nn.Linear(dim, dim, bias=False))
        self.train_iia: float | None = None
        self.held_out_iia: float | None = None
        self.test_index: Tensor = torch.zeros(0, dtype=torch.long)

    @property
    def basis(self) -> Tensor:
        """The learned subspace as ``k`` orthonormal rows."""
        weight: Tensor = self.rotation.weight  # type: ignore[assignment]
        return weight[: self.k]


@contextmanager
def _frozen(model: Any) -> Iterator[None]:
    """The model's parameters without gradients for the duration, then as they were."""
    params = list(model.parameters()) if callable(getattr(model, "parameters", None)) else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _split(n: int, test_size: float, seed: int) -> tuple[Tensor, Tensor]:
    if not 0 <= test_size < 1:
        raise MesaError(f"test_size must be in [0, 1), got {test_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = round(n * test_size)
    if n - n_test < 1 or (test_size > 0 and n_test < 1):
        raise MesaError(f"test_size {test_size} of {n} pairs leaves a split empty")
    return order[n_test:], order[:n_test]


def _minibatches(index: Tensor, size: int | None, seed: int) -> Iterator[Tensor]:
    """Endless minibatches of ``index``, reshuffled each epoch (the whole of it for None)."""
    g = torch.Generator().manual_seed(seed + 1)
    while True:
        order = index[torch.randperm(len(index), generator=g)]
        yield from order.split(size or len(index))


def fit_das(
    model: nn.Module,
    base: Shaped[Array, "n ..."],
    source: Shaped[Array, "n ..."],
    labels: Shaped[Array, "n ..."],
    hook: str,
    k: int = 1,
    position: int | None = None,
    steps: int = 300,
    lr: float = 0.01,
    seed: int = 0,
    *,
    batch_size: int | None = 256,
    test_size: float = 0.0,
) -> DAS:
    """Learn a ``k``-dimensional subspace at ``hook`` such that interchanging it from source into
    base makes the model give the counterfactual output ``labels``: class labels ``[n]`` or a
    mask ``[n, K]`` of acceptable outputs (see the module docstring for the loss and read-out).

    ``steps`` Adam steps on minibatches of ``batch_size`` pairs (None: every training pair each
    step). ``test_size`` holds that share of the pairs out of the fit; the returned
    :class:`DAS` carries ``held_out_iia`` on them and ``train_iia`` on the rest.
    """
    hm = hooked(model)
    hm.check(hook)
    base, source = _pair(hm, base, source)
    target = _targets(labels, len(base)).to(base.device)
    if batch_size is not None and batch_size < 1:
        raise MesaError(f"batch_size must be at least 1 (or None), got {batch_size}")
    train, test = _split(len(base), test_size, seed)
    src = _source_acts(hm, source, hook, batch_size)
    with torch.random.fork_rng(devices=[]):  # seed the rotation without touching global RNG
        torch.manual_seed(seed)  # on the CPU, so a seed starts every device from one rotation
        das = DAS(_at(src, position, hook)[0].numel(), k).to(src.device)
    opt = torch.optim.Adam(das.parameters(), lr=lr)
    with _frozen(model), torch.enable_grad():  # also when called under torch.no_grad()
        for step, idx in zip(range(steps), _minibatches(train, batch_size, seed), strict=False):
            swap = _swapping(src[idx], das.basis, position)
            out = _answer(hm.run(base[idx], [(hook, swap)]))
            if step == 0:
                _check_learnable(out, target, hook)
            loss = -_log_prob(out, target[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    basis = das.basis.detach()
    for name, index in (("train_iia", train), ("held_out_iia", test)):
        if len(index):
            iia = _iia(
                hm, base[index], src[index], target[index], hook, basis, position, batch_size
            )
            setattr(das, name, iia)
    das.test_index = test
    return das


@torch.no_grad()
def _iia(
    hm: Hooked,
    base: Tensor,
    src: Tensor,
    target: Tensor,
    hook: str,
    basis: Tensor,
    position: int | None,
    batch_size: int | None,
) -> float:
    q, step, hits = _orthonormal(basis), batch_size or len(base), 0
    for i in range(0, len(base), step):
        out = _answer(
            hm.run(base[i : i + step], [(hook, _swapping(src[i : i + step], q, position))])
        )
        _check_width(out, target)
        hits += int(_hits(out, target[i : i + step]).sum())
    return hits / len(base)


@torch.no_grad()
def interchange_accuracy(
    model: nn.Module,
    base: Array,
    source: Array,
    labels: Shaped[Array, "n ..."],
    hook: str,
    basis: Float[Array, "k d"],
    position: int | None = None,
    *,
    batch_size: int | None = None,
) -> float:
    """IIA: the share of pairs whose intervened output's argmax is the counterfactual label, or
    lies inside the mask of acceptable outputs (``labels`` ``[n]`` or ``[n, K]``); in batches of
    ``batch_size`` pairs (None: all at once)."""
    hm = hooked(model)
    hm.check(hook)
    base, source = _pair(hm, base, source)
    target = _targets(labels, len(base)).to(base.device)
    src = _source_acts(hm, source, hook, batch_size)
    basis = _checked_basis(basis, src, position, hook)
    return _iia(hm, base, src, target, hook, basis, position, batch_size)
