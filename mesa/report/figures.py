"""The report's figures, one function per figure; each returns a matplotlib Figure."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mesa.detection.evidence import directed_effects, hook_evidence, represented, used
from mesa.zoo.curve import group_by_p

TRUE_COLOUR, SPUR_COLOUR, GREY = "#1b9e77", "#d95f02", "#7f7f7f"


def short_hook(hook: str) -> str:
    """``blocks.2.hook_out`` -> ``b2.out``: hook names that fit under a column."""
    return hook.replace("blocks.", "b").replace("hook_", "")


def misgeneralization_curve(rows: list[dict[str, Any]], family: str) -> Figure:
    """OOD true-goal and spurious-goal rates against the decorrelation rate p."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    groups = group_by_p(rows)
    ps = np.array(list(groups))
    for key, colour, label in (
        ("true_rate", TRUE_COLOUR, "reaches true goal"),
        ("spurious_rate", SPUR_COLOUR, "reaches spurious goal"),
    ):
        means = np.array([np.mean([r[key] for r in g]) for g in groups.values()])
        sems = np.array(
            [
                np.std([r[key] for r in g], ddof=1) / np.sqrt(len(g)) if len(g) > 1 else 0.0
                for g in groups.values()
            ]
        )
        ax.errorbar(ps, means, yerr=1.96 * sems, color=colour, marker="o", capsize=3, label=label)
        for p, g in groups.items():
            ax.scatter([p] * len(g), [r[key] for r in g], color=colour, alpha=0.35, s=12)
    ax.set_xlabel("p (fraction of training episodes with the goals separated)")
    ax.set_ylabel("OOD rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{family}: misgeneralization curve\n(mean ± 95% CI; dots: seeds)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def goodhart_curves(
    curves: dict[str, list[dict[str, Any]]], family: str, p_of: dict[str, float] | None = None
) -> Figure:
    """In-distribution success (grey) and OOD true-goal rate (coloured by the member's p) over
    training, one line per member."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import EngFormatter

    p_of = p_of or {}
    ps = [p_of[m] for m in curves if m in p_of]
    norm = Normalize(min(ps, default=0.0), max(ps, default=1.0) or 1.0)
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for i, (member, recs) in enumerate(sorted(curves.items())):
        steps = [r["global_step"] for r in recs]
        ax.plot(
            steps,
            [r["in_dist_success"] for r in recs],
            color=GREY,
            alpha=0.5,
            lw=1,
            label="in-distribution success" if i == 0 else None,
        )
        ax.plot(
            steps,
            [r["ood_true_rate"] for r in recs],
            color=cmap(norm(p_of[member])) if member in p_of else TRUE_COLOUR,
            alpha=0.8,
            label="OOD true-goal rate" if i == 0 else None,
        )
    if ps:
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="p (OOD true-goal rate lines)")
    ax.xaxis.set_major_formatter(EngFormatter())  # 100k, not 100000
    ax.set_xlabel("training step")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{family}: proxy vs true goal over training")
    ax.legend(fontsize=8)
    return fig


def _evidence_by_p(
    verdicts: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
) -> dict[float, list[list[dict[str, Any]]]]:
    """Each p's members' per-hook evidence rows (:func:`mesa.detection.evidence.hook_evidence`)."""
    return {
        p: [hook_evidence(verdicts[r["member"]]) for r in group]
        for p, group in group_by_p(r for r in rows if r["member"] in verdicts).items()
    }


def evidence_by_hook(
    verdicts: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    family: str,
    keys: tuple[str, str],
    ylabel: str,
    title: str,
    baseline: tuple[str, str] | None = None,
) -> Figure:
    """A per-hook evidence column (decodability or causal effect) for both goals, per p."""
    by_p = _evidence_by_p(verdicts, rows)
    fig = Figure(figsize=(3.0 * max(1, len(by_p)), 3.4), layout="constrained")
    axes = fig.subplots(1, max(1, len(by_p)), sharey=True, squeeze=False)[0]
    for ax, (p, vs) in zip(axes, by_p.items(), strict=False):
        hooks = [e["hook"] for e in vs[0]]
        x = np.arange(len(hooks))
        for key, colour, label in (
            (keys[0], TRUE_COLOUR, "true goal"),
            (keys[1], SPUR_COLOUR, "spurious goal"),
        ):
            vals = np.array([[e[key] for e in v] for v in vs], dtype=float)
            ax.plot(x, _mean_over_members(vals), color=colour, marker="o", label=label)
        if baseline:
            for key, colour in ((baseline[0], TRUE_COLOUR), (baseline[1], SPUR_COLOUR)):
                vals = np.array([[e[key] for e in v] for v in vs], dtype=float)
                ax.plot(x, _mean_over_members(vals), color=colour, ls="--", alpha=0.6)
            chance = np.array([[e["chance_true"] for e in v] for v in vs], dtype=float)
            ax.plot(x, np.nanmean(chance, 0), color=GREY, ls=":", label="chance (true)")
        ax.set_xticks(
            x,
            [short_hook(h) for h in hooks],
            rotation=60,
            fontsize=7,
        )
        ax.set_title(f"p = {p:g} (n = {len(vs)})", fontsize=9)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{family}: {title}", fontsize=10)
    return fig


def _mean_over_members(values: np.ndarray) -> np.ndarray:
    """The mean of each column over the rows that hold a number (NaN where none does: a hook
    that no method measured, e.g. one without sites for patching)."""
    counts = (~np.isnan(values)).sum(0)
    sums = np.nansum(values, 0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def score_vs_behaviour(
    rows: list[dict[str, Any]], family: str, agreement: dict[str, Any]
) -> Figure:
    """Each model's mechanistic score against its OOD preference b, coloured by p."""
    fig = Figure(figsize=(5.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    s = np.array([np.nan if r["score"] in ("", None) else r["score"] for r in rows], dtype=float)
    b = np.array([r["b"] for r in rows], dtype=float)
    p = np.array([r["p"] for r in rows], dtype=float)
    sc = ax.scatter(s, b, c=p, cmap="viridis", s=30, edgecolor="k", linewidth=0.4)
    fig.colorbar(sc, ax=ax, label="p")
    ax.axhline(0.5, color=GREY, lw=0.8, ls=":")
    ax.axvline(0.5, color=GREY, lw=0.8, ls=":")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("mechanistic score s (from internals, no OOD rollouts)")
    ax.set_ylabel("OOD preference b = true / (true + spurious)")
    causal = next(
        (a for a in agreement.get("overall", []) if a["score"] == "mechanistic score"), None
    )
    if causal:
        ax.set_title(
            f"{family}: ρ = {causal['spearman']:.2f}, AUROC = {causal['auroc']:.2f}", fontsize=10
        )
    return fig


def hook_map_values(verdicts: dict[str, Any], hooks: list[str], what: str, goal: str):
    """[models, hooks] of ``what`` ("represented" or "used") for ``goal``; NaN where missing."""
    values = np.full((len(verdicts), len(hooks)), np.nan)
    for i, verdict in enumerate(verdicts.values()):
        directed = directed_effects(verdict)
        by_hook = {r["hook"]: r for r in hook_evidence(verdict)}
        for j, h in enumerate(hooks):
            if h in by_hook:
                r = by_hook[h]
                values[i, j] = (
                    represented(r, goal) if what == "represented" else used(r, goal, directed)
                )
    return values


def hook_maps(verdicts: dict[str, Any], title: str) -> Figure:
    """Where each goal is represented and where it is used, hook by hook, a row per model (the
    keys of ``verdicts`` label the rows). Represented: the probe's selectivity, on [0, 1]; used:
    the part of the decision's turn towards the goal that a localised intervention at the hook
    restores (:mod:`mesa.detection.evidence`), both goals on one scale from 0 to the largest value
    shown. Hooks marked * are patched whole (no cell or position axis)."""
    first = hook_evidence(next(iter(verdicts.values())))
    hooks = [r["hook"] for r in first]
    whole = {r["hook"] for v in verdicts.values() for r in hook_evidence(v) if not r["localised"]}
    maps = {
        (what, goal): hook_map_values(verdicts, hooks, what, goal)
        for what in ("represented", "used")
        for goal in ("true", "spurious")
    }
    # a shared scale for "used": the directed effect is often far below 1, and a [0, 1] scale
    # would wash out the hooks that carry it
    top_used = max(
        0.05,
        float(np.nanmax([*maps["used", "true"].ravel(), *maps["used", "spurious"].ravel(), 0.0])),
    )
    n, k = len(verdicts), len(hooks)
    fig = Figure(figsize=(2 * (0.55 * k + 1.6) + 1.2, 2 * (0.28 * n + 1.3)), layout="constrained")
    axes = fig.subplots(2, 2, squeeze=False).ravel()
    for ax, ((what, goal), values) in zip(axes, maps.items(), strict=True):
        top = 1.0 if what == "represented" else top_used
        cmap = "Greens" if goal == "true" else "Oranges"
        image = ax.imshow(values, cmap=cmap, vmin=0, vmax=top, aspect="auto")
        if n * k <= 160:  # numbers while they stay legible
            for (i, j), v in np.ndenumerate(values):
                if not np.isnan(v):
                    colour = "white" if v > 0.6 * top else "black"
                    text = f"{v:.2f}".replace("-0.00", "0.00")
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
        ax.set_xticks(range(k), [short_hook(h) + ("*" if h in whole else "") for h in hooks])
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_yticks(range(n), list(verdicts), fontsize=7)
        ax.set_title(f"{goal} goal {what}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig
