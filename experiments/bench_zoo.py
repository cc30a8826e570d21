"""Benchmark: the full four-family zoo on this machine, and ``detect``'s cost per model.

Runs ``mesa zoo`` for ``maze``, ``coin``, ``lookalike`` and ``sycophancy`` — each family's default
grid of ``p`` (``mesa tasks``) x ``--seeds`` seeds from ``--first-seed`` — with two local workers of
one torch thread each, and records:

- the wall time of each family's zoo and of all four (target: under 90 minutes on 2 CPU cores);
- per member, the wall time of training, OOD evaluation and ``detect`` (each member's
  ``timings.json``), and ``detect`` as a share of its training time (target: under 10%);
- each zoo's agreement table (causal score and baselines) and misgeneralization curve.

A zoo directory that already holds finished members is resumed, and its wall time then covers
only the rest: the JSON marks such a family ``"resumed": true``.

    python experiments/bench_zoo.py --seeds 4 --first-seed 4

writes ``experiments/results/bench_zoo.json`` and ``bench_zoo.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_json

from mesa.io import read_json
from mesa.zoo import ZooConfig, run_zoo
from mesa.zoo.runner import TIMINGS

FAMILIES = ("maze", "coin", "lookalike", "sycophancy")


def member_timings(zoo: Path) -> list[dict]:
    out = []
    for d in sorted((zoo / "members").iterdir()):
        if (d / TIMINGS).is_file():
            t = read_json(d / TIMINGS)
            row = {"member": d.name, **{k: v["seconds"] for k, v in t.items()}}
            row["resumed"] = any(v["resumed"] for v in t.values())
            if "train" in t and "detect" in t:
                row["detect_share"] = t["detect"]["seconds"] / t["train"]["seconds"]
            out.append(row)
    return out


def curve(rows: list[dict]) -> list[dict]:
    by_p: dict[float, list[dict]] = {}
    for r in rows:
        by_p.setdefault(float(r["p"]), []).append(r)
    return [
        {
            "p": p,
            "n": len(rs),
            "true_rate": statistics.mean(r["true_rate"] for r in rs),
            "spurious_rate": statistics.mean(r["spurious_rate"] for r in rs),
            "in_dist_success": statistics.mean(r["in_dist_success"] for r in rs),
            "verdicts": [r["verdict"] for r in sorted(rs, key=lambda r: r["seed"])],
        }
        for p, rs in sorted(by_p.items())
    ]


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_zoo", help="parent directory of the zoos")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    args = ap.parse_args()
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    families: dict[str, dict] = {}
    t_all = time.perf_counter()
    for family in args.families:
        zoo = Path(args.out) / family
        resumed = (zoo / "results.csv").is_file()
        t0 = time.perf_counter()
        result = run_zoo(
            ZooConfig(family, seeds=seeds, workers=args.workers, threads_per_worker=args.threads),
            out=zoo,
        )
        wall = time.perf_counter() - t0
        print(result.summary())
        timings = member_timings(zoo)
        shares = [t["detect_share"] for t in timings if "detect_share" in t and not t["resumed"]]
        families[family] = {
            "zoo": str(zoo),
            "wall_s": wall,
            "resumed": resumed,
            "members": len(result.rows),
            "failed": result.failed,
            "detect_share_median": median_or_none(shares),
            "detect_share_max": max(shares) if shares else None,
            "detect_s_median": median_or_none([t["detect"] for t in timings if "detect" in t]),
            "train_s_median": median_or_none([t["train"] for t in timings if "train" in t]),
            "curve": curve(result.rows),
            "agreement": result.agreement,
            "member_timings": timings,
        }
    total = time.perf_counter() - t_all
    payload = {
        "seeds": list(seeds),
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "total_wall_s": total,
        "any_resumed": any(f["resumed"] for f in families.values()),
        "families": families,
    }
    write_json("bench_zoo", payload)
    lines = [
        f"Four-family zoo, seeds {list(seeds)}, {args.workers} workers x {args.threads} thread: "
        f"{total / 60:.1f} min in all"
        + (" (some zoos resumed: times cover the rest only)" if payload["any_resumed"] else ""),
        "",
        "| family | members | wall (min) | train s (median) | detect s (median) | "
        "detect / train (median, max) |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in families.items():
        lines.append(
            f"| {name} | {f['members']} | {f['wall_s'] / 60:.1f} | {fmt(f['train_s_median'])} | "
            f"{fmt(f['detect_s_median'])} | {fmt(f['detect_share_median'])}, "
            f"{fmt(f['detect_share_max'])} |"
        )
    lines += [
        "",
        "| family | score | Spearman [95% CI] | AUROC [95% CI] | partial rho given p |",
        "|---|---|---|---|---|",
    ]
    for name, f in families.items():
        for a in f["agreement"].get("overall", []):
            lines.append(
                f"| {name} | {a['score']} | {fmt(a['spearman'])} "
                f"[{fmt(a['spearman_ci'][0])}, {fmt(a['spearman_ci'][1])}] | {fmt(a['auroc'])} "
                f"[{fmt(a['auroc_ci'][0])}, {fmt(a['auroc_ci'][1])}] | "
                f"{fmt(a['partial_spearman_given_p'])} |"
            )
    lines += [
        "",
        "Within one p where the seeds disagree (some b > 0.5, some not): causal score AUROC.",
        "",
        "| family | p | AUROC | Spearman |",
        "|---|---|---|---|",
    ]
    for name, f in families.items():
        for p, table in f["agreement"].get("within_p", {}).items():
            causal = next((a for a in table if a["score"] == "causal score"), None)
            if causal and causal["auroc"] == causal["auroc"]:  # not NaN: both classes present
                auroc, rho = fmt(causal["auroc"]), fmt(causal["spearman"])
                lines.append(f"| {name} | {p} | {auroc} | {rho} |")
    (RESULTS / "bench_zoo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
