"""maze at a longer training budget: conv policies trained with PPO for up to 1.5 M steps
(stopping early at 99.5% success), then OOD-evaluated like the zoo's members.

It runs, for each ``--p``, the command the results were first made with::

    mesa train maze --p P --seed 0 --out RUNS/pP --hp total_timesteps=1500000 stop_at_success=0.995

(training resumes from ``RUNS/pP`` if it holds a checkpoint; about 15 minutes per p on a loaded
2-core machine), and collects each run's ``config.json`` and ``ood.json`` into one result, with
the commands it ran. See ``maze_long_budget.md``. ::

    python -m experiments maze_long_budget --p 0.3 1.0

writes ``results/maze_long_budget/seed0-p0.3-1.0-<commit>.json``. ``--hp`` replaces the
hyperparameters and ``--opt`` adds task options (``-custom`` is then appended to the name);
``--eval-n N`` evaluates on N episodes per split with ``mesa eval RUN --n N`` after training
with ``--no-eval`` (smoke runs).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from experiments.common import write_result

HPARAMS = ["total_timesteps=1500000", "stop_at_success=0.995"]


def commands(args: argparse.Namespace) -> list[list[str]]:
    """The ``mesa`` command lines of the runs, in order."""
    out = []
    for p in args.p:
        run = str(Path(args.runs) / f"p{p}")
        train = ["mesa", "train", "maze", "--p", p, "--seed", str(args.seed), "--out", run]
        train += ["--hp", *args.hp] + (["--opt", *args.opt] if args.opt else [])
        if args.eval_n is None:
            out.append(train)
        else:
            out += [[*train, "--no-eval"], ["mesa", "eval", run, "--n", str(args.eval_n)]]
    return out


def collect(runs: dict[str, Path]) -> dict[str, Any]:
    from mesa.io import CONFIG, OOD, read_json

    return {
        p: {"run": str(d), "config": read_json(d / CONFIG), "ood": read_json(d / OOD)}
        for p, d in runs.items()
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", nargs="+", default=["0.3", "1.0"], help="values of p (as written)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default="runs/maze_long_budget", help="parent of the run dirs")
    ap.add_argument("--hp", nargs="+", default=HPARAMS, metavar="KEY=VALUE")
    ap.add_argument("--opt", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--eval-n", type=int, default=None)
    args = ap.parse_args(argv)
    ran = []
    for cmd in commands(args):
        print("$ " + shlex.join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "mesa", *cmd[1:]], check=True)
        ran.append(shlex.join(cmd))
    custom = args.hp != HPARAMS or bool(args.opt) or args.eval_n is not None
    what = f"seed{args.seed}-p{'-'.join(args.p)}" + ("-custom" if custom else "")
    payload = {
        "commands": ran,
        "seed": args.seed,
        "runs": collect({p: Path(args.runs) / f"p{p}" for p in args.p}),
    }
    write_result("maze_long_budget", what, payload)
    print(table(payload))


def load(path: Path) -> dict[str, Any]:
    """A result: this script's JSON, or a folder of run directories ``p<P>/`` (each with
    ``config.json`` and ``ood.json``), as the first results were kept."""
    import json

    if path.is_file():
        return json.loads(path.read_text())
    runs = {d.name.removeprefix("p"): d for d in sorted(path.glob("p*")) if d.is_dir()}
    return {"runs": collect(runs)}


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"p={p} true/spur/in-dist": f"{r['ood']['true_rate']:.2f}/{r['ood']['spurious_rate']:.2f}"
        f"/{r['ood']['in_dist_success']:.3f}"
        for p, r in result["runs"].items()
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| p | steps trained | stopped early | in-dist success | OOD cheese first [95% CI] | "
        "OOD corner first | neither | off-path episodes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, r in result["runs"].items():
        train, ood = r["config"]["train"], r["ood"]
        lo, hi = ood["true_ci"]
        lines.append(
            f"| {p} | {train['global_step']:,} | {'yes' if train['stopped_early'] else 'no'} | "
            f"{ood['in_dist_success']:.1%} | {ood['true_rate']:.0%} [{lo:.0%}, {hi:.0%}] | "
            f"{ood['spurious_rate']:.0%} | {ood['neither_rate']:.0%} | {ood['n']} |"
        )
    return "\n".join(lines)
