"""How well could any score rank a population by its OOD preference b, given b's own noise?

A member's ``b = true / (true + spurious)`` is measured on its counted OOD episodes (off-path
and decided): ``k`` of ``n`` reached the true goal first. Where a population's members differ in
their preference by less than that noise, even a detector that knew each member's preference
exactly would disagree with the measured ``b``, and the within-p targets (AUROC >= 0.9) are out
of any method's reach. Per population (a finished zoo at one p):

- **ceiling**: each member's preference drawn from its posterior given its counts (``Beta(k + 1,
  n - k + 1)``, a flat prior per member), scored against the measured ``b`` (AUROC for b > 1/2,
  Spearman), over ``--draws`` draws: the mean is what a perfect detector is expected to reach
  against this measurement of b, the 5th percentile how low chance alone can take it;
- **with more episodes**: the same preferences measured again on ``--scale`` times the counted
  episodes (binomial draws), scored the same way against that new ``b``: how far a longer OOD
  evaluation (``mesa eval --n``) would raise the ceiling (and ``x1``, the same replication at
  today's counts, for comparison);

- **calibration ceiling**: the verdicts the same drawn preferences read as by 1/3 and 2/3,
  counted against the measured ``b`` as the zoo counts verdicts: a member whose preference lies
  just inside 1/3 or 2/3 and whose ``b`` fell just outside is a miss no detector avoids;

beside the AUROC / Spearman each recorded score reached against the measured b (the zoo's
``results.csv``: the verdict's score, the behavioural score, in-distribution success) and its
recorded verdicts. A zoo over several p is read the same way (its ranking ceiling is then
across p). A flat
prior per member ignores that members of one population share a training recipe; a prior fitted
to the population would shrink their preferences together and lower the ceiling further, so
these ceilings err high. ::

    python -m experiments noise_ceiling runs/within_p_168/coin/p0.04576 \\
        runs/within_p_184/coin/p0.04064 runs/dev_within_p/maze --what coin-maze

writes ``results/noise_ceiling/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import fmt, write_result

#: Recorded scores set beside the ceiling, by their results.csv column.
SCORES = {
    "verdict's score": "score",
    "behavioural score": "score_behaviour",
    "in-dist success": "in_dist_success",
}


def counts(member: Path) -> tuple[int, int]:
    """``(k, n)``: counted OOD episodes that reached the true goal first, and those decided."""
    from mesa.io import nan_for_null, read_json

    ood = nan_for_null(read_json(member / "ood.json"))
    if not ood["n"]:
        return 0, 0
    k = round(ood["true_rate"] * ood["n"])
    spurious = round(ood["spurious_rate"] * ood["n"])
    return k, k + spurious


def ceiling(
    k: np.ndarray, n: np.ndarray, draws: int, scale: int, seed: int
) -> dict[str, dict[str, float]]:
    """The ceilings of the module docstring for one population's counts."""
    from mesa.detection.verdict import verdict_of
    from mesa.zoo.agreement import _auroc, _spearman, calibration

    rng = np.random.default_rng(seed)
    b = k / n
    out: dict[str, list[tuple[float, float]]] = {"ceiling": [], "x1": [], f"x{scale}": []}
    matched = []
    for _ in range(draws):
        truth = rng.beta(k + 1, n - k + 1)
        out["ceiling"].append((_auroc(truth, b), _spearman(truth, b)))
        read = [{"b": bb, "verdict": verdict_of(float(x))} for x, bb in zip(truth, b, strict=True)]
        matched.append(calibration(read)["match"])
        for label, m in (("x1", n), (f"x{scale}", scale * n)):
            again = rng.binomial(m, truth) / m
            out[label].append((_auroc(truth, again), _spearman(truth, again)))
    result = {}
    for label, pairs in out.items():
        auroc = np.array([a for a, _ in pairs], float)
        spearman = np.array([s for _, s in pairs], float)
        defined = auroc[~np.isnan(auroc)]
        result[label] = {
            "auroc": float(defined.mean()) if len(defined) else math.nan,
            "auroc_p5": float(np.percentile(defined, 5)) if len(defined) else math.nan,
            "spearman": float(np.nanmean(spearman)),
        }
    result["calibration"] = {
        "match": float(np.mean(matched)),
        "match_p5": float(np.percentile(matched, 5)),
        "n": len(b),
    }
    return result


def population(zoo: Path, draws: int, scale: int, seed: int) -> dict[str, Any]:
    from mesa.zoo.agreement import _auroc, _spearman, calibration

    with (zoo / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    kn = np.array([counts(zoo / "members" / r["member"]) for r in rows])
    decided = kn[:, 1] > 0  # a member without a decided episode has no b to rank
    rows = [r for r, keep in zip(rows, decided, strict=True) if keep]
    k, n = kn[decided, 0], kn[decided, 1]
    b = k / n
    recorded = {}
    for label, column in SCORES.items():
        s = np.array([float(r.get(column) or "nan") for r in rows])
        keep = ~np.isnan(s)
        recorded[label] = {
            "n": int(keep.sum()),
            "auroc": _auroc(s[keep], b[keep]),
            "spearman": _spearman(s[keep], b[keep]),
        }
    return {
        "members": len(rows),
        "ps": len({r["p"] for r in rows}),
        "undecided": int((~decided).sum()),
        "above": int((b > 0.5).sum()),
        "b": [float(b.min()), float(b.max())],
        "counted": [int(n.min()), int(n.max())],
        "ceiling": ceiling(k, n, draws, scale, seed),
        "recorded": recorded,
        "recorded_verdicts": calibration(rows),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", type=Path, nargs="+", help="finished zoos (a population: one p)")
    ap.add_argument("--what", required=True, help="a name for the result file")
    ap.add_argument("--draws", type=int, default=2000, help="posterior draws per population")
    ap.add_argument("--scale", type=int, default=4, help="times the episodes, projected")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for zoo in args.zoos:  # every zoo checked before any work
        if not (zoo / "results.csv").is_file():
            ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
    out = {
        "draws": args.draws,
        "scale": args.scale,
        "populations": {
            str(z): population(z, args.draws, args.scale, args.seed) for z in args.zoos
        },
    }
    print(table(out))
    write_result("noise_ceiling", args.what, out)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        z: f"ceiling AUROC {fmt(p['ceiling']['ceiling']['auroc'])}"
        for z, p in result["populations"].items()
    }


def table(result: dict[str, Any]) -> str:
    scale = f"x{result['scale']}"
    lines = [
        "| population | members (b > 1/2) | b | counted episodes | ceiling: AUROC [5th pct] / "
        f"Spearman | replicated x1 | replicated {scale} | " + " | ".join(SCORES) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(SCORES),
    ]
    verdicts = [
        "",
        "Calibration: of the members, how many verdicts a detector that knew each preference "
        "exactly would have matching behaviour (read by 1/3 and 2/3; mean [5th percentile] over "
        "the draws), against the recorded verdicts' (wrong side of 1/2).",
        "",
        "| members of | p values | members | ceiling: matching [5th pct] | recorded verdicts |",
        "|---|---|---|---|---|",
    ]
    for z, p in result["populations"].items():
        c = p["ceiling"]
        cells = [
            f"{fmt(c['ceiling']['auroc'])} [{fmt(c['ceiling']['auroc_p5'])}] / "
            f"{fmt(c['ceiling']['spearman'])}",
            f"{fmt(c['x1']['auroc'])} / {fmt(c['x1']['spearman'])}",
            f"{fmt(c[scale]['auroc'])} / {fmt(c[scale]['spearman'])}",
            *(f"{fmt(a['auroc'])} / {fmt(a['spearman'])}" for a in p["recorded"].values()),
        ]
        lines.append(
            f"| {Path(z).as_posix()} | {p['members']} ({p['above']}) | "
            f"{fmt(p['b'][0])}-{fmt(p['b'][1])} | {p['counted'][0]}-{p['counted'][1]} | "
            + " | ".join(cells)
            + " |"
        )
        if "calibration" in c:  # results from before it was measured have none
            cal, rec = c["calibration"], p["recorded_verdicts"]
            verdicts.append(
                f"| {Path(z).as_posix()} | {p['ps']} | {cal['n']} | {fmt(cal['match'], 1)} "
                f"[{fmt(cal['match_p5'], 0)}] | {rec['match']} ({rec['wrong']}) |"
            )
    return "\n".join(lines + (verdicts if len(verdicts) > 7 else []))
