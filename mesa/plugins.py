"""Your own organisms and models in every command: modules that register them.

A task family (``@mesa.register_task``) or an architecture (:func:`mesa.models.register_arch`)
lives in a module of yours; registering happens when that module is imported. mesa imports it

- from an installed package that declares it under the ``mesa.tasks`` entry-point group (its
  entry point's name is the task's name, its value the module), when that task is asked for or
  every task is listed::

      [project.entry-points."mesa.tasks"]
      my_task = "my_package.tasks"

- from a script or package on the path, with ``mesa --import MODULE`` (repeatable; the working
  directory is searched first) or :func:`import_modules` in Python.

Zoo workers are separate processes: a zoo imports in each of them every module imported this
way, and the module of its task's class, so a zoo started from a notebook works too as long as
the task lives in an importable module.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

from mesa.errors import MesaError

ENTRY_POINT_GROUP = "mesa.tasks"

_IMPORTED: list[str] = []
_LOADED_ENTRY_POINTS: set[str] = set()


def import_modules(names: list[str] | tuple[str, ...]) -> None:
    """Import each module (the working directory first on the path); one-line error for a
    module that cannot be imported. Remembered for zoo workers (:func:`imported_modules`)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise MesaError(f"cannot import module {name!r}: {e}") from None
        if name not in _IMPORTED:
            _IMPORTED.append(name)


def imported_modules() -> tuple[str, ...]:
    """The modules imported through :func:`import_modules` in this process."""
    return tuple(_IMPORTED)


def load_entry_points(name: str | None = None) -> None:
    """Import the modules that installed packages declare for task ``name`` (every task's when
    ``name`` is None) under the ``mesa.tasks`` entry-point group."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (name is None or ep.name == name) and ep.name not in _LOADED_ENTRY_POINTS:
            _LOADED_ENTRY_POINTS.add(ep.name)
            try:
                ep.load()
            except Exception as e:  # a broken plugin must not take the built-in tasks down
                raise MesaError(
                    f"the plugin {ep.value!r} of task {ep.name!r} failed to import: {e}"
                ) from None


def worker_imports(task_module: str, workers: int, backend: str) -> tuple[str, ...]:
    """The modules a zoo's worker processes import before running members of a task defined
    in ``task_module``; refuses a task they could not import. (Local workers re-run a script's
    main module themselves; Ray's do not.)"""
    modules = list(imported_modules())
    if task_module == "__main__":
        main = sys.modules.get("__main__")
        if backend == "ray" or (workers > 1 and not getattr(main, "__file__", None)):
            raise MesaError(
                "the task is defined in an interactive session (a notebook or python -c), which "
                "worker processes cannot import; put it in a module, or use one worker"
            )
    elif not task_module.startswith("mesa.") and task_module not in modules:
        modules.append(task_module)
    return tuple(modules)
