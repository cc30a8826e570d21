"""Agreement within one p, pooled over many populations: does the mechanistic score rank models
that were trained identically better than the behavioural baseline does?

One population (sixteen seeds at one p, split on both sides of b = 1/2) gives an AUROC whose 95%
interval spans about 0.5 of the scale; each within-p table in the README shows such intervals.
This reads several finished populations (zoo directories with ``results.csv``, as
``bench_within_p`` or ``mesa zoo --p auto`` leave them) and pools, per family and over all, each
score's within-population AUROC, Spearman and partial rho given the behavioural score (means over
populations, with a two-level bootstrap: populations within each family, then members within
each population), and the mechanistic score's paired difference from the behavioural one
(:func:`mesa.zoo.agreement.pooled_within_p`). It trains and detects nothing. ::

    python -m experiments pooled_within_p runs/within_p_148/coin/p0.04873 \\
        runs/within_p_132/coin/p0.04223 ... --what test-seeds100-163

writes ``results/pooled_within_p/<what>-<commit>.json`` and a figure beside it (``.png``).
A population enters only if at least ``MIN_EACH_SIDE`` members lie on each side of 1/2, and no
two populations of a family may share a seed (they would be counted twice).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from experiments.common import fmt, with_suffix, write_figure, write_result
from mesa.zoo.agreement import (
    BEHAVIOUR,
    MECHANISTIC,
    MIN_EACH_SIDE,
    PAIRED_STATS,
    pooled_within_p,
)


def read_population(path: Path) -> list[dict[str, Any]]:
    """A population's member rows (its ``results.csv``); a clear error if it is not one."""
    if not path.is_dir():
        raise SystemExit(f"{path} does not exist or is not a directory")
    results = path / "results.csv"
    if not results.is_file():
        raise SystemExit(f"{path} is not a finished population: no results.csv in it")
    with results.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{results} has no members")
    missing = {"family", "p", "seed", "b", "score"} - set(rows[0])
    if missing:
        raise SystemExit(f"{results} lacks the columns {', '.join(sorted(missing))}")
    for r in rows:
        try:
            float(r["b"]), int(float(r["seed"]))
        except ValueError:
            raise SystemExit(f"{results}: member {r.get('member', '?')} has no b or seed") from None
    if len({r["family"] for r in rows}) != 1 or len({r["p"] for r in rows}) != 1:
        raise SystemExit(f"{path} holds more than one family or p: not one population")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("populations", nargs="+", type=Path, help="population (zoo) directories")
    ap.add_argument("--what", required=True, help="a name for the result file, e.g. test-seeds")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="the bootstrap's and chance's seed")
    args = ap.parse_args(argv)
    if args.n_boot < 100:
        ap.error("--n-boot must be at least 100")
    used, left_out, seen = [], [], {}
    for path in args.populations:
        rows = read_population(path)
        b = [float(r["b"]) for r in rows]
        above, below = sum(x > 0.5 for x in b), sum(x < 0.5 for x in b)
        if min(above, below) < MIN_EACH_SIDE:
            left_out.append(f"{path} ({above} : {below})")  # fewer than MIN_EACH_SIDE a side
            continue
        family = rows[0]["family"]
        for r in rows:
            key = (family, int(float(r["seed"])))
            if key in seen:
                ap.error(f"{path} and {seen[key]} share {family} seed {key[1]}: pool one of them")
            seen[key] = path
        used.append((path, rows))
    if not used:
        ap.error(f"no population has {MIN_EACH_SIDE} members on each side of b = 1/2")
    result = pooled_within_p([rows for _, rows in used], n_boot=args.n_boot, seed=args.seed)
    for (path, _), pop in zip(used, result["populations"], strict=True):
        pop["path"] = str(path)
    payload = {
        "n_boot": args.n_boot,
        "seed": args.seed,
        "left_out": left_out,
        **result,
    }
    print(table(payload))
    out = write_result("pooled_within_p", args.what, payload)
    write_figure(with_suffix(out.with_suffix(""), ".png"), figure(payload))


def _ci(values: dict[str, Any], stat: str, which: str = "ci") -> str:
    lo, hi = values[f"{stat}_{which}"]
    return f"{fmt(values[stat])} [{fmt(lo)}, {fmt(hi)}]"


def _cell(values: dict[str, Any], stat: str, populations: int) -> str:
    """``mean [two-level CI]``, with how many populations it pools where some are left out."""
    n = values.get(f"{stat}_n", populations)
    if n == 0:
        return "n/a"
    return _ci(values, stat) + ("" if n == populations else f" ({n} of {populations})")


def headline(result: dict[str, Any]) -> dict[str, Any]:
    mech = result["pooled"]["all"]["scores"][MECHANISTIC]
    beh = result["pooled"]["all"]["scores"][BEHAVIOUR]
    return {
        "populations": result["pooled"]["all"]["populations"],
        "mechanistic AUROC": _ci(mech, "auroc"),
        "behavioural AUROC": _ci(beh, "auroc"),
        "mechanistic - behavioural AUROC": _ci(mech, "auroc_minus_behaviour"),
        "partial rho | behaviour": _ci(mech, "partial_given_behaviour"),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "Means over populations with two-level bootstrap 95% intervals (populations, then "
        "members: errs wide); `(n of N)` where a statistic is undefined in some populations.",
        "",
        "| family | populations | score | AUROC [95% CI] | Spearman [95% CI] | "
        "partial ρ given behaviour [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    groups = [*sorted(g for g in result["pooled"] if g != "all"), "all"]
    for g in groups:
        entry = result["pooled"][g]
        n = entry["populations"]
        for name in result["scores"]:
            v = entry["scores"][name]
            partial = "" if name == BEHAVIOUR else _cell(v, "partial_given_behaviour", n)
            lines.append(
                f"| {g} | {n} | {name} | {_cell(v, 'auroc', n)} | {_cell(v, 'spearman', n)} | "
                f"{partial} |"
            )
    lines += [
        "",
        "The mechanistic score minus the behavioural one, paired within each population, and "
        "its partial ρ given behaviour; both intervals: two-level (errs wide) and populations "
        "alone (errs narrow with 3-4 populations a family).",
        "",
        "| family | populations | mechanistic - behavioural AUROC: two-level / populations | "
        "Spearman: two-level / populations | partial ρ given behaviour: two-level / "
        "populations |",
        "|---|---|---|---|---|",
    ]
    for g in groups:
        v = result["pooled"][g]["scores"][MECHANISTIC]
        n = result["pooled"][g]["populations"]
        cells = []
        for stat in (*PAIRED_STATS, "partial_given_behaviour"):
            if v.get(f"{stat}_n", n) == 0:
                cells.append("n/a")
                continue
            lo, hi = v.get(
                f"{stat}_ci_populations", (None, None)
            )  # absent before 565d595's successor
            cells.append(f"{_cell(v, stat, n)} / [{fmt(lo)}, {fmt(hi)}]")
        lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| family | p | seeds | b > 1/2 : < 1/2 | mechanistic AUROC / Spearman | behavioural "
        "AUROC / Spearman | partial ρ given behaviour |",
        "|---|---|---|---|---|---|---|",
    ]
    for pop in result["populations"]:
        m, b = pop["stats"][MECHANISTIC], pop["stats"][BEHAVIOUR]
        seeds = f"{min(pop['seeds'])}-{max(pop['seeds'])}"
        partial = fmt(m["partial_given_behaviour"])
        if f"{MECHANISTIC} partial_given_behaviour" in pop.get("left_out", []):
            partial += " (left out: undefined in many resamples)"
        lines.append(
            f"| {pop['family']} | {pop['p']:g} | {seeds} | {pop['above']} : {pop['below']} | "
            f"{fmt(m['auroc'])} / {fmt(m['spearman'])} | {fmt(b['auroc'])} / "
            f"{fmt(b['spearman'])} | {partial} |"
        )
    if result.get("left_out"):
        lines += ["", "Not pooled (too few on one side): " + "; ".join(result["left_out"])]
    return "\n".join(lines)


def figure(result: dict[str, Any]) -> Any:
    """Each population's within-p AUROC, mechanistic against behavioural, and the pooled means
    with their intervals, one row per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*sorted(g for g in result["pooled"] if g != "all"), "all"]
    fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(groups) + 1.4))
    colours = {MECHANISTIC: "tab:blue", BEHAVIOUR: "tab:orange"}
    for row, g in enumerate(groups):
        for k, name in enumerate((MECHANISTIC, BEHAVIOUR)):
            y = row + (k - 0.5) * 0.3
            pops = [p for p in result["populations"] if g in ("all", p["family"])]
            xs = [p["stats"][name]["auroc"] for p in pops]
            ax.scatter(xs, [y] * len(xs), s=14, color=colours[name], alpha=0.45)
            v = result["pooled"][g]["scores"][name]
            lo, hi = v["auroc_ci"]
            label = name if row == 0 else None
            ax.errorbar(
                v["auroc"],
                y,
                xerr=[[v["auroc"] - lo], [hi - v["auroc"]]],
                fmt="D",
                color=colours[name],
                capsize=3,
                label=label,
            )
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    names = [f"{g} ({result['pooled'][g]['populations']})" for g in groups]
    ax.set_yticks(range(len(groups)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("AUROC for b > 1/2 within one p (dots: populations; diamonds: mean, 95% CI)")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
