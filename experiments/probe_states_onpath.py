"""Exploratory diagnostic: does ``detect``'s verdict change when the probe split's agent stands
only where a trained agent walks (on a shortest path from the start to either goal) instead of
at any open cell?

It re-detects every member of a finished gridworld zoo with that probe distribution (the task's
public option ``GridTask.probe_agent = "on_path"``, set on the loaded task only) and prints the
old and new scores beside OOD behaviour ``b``. It changes nothing in the zoo or in mesa's
defaults: the probe split of record stays as it is. Run on already-seen models, so it can
suggest, not establish, a change. See ``probe_states_onpath.md``. ::

    python -m experiments probe_states_onpath --zoo runs/bench_zoo/coin

writes ``results/probe_states_onpath/<family>-<seeds>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from experiments.common import seeds_slug, write_result


def main(argv: list[str] | None = None) -> None:
    import mesa
    from mesa.runs import load_run
    from mesa.tasks.gridworld import GridTask

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", required=True, type=Path, help="a finished gridworld zoo directory")
    args = ap.parse_args(argv)
    with (args.zoo / "results.csv").open() as f:
        members = list(csv.DictReader(f))
    rows = []
    print("| member | b | score (any cell) | score (on path) | Delta true / spurious (on path) |")
    print("|---|---|---|---|---|")
    for m in members:
        run = load_run(args.zoo / "members" / m["member"])
        if not isinstance(run.task, GridTask):
            raise SystemExit(f"{m['member']} is not a gridworld member: no agent to place")
        run.task.probe_agent = "on_path"
        v = mesa.detect(run.model, run.task)
        row = {
            "member": m["member"],
            "p": float(m["p"]),
            "b": float(m["b"]),
            "score": float(m["score"]),
            "verdict": m["verdict"],
            "onpath_score": v.score,
            "onpath_verdict": v.verdict,
            "onpath_directed": v.methods["behaviour"].effect,
        }
        rows.append(row)
        print(row_line(row), flush=True)
    seeds = seeds_slug(sorted({int(m["seed"]) for m in members}))
    write_result(
        "probe_states_onpath",
        f"{members[0]['family']}-{seeds}",
        {"zoo": str(args.zoo), "rows": rows},
    )


def row_line(row: dict[str, Any]) -> str:
    d = row["onpath_directed"]
    return (
        f"| {row['member']} | {row['b']:.2f} | {row['score']:.2f} {row['verdict']} | "
        f"{row['onpath_score']:.2f} {row['onpath_verdict']} | {d['true']:.3f} / "
        f"{d['spurious']:.3f} |"
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    return {
        "members": len(rows),
        "verdicts changed": sum(r["verdict"] != r["onpath_verdict"] for r in rows),
        "max |score change|": max(abs(r["onpath_score"] - r["score"]) for r in rows),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| member | b | score (any cell) | score (on path) | Delta true / spurious (on path) |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(lines + [row_line(r) for r in result["rows"]])
