"""Causal evidence from counterfactual pairs: which goal does the decision use, and where?

A task supplies pairs of inputs that differ in one goal variable only (the cheese moves while the
corner stays; the user's claim changes while the sum stays). For each goal ``v``:

- the **total effect** ``T_v`` is the mean total-variation distance between the model's output
  distributions (action distribution, or answer distribution at the last position) on base and
  source — how much the decision reacts to that goal at all, in any direction;
- the **directed effect** ``Delta_v`` is how far the decision turns towards the goal's new place:
  with ``m`` the outputs that pursue the goal in each input (``Task.goal_outputs``), the mean of
  ``(P_source - P_base) . (m_source - m_base) / 2`` over the pairs where ``m`` changes;
- the **causal effect at a hook** ``C_v(h)`` is an interchange intervention (Geiger et al. 2021):
  run the base input with the activations at ``h`` *at the locations where the inputs differ*
  (grid cells for a conv hook, token positions for a transformer hook, cell tokens for a
  cell-token policy; the last position too, where transformers gather information) taken from
  the source run, and report the share of ``Delta_v`` that this restores. Hooks without a
  spatial or position axis are patched whole.

Patching a whole layer would restore everything at any layer that is a complete cut of the
network and so would say nothing about *which* goal is used; patching only where the goal lives
localises the flow of that goal's information.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def following(base_goal_outputs: Tensor, source_goal_outputs: Tensor) -> Tensor:
    """``[n, K]`` float: half the change in goal-directed outputs from base to source. An output
    distribution's dot product with it measures how far the decision points the source's way."""
    return 0.5 * (source_goal_outputs.float() - base_goal_outputs.float())


def pair_following(task: Any, pairs: dict[str, Tensor], vary: str, n_outputs: int) -> Tensor:
    """:func:`following` for a task's counterfactual pairs that move goal ``vary``: the goal
    outputs (``Task.goal_outputs``) of base and source at each one's own goal."""
    return following(
        task.goal_outputs(pairs["base"], pairs[f"base_{vary}_goal"], n_outputs),
        task.goal_outputs(pairs["source"], pairs[f"source_{vary}_goal"], n_outputs),
    )


def informative(follow: Tensor) -> Tensor:
    """Bool [n]: the pairs where the goal's move changes which outputs pursue it."""
    return follow.abs().sum(-1) > 0


def directed_share(moved: Tensor, full: Tensor) -> float:
    """The share ``sum(moved) / sum(full)`` of a directed effect, clipped to [-1, 1]; 0 when
    there is no effect to share."""
    den = float(full.sum())
    return max(-1.0, min(1.0, float(moved.sum()) / den)) if abs(den) > 1e-9 else 0.0


@dataclass
class CausalEffects:
    """What :func:`causal_effects` measures for one goal."""

    total: float
    """``T_v``: mean total-variation distance between the decisions on base and source."""
    directed: float
    """``Delta_v``: mean shift of the decision towards the moved goal, over informative pairs."""
    at_hook: dict[str, float]
    """``C_v(h)``: share of ``Delta_v`` restored by a localised interchange at each hook."""
    localised: set[str]
    """Hooks with the input's cells or positions as an axis (the others are patched whole)."""
    informative: int
    """Pairs where the goal's move changes which outputs pursue it."""


@torch.no_grad()
def causal_effects(
    model: Any,
    kind: str,
    base: Tensor,
    source: Tensor,
    hooks: list[str],
    follow: Tensor,
    batch_size: int = 256,
) -> CausalEffects:
    """Total, directed and per-hook causal effects for pairs that differ in goal ``v`` only.

    ``follow`` [n, K] is :func:`following` of the pairs' goal-directed outputs. Hooks without a
    cell or position axis are patched whole; they restore the whole effect whenever they cut the
    network, so they are reported but marked as not localised.
    """
    local: set[str] = set()
    probs = output_probs(model, kind)
    useful = informative(follow)
    tv: list[Tensor] = []
    shift: list[Tensor] = []  # f(source) - f(base), where f(P) = P . follow
    restored: dict[str, list[Tensor]] = {h: [] for h in hooks}  # f(patched) - f(base)
    for i in range(0, len(base), batch_size):
        b, s = base[i : i + batch_size], source[i : i + batch_size]
        w, keep = follow[i : i + batch_size], useful[i : i + batch_size]
        mask = difference_mask(b, s, kind)
        p_base = probs(b)
        _, cache = model.run_with_cache(s, names_filter=lambda n: n in hooks)
        p_src = probs(s)
        tv.append(total_variation(p_base, p_src))
        f_base = (p_base * w).sum(-1)
        shift.append(((p_src * w).sum(-1) - f_base)[keep])
        for h in hooks:
            if i == 0 and localizable(cache[h], mask, kind):
                local.add(h)
            logits = model.run_with_hooks(b, fwd_hooks=[(h, _patch_hook(mask, cache[h], kind))])
            if kind == "sequence":
                logits = logits[:, -1]
            p_patch = torch.softmax(logits.float(), dim=-1)
            restored[h].append(((p_patch * w).sum(-1) - f_base)[keep])
    full = torch.cat(shift)
    directed = float(full.mean()) if len(full) else 0.0
    return CausalEffects(
        total=float(torch.cat(tv).mean()),
        directed=directed,
        at_hook={h: directed_share(torch.cat(restored[h]), full) for h in hooks},
        localised=local,
        informative=len(full),
    )
