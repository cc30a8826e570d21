"""Benchmark: one zoo member (train, OOD evaluation, detect) under two interpreters side by side.

A zoo's wall time moves with the load of a shared machine as much as with the code, so to tell
what a change bought, run the same members under two installs of mesa (e.g. a virtual
environment with an older revision installed) *at the same time*, one per core, as a 2-worker
zoo runs them, and compare each pair::

    python -m experiments bench_member --other OLD_VENV/bin/python \\
        --members maze:0:4 coin:0.2:5 lookalike:0.1:4 --repeats 2

Every member is trained from scratch in a temporary directory, 1 torch thread per process.
Prints a table (seconds; ratio = this / other) and writes
``results/bench_member/<members>-vs-<other>-<commit>.json``, where ``<other>`` is
``--other-name``, by default the short git commit of the other install's source tree.
See ``bench_member.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from experiments.common import git_commit, parse_assignments, write_result

_ONE = """
import json, sys, time
from dataclasses import asdict
import mesa
from mesa.zoo.runner import ZooConfig, run_member
family, p, seed, out = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
extra = json.loads(sys.argv[5])  # task_options, hparams, ood_episodes (smoke runs)
cfg = ZooConfig(family, ps=(p,), seeds=(seed, seed + 1), workers=1, **extra)
name = f"{family}_p{p:g}_s{seed}"
t0 = time.perf_counter()
run_member(out, name, p, seed, asdict(cfg.resolved()))
total = time.perf_counter() - t0
with open(f"{out}/members/{name}/timings.json") as f:
    steps = {k: v["seconds"] for k, v in json.load(f).items()}
print(json.dumps({"total": total, **steps, "mesa": mesa.__file__}))
"""


def _side_by_side(
    pythons: dict[str, str], member: str, extra: dict[str, Any]
) -> dict[str, dict[str, float]]:
    family, p, seed = member.split(":")
    with tempfile.TemporaryDirectory() as tmp:
        procs = {
            label: subprocess.Popen(
                [python, "-c", _ONE, family, p, seed, str(Path(tmp) / label), json.dumps(extra)],
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


def other_commit(python: str) -> str:
    """The short commit of the source tree the other interpreter imports mesa from, or
    ``other`` when that is not a git checkout."""
    try:
        where = subprocess.run(
            [python, "-c", "import mesa, pathlib; print(pathlib.Path(mesa.__file__).parent)"],
            capture_output=True,
            text=True,
            check=True,
            cwd=tempfile.gettempdir(),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "other"
    commit, dirty = git_commit(Path(where))
    return "other" if commit == "unknown" else commit + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--other", required=True, help="python of the install to compare against")
    ap.add_argument("--other-name", help="what the other install is (default: its git commit)")
    ap.add_argument("--members", nargs="+", default=["maze:0:4", "coin:0.2:5"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options (smoke runs)")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters")
    ap.add_argument("--ood-episodes", type=int, default=None)
    args = ap.parse_args(argv)
    extra: dict[str, Any] = {
        k: v
        for k, v in (
            ("task_options", parse_assignments(args.opt)),
            ("hparams", parse_assignments(args.hp)),
            ("ood_episodes", args.ood_episodes),
        )
        if v
    }
    other_name = args.other_name or other_commit(args.other)
    pythons = {"this": sys.executable, "other": args.other}
    runs: dict[str, list[dict[str, dict[str, float]]]] = {m: [] for m in args.members}
    for r in range(args.repeats):
        for member in args.members:
            runs[member].append(_side_by_side(pythons, member, extra))
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
    members = "_".join(m.replace(":", "-p", 1).replace(":", "-s", 1) for m in args.members)
    write_result(
        "bench_member",
        f"{members}-vs-{other_name}" + ("-custom" if extra else ""),
        {
            **extra,
            "other": args.other,
            "other_name": other_name,
            "repeats": args.repeats,
            "runs": runs,
            "summary": summary,
        },
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{member} {step} this/other": s[step]["ratio"]
        for member, s in result["summary"].items()
        for step in ("detect", "total")
    }


def table(result: dict[str, Any]) -> str:
    other = result.get("other_name", "other")
    lines = [
        f"Medians of {result['repeats']} side-by-side repeats, seconds.",
        "",
        f"| member | step | this | {other} | ratio |",
        "|---|---|---|---|---|",
    ]
    for member, steps in result["summary"].items():
        family, p, seed = member.split(":")
        for i, (step, s) in enumerate(steps.items()):
            name = f"{family} p = {p}, seed {seed}" if i == 0 else ""
            lines.append(
                f"| {name} | {'OOD' if step == 'ood' else step} | {s['this']:.1f} | "
                f"{s['other']:.1f} | {s['ratio']:.2f} |"
            )
    return "\n".join(lines)
