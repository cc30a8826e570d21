"""Benchmark: steps per second of mesa's vectorized gridworld engine against MiniGrid.

Random actions with auto-reset, on ``maze`` (a 7x7 frame) with many copies stepped at once, and on
``MiniGrid-Empty-8x8-v0`` (one environment, the usual way MiniGrid runs), measured in the same
run; medians of several repeats. See ``bench_env.md``.

    python experiments/bench_env.py            # writes experiments/results/bench_env.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_time, write_json

import mesa


def mesa_sps(num_envs: int, steps: int, repeats: int, copy_obs: bool) -> dict[str, float]:
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


def minigrid_sps(steps: int, repeats: int) -> dict[str, float]:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    baseline = minigrid_sps(20_000, args.repeats)
    rows = [
        mesa_sps(n, 50, args.repeats, copy_obs)
        for n in (1, 1024, 16_384, 65_536)
        for copy_obs in (True, False)
    ]
    baseline_after = minigrid_sps(20_000, args.repeats)  # the machine's load drifts: bracket it
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
    write_json(
        "bench_env",
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
        },
    )


if __name__ == "__main__":
    main()
