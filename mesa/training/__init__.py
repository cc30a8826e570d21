"""Training: PPO or behaviour cloning for gridworld organisms, supervised learning for sequence
organisms.

All trainers share the conventions of a run directory (:mod:`mesa.io`): a dataclass of
hyperparameters stored in ``config.json``, ``metrics.jsonl``, atomic safetensors checkpoints,
resume from the last checkpoint, and bit-identical results for a seed on CPU.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from mesa.errors import MesaError, choice_error
from mesa.tasks.base import RLTask, SequenceTask, Task

__all__ = ["train"]


#: trainer name -> (task kind it trains, "module:function")
TRAINERS: dict[str, tuple[str, str]] = {
    "ppo": ("rl", "mesa.training.ppo:train_ppo"),
    "bc": ("rl", "mesa.training.bc:train_bc"),
    "supervised": ("sequence", "mesa.training.supervised:train_supervised"),
}
#: architectures without a value head: PPO cannot train them, behaviour cloning can
_NO_VALUE_HEAD = ("cell_transformer",)


def default_trainer(task: Task, arch: str | None) -> str:
    """The trainer ``mesa.train`` uses for ``task`` and ``arch`` when none is named."""
    if isinstance(task, SequenceTask):
        return "supervised"
    return "bc" if task.check_arch(arch) in _NO_VALUE_HEAD else "ppo"


def train(
    task: Task,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    trainer: str | None = None,
    **hparams: Any,
) -> Any:
    """Train a model on ``task`` and return it (a hooked model).

    ``out`` is the run directory (checkpoints, metrics, final model); an existing run there is
    resumed from its last checkpoint. ``trainer`` is ``"ppo"`` or ``"bc"`` (behaviour cloning of
    shortest paths) for gridworlds, ``"supervised"`` for sequence tasks; the default is PPO, or BC
    for architectures without a value head (``cell_transformer``). ``hparams`` override the
    trainer's defaults (:class:`mesa.training.ppo.PPOConfig`, :class:`mesa.training.bc.BCConfig`,
    :class:`mesa.training.supervised.SupervisedConfig`); unknown names are refused.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise MesaError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(task, (RLTask, SequenceTask)):
        raise MesaError(f"cannot train a {type(task).__name__}: not an RLTask or SequenceTask")
    trainer = trainer or default_trainer(task, arch)
    if trainer not in TRAINERS:
        raise choice_error("trainer", trainer, TRAINERS)
    kind, target = TRAINERS[trainer]
    if kind != task.kind:
        valid = [name for name, (k, _) in TRAINERS.items() if k == task.kind]
        raise MesaError(
            f"trainer {trainer!r} cannot train {task.name!r}; valid: {', '.join(valid)}"
        )
    if trainer == "ppo" and task.check_arch(arch) in _NO_VALUE_HEAD:
        raise MesaError(f"PPO needs a value head, which {arch!r} has not; use trainer='bc'")
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(
        task, seed=seed, out=out, arch=arch, progress=progress, **hparams
    )
