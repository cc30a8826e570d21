"""The task registry: ``register_task``, ``make_task``, ``list_tasks``.

Built-in families are imported on first use so that ``import mesa`` stays fast. A user-written
family is a subclass of :class:`RLTask` or :class:`SequenceTask` decorated with
``@register_task("name")``; every command then works on it unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from mesa.errors import MesaError
from mesa.io import safe_name
from mesa.outcomes import OUTCOMES
from mesa.tasks.base import (
    GOALS,
    PAIR_KEYS,
    SPLITS,
    ProbeData,
    RLTask,
    SequenceBatch,
    SequenceTask,
    Task,
    TaskConfig,
    VecEnv,
)

__all__ = [
    "GOALS",
    "OUTCOMES",
    "PAIR_KEYS",
    "SPLITS",
    "ProbeData",
    "RLTask",
    "SequenceBatch",
    "SequenceTask",
    "Task",
    "TaskConfig",
    "VecEnv",
    "get_task_class",
    "list_tasks",
    "make_task",
    "register_task",
]

_BUILTIN: dict[str, str] = {
    "maze": "mesa.tasks.maze",
    "coin": "mesa.tasks.coin",
    "lookalike": "mesa.tasks.lookalike",
    "keys": "mesa.tasks.keys",
    "sycophancy": "mesa.tasks.sycophancy",
}
_REGISTRY: dict[str, type[Task]] = {}

T = TypeVar("T", bound=type[Task])


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator registering a task family under ``name``; refuses duplicates."""

    safe_name(name, "task name")

    def deco(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, RLTask | SequenceTask)):
            raise MesaError(f"task {name!r} must subclass RLTask or SequenceTask")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise MesaError(f"task {name!r} is already registered")
        if name in _BUILTIN and _BUILTIN[name] != cls.__module__:
            raise MesaError(f"task {name!r} is a built-in family; choose another name")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise MesaError(
                f"task {name!r} does not implement {', '.join(missing)} "
                f"(what every {cls.__mro__[1].__name__} must provide)"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtin(name: str) -> None:
    if name in _BUILTIN and name not in _REGISTRY:
        importlib.import_module(_BUILTIN[name])


def list_tasks() -> list[str]:
    """Names of every registered task family: built-in, from installed plugins (the
    ``mesa.tasks`` entry points) and registered by imported modules (:mod:`mesa.plugins`)."""
    from mesa.plugins import load_entry_points

    for name in _BUILTIN:
        _load_builtin(name)
    load_entry_points()
    return sorted(_REGISTRY)


def get_task_class(name: str) -> type[Task]:
    _load_builtin(name)
    if name not in _REGISTRY:
        from mesa.plugins import load_entry_points

        load_entry_points(name)
    if name not in _REGISTRY:
        raise MesaError(
            f"unknown task {name!r}; valid: {', '.join(list_tasks())} (a task of your own: "
            "mesa --import YOUR_MODULE)"
        )
    return _REGISTRY[name]


def make_task(name: str, p: float = 0.0, **options: Any) -> Task:
    """The registered task ``name`` with decorrelation rate ``p`` and family options."""
    return get_task_class(name)(p=p, **options)
