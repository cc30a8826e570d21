"""mesa: model organisms of goal misgeneralization and mechanistic detection of their objectives.

Public entry points (see the README)::

    task = mesa.make_task("maze", p=0.0)
    model = mesa.train(task, seed=0, out="runs/m")
    model = mesa.load("runs/m")
    ood = mesa.evaluate_ood(model, task)
    verdict = mesa.detect(model, task)
    fig = mesa.show("runs/m")  # episodes and vector fields as a matplotlib Figure

Attributes are imported on first use so that ``import mesa`` (and ``mesa --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "make_task": "mesa.tasks",
    "list_tasks": "mesa.tasks",
    "register_task": "mesa.tasks",
    "Task": "mesa.tasks",
    "RLTask": "mesa.tasks",
    "SequenceTask": "mesa.tasks",
    "TaskConfig": "mesa.tasks",
    "SequenceBatch": "mesa.tasks",
    "ProbeData": "mesa.tasks",
    "GridTask": "mesa.tasks.gridworld",
    "GridConfig": "mesa.tasks.gridworld",
    "check_task": "mesa.check",
    "import_modules": "mesa.plugins",
    "train": "mesa.training",
    "load": "mesa.runs",
    "save": "mesa.runs",
    "evaluate_ood": "mesa.evaluation",
    "detect": "mesa.detection",
    "show": "mesa.report.show",
    "MesaError": "mesa.errors",
    "MesaWarning": "mesa.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mesa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
