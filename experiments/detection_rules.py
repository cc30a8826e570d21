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

    from mesa.detection.verdict import read_verdict

    with (zoo / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        seed = int(r["seed"])
        if seed >= 100:
            raise SystemExit(f"{zoo} holds test seeds (>= 100): rules are chosen on dev seeds only")
        verdict = read_verdict(zoo / "members" / r["member"] / "verdict.json")
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


#: baselines scored beside the candidates: a method's own score made a verdict by the same
#: thresholds (behaviour: outputs on goal-separated inputs; probe: decodability)
BASELINE_METHODS = ("behaviour", "probe")


def _judge(scored: list[dict[str, Any]]) -> dict[str, Any]:
    from mesa.zoo.agreement import CHANCE, FROM_P, IN_DIST, MECHANISTIC, calibration, zoo_agreement

    agree = zoo_agreement(scored, n_boot=200)
    mech = next(a for a in agree["overall"] if a["score"] == MECHANISTIC)
    return {
        "spearman": mech["spearman"],
        "auroc": mech["auroc"],
        "partial_given_p": mech["partial_spearman_given_p"],
        "partial_given_behaviour": mech.get("partial_given_behaviour"),
        "calibration": calibration(scored),
        "within_p": agree["within_p"],
        "scores_without_inside": {
            a["score"]: {"spearman": a["spearman"], "auroc": a["auroc"]}
            for a in agree["overall"]
            if a["score"] in (FROM_P, IN_DIST, CHANCE)
        },
    }


def evaluate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every candidate rule and every baseline, judged the same way on ``rows``: each score read
    by the default bands (1/3, 2/3), as the rules were chosen at ``0d16528``, before any family
    had bands of its own (``verdict_bands.py``)."""
    from mesa.detection.verdict import verdict_of

    def scored_by(score_of: Any) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            s = score_of(r["verdict_json"])
            out.append(
                {
                    **{k: v for k, v in r.items() if k != "verdict_json"},
                    "score": s,
                    "verdict": verdict_of(s),
                    "score_behaviour": r["verdict_json"].get("scores", {}).get("behaviour"),
                }
            )
        return out

    out: dict[str, Any] = {}
    for name, methods in CANDIDATES.items():
        out[name] = _judge(scored_by(lambda v, m=methods: rule_score(v, m)))
    for method in BASELINE_METHODS:
        out[f"baseline: {method}"] = _judge(
            scored_by(lambda v, m=method: v.get("scores", {}).get(m))
        )
    return out


def choose(overall: dict[str, Any]) -> str:
    """The rule chosen, by the criterion fixed before any development zoo was scored: most
    verdicts matching behaviour over every development member; ties go to the higher Spearman,
    then to fewer methods (the simpler rule)."""

    def key(name: str) -> tuple[float, float, int]:
        c = overall[name]
        rho = c["spearman"] if c["spearman"] is not None else -1.0
        return (c["calibration"]["match"], rho, -len(CANDIDATES[name]))

    return max(CANDIDATES, key=key)


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
    payload["chosen"] = choose(payload["overall"])
    seeds = tuple(sorted({r["seed"] for r in everything}))
    write_result("detection_rules", "-".join(by_family) + "-" + seeds_slug(seeds), payload)
    print(table(payload))
    print(f"chosen by the fixed criterion: {payload['chosen']}")


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        name: f"{c['calibration']['match']}/{c['calibration']['n']} match, "
        f"{c['calibration']['wrong']} wrong"
        for name, c in result["overall"].items()
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| family | rule | Spearman | AUROC | partial rho given p | partial rho given behaviour "
        "| match | wrong | inconclusive |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, rules in [*result["families"].items(), ("all", result["overall"])]:
        for name, c in rules.items():
            cal = c["calibration"]
            lines.append(
                f"| {family} | {name} | {fmt(c['spearman'])} | {fmt(c['auroc'])} | "
                f"{fmt(c['partial_given_p'])} | {fmt(c['partial_given_behaviour'])} | "
                f"{cal['match']}/{cal['n']} | {cal['wrong']} | {cal['inconclusive']} |"
            )
        without = next(iter(rules.values()))["scores_without_inside"]
        for name, a in without.items():
            lines.append(
                f"| {family} | baseline: {name} | {fmt(a['spearman'])} | {fmt(a['auroc'])} | "
                "| | | | |"
            )
    return "\n".join(lines)
