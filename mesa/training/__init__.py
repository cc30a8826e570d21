"""Training: PPO for gridworld organisms, supervised learning for sequence organisms.

Both trainers share the conventions of a run directory (:mod:`mesa.io`): a dataclass of
hyperparameters stored in ``config.json``, ``metrics.jsonl``, atomic safetensors checkpoints,
resume from the last checkpoint, and bit-identical results for a seed on CPU.
"""

from __future__ import annotations

import os
from typing import Any

from mesa.errors import MesaError
from mesa.tasks.base import RLTask, SequenceTask, Task

__all__ = ["train"]


def train(
    task: Task,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    **hparams: Any,
) -> Any:
    """Train a model on ``task`` and return it (a hooked model).

    ``out`` is the run directory (checkpoints, metrics, final model); an existing run there is
    resumed from its last checkpoint. ``hparams`` override the trainer's defaults
    (:class:`mesa.training.ppo.PPOConfig` or :class:`mesa.training.supervised.SupervisedConfig`);
    unknown names are refused.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MesaError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(task, RLTask):
        from mesa.training.ppo import train_ppo

        return train_ppo(task, seed=seed, out=out, arch=arch, progress=progress, **hparams)
    if isinstance(task, SequenceTask):
        from mesa.training.supervised import train_supervised

        return train_supervised(task, seed=seed, out=out, arch=arch, progress=progress, **hparams)
    raise MesaError(f"cannot train a {type(task).__name__}: not an RLTask or SequenceTask")
