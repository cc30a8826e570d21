"""Steering by activation addition (Turner et al. 2023, "Activation addition: steering language
models without optimization"): add ``alpha * direction`` to a hook's activation during the
forward pass (subtract with a negative ``alpha``), everywhere or at chosen positions.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mesa.probes.errors import MesaError
from mesa.probes.hooks import HookedModel, check_hooks, check_model


def steering_hook(direction: Tensor, alpha: float, positions: list[int] | None = None):
    def hook(act: Tensor, hook: Any = None) -> Tensor:
        d = direction.to(act.dtype)
        if positions is None:
            if d.numel() != act[0].numel():
                raise MesaError(
                    f"direction has {d.numel()} entries; the hook's activation has "
                    f"{act[0].numel()} per example"
                )
            return act + alpha * d.reshape(act.shape[1:])
        act = act.clone()
        act[:, positions] = act[:, positions] + alpha * d.reshape(act.shape[2:])
        return act

    return hook


@torch.no_grad()
def steer(
    model: HookedModel,
    inputs: Tensor,
    hook: str,
    direction: Float[Tensor, " d"],
    alpha: float = 1.0,
    positions: list[int] | None = None,
) -> Tensor:
    """The model's output with ``alpha * direction`` added at ``hook`` (at ``positions``)."""
    model = check_model(model)
    check_hooks(model, hook)
    if torch.isnan(direction).any():
        raise MesaError("the steering direction contains NaN")
    return model.run_with_hooks(
        inputs, fwd_hooks=[(hook, steering_hook(direction, alpha, positions))]
    )  # type: ignore[no-any-return]
