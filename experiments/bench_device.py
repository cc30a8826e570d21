"""Benchmark: the gridworld engine and PPO training on the CPU and, when present, on a GPU.

For each device, in one run:

- the engine: environment steps per second of ``GridEnv`` (random actions drawn on the device,
  auto-reset, the live observation buffer the trainers use) at several numbers of copies;
- training: wall time for PPO to reach ``--target`` (default 95%) success over the last 500
  training episodes (the trainer's own early stop, as in ``bench_training``), the environment
  steps it took, and in-distribution success on fresh episodes afterwards.

GPU timings wait for the GPU to finish (``torch.cuda.synchronize``) before the clock stops.
A seed gives different runs on the two devices (GPU draws come from GPU generators), so the
training rows compare the time to the same target, not the same runs. See ``bench_device.md``. ::

    python -m experiments bench_device --seeds 2 --threads 2

writes ``results/bench_device/maze-seeds0-1-<devices>-threads<T>-<commit>.json`` (``<devices>``:
``cpu`` or ``cpu-cuda``; ``-custom`` appended when ``--opt``, ``--hp``, ``--num-envs``,
``--steps`` or ``--ood-episodes`` change what is measured).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import mesa
from experiments.common import fmt, parse_assignments, seeds_slug, write_result
from mesa.io import read_json
from mesa.runtime import generator, resolve_device

NUM_ENVS = [1024, 16_384, 65_536]
STEPS = 50


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds ``fn`` takes, the GPU's queued work included, and what it returned."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def engine_sps(
    task: Any, device: torch.device, num_envs: int, steps: int, repeats: int
) -> dict[str, Any]:
    """Steps per second of ``num_envs`` copies on ``device`` (median of ``repeats``)."""
    env = task.make_env("train", num_envs, 0, device=device)
    env.copy_obs = False
    env.reset()
    actions = torch.randint(0, 4, (steps, num_envs), generator=generator(device, 0), device=device)

    def run() -> None:
        for a in actions:
            env.step(a)

    run()  # warm-up: the pool's copy on the device, kernels loaded
    times = [_timed(run, device)[0] for _ in range(repeats)]
    med = statistics.median(times)
    return {
        "device": str(device),
        "num_envs": num_envs,
        "steps_per_s": num_envs * steps / med,
        "seconds": times,
    }


def time_to_target(
    task: Any,
    device: torch.device,
    seed: int,
    hparams: dict[str, Any],
    ood_episodes: int | None,
    deterministic: bool,
) -> dict[str, Any]:
    """One PPO run on ``device`` until its early stop (or its budget), then fresh episodes."""
    with tempfile.TemporaryDirectory() as tmp:

        def train() -> Any:
            return mesa.train(
                task,
                seed=seed,
                out=tmp,
                progress=False,
                device=device,
                deterministic=deterministic,
                **hparams,
            )

        train_s, model = _timed(train, device)
        record = read_json(Path(tmp) / "config.json")["train"]
    ood = mesa.evaluate_ood(model, task, n=ood_episodes)
    row = {
        "device": str(device),
        "seed": seed,
        "train_s": train_s,
        "global_step": record["global_step"],
        "reached_target": record["stopped_early"],
        "env_steps_per_s": record["global_step"] / train_s,
        "in_dist_success": ood.in_dist_success,
        "ood_true_rate": ood.true_rate,
    }
    print(row, flush=True)
    return row


def _devices(names: list[str]) -> list[torch.device]:
    """The devices to measure: ``auto`` is the CPU, and CUDA beside it when present."""
    if names == ["auto"]:
        names = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [resolve_device(n) for n in names]


def _summary(rows: list[dict[str, Any]], devices: list[str]) -> dict[str, Any]:
    """Medians per device; the time to the target over the runs that reached it (None if
    none did: ``train_s`` is then the whole budget's time)."""
    out: dict[str, Any] = {}
    for d in devices:
        group = [r for r in rows if r["device"] == d]
        out[d] = {
            k: statistics.median(r[k] for r in group)
            for k in ("train_s", "global_step", "env_steps_per_s", "in_dist_success")
        }
        reached = [r["train_s"] for r in group if r["reached_target"]]
        out[d]["time_to_target_s"] = statistics.median(reached) if reached else None
        out[d]["reached_target"] = len(reached)
        out[d]["runs"] = len(group)
    return out


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=["auto"], help="cpu, cuda, or auto (both)")
    ap.add_argument("--family", default="maze", help="a gridworld family")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the CPU's work)")
    ap.add_argument("--target", type=float, default=0.95, help="training success to reach")
    ap.add_argument("--repeats", type=int, default=3, help="engine timings per size")
    ap.add_argument("--num-envs", type=int, nargs="+", default=NUM_ENVS)
    ap.add_argument("--steps", type=int, default=STEPS, help="engine steps per timing")
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="PPO hyperparameters")
    ap.add_argument("--ood-episodes", type=int, default=None, help="fresh episodes per model")
    ap.add_argument("--deterministic", action="store_true", help="deterministic algorithms")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    torch.set_num_threads(args.threads)
    devices = _devices(args.devices)
    options, hp = parse_assignments(args.opt), parse_assignments(args.hp)
    task = mesa.make_task(args.family, p=0.0, **options)
    engine = [
        engine_sps(task, d, n, args.steps, args.repeats) for d in devices for n in args.num_envs
    ]
    for r in engine:
        print(f"engine {r['device']} x{r['num_envs']:>6}: {r['steps_per_s']:>14,.0f} steps/s")
    hparams = {"stop_at_success": args.target, **hp}
    rows = [
        time_to_target(task, d, seed, hparams, args.ood_episodes, args.deterministic)
        for seed in range(args.seeds)
        for d in devices
    ]
    names = [str(d) for d in devices]
    summary = _summary(rows, names)
    custom = bool(options or hp or args.ood_episodes is not None)
    custom |= (args.num_envs, args.steps) != (NUM_ENVS, STEPS)
    what = f"{args.family}-{seeds_slug(range(args.seeds))}-"
    what += "-".join(d.type for d in devices) + f"-threads{args.threads}"
    write_result(
        "bench_device",
        what + ("-custom" if custom else ""),
        {
            "devices": names,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "family": args.family,
            "task_options": options,
            "hparams": hparams,
            "target": args.target,
            "deterministic": args.deterministic,
            "threads": args.threads,
            "engine": engine,
            "training": rows,
            "median": summary,
        },
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in result["devices"]:
        best = max(r["steps_per_s"] for r in result["engine"] if r["device"] == d)
        out[f"{d} engine steps/s"] = best
        reached = result["median"][d]["time_to_target_s"]
        out[f"{d} s to target"] = "not reached" if reached is None else reached
    return out


def table(result: dict[str, Any]) -> str:
    devices = result["devices"]
    lines = ["| copies | " + " | ".join(f"{d} steps/s" for d in devices) + " |"]
    lines.append("|---" * (len(devices) + 1) + "|")
    for n in sorted({r["num_envs"] for r in result["engine"]}):
        cells = [
            f"{r['steps_per_s']:,.0f}"
            for d in devices
            for r in result["engine"]
            if r["device"] == d and r["num_envs"] == n
        ]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    target = f"{result['target']:.0%}"
    lines += [
        "",
        f"| device | runs reaching {target} | s to {target} (median of those) | s per run | "
        "env steps | env steps/s | in-dist success |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in devices:
        m = result["median"][d]
        lines.append(
            f"| {d} | {m['reached_target']}/{m['runs']} | {fmt(m['time_to_target_s'], 1)} | "
            f"{m['train_s']:.1f} | {m['global_step']:,.0f} | {m['env_steps_per_s']:,.0f} | "
            f"{m['in_dist_success']:.1%} |"
        )
    return "\n".join(lines)
