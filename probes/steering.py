"""Steering by activation addition, without optimization: add ``alpha * direction`` to a hook's
activation during the forward pass (subtract with a negative ``alpha``), everywhere or at chosen
positions.

On a ``[batch, pos, ...]`` hook a direction can have the size of one position's activation
(``d_model`` on a residual stream), and is then added at every position (or only at
``positions``), or the size of a whole example's activation (``pos * d_model``), added as it is.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from mesa.probes.checks import Array
from mesa.probes.errors import MesaError
from mesa.probes.hooks import hooked


def _shaped(direction: Tensor, act: Tensor, positions: list[int] | None) -> Tensor:
    """``direction`` shaped to add onto ``act`` (``[batch, ...]``) or onto its ``positions``."""
    per_example, d = act[0].numel(), direction.numel()
    per_position = act[0, 0].numel() if act.ndim >= 3 else None
    if positions is not None:
        if per_position is None:
            raise MesaError(
                f"positions need a [batch, pos, ...] hook; this one has shape {tuple(act.shape)}"
            )
        for p in positions:
            if not -act.shape[1] <= p < act.shape[1]:
                raise MesaError(f"position {p} out of range for {act.shape[1]} positions")
        if d != per_position:
            raise MesaError(
                f"direction has {d} entries; at chosen positions the hook's activation has "
                f"{per_position} per position"
            )
        return direction.reshape(act.shape[2:])
    if d == per_example:
        return direction.reshape(act.shape[1:])
    if d == per_position:  # one position's size: the same direction at every position
        return direction.reshape(act.shape[2:])
    sizes = f"{per_position} per position or " if per_position is not None else ""
    raise MesaError(
        f"direction has {d} entries; the hook's activation has {sizes}{per_example} per example"
    )


def steering_hook(direction: Tensor, alpha: float, positions: list[int] | None = None):
    """A forward hook adding ``alpha * direction`` (see the module docstring for its shapes)."""

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        d = alpha * _shaped(direction.to(act.device, act.dtype), act, positions)
        if positions is None:
            return act + d
        act = act.clone()
        act[:, positions] = act[:, positions] + d
        return act

    return hook


@torch.no_grad()
def steer(
    model: nn.Module,
    inputs: Array,
    hook: str,
    direction: Float[Array, " d"],
    alpha: float = 1.0,
    positions: list[int] | None = None,
) -> Tensor:
    """The model's output with ``alpha * direction`` added at ``hook``: at every position (a
    direction of one position's size on a ``[batch, pos, ...]`` hook), as a whole (a direction of
    one example's size) or only at ``positions``."""
    hm = hooked(model)
    hm.check(hook)
    inputs = hm.inputs(inputs)
    direction = torch.as_tensor(direction)
    if direction.ndim != 1:
        raise MesaError(f"direction must be one vector, got shape {tuple(direction.shape)}")
    if torch.isnan(direction).any():
        raise MesaError("the steering direction contains NaN")
    return hm.run(inputs, [(hook, steering_hook(direction, alpha, positions))])  # type: ignore[no-any-return]
