"""Exploratory diagnostic: does ``detect``'s verdict change when the probe split's agent stands
only where a trained agent walks (on a shortest path from the start to either goal) instead of
at any open cell?

It re-detects every member of a finished gridworld zoo with that probe distribution and prints
the old and new scores beside OOD behaviour ``b``. It changes nothing in mesa: the probe split of
record stays as it is. Run on already-seen models, so it can suggest, not establish, a change::

    python experiments/probe_states_onpath.py --zoo runs/bench_zoo/coin

Writes ``results/probe_states_onpath_<family>.json``.
"""

from __future__ import annotations

import argparse
import csv
import types
from pathlib import Path
from typing import Any

import torch
from _common import write_json

import mesa
from mesa.runs import load_run
from mesa.tasks.gridworld import GridTask, random_cells


def onpath_states(self: Any, n: int, seed: int) -> dict[str, Any]:
    """``GridTask._probe_states`` with the agent redrawn on a shortest path from the start to
    the true or the spurious goal (never on a goal)."""
    s = GridTask._probe_states(self, n, seed)
    pool = self.pool("probe", seed)
    level, true, spur = s["level"], s["true"], s["spur"]
    dist, rows = pool.dist[level].long(), torch.arange(n)
    from_start = dist[rows, pool.start[level]]  # [n, H*W]
    on_path = torch.zeros_like(s["walls"])
    for goal in (true, spur):
        on_path |= from_start + dist[rows, :, goal] == from_start[rows, goal].unsqueeze(1)
    s["pos"] = random_cells(s["walls"] | ~on_path, [true, spur], s["g"])
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo", required=True, type=Path, help="a finished gridworld zoo directory")
    args = ap.parse_args()
    members = list(csv.DictReader(open(args.zoo / "results.csv")))
    rows = []
    print("| member | b | score (any cell) | score (on path) | Delta true / spurious (on path) |")
    print("|---|---|---|---|---|")
    for m in members:
        run = load_run(args.zoo / "members" / m["member"])
        run.task._probe_states = types.MethodType(onpath_states, run.task)
        v = mesa.detect(run.model, run.task)
        row = {
            "member": m["member"],
            "p": float(m["p"]),
            "b": float(m["b"]),
            "score": float(m["score"]),
            "verdict": m["verdict"],
            "onpath_score": v.score,
            "onpath_verdict": v.verdict,
            "onpath_directed": v.directed_effect,
        }
        rows.append(row)
        print(
            f"| {m['member']} | {row['b']:.2f} | {row['score']:.2f} {m['verdict']} | "
            f"{v.score:.2f} {v.verdict} | {v.directed_effect['true']:.3f} / "
            f"{v.directed_effect['spurious']:.3f} |",
            flush=True,
        )
    write_json(f"probe_states_onpath_{members[0]['family']}", {"zoo": str(args.zoo), "rows": rows})


if __name__ == "__main__":
    main()
