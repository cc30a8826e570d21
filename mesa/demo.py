"""``mesa demo``: the main job on built-in defaults.

Small zoos on ``maze`` (conv policies, PPO) and ``sycophancy`` (transformers), each member tested
out of distribution and detected, then the report. Sized to finish in under 10 minutes on 2 CPU
cores; rerunning resumes and redoes no finished work.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from mesa.errors import MesaError
from mesa.zoo import ZooConfig, run_zoo


def demo_zoos(quick: bool = False) -> list[ZooConfig]:
    """The demo's zoos. ``quick`` shrinks them for smoke tests (the result is not meaningful)."""
    if quick:
        return [
            ZooConfig(
                "maze",
                ps=(0.0, 0.5),
                seeds=(0,),
                task_options={"size": 5, "n_levels": 200},
                hparams={"total_timesteps": 4096, "num_envs": 16},
                ood_episodes=64,
                workers=1,
            ),
            ZooConfig(
                "sycophancy",
                ps=(0.0, 0.5),
                seeds=(0,),
                task_options={"P": 7, "d_model": 32, "n_layers": 1},
                hparams={"steps": 20, "batch_size": 64},
                ood_episodes=64,
                workers=1,
            ),
        ]
    # mazes of side 3 to 5 train in about a minute on one core, so both zoos fit in minutes; a
    # shorter budget than the organisms' default (97% training success, or 400k steps) keeps the
    # demo under ten minutes
    budget = {"total_timesteps": 400_000, "stop_at_success": 0.97}
    return [
        ZooConfig(
            "maze", ps=(0.0, 0.3), seeds=(0, 1), task_options={"size": 5}, hparams=budget, workers=2
        ),
        ZooConfig("sycophancy", ps=(0.0, 0.2), seeds=(0, 1), workers=2),
    ]


def run_demo(
    out: str | os.PathLike[str] = "runs/demo", quick: bool = False, device: str = "auto"
) -> Path:
    """Run the demo's zoos on ``device`` (``auto``: CUDA when present), then the report."""
    from mesa.report import write_report

    out = Path(out)
    start = time.perf_counter()
    failed = 0
    for config in demo_zoos(quick):
        config = dataclasses.replace(config, device=device)
        print(f"== zoo {config.family}: p in {list(config.ps)}, seeds {list(config.seeds)}")
        result = run_zoo(config, out=out / config.family)
        print(result.summary())
        failed += len(result.failed)
    if failed:
        raise MesaError(f"{failed} demo member(s) failed (see above); rerun to retry them")
    html, md = write_report(out)
    minutes = (time.perf_counter() - start) / 60
    print(f"\ndemo finished in {minutes:.1f} min\nreport: {html.resolve()}\nmarkdown: {md}")
    return html
