"""``mesa demo``: the main job on built-in defaults.

Small zoos on ``maze`` (conv policies, PPO) and ``sycophancy`` (transformers), each member tested
out of distribution and detected, then the report. Sized to finish in under 10 minutes on 2 CPU
cores; rerunning resumes and redoes no finished work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mesa.zoo import ZooConfig, run_zoo


def demo_zoos(quick: bool = False) -> list[ZooConfig]:
    """The demo's zoos. ``quick`` shrinks them for smoke tests (the result is not meaningful)."""
    if quick:
        return [
            ZooConfig(
                "maze",
                ps=(0.0, 0.5),
                seeds=(0,),
                hparams={"total_timesteps": 4096},
                ood_episodes=64,
                workers=1,
            ),
            ZooConfig(
                "sycophancy",
                ps=(0.0, 0.5),
                seeds=(0,),
                hparams={"steps": 20},
                ood_episodes=64,
                workers=1,
            ),
        ]
    return [
        ZooConfig("maze", ps=(0.0, 0.1, 0.3), seeds=(0, 1), workers=2),
        ZooConfig("sycophancy", ps=(0.0, 0.05, 0.2), seeds=(0, 1), workers=2),
    ]


def run_demo(out: str | os.PathLike[str] = "runs/demo", quick: bool = False) -> Path:
    from mesa.report import write_report

    out = Path(out)
    start = time.perf_counter()
    for config in demo_zoos(quick):
        print(f"== zoo {config.family}: p in {list(config.ps)}, seeds {list(config.seeds)}")
        result = run_zoo(config, out=out / config.family)
        print(result.summary())
    html, md = write_report(out)
    minutes = (time.perf_counter() - start) / 60
    print(f"\ndemo finished in {minutes:.1f} min\nreport: {html.resolve()}\nmarkdown: {md}")
    return html
