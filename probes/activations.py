"""Collecting activations from named hooks over large input sets, batch by batch.

Only the requested hooks are cached, activations are moved to CPU as each batch finishes, and
the output is preallocated, so memory is bounded by one batch of the model's forward pass plus
the result itself. Hooks are named as :mod:`mesa.probes.hooks` describes (TransformerLens hook
points, or module paths of any ``nn.Module``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from mesa.probes.checks import Array
from mesa.probes.errors import MesaError
from mesa.probes.hooks import Hooked, hooked

#: TransformerLens's attention patterns and scores are laid out ``[batch, head, dest, src]``:
#: their axis 1 is the head, not a position.
HEAD_FIRST = ("hook_pattern", "hook_attn_scores")


def position_axis_problem(hook: str | None, shape: Sequence[int]) -> str | None:
    """Why ``position`` cannot select from the activation of ``hook`` (``shape``; ``[batch, pos,
    ...]`` is needed), or None if it can."""
    name = f"hook {hook!r}" if hook else "the hook"
    if len(shape) < 3:
        return f"{name} has no position axis (shape {tuple(shape)}, not [batch, pos, ...])"
    if hook and hook.rsplit(".", 1)[-1] in HEAD_FIRST:
        return f"{name} is laid out [batch, head, dest, src]: axis 1 is not a position"
    return None


def at_position(act: Tensor, position: int, hook: str | None) -> Tensor:
    """``act[:, position]``, or a one-line error if ``act`` has no such position."""
    problem = position_axis_problem(hook, act.shape)
    if problem:
        raise MesaError(problem)
    if not -act.shape[1] <= position < act.shape[1]:
        raise MesaError(f"position {position} out of range for {act.shape[1]} positions")
    return act[:, position]


def read_out(act: Tensor, hook: str, position: int | None, flatten: bool) -> Tensor:
    """One batch's activation at ``hook``, at ``position`` if given, flattened if asked."""
    if position is not None:
        act = at_position(act, position, hook)
    act = act.flatten(1) if flatten else act
    if act.is_floating_point() and torch.isnan(act).any():
        raise MesaError(f"NaN activations at hook {hook!r}")
    return act


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    inputs: Array,
    hooks: str | Sequence[str],
    batch_size: int = 512,
    position: int | None = None,
    flatten: bool = True,
    progress: bool = False,
) -> dict[str, Float[Tensor, "n ..."]]:
    """``{hook: activations}`` of ``model`` over ``inputs`` (first axis = examples; a tensor or
    numpy array, at least one example).

    ``position`` selects one position of sequence hooks (``[batch, pos, ...]``), e.g. ``-1``;
    ``flatten`` reshapes each example's activation to a vector ``[n, d]``.
    """
    hm = hooked(model)
    return collect(hm, hm.inputs(inputs), hm.check(hooks), batch_size, position, flatten, progress)


def collect(
    hm: Hooked,
    inputs: Tensor,
    names: list[str],
    batch_size: int,
    position: int | None,
    flatten: bool = True,
    progress: bool = False,
) -> dict[str, Tensor]:
    """:func:`collect_activations` on checked arguments."""
    if batch_size < 1:
        raise MesaError(f"batch_size must be at least 1, got {batch_size}")
    n = len(inputs)
    out: dict[str, Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc="activations", disable=not progress):
        _, cache = hm.cache(inputs[start : start + batch_size], names)
        for h in names:
            act = read_out(cache[h], h, position, flatten)
            if h not in out:
                out[h] = torch.empty((n, *act.shape[1:]), dtype=act.dtype)
            out[h][start : start + len(act)] = act.cpu()
    return out
