"""Where an input's sites live in a model's activations.

Detection intervenes at *sites* of the input — grid cells (row-major), or token positions — and
must find them in a hook's activation. How depends on the architecture, so each of mesa's
architectures states it here:

- ``conv`` and ``mlp`` policies: a ``[batch, C, H, W]`` activation (the observation, each conv
  block) holds the cells at its last two axes; dense activations hold no cell (None);
- ``cell_transformer``: positions ``0 .. H*W - 1`` of ``[batch, pos, ...]`` are the cells, and the
  last position, the read-out token where the decision is gathered, is always included;
- ``transformer``: positions of ``[batch, pos, ...]`` are the sites.

A model of an architecture registered elsewhere (:func:`mesa.models.register_arch`) can state
its own layout with :func:`register_site_layout`. A model of no known architecture (your own
hooked model, not built by :func:`mesa.models.build_model`) is read by the common convention:
``[batch, pos, ...]`` where axis 1 has one entry per site, or ``[batch, C, H, W]`` with ``H * W``
sites; any other activation holds no sites.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import Tensor


def _grid(model: Any, act: Tensor, sites: Tensor) -> Tensor | None:
    _, h, w = model.config.obs_shape
    if act.ndim != 4 or tuple(act.shape[-2:]) != (h, w):
        return None
    return rearrange(sites, "b (h w) -> b 1 h w", h=h, w=w)


def _tokens(act: Tensor, sites: Tensor) -> Tensor | None:
    if act.ndim < 3 or act.shape[1] != sites.shape[1]:
        return None
    return sites.reshape(*sites.shape, *([1] * (act.ndim - 2)))


def _cell_tokens(model: Any, act: Tensor, sites: Tensor) -> Tensor | None:
    readout = sites.new_ones(len(sites), 1)  # the read-out token gathers the decision
    return _tokens(act, torch.cat([sites, readout], dim=1))


def _convention(model: Any, act: Tensor, sites: Tensor) -> Tensor | None:
    if act.ndim == 4 and act.shape[-2] * act.shape[-1] == sites.shape[1]:
        return rearrange(sites, "b (h w) -> b 1 h w", h=act.shape[-2], w=act.shape[-1])
    return _tokens(act, sites)


Layout = Any  # (model, activation, sites [batch, S]) -> mask or None

_LAYOUTS: dict[str, Layout] = {
    "conv": _grid,
    "mlp": _grid,
    "cell_transformer": _cell_tokens,
    "transformer": lambda model, act, sites: _tokens(act, sites),
}


def register_site_layout(arch: str, layout: Layout) -> None:
    """State where architecture ``arch``'s activations hold the input's sites: ``layout(model,
    activation, sites)`` returns ``sites`` (bool ``[batch, S]``) as a mask broadcastable to the
    activation, or None where it holds none."""
    _LAYOUTS[arch] = layout


def site_mask(model: Any, act: Tensor, sites: Tensor) -> Tensor | None:
    """``sites`` (bool ``[batch, S]``) as a mask broadcastable to the hook activation ``act``, or
    None where ``act`` holds no sites (patch it whole, or not at all)."""
    spec = getattr(model, "mesa_spec", None)
    arch = str(spec.get("arch")) if isinstance(spec, dict) else ""
    return _LAYOUTS.get(arch, _convention)(model, act, sites)
