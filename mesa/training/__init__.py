"""Training: PPO or behaviour cloning for gridworld organisms, supervised learning for sequence
organisms.

All trainers share the conventions of a run directory (:mod:`mesa.io`): a dataclass of
hyperparameters stored in ``config.json``, ``metrics.jsonl``, atomic safetensors checkpoints,
resume from the last checkpoint, and bit-identical results for a seed on CPU.

A run computes on one device (``device``: ``"cpu"``, ``"cuda"``, or ``"auto"``, the default:
CUDA when present): the model, the environments and every generator of random draws are there.
On the CPU the draws come from the generators mesa always used, so a seed gives the same bits it
always gave; on a GPU they come from GPU generators, so a seed gives other (equally valid) runs.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from typing import Any

from mesa.errors import MesaError, choice_error
from mesa.io import locked
from mesa.runtime import check_seed, deterministic_algorithms, resolve_device, threads
from mesa.tasks.base import RLTask, SequenceTask, Task

__all__ = ["train"]


#: trainer name -> (task kind it trains, "module:function", "module:HyperparameterClass")
TRAINERS: dict[str, tuple[str, str, str]] = {
    "ppo": ("rl", "mesa.training.ppo:train_ppo", "mesa.training.ppo:PPOConfig"),
    "bc": ("rl", "mesa.training.bc:train_bc", "mesa.training.bc:BCConfig"),
    "supervised": (
        "sequence",
        "mesa.training.supervised:train_supervised",
        "mesa.training.supervised:SupervisedConfig",
    ),
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
    device: Any = "auto",
    deterministic: bool = False,
    **hparams: Any,
) -> Any:
    """Train a model on ``task`` and return it (a hooked model).

    ``out`` is the run directory (checkpoints, metrics, final model); an existing run there is
    resumed from its last checkpoint; a directory holding this run finished returns its model
    (no training), and one holding another run is refused. While training, the directory is
    locked: a second process training or evaluating into it is refused. Training runs on the
    ``num_threads`` torch threads its hyperparameters fix (default 1: results depend on the
    count), and torch's thread count is restored afterwards.

    ``trainer`` is ``"ppo"`` or ``"bc"`` (behaviour cloning of shortest paths) for gridworlds,
    ``"supervised"`` for sequence tasks; the default is PPO, or BC for architectures without a
    value head (``cell_transformer``). ``hparams`` override the
    trainer's defaults (:class:`mesa.training.ppo.PPOConfig`, :class:`mesa.training.bc.BCConfig`,
    :class:`mesa.training.supervised.SupervisedConfig`); unknown names are refused.

    ``device`` is where the run computes (see the module docstring; the model comes back there);
    it is not part of the run's settings, and a checkpoint resumes only on the kind of device
    that wrote it. ``deterministic`` turns on torch's deterministic algorithms where they exist
    (:func:`mesa.runtime.deterministic_algorithms`): it matters on a GPU, not on the CPU.
    """
    check_seed(seed)
    where = resolve_device(device)
    trainer = check_trainer(task, arch, trainer)
    cfg = check_hparams(trainer, hparams)
    run = _load(TRAINERS[trainer][1])
    lock = locked(out) if out is not None else contextlib.nullcontext()
    with lock, threads(cfg.num_threads), deterministic_algorithms(deterministic):
        return run(
            task,
            seed=seed,
            out=out,
            arch=arch,
            progress=progress,
            device=where,
            deterministic=deterministic,
            **hparams,
        )


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def check_trainer(task: Task, arch: str | None, trainer: str | None) -> str:
    """The trainer that will train ``task`` with ``arch`` (``trainer``, or the default), or a
    one-line error if it cannot."""
    if not isinstance(task, (RLTask, SequenceTask)):
        raise MesaError(f"cannot train a {type(task).__name__}: not an RLTask or SequenceTask")
    trainer = trainer or default_trainer(task, arch)
    if trainer not in TRAINERS:
        raise choice_error("trainer", trainer, TRAINERS)
    if TRAINERS[trainer][0] != task.kind:
        valid = [name for name, (k, *_) in TRAINERS.items() if k == task.kind]
        raise MesaError(
            f"trainer {trainer!r} cannot train {task.name!r}; valid: {', '.join(valid)}"
        )
    if trainer == "ppo" and task.check_arch(arch) in _NO_VALUE_HEAD:
        raise MesaError(f"PPO needs a value head, which {arch!r} has not; use trainer='bc'")
    return trainer


def hyperparameters(trainer: str) -> type[Any]:
    """The frozen dataclass of ``trainer``'s hyperparameters (fields, types, defaults, docs)."""
    if trainer not in TRAINERS:
        raise choice_error("trainer", trainer, TRAINERS)
    return _load(TRAINERS[trainer][2])  # type: ignore[no-any-return]


def check_hparams(trainer: str, hparams: dict[str, Any]) -> Any:
    """``trainer``'s hyperparameters with ``hparams`` overriding the defaults, checked (names,
    types, ranges) before any work."""
    from mesa.config import config_from_dict

    what = {"ppo": "PPO", "bc": "behaviour cloning"}.get(trainer, trainer)
    return config_from_dict(hyperparameters(trainer), hparams, what, noun="hyperparameter")
