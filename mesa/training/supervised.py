"""Supervised training of sequence organisms: cross-entropy on the answer at the last position.

Each step draws a fresh batch of the ``train`` split from a seed made of the run's seed and the
step number (``seed * DATA_SEED_STRIDE + step``), so the data stream is a pure function of
``(seed, step)``: with the model, AdamW's
state and the step restored from a checkpoint, a resumed run is bit-identical to an uninterrupted
one. Same conventions as PPO: a dataclass of hyperparameters, a progress bar, ``metrics.jsonl``
(with periodic in-distribution accuracy and OOD rates), atomic safetensors checkpoints.

On a GPU the batches are still drawn on the CPU (from the same seeds, so the same data on every
device) and moved to the model's device: a batch of a few thousand tokens costs nothing to move,
and the data stream stays a pure function of ``(seed, step)`` everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from mesa.config import at_least, in_range
from mesa.outcomes import SPURIOUS, TRUE
from mesa.tasks.base import SequenceTask
from mesa.training.common import EVAL_SEED, AdamWConfig, check_batch_memory, new_model, setup_run
from mesa.training.steps import StepLoop, run_steps

#: A run's batches are drawn with seeds ``seed * DATA_SEED_STRIDE + step``: runs of different
#: seeds never share a batch seed for any step count below the stride.
DATA_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class SupervisedConfig(AdamWConfig):
    """Hyperparameters of the supervised trainer."""

    batch_size: int = 256
    """Samples per step (fresh samples every step)."""
    eval_samples: int = 512
    """Samples per evaluation split."""
    stop_at_accuracy: float | None = 0.995
    """Stop at an evaluation where in-distribution accuracy reaches this (None: never)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "batch_size", "eval_samples")
        in_range(self, "stop_at_accuracy", 0.0, 1.0, open_low=True)


def _evaluate(model: Any, task: SequenceTask, n: int, seed: int) -> dict[str, float]:
    from mesa.evaluation.sequence import outcomes

    ood = outcomes(model, task, "ood", n, seed)
    train = outcomes(model, task, "train", n, seed + 1)
    return {
        "eval/in_dist_success": float((train == TRUE).mean()),
        "eval/ood_true_rate": float((ood == TRUE).mean()),
        "eval/ood_spurious_rate": float((ood == SPURIOUS).mean()),
    }


def train_supervised(
    task: SequenceTask,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    device: Any = "cpu",
    deterministic: bool = False,
    **hparams: Any,
) -> Any:
    """Train a transformer on ``task`` on ``device``; resume from ``out`` if it holds a
    checkpoint."""
    run = setup_run(
        task, seed, out, arch, SupervisedConfig, hparams, "supervised", device, deterministic
    )
    if run.finished:
        return run.load_finished()
    cfg: SupervisedConfig = run.cfg
    check_batch_memory(task, cfg.batch_size + 2 * cfg.eval_samples, "supervised training")
    model: Any = new_model(task, run.arch, seed, run.run_dir, run.device)
    model.train()
    opt = cfg.optimizer(model)
    meta = run.resume(model, opt, {})

    def forward(step: int) -> tuple[Tensor, Tensor]:
        batch = task.sample("train", cfg.batch_size, seed=seed * DATA_SEED_STRIDE + step)
        tokens, target = batch.tokens.to(run.device), batch.target.to(run.device)
        return model(tokens)[:, -1], target

    loop = StepLoop(
        trainer="supervised",
        forward=forward,
        evaluate=lambda: _evaluate(model, task, cfg.eval_samples, seed=EVAL_SEED + seed),
        stop_at=cfg.stop_at_accuracy,
        generators={},
    )
    step, stopped = run_steps(
        run, cfg, model, opt, loop, task, seed, meta["step"] if meta else 0, progress
    )
    return run.finish(model, task, "supervised", step, stopped)
