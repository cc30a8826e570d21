"""The misgeneralization curve: OOD true-goal rate against p (after Langosco et al. 2022, Fig. 3).

Trains (or resumes) a zoo of one family over a grid of p and seeds with ``mesa zoo`` — so every
model is also detected and the agreement of the mechanistic score with behaviour comes for free —
then writes the curve as JSON, a PNG and the table of ``misgeneralization.md``.

    python experiments/misgeneralization.py --family maze --seeds 3
    python experiments/misgeneralization.py --family sycophancy --seeds 3
    python experiments/misgeneralization.py --family maze --arch cell_transformer --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_json

from mesa.zoo import ZooConfig, run_zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="maze")
    ap.add_argument("--p", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run first-seed, +1, ...")
    ap.add_argument("--zoo", default=None, help="zoo directory (default runs/zoo_FAMILY)")
    ap.add_argument("--arch", default=None, help="model architecture (default: the family's)")
    ap.add_argument("--trainer", default=None, help="trainer (default: mesa.train's choice)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tag = args.family + (f"_{args.arch}" if args.arch else "")
    out = Path(args.zoo or f"runs/zoo_{tag}")
    config = ZooConfig(
        family=args.family,
        ps=tuple(args.p),
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        arch=args.arch,
        trainer=args.trainer,
        workers=args.workers,
        threads_per_worker=args.threads,
    )
    result = run_zoo(config, out=out)
    print(result.summary())
    by_p: dict[float, list[dict]] = {}
    for r in result.rows:
        by_p.setdefault(float(r["p"]), []).append(r)
    curve = [
        {
            "p": p,
            "n_models": len(rows),
            "ood_true_rate_mean": statistics.mean(r["true_rate"] for r in rows),
            "ood_spurious_rate_mean": statistics.mean(r["spurious_rate"] for r in rows),
            "in_dist_success_mean": statistics.mean(r["in_dist_success"] for r in rows),
            "seeds": [
                {
                    k: r[k]
                    for k in (
                        "seed",
                        "true_rate",
                        "spurious_rate",
                        "in_dist_success",
                        "score",
                        "verdict",
                    )
                }
                for r in rows
            ],
        }
        for p, rows in sorted(by_p.items())
    ]
    write_json(
        f"misgeneralization_{tag}",
        {
            "family": args.family,
            "arch": args.arch,
            "zoo": str(out),
            "curve": curve,
            "agreement": result.agreement,
        },
    )
    from mesa.report.figures import misgeneralization_curve

    fig = misgeneralization_curve(result.rows, args.family)
    png = RESULTS / f"misgeneralization_{tag}.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")
    lines = [
        "| p | models | OOD true (mean) | OOD spurious (mean) | in-dist success (mean) |",
        "|---|---|---|---|---|",
    ]
    for c in curve:
        lines.append(
            f"| {c['p']:g} | {c['n_models']} | {c['ood_true_rate_mean']:.2f} | "
            f"{c['ood_spurious_rate_mean']:.2f} | {c['in_dist_success_mean']:.2f} |"
        )
    (RESULTS / f"misgeneralization_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(result.agreement.get("overall", []), indent=1)[:2000])


if __name__ == "__main__":
    main()
