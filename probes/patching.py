"""Activation patching: which activations carry the information a behaviour depends on?

Run the model on a *base* input (e.g. corrupted) while replacing the activation at one hook —
at one position, grid cell or head — with its value on a *source* input (e.g. clean), and read a
metric of the output. Where patching moves the metric from its base value to its source value,
that activation carries what the two inputs differ in (Vig et al. 2020, "Causal mediation analysis
for interpreting neural NLP"; Meng et al. 2022, "Locating and editing factual associations in
GPT"; Heimersheim & Nanda 2024, "How to use and interpret activation patching").

:func:`patch_sweep` gives the same numbers as ``transformer_lens.patching`` (e.g.
``get_act_patch_resid_pre``) on the cases it covers, but runs every position of a hook in one
batched forward pass (the base input is repeated once per position and each copy patches its own
position) instead of one forward pass per position, and on transformers with TransformerLens's
layout (``blocks``, ``ln_final``, ``unembed``) it reuses the base run's prefix: a hook in block
``L`` is patched by running blocks ``L..`` only, from the base input's cached residual stream
entering block ``L``. (The bridge's own ``start_at_layer`` still computes blocks ``0..L-1`` and
discards them, so it would save nothing.) Normalised recovery
``(patched - base) / (source - base)`` is :meth:`PatchResult.recovery`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Shaped
from torch import Tensor
from tqdm.auto import tqdm

from mesa.probes.errors import MesaError
from mesa.probes.hooks import HookedModel, check_hooks, check_model

Metric = Callable[[Tensor], Tensor]
BY = ("position", "cell", "head", None)


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
    """``values[i, k]``: the metric with hook ``hooks[i]`` patched at location ``k``."""

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


def _locations(act: Tensor, by: str | None, hook: str) -> tuple[int, Callable[[int], Tensor]]:
    """Number of locations and a function giving the boolean mask of location ``k``."""
    shape = act.shape[1:]
    if by is None:
        return 1, lambda k: torch.ones(shape, dtype=torch.bool)
    if by == "position" and act.ndim >= 3:
        axis = 0
    elif by == "cell" and act.ndim == 4:
        n = shape[1] * shape[2]

        def cell(k: int) -> Tensor:
            m = torch.zeros(shape[1] * shape[2], dtype=torch.bool)
            m[k] = True
            return m.view(1, shape[1], shape[2]).expand(shape)

        return n, cell
    elif by == "head" and act.ndim == 4:
        axis = 1
    else:
        raise MesaError(
            f"cannot patch hook {hook!r} of shape {tuple(act.shape)} by {by!r}; "
            "'position' needs [batch, pos, ...], 'cell' [batch, C, H, W], 'head' "
            "[batch, pos, head, d_head], None patches the whole activation"
        )

    def along(k: int) -> Tensor:
        m = torch.zeros(shape[axis], dtype=torch.bool)
        m[k] = True
        view = [1] * len(shape)
        view[axis] = shape[axis]
        return m.view(view).expand(shape)

    return shape[axis], along


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


def _check_pair(base: Tensor, source: Tensor) -> None:
    if base.shape != source.shape:
        raise MesaError(
            f"base and source inputs differ in shape: {tuple(base.shape)} vs {tuple(source.shape)}"
        )


@torch.no_grad()
def patch_sweep(
    model: HookedModel,
    base_inputs: Shaped[Tensor, "batch ..."],
    source_inputs: Shaped[Tensor, "batch ..."],
    hooks: str | Sequence[str],
    metric: Metric,
    by: str | None = "position",
    max_rows: int = 4096,
    progress: bool = False,
) -> PatchResult:
    """Patch each hook from source into base at every location ``by`` and record ``metric``.

    ``metric`` maps the model's output for a batch to a scalar (as in
    ``transformer_lens.patching``). Locations are patched in batches of up to ``max_rows`` rows.
    """
    model = check_model(model)
    names = check_hooks(model, hooks)
    if by not in BY:
        raise MesaError(f"unknown location {by!r}; valid: position, cell, head, None")
    _check_pair(base_inputs, source_inputs)
    source_out, cache = model.run_with_cache(source_inputs, names_filter=lambda n: n in names)
    # reuse the base run's prefix: a hook in block L needs blocks L.. only, from the base's
    # residual stream entering block L (where the model's layout allows it and reproduces the
    # whole forward pass exactly)
    suffix = _suffix_runner(model)
    starts = {h: _start_block(h) if suffix else None for h in names}
    prefix = {f"blocks.{b}.hook_resid_pre" for b in starts.values() if b}
    base_out, base_cache = model.run_with_cache(base_inputs, names_filter=lambda n: n in prefix)
    for name in prefix:
        block = int(name.split(".")[1])
        try:
            ok = torch.equal(suffix(base_cache[name], block, []), base_out)  # type: ignore[misc]
        except Exception:  # a layout that cannot be run block by block: run it whole
            ok = False
        if not ok:
            starts = {h: None for h in names}
            break
    base_value = float(metric(base_out))
    source_value = float(metric(source_out))
    batch = len(base_inputs)
    rows: list[Tensor] = []
    for hook in tqdm(names, desc="patching", disable=not progress):
        src = cache[hook]
        if torch.isnan(src).any():
            raise MesaError(f"NaN activations at hook {hook!r}")
        n_loc, mask_of = _locations(src, by, hook)
        per_chunk = max(1, max_rows // batch)
        values = []
        for start in range(0, n_loc, per_chunk):
            ks = list(range(start, min(n_loc, start + per_chunk)))
            masks = torch.stack([mask_of(k) for k in ks])  # [K, *act_shape]

            def patch(
                act: Tensor, hook: Any = None, masks: Tensor = masks, src: Tensor = src
            ) -> Tensor:
                act = act.view(len(masks), batch, *act.shape[1:])
                return torch.where(masks[:, None], src[None], act).flatten(0, 1)

            first = starts[hook]
            if first:  # run blocks L.. only, from the base's residual stream entering block L
                resid = base_cache[f"blocks.{first}.hook_resid_pre"]
                out = suffix(  # type: ignore[misc]
                    resid.repeat(len(ks), *[1] * (resid.ndim - 1)), first, [(hook, patch)]
                )
            else:
                reps = [len(ks)] + [1] * (base_inputs.ndim - 1)
                out = model.run_with_hooks(base_inputs.repeat(*reps), fwd_hooks=[(hook, patch)])
            out = out.view(len(ks), batch, *out.shape[1:])
            values += [float(metric(out[j])) for j in range(len(ks))]
        rows.append(torch.tensor(values))
    width = max(len(r) for r in rows)
    table = torch.full((len(names), width), float("nan"))
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    return PatchResult(names, by, table, base_value, source_value)
