"""Activation patching: which activations carry the information a behaviour depends on?

Run the model on a *base* input (e.g. corrupted) while replacing the activation at one hook —
at one position, grid cell, head, or head at one position — with its value on a *source* input
(e.g. clean), and read a metric of the output. Where patching moves the metric from its base
value to its source value, that activation carries what the two inputs differ in.

:func:`patch_sweep` gives the same numbers as ``transformer_lens.patching`` on the cases it
covers (``get_act_patch_resid_pre`` is ``by="position"`` at ``blocks.L.hook_resid_pre``;
``get_act_patch_attn_head_out_by_pos`` is ``by="head_position"`` at ``blocks.L.attn.hook_z``),
but runs every location of a hook in one batched forward pass (the base input is repeated once
per location and each copy patches its own) instead of one forward pass per location, and on
transformers with TransformerLens's layout (``blocks``, ``ln_final``, ``unembed``) it reuses the
base run's prefix: a hook in block ``L`` is patched by running blocks ``L..`` only, from the base
input's cached residual stream entering block ``L``. (The bridge's own ``start_at_layer`` still
computes blocks ``0..L-1`` and discards them, so it would save nothing.) Normalised recovery
``(patched - base) / (source - base)`` is :meth:`PatchResult.recovery`. It works on any
``nn.Module`` (hooks as :mod:`mesa.probes.hooks` names them) whose output is a tensor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange, repeat
from jaxtyping import Shaped
from torch import Tensor, nn
from tqdm.auto import tqdm

from mesa.probes.checks import Array, scalar
from mesa.probes.errors import MesaError
from mesa.probes.hooks import Hooked, hooked

Metric = Callable[[Tensor], Tensor]
BY = ("position", "cell", "head", "head_position", None)


def logit_diff(good: int, bad: int, position: int | None = -1) -> Metric:
    """Mean over the batch of ``logit[good] - logit[bad]`` (at ``position`` for sequences)."""

    def metric(logits: Tensor) -> Tensor:
        if position is not None and logits.ndim == 3:
            logits = logits[:, position]
        return (logits[:, good] - logits[:, bad]).mean()

    return metric


def target_prob(target: int | Tensor, position: int | None = -1) -> Metric:
    """Mean probability of ``target`` (one class, or one per example)."""

    def metric(logits: Tensor) -> Tensor:
        if position is not None and logits.ndim == 3:
            logits = logits[:, position]
        probs = torch.softmax(logits.float(), -1)
        t = (
            torch.as_tensor(target).expand(len(probs))
            if torch.as_tensor(target).ndim == 0
            else target
        )
        return probs.gather(1, torch.as_tensor(t).view(-1, 1)).mean()

    return metric


@dataclass
class PatchResult:
    """``values[i, k]``: the metric with hook ``hooks[i]`` patched at location ``k``; for
    ``by="head_position"``, ``values[i, p, h]``: patched at position ``p`` of head ``h`` (the
    layout of ``transformer_lens.patching``'s ``*_by_pos`` results, one row per hook)."""

    hooks: list[str]
    by: str | None
    values: Tensor
    base_value: float
    source_value: float

    def recovery(self) -> Tensor:
        """Normalised recovery ``(patched - base) / (source - base)`` (NaN if they are equal)."""
        gap = self.source_value - self.base_value
        if abs(gap) < 1e-12:
            return torch.full_like(self.values, float("nan"))
        return (self.values - self.base_value) / gap

    def to_dict(self) -> dict[str, Any]:
        return {
            "hooks": self.hooks,
            "by": self.by,
            "values": self.values.tolist(),
            "base_value": self.base_value,
            "source_value": self.source_value,
        }

    def plot(self, ax: Any = None) -> Any:
        """Heatmap of normalised recovery, hooks by location (matplotlib Axes)."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 0.4 * len(self.hooks) + 1.5))[1]
        im = ax.imshow(self.recovery().flatten(1), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
        ax.set_yticks(range(len(self.hooks)), self.hooks, fontsize=7)
        ax.set_xlabel(self.by or "whole activation")
        ax.figure.colorbar(im, ax=ax, label="normalised recovery")
        return ax


#: The layout each way of patching needs (the activation's axes).
_NEEDS = {
    "position": "[batch, pos, ...]",
    "cell": "[batch, C, H, W]",
    "head": "[batch, pos, head, d_head]",
    "head_position": "[batch, pos, head, d_head]",
}


def patching_hook(source: Tensor, mask: Tensor | None = None) -> Callable[..., Tensor]:
    """A hook function that replaces a hook's activation by ``source`` (the same hook's
    activation on the source inputs, ``[batch, ...]``) wherever ``mask`` is True — a bool tensor
    broadcastable to the activation, e.g. ``[batch, pos, 1]`` for some positions of each
    example — or everywhere when ``mask`` is None. The one patching operation of mesa:
    :func:`patch_sweep` runs it at each location, ``mesa.detect`` at each pair's sites."""

    def hook(act: Tensor, hook: Any = None) -> Tensor:
        if source.shape != act.shape:
            raise MesaError(
                f"source activations {tuple(source.shape)} do not match the hook's "
                f"{tuple(act.shape)}"
            )
        # on the activation's device (no copy where they are there already: the CPU's case)
        src = source.to(act.device)
        return src if mask is None else torch.where(mask.to(act.device), src, act)

    return hook


def _locations(act: Tensor, by: str | None, hook: str) -> tuple[tuple[int, ...], Any]:
    """The grid of locations ``by`` names in ``act`` (``[batch, ...]``) and a function from flat
    location indices to their boolean masks ``[K, *act.shape[1:]]``."""
    shape = tuple(act.shape[1:])
    # each mask is a one-hot over the located axes, spread by an einops pattern over the rest
    if by is None:
        return (1,), lambda ks: torch.ones((len(ks), *shape), dtype=torch.bool)
    if by == "position" and act.ndim >= 3:
        pattern, sizes, grid = "k (p) -> k p" + " 1" * (len(shape) - 1), {"p": shape[0]}, shape[:1]
    elif by == "cell" and act.ndim == 4:
        pattern, sizes, grid = "k (h w) -> k 1 h w", {"h": shape[1], "w": shape[2]}, shape[1:]
    elif by == "head" and act.ndim == 4:
        pattern, sizes, grid = "k (n) -> k 1 n 1", {"n": shape[1]}, shape[1:2]
    elif by == "head_position" and act.ndim == 4:
        pattern, sizes, grid = "k (p n) -> k p n 1", {"p": shape[0], "n": shape[1]}, shape[:2]
    else:
        raise MesaError(
            f"cannot patch hook {hook!r} of shape {tuple(act.shape)} by {by!r}: it needs "
            f"{_NEEDS[by]} (by=None patches the whole activation)"
        )

    def masks(ks: Sequence[int]) -> Tensor:
        one_hot = torch.eye(math.prod(grid), dtype=torch.bool)[list(ks)]
        return rearrange(one_hot, pattern, **sizes).expand(len(ks), *shape)

    # a cell sweep keeps one flat H*W axis (cells in row-major order)
    return ((math.prod(grid),) if by == "cell" else grid), masks


def _start_block(hook: str) -> int | None:
    """The block ``L`` whose incoming residual stream ``hook`` lies downstream of, or None."""
    match = re.fullmatch(r"blocks\.(\d+)\.(.+)", hook)
    return None if match is None or match.group(2) == "hook_in" else int(match.group(1))


def _suffix_runner(model: Any) -> Callable[[Tensor, int, list[Any]], Tensor] | None:
    """A function running blocks ``L..`` of a transformer from the residual stream entering block
    ``L`` (with hooks), or None for models without TransformerLens's ``blocks`` / ``ln_final`` /
    ``unembed`` layout. Its use is checked against a whole forward pass before any sweep."""
    blocks, ln_final, unembed = (getattr(model, n, None) for n in ("blocks", "ln_final", "unembed"))
    if not isinstance(blocks, torch.nn.ModuleList) or ln_final is None or unembed is None:
        return None
    if not callable(getattr(model, "hooks", None)):
        return None

    def run(resid: Tensor, start: int, fwd_hooks: list[Any]) -> Tensor:
        with model.hooks(fwd_hooks=fwd_hooks):
            x = resid
            for block in blocks[start:]:
                x = block(x)
                x = x[0] if isinstance(x, tuple) else x
            return unembed(ln_final(x))  # type: ignore[no-any-return]

    return run


class _BaseRuns:
    """Runs the base inputs, repeated once per location, with one hook patched.

    On a TransformerLens transformer whose blocks can be run one by one (checked: running from a
    block's cached incoming residual stream must reproduce the base output exactly), a hook in
    block ``L`` runs blocks ``L..`` only; otherwise every run is a whole forward pass.
    """

    def __init__(self, hm: Hooked, base: Tensor, names: list[str]) -> None:
        self.hm, self.base = hm, base
        self.suffix = _suffix_runner(hm.model) if hm.lens else None
        starts = {h: _start_block(h) if self.suffix else None for h in names}
        prefix = sorted({f"blocks.{b}.hook_resid_pre" for b in starts.values() if b})
        if not set(prefix) <= set(hm.names):
            starts, prefix = dict.fromkeys(names), []
        self.base_out, self.resid = hm.cache(base, prefix)
        if not all(self._reproduces(name) for name in prefix):
            starts = dict.fromkeys(names)
        self.starts = starts

    def _reproduces(self, name: str) -> bool:
        try:
            out = self.suffix(self.resid[name], int(name.split(".")[1]), [])  # type: ignore[misc]
        except Exception:  # a layout that cannot be run block by block: run it whole
            return False
        return torch.equal(out, self.base_out)

    def __call__(self, hook: str, patch: Callable[..., Tensor], copies: int) -> Tensor:
        first = self.starts[hook]
        if first:  # from the base's residual stream entering block L
            resid = self.resid[f"blocks.{first}.hook_resid_pre"]
            copied = repeat(resid, "b ... -> (k b) ...", k=copies)
            out = self.suffix(copied, first, [(hook, patch)])  # type: ignore[misc]
        else:
            out = self.hm.run(repeat(self.base, "b ... -> (k b) ...", k=copies), [(hook, patch)])
        if not isinstance(out, Tensor):
            raise MesaError(
                f"patch_sweep needs a model whose output is a tensor, got {type(out).__name__}"
            )
        return rearrange(out, "(k b) ... -> k b ...", k=copies)


def _sweep_hook(
    runs: _BaseRuns, hook: str, src: Tensor, by: str | None, metric: Metric, max_rows: int
) -> Tensor:
    """The metric with ``hook`` patched from ``src`` at each location, shaped as the grid."""
    if src.is_floating_point() and torch.isnan(src).any():
        raise MesaError(f"NaN activations at hook {hook!r}")
    grid, masks_of = _locations(src, by, hook)
    batch = len(src)
    n_loc = math.prod(grid)
    per_run = max(1, max_rows // batch)
    values: list[float] = []
    for start in range(0, n_loc, per_run):
        masks = masks_of(range(start, min(n_loc, start + per_run)))  # [K, *act_shape]

        k = len(masks)
        patch = patching_hook(
            repeat(src, "b ... -> (k b) ...", k=k),
            rearrange(masks[:, None].expand(k, batch, *masks.shape[1:]), "k b ... -> (k b) ..."),
        )
        values += [scalar(metric, out) for out in runs(hook, patch, k)]
    return torch.tensor(values).view(grid)


def _table(rows: list[Tensor]) -> Tensor:
    """One tensor ``[hooks, *grid]``, padded with NaN where hooks have fewer locations."""
    grid = [max(sizes) for sizes in zip(*(r.shape for r in rows), strict=True)]
    table = torch.full((len(rows), *grid), float("nan"))
    for i, r in enumerate(rows):
        index: tuple[int | slice, ...] = (i, *(slice(0, n) for n in r.shape))
        table[index] = r
    return table


@torch.no_grad()
def patch_sweep(
    model: nn.Module,
    base_inputs: Shaped[Array, "batch ..."],
    source_inputs: Shaped[Array, "batch ..."],
    hooks: str | Sequence[str],
    metric: Metric,
    by: str | None = "position",
    max_rows: int = 4096,
    progress: bool = False,
) -> PatchResult:
    """Patch each hook from source into base at every location ``by`` and record ``metric``.

    ``by``: ``"position"`` (``[batch, pos, ...]`` hooks), ``"cell"`` (``[batch, C, H, W]``),
    ``"head"`` or ``"head_position"`` (``[batch, pos, head, d_head]``, e.g. TransformerLens's
    ``attn.hook_z``), or None (the whole activation). ``metric`` maps the model's output for a
    batch to one number (as in ``transformer_lens.patching``). Locations are patched in batches
    of up to ``max_rows`` rows.
    """
    hm = hooked(model)
    names = hm.check(hooks)
    if by not in BY:
        raise MesaError(
            f"unknown location {by!r}; valid: cell, head, head_position, position, None"
        )
    base = hm.inputs(base_inputs, "base inputs")
    source = hm.inputs(source_inputs, "source inputs")
    if base.shape != source.shape:
        raise MesaError(
            f"base and source inputs differ in shape: {tuple(base.shape)} vs {tuple(source.shape)}"
        )
    source_out, cache = hm.cache(source, names)
    runs = _BaseRuns(hm, base, names)
    base_value, source_value = scalar(metric, runs.base_out), scalar(metric, source_out)
    rows = [
        _sweep_hook(runs, hook, cache[hook], by, metric, max_rows)
        for hook in tqdm(names, desc="patching", disable=not progress)
    ]
    return PatchResult(names, by, _table(rows), base_value, source_value)
