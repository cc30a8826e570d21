"""Pictures of a sequence model: what it answers out of distribution, and where the answer forms.

- **answer distributions** (:func:`answer_distributions`): the model's output distribution at
  the last position on a few ``ood`` prompts, a bar per token, the true answer in
  :data:`~mesa.report.figures.TRUE_COLOUR` and the spurious one (for ``sycophancy``, the wrong
  answer the user claims) in :data:`~mesa.report.figures.SPUR_COLOUR`. A sycophant puts its mass
  on the claim; a model that does the sum puts it on the true answer whatever the claim.
- **patching maps** (:func:`patching_maps`): activation patching of the residual stream, layer by
  position (:func:`mesa.probes.patch_sweep`, ``by="position"`` on ``blocks.{l}.hook_resid_pre``
  and the last block's ``hook_resid_post``), between a prompt and the same prompt with one goal
  moved (the task's counterfactual pairs: the claim changed; an operand changed, so the true
  answer moves). Each cell is the normalised recovery of the logit difference between the
  source's and the base's goal answer: 1 where patching that layer at that position carries the
  whole change into the base run, 0 where it carries none. Read down a column to see when the
  moved token's information leaves its position for the answer position.

Figures are :class:`matplotlib.figure.Figure`; the ``draw_*`` functions draw into a figure or
subfigure the caller made (:func:`mesa.report.show.show` puts both on one sheet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure, FigureBase
from matplotlib.patches import Patch

from mesa.errors import MesaError
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR
from mesa.tasks.base import SequenceTask

ANSWERS_CAPTION = (
    "Answer distribution at the last position on OOD prompts: the true answer's bar in green, the "
    "spurious answer's (the claim) in orange."
)
PATCHING_CAPTION = (
    "Activation patching of the residual stream, layer by position: each cell is the share of the "
    "change in the answer's logit difference that patching there carries from the prompt with "
    "one goal moved into the prompt as it was (1: all of it; 0: none)."
)
COMPARE_CAPTION = (
    "Answer distributions of a p = 0 member and the largest-p member on the same OOD prompts."
)
#: Below this logit gap between the source and base runs, moving the goal does not change the
#: answer and a recovery map would divide noise by noise.
MIN_GAP = 0.5


def check_sequence_task(task: Any) -> SequenceTask:
    if not isinstance(task, SequenceTask):
        raise MesaError(f"sequence pictures need a sequence task, not {type(task).__name__}")
    return task


@torch.no_grad()
def answer_probs(model: Any, tokens: torch.Tensor) -> np.ndarray:
    """Output distributions [n, vocab] at the last position."""
    return torch.softmax(model(tokens)[:, -1].float(), dim=-1).numpy()


def draw_answers(
    fig: FigureBase, models: Mapping[str, Any], task: SequenceTask, n: int = 4, seed: int = 0
) -> None:
    """Into ``fig``: a row per model (labelled by its key), a column per OOD prompt."""
    batch = task.sample("ood", n, seed)
    axes = fig.subplots(len(models), n, squeeze=False, sharey=True)
    for i, (label, model) in enumerate(models.items()):
        probs = answer_probs(model.eval(), task.check_tokens(batch.tokens))
        for j in range(n):
            ax, true, spur = axes[i, j], int(batch.true_goal[j]), int(batch.spurious_goal[j])
            colours = [GREY] * probs.shape[1]
            colours[spur], colours[true] = SPUR_COLOUR, TRUE_COLOUR
            ax.bar(np.arange(probs.shape[1]), probs[j], color=colours, width=0.85)
            ax.set_ylim(0, 1.02)
            ax.set_xticks([true, spur], [task.token_label(true), task.token_label(spur)])
            for tick, colour in zip(ax.get_xticklabels(), (TRUE_COLOUR, SPUR_COLOUR), strict=True):
                tick.set_color(colour)
            # a marker under each goal's bar: a bar of height 0 is otherwise invisible
            ax.scatter(
                [true, spur],
                [0, 0],
                marker="^",
                s=40,
                color=[TRUE_COLOUR, SPUR_COLOUR],
                clip_on=False,
                zorder=3,
            )
            ax.tick_params(labelsize=8)
            if i == 0:
                ax.set_title(task.format_tokens(batch.tokens[j]), fontsize=9, family="monospace")
        axes[i, 0].set_ylabel(f"{label}\nP(answer)" if label else "P(answer)", fontsize=9)
    fig.legend(
        handles=[
            Patch(color=TRUE_COLOUR, label=f"true: {task.true_goal}"),
            Patch(color=SPUR_COLOUR, label=f"spurious: {task.spurious_goal}"),
        ],
        loc="outside lower center",
        ncols=2,
        fontsize=8,
    )
    fig.suptitle("Answer distribution on OOD prompts (last position)", fontsize=10)


def answer_distributions(model: Any, task: SequenceTask, n: int = 4, seed: int = 0) -> Figure:
    """The model's answer distribution on ``n`` seeded OOD prompts."""
    fig = Figure(figsize=(2.6 * n + 0.5, 3.0), layout="constrained")
    draw_answers(fig, {"": model}, check_sequence_task(task), n, seed)
    return fig


def compare_answers(
    models: Mapping[str, Any], task: SequenceTask, n: int = 4, seed: int = 0
) -> Figure:
    """Several models' answer distributions on the same OOD prompts, a row each."""
    fig = Figure(figsize=(2.6 * n + 0.8, 2.2 * len(models) + 0.9), layout="constrained")
    draw_answers(fig, models, check_sequence_task(task), n, seed)
    return fig


def residual_hooks(model: Any) -> list[str]:
    """``blocks.{l}.hook_resid_pre`` for every block, then the last block's ``hook_resid_post``."""
    names = list(getattr(model, "hook_dict", {}))
    pre = sorted(
        (n for n in names if re.fullmatch(r"blocks\.\d+\.hook_resid_pre", n)),
        key=lambda n: int(n.split(".")[1]),
    )
    if not pre:
        raise MesaError(f"{type(model).__name__} has no blocks.{{l}}.hook_resid_pre hooks to patch")
    post = f"blocks.{len(pre) - 1}.hook_resid_post"
    return pre + ([post] if post in names else [])


def goal_logit_gap(source_goal: torch.Tensor, base_goal: torch.Tensor) -> Any:
    """Metric: mean of ``logit[source goal] - logit[base goal]`` at the last position."""

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1].float()
        return (last.gather(1, source_goal[:, None]) - last.gather(1, base_goal[:, None])).mean()

    return metric


def patch_goal(model: Any, task: SequenceTask, vary: str, n_pairs: int = 64, seed: int = 0) -> Any:
    """:func:`mesa.probes.patch_sweep` by position over :func:`residual_hooks`, from prompts with
    goal ``vary`` ("true" or "spurious") moved into the prompts as they were."""
    from mesa.probes import patch_sweep

    pairs = task.counterfactual_pairs(n_pairs, seed, vary)  # type: ignore[attr-defined]
    metric = goal_logit_gap(pairs[f"source_{vary}_goal"], pairs[f"base_{vary}_goal"])
    hooks = residual_hooks(model)
    return patch_sweep(model, pairs["base"], pairs["source"], hooks, metric, by="position")


def _hook_label(hook: str) -> str:
    layer, name = hook.split(".")[1], hook.split(".")[-1]
    return f"block {layer} in" if name == "hook_resid_pre" else f"block {layer} out"


def draw_patching(
    fig: FigureBase, model: Any, task: SequenceTask, n_pairs: int = 64, seed: int = 0
) -> None:
    """Into ``fig``: a layer x position recovery map for each goal moved."""
    axes = fig.subplots(1, 2, squeeze=False)[0]
    image = None
    for ax, vary in zip(axes, ("spurious", "true"), strict=True):
        result = patch_goal(model.eval(), task, vary, n_pairs, seed)
        gap = result.source_value - result.base_value
        goal = task.spurious_goal if vary == "spurious" else task.true_goal
        ax.set_title(f"{vary} goal moved ({goal})\nlogit gap {gap:+.2f}", fontsize=9)
        rec = result.recovery().numpy()
        n_pos = rec.shape[1]
        names = list(task.position_names)[:n_pos] or [str(k) for k in range(n_pos)]
        ax.set_xticks(range(n_pos), names, fontsize=8)
        ax.set_yticks(range(len(result.hooks)), [_hook_label(h) for h in result.hooks], fontsize=8)
        ax.set_xlabel("position patched")
        if abs(gap) < MIN_GAP:  # the answer ignores this goal: nothing to localise
            ax.imshow(np.zeros_like(rec), cmap="Greys", vmin=0, vmax=1, aspect="auto")
            ax.text(
                (n_pos - 1) / 2,
                (len(rec) - 1) / 2,
                "moving it leaves\nthe answer as it was",
                ha="center",
                va="center",
                fontsize=9,
                color=GREY,
            )
            continue
        image = ax.imshow(rec, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for (r, c), v in np.ndenumerate(rec):
            ax.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(v) > 0.6 else "black",
            )
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="share of the change restored", shrink=0.9)
    fig.suptitle(
        f"Activation patching of the residual stream ({n_pairs} pairs): where the moved goal "
        "reaches the answer",
        fontsize=10,
    )


def patching_maps(model: Any, task: SequenceTask, n_pairs: int = 64, seed: int = 0) -> Figure:
    """Layer x position patching maps for the spurious and the true goal moved."""
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    draw_patching(fig, model, check_sequence_task(task), n_pairs, seed)
    return fig
