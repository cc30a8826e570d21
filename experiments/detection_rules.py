"""Choosing the verdict's rule on development zoos: candidate rules scored from saved verdicts.

The verdict combines mechanistic methods (``mesa.detection.verdict``). Which ones, and how, is
chosen on development zoos (seeds < 100) and then fixed before the test zoos (seeds >= 100) that
judge it. This script reads the finished development zoos' ``verdict.json`` files (every
method's absolute effects are saved there, so no model is run again), computes each candidate
rule's score and verdict per member, and reports, per family and overall: Spearman and AUROC
against OOD behaviour, the verdicts' calibration (matches, wrong side of 1/2, inconclusive) and
agreement within p. Refuses zoos with seeds >= 100. ::

    python -m experiments detection_rules runs/dev_zoo/maze runs/dev_zoo/coin ...

writes ``results/detection_rules/<families>-<seeds>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from experiments.common import fmt, seeds_slug, write_result

#: candidate name -> the methods whose mean absolute effect per goal makes the score
CANDIDATES: dict[str, tuple[str, ...]] = {
    "patching + probe_subspace + erasure": ("patching", "probe_subspace", "erasure"),
    "probe_subspace + erasure": ("probe_subspace", "erasure"),
    "patching": ("patching",),
    "probe_subspace": ("probe_subspace",),
    "erasure": ("erasure",),
}
FLOOR = 0.05


def rule_score(verdict: dict[str, Any], methods: tuple[str, ...]) -> float | None:
    from mesa.detection.registry import ratio_score

    results = verdict.get("methods", {})
    used = [results[m] for m in methods if m in results and results[m].get("score") is not None]
    if not used:
        return None
    effect = {}
    for g in ("true", "spurious"):
        values = [m["effect"][g] for m in used if m["effect"][g] is not None]
        values = [v for v in values if not math.isnan(v)]
        effect[g] = sum(values) / len(values) if values else math.nan
    if max(v for v in effect.values() if not math.isnan(v)) < FLOOR:
        return None
    return ratio_score(effect["true"], effect["spurious"])


def _rows(zoo: Path) -> list[dict[str, Any]]:
    import csv

    from mesa.io import read_json

    with (zoo / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        seed = int(r["seed"])
        if seed >= 100:
            raise SystemExit(f"{zoo} holds test seeds (>= 100): rules are chosen on dev seeds only")
        verdict = read_json(zoo / "members" / r["member"] / "verdict.json")
        out.append(
            {
                "family": r["family"],
                "p": float(r["p"]),
                "seed": seed,
                "b": float(r["b"]),
                "in_dist_success": float(r["in_dist_success"]),
                "verdict_json": verdict,
            }
        )
    return out


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from mesa.detection.verdict import verdict_of
    from mesa.zoo.agreement import calibration, zoo_agreement

    out = {}
    for name, methods in CANDIDATES.items():
        scored = []
        for r in rows:
            s = rule_score(r["verdict_json"], methods)
            scored.append(
                {
                    **{k: v for k, v in r.items() if k != "verdict_json"},
                    "score": s,
                    "verdict": verdict_of(s),
                    "score_behaviour": r["verdict_json"].get("scores", {}).get("behaviour"),
                }
            )
        agree = zoo_agreement(scored, n_boot=200)
        mech = next(a for a in agree["overall"] if a["score"] == "mechanistic score")
        out[name] = {
            "spearman": mech["spearman"],
            "auroc": mech["auroc"],
            "partial_given_p": mech["partial_spearman_given_p"],
            "calibration": calibration(scored),
            "within_p": agree["within_p"],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", nargs="+", help="finished development zoo directories")
    args = ap.parse_args(argv)
    by_family = {Path(z).name: _rows(Path(z)) for z in args.zoos}
    everything = [r for rows in by_family.values() for r in rows]
    payload = {
        "zoos": args.zoos,
        "floor": FLOOR,
        "candidates": {k: list(v) for k, v in CANDIDATES.items()},
        "families": {f: evaluate(rows) for f, rows in by_family.items()},
        "overall": evaluate(everything),
    }
    seeds = tuple(sorted({r["seed"] for r in everything}))
    write_result("detection_rules", "-".join(by_family) + "-" + seeds_slug(seeds), payload)
    print(table(payload))


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        name: f"{c['calibration']['match']}/{c['calibration']['n']} match, "
        f"{c['calibration']['wrong']} wrong"
        for name, c in result["overall"].items()
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| family | rule | Spearman | AUROC | partial rho given p | match | wrong | inconclusive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, rules in [*result["families"].items(), ("all", result["overall"])]:
        for name, c in rules.items():
            cal = c["calibration"]
            lines.append(
                f"| {family} | {name} | {fmt(c['spearman'])} | {fmt(c['auroc'])} | "
                f"{fmt(c['partial_given_p'])} | {cal['match']}/{cal['n']} | {cal['wrong']} | "
                f"{cal['inconclusive']} |"
            )
    return "\n".join(lines)
