"""Benchmark: one zoo member (train, OOD evaluation, detect) under two interpreters side by side.

A zoo's wall time moves with the load of a shared machine as much as with the code, so to tell
what a change bought, run the same members under two installs of mesa (e.g. a virtual
environment with an older revision installed) *at the same time*, one per core, as a 2-worker
zoo runs them, and compare each pair::

    python experiments/bench_member.py --other /path/to/old/venv/bin/python \\
        --members maze:0:4 coin:0.2:5 lookalike:0.1:4 --repeats 2

Every member is trained from scratch in a temporary directory, 1 torch thread per process.
Writes ``results/bench_member.json`` and prints a table (seconds; ratio = this / other).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import write_json

_ONE = """
import json, sys, time
from dataclasses import asdict
import mesa
from mesa.zoo.runner import ZooConfig, run_member
family, p, seed, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = ZooConfig(family, ps=(p,), seeds=(seed, seed + 1), workers=1, threads_per_worker=1)
name = f"{family}_p{p:g}_s{seed}"
t0 = time.perf_counter()
run_member(out, name, p, seed, asdict(cfg.resolved()))
total = time.perf_counter() - t0
with open(f"{out}/members/{name}/timings.json") as f:
    steps = {k: v["seconds"] for k, v in json.load(f).items()}
print(json.dumps({"total": total, **steps, "mesa": mesa.__file__}))
"""


def _side_by_side(pythons: dict[str, str], member: str) -> dict[str, dict[str, float]]:
    family, p, seed = member.split(":")
    with tempfile.TemporaryDirectory() as tmp:
        procs = {
            label: subprocess.Popen(
                [python, "-c", _ONE, family, p, seed, str(Path(tmp) / label)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                cwd=tmp,  # not a source tree: `python -c` would import mesa from the cwd
            )
            for label, python in pythons.items()
        }
        out = {}
        for label, proc in procs.items():
            stdout, _ = proc.communicate()
            if proc.returncode:
                sys.exit(f"{label} failed on {member} (exit {proc.returncode})")
            out[label] = json.loads(stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--other", required=True, help="python of the install to compare against")
    ap.add_argument("--members", nargs="+", default=["maze:0:4", "coin:0.2:5"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    pythons = {"this": sys.executable, "other": args.other}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {m: [] for m in args.members}
    for r in range(args.repeats):
        for member in args.members:
            runs[member].append(_side_by_side(pythons, member))
            print(f"repeat {r + 1}, {member}: {runs[member][-1]}", flush=True)
    summary = {}
    print("| member | step | this (s) | other (s) | ratio this/other |\n|---|---|---|---|---|")
    for member, pairs in runs.items():
        summary[member] = {}
        for step in ("train", "ood", "detect", "total"):
            this = statistics.median(p["this"][step] for p in pairs)
            other = statistics.median(p["other"][step] for p in pairs)
            ratio = statistics.median(p["this"][step] / p["other"][step] for p in pairs)
            summary[member][step] = {"this": this, "other": other, "ratio": ratio}
            print(f"| {member} | {step} | {this:.1f} | {other:.1f} | {ratio:.2f} |")
    write_json(
        "bench_member",
        {"other": args.other, "repeats": args.repeats, "runs": runs, "summary": summary},
    )


if __name__ == "__main__":
    main()
