"""Diagnostic: the least wall time a finished zoo or benchmark could take on N workers.

Sums, per family, the seconds its members spent in each phase — training, the OOD evaluation and
detection, from every member's ``timings.json`` under the given run directories (a zoo, a
within-p benchmark's directory with its search members, several of them) — and divides the total
by ``--workers``: no schedule of the same members on that many single-threaded workers can end
sooner. With ``--wall-from`` (a result JSON that recorded ``total_wall_s``) it also shows how much
of the recorded wall time that floor is, i.e. how much went to packing (workers idle while a
family waited on a bisection step or a lane ran out of work) rather than to the members' own
compute. A timing marked ``resumed`` covers only the part run after a restart. ::

    python -m experiments compute_floor runs/within_p_132 --workers 2 \\
        --wall-from experiments/results/bench_within_p/seeds132-147-c6e2900.json

writes ``results/compute_floor/<run directory names>-<commit>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from experiments.common import fmt, write_result
from mesa.io import read_json
from mesa.zoo.runner import TIMINGS

PHASES = ("train", "ood", "detect")


def member_seconds(run_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """``{family: {"members": n, "resumed": n, phase: seconds, ...}}`` over every member (a
    directory with ``timings.json`` and ``config.json``) under ``run_dirs``."""
    families: dict[str, dict[str, Any]] = {}
    seen: set[Path] = set()
    for root in run_dirs:
        for timings in sorted(root.rglob(TIMINGS)):
            member = timings.parent.resolve()
            if member in seen:
                continue
            seen.add(member)
            family = read_json(member / "config.json")["task"]["name"]
            row = families.setdefault(
                family, {"members": 0, "resumed": 0, **dict.fromkeys(PHASES, 0.0)}
            )
            row["members"] += 1
            t = read_json(timings)
            for phase in PHASES:
                if phase in t:
                    row[phase] += t[phase]["seconds"]
                    row["resumed"] += bool(t[phase].get("resumed"))
    return families


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories (zoos, benchmarks)")
    ap.add_argument("--workers", type=int, default=2, help="workers the floor is for")
    ap.add_argument("--wall-from", type=Path, help="a result JSON with total_wall_s")
    args = ap.parse_args(argv)
    missing = [str(d) for d in args.runs if not d.is_dir()]
    if missing:
        ap.error(f"not a directory: {', '.join(missing)}")
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    families = member_seconds(args.runs)
    if not families:
        ap.error(f"no member with timings.json under {', '.join(map(str, args.runs))}")
    worker_s = sum(row[p] for row in families.values() for p in PHASES)
    payload: dict[str, Any] = {
        "runs": [str(d) for d in args.runs],
        "workers": args.workers,
        "families": families,
        "worker_s": worker_s,
        "floor_s": worker_s / args.workers,
    }
    if args.wall_from:
        payload["wall_from"] = str(args.wall_from)
        payload["wall_s"] = read_json(args.wall_from)["total_wall_s"]
    print(table(payload))
    write_result("compute_floor", "-".join(d.resolve().name for d in args.runs), payload)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {"floor (min)": result["floor_s"] / 60}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| family | members | worker-min: train / OOD / detect | of all worker time |",
        "|---|---|---|---|",
    ]
    total = result["worker_s"]
    for family, row in result["families"].items():
        own = sum(row[p] for p in PHASES)
        lines.append(
            f"| {family} | {row['members']} | "
            f"{' / '.join(fmt(row[p] / 60, 1) for p in PHASES)} | {own / total:.0%} |"
        )
    lines.append(
        f"\nAll: {fmt(total / 60, 1)} worker-min; on {result['workers']} workers at least "
        f"**{fmt(result['floor_s'] / 60, 1)} min**"
    )
    if "wall_s" in result:
        lines[-1] += (
            f" against {fmt(result['wall_s'] / 60, 1)} min recorded (the floor is "
            f"{result['floor_s'] / result['wall_s']:.0%} of it)"
        )
    return "\n".join(lines) + "."
