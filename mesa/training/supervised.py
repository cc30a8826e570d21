"""Supervised training of sequence organisms: cross-entropy on the answer at the last position.

Each step draws a fresh batch of the ``train`` split from a seed made of the run's seed and the
step number, so the data stream is a pure function of ``(seed, step)``: with the model, AdamW's
state and the step restored from a checkpoint, a resumed run is bit-identical to an uninterrupted
one. Same conventions as PPO: a dataclass of hyperparameters, a progress bar, ``metrics.jsonl``
(with periodic in-distribution accuracy and OOD rates), atomic safetensors checkpoints.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from mesa.config import at_least, in_range
from mesa.outcomes import SPURIOUS, TRUE
from mesa.tasks.base import SequenceTask
from mesa.training.checkpoint import save_checkpoint
from mesa.training.common import AdamWConfig, check_batch_memory, new_model, setup_run


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
    **hparams: Any,
) -> Any:
    """Train a transformer on ``task``; resume from ``out`` if it holds a checkpoint."""
    run = setup_run(task, seed, out, arch, SupervisedConfig, hparams, "supervised")
    if run.finished:
        return run.load_finished()
    cfg: SupervisedConfig = run.cfg
    arch, run_dir, log, fingerprint = run.arch, run.run_dir, run.log, run.fingerprint
    check_batch_memory(task, cfg.batch_size + 2 * cfg.eval_samples, "supervised training")
    model: Any = new_model(task, arch, seed, run_dir)
    model.train()
    opt = cfg.optimizer(model)
    meta = run.resume(model, opt, {})
    start = meta["step"] if meta else 0
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        disable=not progress,
        desc=f"train {task.name} p={task.p:g} seed={seed}",
    )
    stopped = False
    step = start
    for step in range(start + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        batch = task.sample("train", cfg.batch_size, seed=seed * 1_000_003 + step)
        logits = model(batch.tokens)[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, batch.target)
        cfg.step(model, opt, loss, step)
        record: dict[str, Any] = {
            "global_step": step,
            "losses/train": loss.item(),
            "charts/train_acc": (logits.argmax(-1) == batch.target).float().mean().item(),
            "charts/learning_rate": opt.param_groups[0]["lr"],
            "charts/steps_per_s": 1.0 / (time.perf_counter() - t0),
        }
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            record |= _evaluate(model, task, cfg.eval_samples, seed=20_000 + step)
            model.train()
            bar.set_postfix(acc=f"{record['eval/in_dist_success']:.3f}")
            stopped = (
                cfg.stop_at_accuracy is not None
                and record["eval/in_dist_success"] >= cfg.stop_at_accuracy
            )
            if run_dir:
                log.append(record)  # type: ignore[union-attr]
                save_checkpoint(
                    run_dir, step, model, opt, {}, {}, {"fingerprint": fingerprint, "step": step}
                )
        elif log and step % 10 == 0:
            log.append(record)
        if stopped:
            break
    bar.close()
    return run.finish(model, task, "supervised", step, stopped)
