"""Causal evidence from counterfactual pairs: which goal does the decision use, and where?

A task supplies pairs of inputs that differ in one goal variable only (the cheese moves while the
corner stays; the user's claim changes while the sum stays). For each goal ``v``:

- the **total effect** ``T_v`` is the mean total-variation distance between the model's output
  distributions (action distribution, or answer distribution at the last position) on base and
  source — how much the decision depends on that goal at all;
- the **causal effect at a hook** ``C_v(h)`` is an interchange intervention (Geiger et al. 2021):
  run the base input with the activations at ``h`` *at the locations where the inputs differ*
  (grid cells for a conv hook, token positions for a transformer hook, cell tokens for a
  cell-token policy; the last position too, where transformers gather information) taken from
  the source run, and report the normalised share of the output change that this restores,
  ``1 - TV(patched, source) / TV(base, source)``, averaged over pairs weighted by their
  ``TV(base, source)``. Hooks without a spatial or position axis are patched whole.

Patching a whole layer would restore everything at any layer that is a complete cut of the
network and so would say nothing about *which* goal is used; patching only where the goal lives
localises the flow of that goal's information.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

OutputFn = Callable[[Tensor], Tensor]


def output_probs(model: Any, kind: str) -> OutputFn:
    """A function ``inputs -> probabilities [batch, K]`` of the model's decision."""

    def fn(x: Tensor) -> Tensor:
        logits = model(x)
        if kind == "sequence":
            logits = logits[:, -1]
        return torch.softmax(logits.float(), dim=-1)

    return fn


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    return 0.5 * (p - q).abs().sum(-1)


def difference_mask(base: Tensor, source: Tensor, kind: str) -> Tensor:
    """Where the inputs differ: [batch, H, W] cells for grids, [batch, pos] for tokens."""
    if kind == "sequence":
        mask = base != source
        mask[:, -1] = True  # transformers gather the answer at the last position
        return mask
    return (base != source).any(dim=1)


def site_mask(act: Tensor, mask: Tensor, kind: str) -> Tensor | None:
    """``mask`` shaped to broadcast against a hook's activation ``act``, or None where ``act`` has
    no axis for the input's grid cells or positions (the hook is then patched whole).

    Three layouts are recognised: token positions ``[batch, pos, ...]`` of a sequence model;
    grid cells ``[batch, channels, H, W]`` of a conv policy; and cell tokens
    ``[batch, H*W + 1, ...]`` of a cell-token transformer policy (cells in row-major order, then
    the read-out token, which is always patched: it is where the decision is gathered).
    """
    if kind == "sequence":
        if act.ndim >= 3 and act.shape[:2] == mask.shape:
            return mask.reshape(*mask.shape, *([1] * (act.ndim - 2)))
        return None
    if act.ndim == 4 and act.shape[-2:] == mask.shape[-2:]:
        return mask[:, None]
    cells = mask.flatten(1)
    if act.ndim >= 3 and act.shape[1] == cells.shape[1] + 1:
        tokens = torch.cat([cells, torch.ones_like(cells[:, :1])], dim=1)
        return tokens.reshape(*tokens.shape, *([1] * (act.ndim - 2)))
    return None


def localizable(act: Tensor, mask: Tensor, kind: str) -> bool:
    """Whether a hook's activation has the grid cells / positions of the input as an axis."""
    return site_mask(act, mask, kind) is not None


def _patch_hook(mask: Tensor, source_act: Tensor, kind: str) -> Callable[[Tensor, Any], Tensor]:
    def hook(act: Tensor, hook: Any = None) -> Tensor:
        m = site_mask(act, mask, kind)
        return source_act if m is None else torch.where(m, source_act, act)

    return hook


@torch.no_grad()
def causal_effects(
    model: Any,
    kind: str,
    base: Tensor,
    source: Tensor,
    hooks: list[str],
    batch_size: int = 256,
) -> tuple[float, dict[str, float], set[str]]:
    """``(T_v, {hook: C_v(hook)}, localised hooks)`` for pairs that differ in goal ``v`` only.

    Hooks without a cell or position axis are patched whole; they restore the whole effect
    whenever they cut the network, so they are reported but marked as not localised.
    """
    local: set[str] = set()
    probs = output_probs(model, kind)
    tv_base_src: list[Tensor] = []
    tv_patch_src: dict[str, list[Tensor]] = {h: [] for h in hooks}
    for i in range(0, len(base), batch_size):
        b, s = base[i : i + batch_size], source[i : i + batch_size]
        mask = difference_mask(b, s, kind)
        p_base = probs(b)
        _, cache = model.run_with_cache(s, names_filter=lambda n: n in hooks)
        p_src = probs(s)
        tv_base_src.append(total_variation(p_base, p_src))
        for h in hooks:
            if i == 0 and localizable(cache[h], mask, kind):
                local.add(h)
            logits = model.run_with_hooks(b, fwd_hooks=[(h, _patch_hook(mask, cache[h], kind))])
            if kind == "sequence":
                logits = logits[:, -1]
            p_patch = torch.softmax(logits.float(), dim=-1)
            tv_patch_src[h].append(total_variation(p_patch, p_src))
    d = torch.cat(tv_base_src)
    total = float(d.mean())
    effects = {}
    for h in hooks:
        remaining = torch.cat(tv_patch_src[h])
        effects[h] = float(((d - remaining).sum() / d.sum()).clamp(-1, 1)) if total > 0 else 0.0
    return total, effects, local
