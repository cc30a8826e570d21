"""What both trainers do before their first step: settings, run directory, resume fingerprint."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mesa.io import METRICS, MetricsLog
from mesa.tasks.base import Task, config_from_dict


@dataclass
class RunSetup:
    cfg: Any
    arch: str
    run_dir: Path | None
    log: MetricsLog | None
    fingerprint: dict[str, Any]
    """What a checkpoint must match to be resumed: task, architecture, seed, hyperparameters."""


def setup_run(
    task: Task,
    seed: int,
    out: str | os.PathLike[str] | None,
    arch: str | None,
    config_cls: type[Any],
    hparams: dict[str, Any],
    what: str,
) -> RunSetup:
    cfg = config_from_dict(config_cls, hparams, what, noun="hyperparameter")
    if getattr(cfg, "num_threads", None):
        torch.set_num_threads(cfg.num_threads)
    arch = task.check_arch(arch)
    run_dir = Path(out) if out is not None else None
    return RunSetup(
        cfg=cfg,
        arch=arch,
        run_dir=run_dir,
        log=MetricsLog(run_dir / METRICS) if run_dir else None,
        fingerprint={
            "task": task.spec(),
            "arch": arch,
            "seed": seed,
            "hparams": dataclasses.asdict(cfg),
        },
    )
