"""Diagnostic: what ``mesa.detect``'s probe-set size costs and buys, on a finished zoo.

``detect``'s cost is mostly its probes (one per hook and goal, fit on 75% of ``n_probe``
examples, default 2,000) and its LEACE erasers (fit on all of them). This re-detects every member
of a finished zoo at each given ``n_probe`` (counterfactual pairs unchanged) and records, beside
the default's:

- ``detect``'s wall time per member (one torch thread, as in a zoo worker; each setting in a
  fresh process whose first member also builds the per-process caches: the probe split's
  layouts and the observation-only baseline), and its share of the member's recorded training
  time;
- how much the evidence moves: scores, verdicts, the 95% interval width of decodability;
- the agreement of the causal score and of the probe-decodability baseline with OOD behaviour.

It writes nothing into the zoo (no ``verdict.json`` is replaced) and changes nothing in mesa.
See ``detect_cost.md``. ::

    python -m experiments detect_cost runs/bench_zoo_s8c/coin --n-probe 2000 1000 500

writes ``results/detect_cost/<family>-<seeds>-n2000-1000-500-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from experiments.common import fmt, seeds_slug, write_result


def redetect(zoo: str, n_probe: int) -> list[dict[str, Any]]:
    """Detect every finished member of ``zoo`` at ``n_probe``, in this (fresh) process."""
    import torch

    import mesa
    from mesa.io import VERDICT, read_json
    from mesa.runs import load_run
    from mesa.zoo.runner import TIMINGS

    torch.set_num_threads(1)
    # a zoo worker has run an optimizer (training) before its first detect: pay that first use
    # of torch.optim here too, so the first member's time is comparable
    w = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([w]).step()
    rows = []
    for d in sorted((Path(zoo) / "members").iterdir()):
        if not (d / TIMINGS).is_file() or not (d / VERDICT).is_file():
            continue
        run = load_run(d)
        t0 = time.perf_counter()
        v = mesa.detect(run.model, run.task, n_probe=n_probe)
        seconds = time.perf_counter() - t0
        half_widths = [(hi - lo) / 2 for e in v.evidence for lo, hi in (e.d_true_ci, e.d_spur_ci)]
        rows.append(
            {
                "member": d.name,
                "detect_seconds": seconds,
                "train_seconds": read_json(d / TIMINGS)["train"]["seconds"],
                "score": v.score,
                "verdict": v.verdict,
                "probe_score": v.probe_score,
                "median_ci_half_width": statistics.median(half_widths),
            }
        )
    return rows


def summary(rows: list[dict[str, Any]], ref: list[dict[str, Any]], zoo_rows: dict) -> dict:
    from mesa.zoo.agreement import zoo_agreement

    shares = [r["detect_seconds"] / r["train_seconds"] for r in rows]
    steady = [r["detect_seconds"] for r in rows[1:]]
    by_name = {r["member"]: r for r in ref}
    merged = [{**zoo_rows[r["member"]], **r} for r in rows]
    overall = zoo_agreement(merged)["overall"]
    return {
        "detect_seconds_first": rows[0]["detect_seconds"],
        "detect_seconds_median_after_first": statistics.median(steady),
        "share_median": statistics.median(shares),
        "share_max": max(shares),
        "members_over_10pct": sum(s >= 0.10 for s in shares),
        "members": len(rows),
        "median_ci_half_width": statistics.median(r["median_ci_half_width"] for r in rows),
        "max_abs_score_change": max(abs(r["score"] - by_name[r["member"]]["score"]) for r in rows),
        "max_abs_probe_score_change": max(
            abs(r["probe_score"] - by_name[r["member"]]["probe_score"]) for r in rows
        ),
        "verdicts_changed": sum(r["verdict"] != by_name[r["member"]]["verdict"] for r in rows),
        "agreement": {
            a["score"]: {"spearman": a["spearman"], "auroc": a["auroc"]}
            for a in overall
            if a["score"] in ("mechanistic score", "probe", "causal score", "probe decodability")
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path, help="a finished zoo directory (mesa zoo ... --out)")
    ap.add_argument("--n-probe", type=int, nargs="+", default=[2000, 1000])
    args = ap.parse_args(argv)
    with (args.zoo / "results.csv").open() as f:
        zoo_rows = {
            r["member"]: {"p": float(r["p"]), "b": float(r["b"]), "seed": int(r["seed"])}
            for r in csv.DictReader(f)
        }
    per_setting = {}
    for n in args.n_probe:  # one fresh process each, one after the other (timings stay clean)
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            per_setting[n] = pool.submit(redetect, str(args.zoo), n).result()
        print(f"n_probe {n}: {len(per_setting[n])} members re-detected", flush=True)
    ref = per_setting[args.n_probe[0]]
    out = {
        "zoo": str(args.zoo),
        "reference_n_probe": args.n_probe[0],
        "settings": {
            str(n): {"summary": summary(rows, ref, zoo_rows), "members": rows}
            for n, rows in per_setting.items()
        },
    }
    family = ref[0]["member"].split("_p")[0]
    seeds = seeds_slug(sorted({int(r["seed"]) for r in zoo_rows.values()}))
    sizes = "-".join(map(str, args.n_probe))
    write_result("detect_cost", f"{family}-{seeds}-n{sizes}", out)
    for n in args.n_probe:
        s = out["settings"][str(n)]["summary"]
        print(
            f"n_probe {n}: detect first {s['detect_seconds_first']:.2f} s, then median "
            f"{s['detect_seconds_median_after_first']:.2f} s; share median {s['share_median']:.1%}"
            f", max {s['share_max']:.1%}, {s['members_over_10pct']}/{s['members']} over 10%; "
            f"CI half-width {s['median_ci_half_width']:.3f}; verdicts changed "
            f"{s['verdicts_changed']}; agreement {s['agreement']}"
        )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"zoo": result["zoo"]}
    for n, setting in result["settings"].items():
        s = setting["summary"]
        out[f"n_probe {n}: over 10%"] = f"{s['members_over_10pct']}/{s['members']}"
        out[f"n_probe {n}: verdicts changed"] = s["verdicts_changed"]
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Zoo `{result['zoo']}`; changes against n_probe {result['reference_n_probe']}.",
        "",
        "| n_probe | detect s (first, then median) | detect / train (median, max) | over 10% "
        "| CI half-width (median) | max score change | verdicts changed | "
        "Spearman: causal / probe |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, setting in result["settings"].items():
        s = setting["summary"]
        agreement = s["agreement"]
        lines.append(
            f"| {n} | {s['detect_seconds_first']:.2f}, {s['detect_seconds_median_after_first']:.2f}"
            f" | {s['share_median']:.1%}, {s['share_max']:.1%} | "
            f"{s['members_over_10pct']}/{s['members']} | {s['median_ci_half_width']:.3f} | "
            f"{s['max_abs_score_change']:.3f} | {s['verdicts_changed']} | "
            f"{fmt(agreement['causal score']['spearman'])} / "
            f"{fmt(agreement['probe decodability']['spearman'])} |"
        )
    return "\n".join(lines)
