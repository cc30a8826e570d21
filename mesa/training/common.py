"""What the trainers share: settings, run directory, resume fingerprint, and the AdamW step of
the behaviour-cloning and supervised trainers."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mesa.errors import MesaError
from mesa.io import METRICS, MetricsLog
from mesa.tasks.base import Task, config_from_dict
from mesa.training.checkpoint import has_checkpoint, load_checkpoint, restore_env


@dataclass
class RunSetup:
    cfg: Any
    arch: str
    run_dir: Path | None
    log: MetricsLog | None
    fingerprint: dict[str, Any]
    """What a checkpoint must match to be resumed: task, architecture, seed, hyperparameters."""

    def resume(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        generators: dict[str, torch.Generator],
        env: Any = None,
        step_key: str = "step",
    ) -> dict[str, Any] | None:
        """Restore model, optimiser, generators (and ``env``) from the run's checkpoint and cut
        ``metrics.jsonl`` back to its step (``meta[step_key]``); return the checkpoint's meta.
        Without a checkpoint, drop the metrics of an earlier run that never checkpointed and
        return None (a fresh run)."""
        if self.run_dir and has_checkpoint(self.run_dir):
            meta, extra = load_checkpoint(self.run_dir, model, opt, generators, self.fingerprint)
            if env is not None:
                restore_env(env, extra)
            if self.log:
                self.log.truncate_after(meta[step_key])
            return meta
        if self.log and self.log.path.exists():
            self.log.path.unlink()
        return None

    def finish(self, model: Any, task: Task, trainer: str, global_step: int, stopped: bool) -> Any:
        """Put ``model`` in eval mode and, with a run directory, save it with its training
        record; return it."""
        from mesa.runs import save

        model.eval()
        if self.run_dir:
            save(
                model,
                task,
                self.run_dir,
                train={
                    "trainer": trainer,
                    "seed": self.fingerprint["seed"],
                    "arch": self.arch,
                    "hparams": dataclasses.asdict(self.cfg),
                    "global_step": global_step,
                    "stopped_early": stopped,
                },
            )
        return model


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


@dataclass(frozen=True)
class AdamWConfig:
    """Hyperparameters shared by the trainers that take one AdamW step per batch."""

    steps: int = 3000
    """Optimiser steps (an upper bound where the trainer stops early)."""
    learning_rate: float = 1e-3
    """AdamW step size (constant after a linear warm-up)."""
    warmup_steps: int = 100
    """Linear learning-rate warm-up."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    eval_every: int = 250
    """Steps between evaluations (in-distribution and OOD rates) and checkpoints."""
    num_threads: int | None = None
    """torch threads (None: leave torch's setting)."""

    def _check_positive(self, *names: str) -> None:
        for name in ("steps", "eval_every", *names):
            if getattr(self, name) < 1:
                raise MesaError(f"{name} must be at least 1, got {getattr(self, name)}")

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )

    def step(
        self, model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, step: int
    ) -> None:
        """One optimiser step on ``loss`` (step numbers count from 1)."""
        opt.param_groups[0]["lr"] = self.learning_rate * min(1.0, step / max(1, self.warmup_steps))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
        opt.step()
