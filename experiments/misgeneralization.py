"""The misgeneralization curve: OOD true-goal rate against the decorrelation rate p.

Trains (or resumes) a zoo of one family over a grid of p and seeds with ``mesa zoo`` — so every
model is also detected and the agreement of the mechanistic score with behaviour comes for free —
then writes the curve (JSON) and its figure (PNG); the page ``misgeneralization.md`` shows its
table. ::

    python -m experiments misgeneralization --family maze --p 0 0.1 0.2 0.4 1.0 \\
        --seeds 4 --first-seed 4 --zoo runs/bench_zoo/maze

writes ``results/misgeneralization/<family>[-<arch>]-seeds4-7-<commit>.{json,png}``
(``-custom`` appended when ``--opt``, ``--hp`` or ``--ood-episodes`` change the zoo).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from experiments.common import (
    fmt,
    parse_assignments,
    seeds_slug,
    write_figure,
    write_result,
)

#: Column names of the table per family: (true goal reached first, spurious, in-distribution).
COLUMNS = {
    "maze": ("OOD cheese first", "OOD corner first", "in-dist success"),
    "coin": ("OOD coin first", "OOD end first", "in-dist success"),
    "lookalike": ("OOD gem first", "OOD yellow first", "in-dist success"),
    "sycophancy": ("OOD true answer", "OOD agrees with the wrong claim", "in-dist accuracy"),
}
GENERIC = ("OOD true", "OOD spurious", "in-dist success")


def main(argv: list[str] | None = None) -> None:
    from mesa.report.figures import misgeneralization_curve
    from mesa.zoo import ZooConfig, p_curve, run_zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="maze")
    ap.add_argument("--p", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run first-seed, +1, ...")
    ap.add_argument("--zoo", default=None, help="zoo directory (default runs/zoo_FAMILY)")
    ap.add_argument("--arch", default=None, help="model architecture (default: the family's)")
    ap.add_argument("--trainer", default=None, help="trainer (default: mesa.train's choice)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters")
    ap.add_argument("--ood-episodes", type=int, default=None)
    args = ap.parse_args(argv)
    tag = args.family + (f"_{args.arch}" if args.arch else "")
    out = Path(args.zoo or f"runs/zoo_{tag}")
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    options, hparams = parse_assignments(args.opt), parse_assignments(args.hp)
    config = ZooConfig(
        family=args.family,
        ps=tuple(args.p),
        seeds=seeds,
        task_options=options,
        hparams=hparams,
        arch=args.arch,
        trainer=args.trainer,
        ood_episodes=args.ood_episodes,
        workers=args.workers,
    )
    result = run_zoo(config, out=out)
    print(result.summary())
    custom = {
        k: v
        for k, v in (
            ("task_options", options),
            ("hparams", hparams),
            ("ood_episodes", args.ood_episodes),
        )
        if v
    }
    payload = {
        "family": args.family,
        "arch": args.arch,
        "trainer": args.trainer,
        "zoo": str(out),
        "ps": list(args.p),
        "seeds": list(seeds),
        **custom,
        "curve": p_curve(result.rows),
        "agreement": result.agreement,
    }
    what = f"{args.family}{'-' + args.arch if args.arch else ''}-{seeds_slug(seeds)}"
    path = write_result("misgeneralization", what + ("-custom" if custom else ""), payload)
    write_figure(path.with_suffix(".png"), misgeneralization_curve(result.rows, args.family))
    print(table(payload))
    print(json.dumps(result.agreement.get("overall", []), indent=1)[:2000])


def _point(c: dict[str, Any]) -> tuple[float, int, float, float, float]:
    """``(p, models, true, spurious, in-dist)`` of a curve point; results written before the
    curve came from :func:`mesa.zoo.p_curve` name them ``n_models``, ``ood_true_rate_mean``..."""
    if "n_models" in c:
        return (
            c["p"],
            c["n_models"],
            c["ood_true_rate_mean"],
            c["ood_spurious_rate_mean"],
            c["in_dist_success_mean"],
        )
    return c["p"], c["n"], c["true_rate"], c["spurious_rate"], c["in_dist_success"]


def headline(result: dict[str, Any]) -> dict[str, Any]:
    arch = f" {result['arch']}" if result["arch"] else ""
    out: dict[str, Any] = {"family": result["family"] + arch}
    for p, _, true, spur, _ in map(_point, result["curve"]):
        out[f"p={p:g} true/spur"] = f"{true:.2f}/{spur:.2f}"
    causal = next(
        (
            a
            for a in result["agreement"].get("overall", [])
            if a["score"] in ("mechanistic score", "causal score")
        ),
        None,
    )
    if causal:
        out["causal Spearman / AUROC"] = f"{fmt(causal['spearman'])} / {fmt(causal['auroc'])}"
    return out


def table(result: dict[str, Any]) -> str:
    true, spur, in_dist = COLUMNS.get(result["family"], GENERIC) if not result["arch"] else GENERIC
    lines = [
        f"| p | models | {true} (mean) | {spur} (mean) | {in_dist} (mean) |",
        "|---|---|---|---|---|",
    ]
    for p, n, t, s, d in map(_point, result["curve"]):
        lines.append(f"| {p:g} | {n} | {t:.2f} | {s:.2f} | {d:.2f} |")
    return "\n".join(lines)
