"""Benchmark: steps per second of mesa's vectorized gridworld engine against MiniGrid.

Random actions with auto-reset, on ``maze`` (a 7x7 frame) with many copies stepped at once, and on
``MiniGrid-Empty-8x8-v0`` (one environment, the usual way MiniGrid runs), measured in the same
run (MiniGrid before and after mesa: the machine's load drifts); medians of several repeats.
See ``bench_env.md``. ::

    python -m experiments bench_env --repeats 5 --threads 2

writes ``results/bench_env/threads<T>-<commit>.json`` (``-custom`` appended when ``--num-envs``,
``--steps`` or ``--minigrid-steps`` differ from their defaults).
"""

from __future__ import annotations

import argparse
from typing import Any

from experiments.common import median_time, write_result


def mesa_sps(num_envs: int, steps: int, repeats: int, copy_obs: bool) -> dict[str, Any]:
    import torch

    import mesa

    env = mesa.make_task("maze").make_env("train", num_envs, 0)
    env.copy_obs = copy_obs
    env.reset()
    g = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 4, (steps, num_envs), generator=g)

    def run() -> None:
        for a in actions:
            env.step(a)

    med, times = median_time(run, repeats)
    return {
        "num_envs": num_envs,
        "copy_obs": copy_obs,
        "steps_per_s": num_envs * steps / med,
        "seconds": times,
    }


def minigrid_sps(steps: int, repeats: int) -> dict[str, Any]:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid environments)

    env = gym.make("MiniGrid-Empty-8x8-v0")
    env.reset(seed=0)
    env.action_space.seed(0)

    def run() -> None:
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()

    med, times = median_time(run, repeats)
    return {"num_envs": 1, "steps_per_s": steps / med, "seconds": times}


def main(argv: list[str] | None = None) -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024, 16_384, 65_536])
    ap.add_argument("--steps", type=int, default=50, help="mesa steps per timing")
    ap.add_argument("--minigrid-steps", type=int, default=20_000, help="MiniGrid steps per timing")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    baseline = minigrid_sps(args.minigrid_steps, args.repeats)
    rows = [
        mesa_sps(n, args.steps, args.repeats, copy_obs)
        for n in args.num_envs
        for copy_obs in (True, False)
    ]
    baseline_after = minigrid_sps(args.minigrid_steps, args.repeats)
    reference = (baseline["steps_per_s"] + baseline_after["steps_per_s"]) / 2
    for r in rows:
        r["ratio_to_minigrid"] = r["steps_per_s"] / reference
        print(
            f"mesa maze x{r['num_envs']:>6} ({'copied' if r['copy_obs'] else 'live buffer'}): "
            f"{r['steps_per_s']:>12,.0f} steps/s ({r['ratio_to_minigrid']:,.0f}x MiniGrid)"
        )
    print(
        f"MiniGrid-Empty-8x8-v0 x1: {baseline['steps_per_s']:>12,.0f} steps/s before, "
        f"{baseline_after['steps_per_s']:,.0f} after"
    )
    custom = (args.num_envs, args.steps, args.minigrid_steps) != (
        [1, 1024, 16_384, 65_536],
        50,
        20_000,
    )
    write_result(
        "bench_env",
        f"threads{args.threads}" + ("-custom" if custom else ""),
        {
            "minigrid_empty_8x8": baseline,
            "minigrid_empty_8x8_after": baseline_after,
            "mesa_maze": rows,
            "best_ratio_copied": max(r["ratio_to_minigrid"] for r in rows if r["copy_obs"]),
            "best_ratio_live_buffer": max(
                r["ratio_to_minigrid"] for r in rows if not r["copy_obs"]
            ),
            "repeats": args.repeats,
            "threads": args.threads,
            "steps": args.steps,
            "minigrid_steps": args.minigrid_steps,
        },
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "best x MiniGrid, copied": result["best_ratio_copied"],
        "live buffer": result["best_ratio_live_buffer"],
    }


def table(result: dict[str, Any]) -> str:
    before = result["minigrid_empty_8x8"]["steps_per_s"]
    after = result["minigrid_empty_8x8_after"]["steps_per_s"]
    lines = [
        "| engine | copies | observation | steps/s (median) | x MiniGrid |",
        "|---|---|---|---|---|",
    ]
    for r in result["mesa_maze"]:
        obs = "fresh copy" if r["copy_obs"] else "live buffer"
        ratio = r["ratio_to_minigrid"]
        lines.append(
            f"| mesa `maze` | {r['num_envs']:,} | {obs} | {r['steps_per_s']:,.0f} | "
            + (f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.2f}")
            + " |"
        )
    lines.append(
        f"| `MiniGrid-Empty-8x8-v0` | 1 | | {before:,.0f} before, {after:,.0f} after | 1 |"
    )
    return "\n".join(lines)
