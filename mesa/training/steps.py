"""The loop of the trainers that take one AdamW step per batch: behaviour cloning and
supervised learning. A trainer gives it how to make a step's logits and targets and what to do
after the step (behaviour cloning moves its environments); the loop does the rest the same way
for both — the optimiser step, ``metrics.jsonl`` records, periodic evaluation and checkpoints,
the early stop, the progress bar — so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mesa.tasks.base import Task
from mesa.training.common import LOG_EVERY, AdamWConfig, RunSetup

#: ``step -> (logits [n, K], targets [n])`` of one training batch.
Forward = Callable[[int], tuple[Tensor, Tensor]]


@dataclass
class StepLoop:
    """One step trainer's parts (see the module docstring)."""

    trainer: str
    forward: Forward
    evaluate: Callable[[], dict[str, float]]
    """The periodic evaluation; its ``eval/in_dist_success`` decides the early stop."""
    stop_at: float | None
    generators: dict[str, torch.Generator]
    env: Any = None
    after_step: Callable[[Tensor, Tensor], None] | None = None
    """Called with the step's (detached) logits and targets after the optimiser step."""


def run_steps(
    run: RunSetup,
    cfg: AdamWConfig,
    model: Any,
    opt: torch.optim.Optimizer,
    loop: StepLoop,
    task: Task,
    seed: int,
    start: int,
    progress: bool,
) -> tuple[int, bool]:
    """Steps ``start + 1 .. cfg.steps``; returns the last step taken and whether it stopped
    early."""
    bar = run.progress_bar(cfg.steps, start, progress, loop.trainer, task, seed)
    stopped, step = False, start
    for step in range(start + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        logits, target = loop.forward(step)
        loss = torch.nn.functional.cross_entropy(logits, target)
        cfg.step(model, opt, loss, step)
        if loop.after_step is not None:
            with torch.no_grad():
                loop.after_step(logits.detach(), target)
        record: dict[str, Any] = {
            "global_step": step,
            "losses/train": loss.item(),
            "charts/train_acc": (logits.argmax(-1) == target).float().mean().item(),
            "charts/learning_rate": opt.param_groups[0]["lr"],
            "charts/steps_per_s": 1.0 / (time.perf_counter() - t0),
        }
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            model.eval()
            record |= loop.evaluate()
            model.train()
            bar.set_postfix(success=f"{record['eval/in_dist_success']:.3f}")
            stopped = loop.stop_at is not None and record["eval/in_dist_success"] >= loop.stop_at
            meta = {"step": step}
            run.checkpoint(record, step, model, opt, loop.generators, loop.env, meta)
        elif run.log and step % LOG_EVERY == 0:
            run.log.append(record)
        if stopped:
            break
    bar.close()
    return step, stopped
