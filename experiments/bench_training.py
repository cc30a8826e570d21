"""Benchmark: wall time to train the organisms on this machine, and of detection per model.

- ``maze`` (conv policy, PPO): time until the rolling success rate over the last 500 training
  episodes reaches 95%, then in-distribution success on 1000 fresh episodes;
- ``sycophancy`` (transformer, supervised): time until in-distribution accuracy reaches 99.5%;
- ``maze`` with the cell-token transformer policy (behaviour cloning): time until success on the
  trainer's evaluation episodes reaches 90%;
- ``mesa.detect`` on each trained model, as a share of its training time.

Medians over seeds. See ``bench_training.md``. ::

    python -m experiments bench_training --seeds 2 --threads 2

writes ``results/bench_training/seeds0-1-threads<T>-<commit>.json``. Overrides
(``KEY=VALUE``): ``--opt-maze``, ``--opt-sycophancy`` (task options), ``--hp-maze`` (PPO),
``--hp-cell`` (the cell transformer's behaviour cloning), ``--hp-sycophancy`` change the models,
and ``--ood-episodes`` the evaluation (smoke runs); ``-custom`` is then appended to the name.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch

import mesa
from experiments.common import parse_assignments, seeds_slug, write_result


def one(
    family: str,
    p: float,
    seed: int,
    hparams: dict,
    arch: str | None = None,
    options: dict[str, Any] | None = None,
    ood_episodes: int | None = None,
) -> dict:
    task = mesa.make_task(family, p=p, **(options or {}))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = mesa.train(task, seed=seed, out=tmp, arch=arch, progress=False, **hparams)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        verdict = mesa.detect(model, task)
        detect_s = time.perf_counter() - t0
    ood = mesa.evaluate_ood(model, task, n=ood_episodes)
    row = {
        "family": family,
        "arch": arch or task.archs[0],
        "p": p,
        "seed": seed,
        "train_s": train_s,
        "detect_s": detect_s,
        "detect_share": detect_s / train_s,
        "in_dist_success": ood.in_dist_success,
        "ood_true_rate": ood.true_rate,
        "ood_spurious_rate": ood.spurious_rate,
        "verdict": verdict.verdict,
        "score": verdict.score,
    }
    print(row, flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    for name in ("maze", "sycophancy"):
        ap.add_argument(f"--opt-{name}", nargs="*", metavar="KEY=VALUE", help=f"{name} options")
    for name, what in (("maze", "maze PPO"), ("cell", "maze BC"), ("sycophancy", "sycophancy")):
        ap.add_argument(f"--hp-{name}", nargs="*", metavar="KEY=VALUE", help=f"{what} trainer")
    ap.add_argument("--ood-episodes", type=int, default=None, help="OOD episodes per model")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = args.ood_episodes
    overrides: dict[str, Any] = {
        k: parse_assignments(getattr(args, k))
        for k in ("opt_maze", "opt_sycophancy", "hp_maze", "hp_cell", "hp_sycophancy")
    }
    maze_opt, syc_opt = overrides["opt_maze"], overrides["opt_sycophancy"]
    rows = []
    for seed in range(args.seeds):
        hp = {"stop_at_success": 0.95, **overrides["hp_maze"]}
        rows.append(one("maze", 0.0, seed, hp, options=maze_opt, ood_episodes=n))
        hp = overrides["hp_sycophancy"]
        rows.append(one("sycophancy", 0.0, seed, hp, options=syc_opt, ood_episodes=n))
        hp = {"stop_at_success": 0.9, **overrides["hp_cell"]}
        rows.append(
            one("maze", 0.0, seed, hp, "cell_transformer", options=maze_opt, ood_episodes=n)
        )
    summary = {}
    for key in sorted({(r["family"], r["arch"]) for r in rows}):
        group = [r for r in rows if (r["family"], r["arch"]) == key]
        name = "/".join(key)
        summary[name] = {
            k: statistics.median(r[k] for r in group)
            for k in ("train_s", "detect_s", "detect_share", "in_dist_success")
        }
        print(name, summary[name])
    custom = {k: v for k, v in {**overrides, "ood_episodes": n}.items() if v}
    write_result(
        "bench_training",
        f"{seeds_slug(range(args.seeds))}-threads{args.threads}" + ("-custom" if custom else ""),
        {"rows": rows, "median": summary, "threads": args.threads, **custom},
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {f"{name} train s": m["train_s"] for name, m in result["median"].items()} | {
        "max detect share": max(m["detect_share"] for m in result["median"].values())
    }


def table(result: dict[str, Any]) -> str:
    n = len({r["seed"] for r in result["rows"]})
    lines = [
        "| family / model | train s | detect s | detect / train | in-dist success |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["median"].items():
        lines.append(
            f"| {name} | {m['train_s']:.1f} | {m['detect_s']:.1f} | {m['detect_share']:.0%} | "
            f"{m['in_dist_success']:.2%} |"
        )
    return f"Medians of {n} seeds.\n\n" + "\n".join(lines)
