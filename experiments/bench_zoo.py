"""Benchmark: the zoo of every built-in family on this machine, and ``detect``'s cost per model.

Runs ``mesa zoo`` for ``maze``, ``coin``, ``lookalike``, ``keys`` and ``sycophancy`` — each
family's default grid of ``p`` (``mesa tasks``) x ``--seeds`` seeds from ``--first-seed`` — with
two local workers of one torch thread each, and records:

- the wall time of each family's zoo and of all five (target: under 90 minutes on 2 CPU cores);
- per member, the wall time of training, OOD evaluation and ``detect`` (each member's
  ``timings.json``), and ``detect`` as a share of its training time (target: under 10%);
- each zoo's agreement table (causal score and baselines) and misgeneralization curve.

A zoo directory that already holds finished members is resumed, and its wall time then covers
only the rest: the JSON marks such a family ``"resumed": true``. See ``bench_zoo.md``. ::

    python -m experiments bench_zoo --seeds 4 --first-seed 8 --out runs/bench_zoo_s8

writes ``results/bench_zoo/seeds8-11-<commit>.json`` (``<families>-seeds...`` when not all five;
``-custom`` appended when ``--p``, ``--opt``, ``--hp`` or ``--ood-episodes`` change the zoos).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from experiments.common import fmt, parse_assignments, seeds_slug, write_result

FAMILIES = ("maze", "coin", "lookalike", "keys", "sycophancy")


def member_timings(zoo: Path) -> list[dict]:
    from mesa.io import read_json
    from mesa.zoo.runner import TIMINGS

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


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> None:
    from mesa.zoo import ZooConfig, p_curve, run_zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench_zoo", help="parent directory of the zoos")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--p", type=float, nargs="+", help="grid of p (default: each family's)")
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options (every family)")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters")
    ap.add_argument("--ood-episodes", type=int, default=None)
    ap.add_argument("--methods", nargs="+", default=None, help="detection methods (default set)")
    ap.add_argument("--inputs", choices=["probe", "train"], default="probe")
    args = ap.parse_args(argv)
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    options, hparams = parse_assignments(args.opt), parse_assignments(args.hp)
    families: dict[str, dict] = {}
    t_all = time.perf_counter()
    for family in args.families:
        zoo = Path(args.out) / family
        resumed = (zoo / "results.csv").is_file()
        t0 = time.perf_counter()
        config = ZooConfig(
            family,
            ps=tuple(args.p or ()),
            seeds=seeds,
            task_options=options,
            hparams=hparams,
            ood_episodes=args.ood_episodes,
            workers=args.workers,
            methods=tuple(args.methods or ()),
            inputs=args.inputs,
        )
        result = run_zoo(config, out=zoo)
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
            "curve": p_curve(result.rows),
            "agreement": result.agreement,
            "member_timings": timings,
        }
    total = time.perf_counter() - t_all
    custom = {
        k: v
        for k, v in (
            ("ps", args.p),
            ("task_options", options),
            ("hparams", hparams),
            ("ood_episodes", args.ood_episodes),
            ("methods", args.methods),
            ("inputs", None if args.inputs == "probe" else args.inputs),
        )
        if v
    }
    payload = {
        "seeds": list(seeds),
        "workers": args.workers,
        "threads_per_worker": int(hparams.get("num_threads", 1)),
        **custom,
        "total_wall_s": total,
        "any_resumed": any(f["resumed"] for f in families.values()),
        "families": families,
    }
    what = seeds_slug(seeds)
    if sorted(args.families) != sorted(FAMILIES):
        what = "-".join(args.families) + "-" + what
    write_result("bench_zoo", what + ("-custom" if custom else ""), payload)
    print(table(payload))


#: The verdict's score in the agreement tables (named "causal score" before detection's methods).
MECHANISTIC = ("mechanistic score", "causal score")


def _within(entry: Any) -> list[dict[str, Any]]:
    """A p's agreement rows, in either result format (a list, or a dict with ``agreement``)."""
    return entry if isinstance(entry, list) else entry.get("agreement", [])


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"total min": result["total_wall_s"] / 60}
    for name, f in result["families"].items():
        causal = next(a for a in f["agreement"]["overall"] if a["score"] in MECHANISTIC)
        out[f"{name} Spearman / AUROC"] = f"{fmt(causal['spearman'])} / {fmt(causal['auroc'])}"
    return out


def _ci(a: dict[str, Any], key: str) -> str:
    """``value [lo, hi]`` of an agreement field (n/a in results from before it existed)."""
    if key not in a:
        return "n/a"
    lo, hi = a.get(f"{key}_ci", (float("nan"), float("nan")))
    return f"{fmt(a[key])} [{fmt(lo)}, {fmt(hi)}]"


def table(result: dict[str, Any]) -> str:
    """The tables ``bench_zoo`` has printed since it was written: wall times, agreement, and
    agreement within one p."""
    families, seeds = result["families"], result["seeds"]
    workers, threads = result["workers"], result["threads_per_worker"]
    lines = [
        f"Zoos of {', '.join(families)}, seeds {seeds}, {workers} workers x {threads} thread: "
        f"{result['total_wall_s'] / 60:.1f} min in all"
        + (" (some zoos resumed: times cover the rest only)" if result["any_resumed"] else ""),
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
        "| family | score | Spearman [95% CI] | AUROC [95% CI] | partial rho given p | "
        "given behaviour | given in-dist |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in families.items():
        for a in f["agreement"].get("overall", []):
            lines.append(
                f"| {name} | {a['score']} | {fmt(a['spearman'])} "
                f"[{fmt(a['spearman_ci'][0])}, {fmt(a['spearman_ci'][1])}] | {fmt(a['auroc'])} "
                f"[{fmt(a['auroc_ci'][0])}, {fmt(a['auroc_ci'][1])}] | "
                f"{fmt(a['partial_spearman_given_p'])} | {_ci(a, 'partial_given_behaviour')} | "
                f"{_ci(a, 'partial_given_in_dist')} |"
            )
    calibrated = [
        (n, f["agreement"]["calibration"])
        for n, f in families.items()
        if "calibration" in f["agreement"]
    ]
    if calibrated:
        lines += [
            "",
            "| family | verdicts matching behaviour | wrong side of 1/2 | inconclusive |",
            "|---|---|---|---|",
        ]
        for name, c in calibrated:
            lines.append(f"| {name} | {c['match']}/{c['n']} | {c['wrong']} | {c['inconclusive']} |")
    lines += [
        "",
        "Within one p where the seeds disagree (some b > 0.5, some not): causal score AUROC.",
        "",
        "| family | p | AUROC | Spearman |",
        "|---|---|---|---|",
    ]
    for name, f in families.items():
        for p, within in f["agreement"].get("within_p", {}).items():
            causal = next((a for a in _within(within) if a["score"] in MECHANISTIC), None)
            if causal and causal["auroc"] == causal["auroc"]:  # not NaN: both classes present
                auroc, rho = fmt(causal["auroc"]), fmt(causal["spearman"])
                lines.append(f"| {name} | {p} | {auroc} | {rho} |")
    return "\n".join(lines)
