"""Collecting activations from named hooks over large input sets, batch by batch.

Only the requested hooks are cached (``names_filter``), activations are moved to CPU as each batch
finishes, and the output is preallocated, so memory is bounded by one batch of the model's
forward pass plus the result itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from mesa.probes.errors import MesaError
from mesa.probes.hooks import HookedModel, check_hooks, check_model


@torch.no_grad()
def collect_activations(
    model: HookedModel,
    inputs: Tensor,
    hooks: str | Sequence[str],
    batch_size: int = 512,
    position: int | None = None,
    flatten: bool = True,
    progress: bool = False,
) -> dict[str, Float[Tensor, "n ..."]]:
    """``{hook: activations}`` of ``model`` over ``inputs`` (first axis = examples).

    ``position`` selects one position of sequence hooks (``[batch, pos, ...]``), e.g. ``-1``;
    ``flatten`` reshapes each example's activation to a vector ``[n, d]``.
    """
    model = check_model(model)
    hooks = check_hooks(model, hooks)
    if batch_size < 1:
        raise MesaError(f"batch_size must be at least 1, got {batch_size}")
    n = len(inputs)
    out: dict[str, Tensor] = {}
    for start in tqdm(range(0, n, batch_size), desc="activations", disable=not progress):
        _, cache = model.run_with_cache(
            inputs[start : start + batch_size], names_filter=lambda name: name in hooks
        )
        for h in hooks:
            act = cache[h]
            if position is not None:
                if act.ndim < 3:
                    raise MesaError(f"hook {h!r} has no position axis (shape {tuple(act.shape)})")
                if not -act.shape[1] <= position < act.shape[1]:
                    raise MesaError(
                        f"position {position} out of range for {act.shape[1]} positions"
                    )
                act = act[:, position]
            act = act.flatten(1) if flatten else act
            if torch.isnan(act).any():
                raise MesaError(f"NaN activations at hook {h!r}")
            if h not in out:
                out[h] = torch.empty((n, *act.shape[1:]), dtype=act.dtype)
            out[h][start : start + len(act)] = act.cpu()
    return out
