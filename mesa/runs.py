"""Saving and loading run directories (safetensors + JSON; never unpickled).

``config.json`` holds::

    {"mesa_version": "0.1.0",
     "task":  {"name": "maze", "config": {"p": 0.0, ...}},
     "model": {"arch": "conv", "config": {...}},
     "train": {"trainer": "ppo", "seed": 0, "hparams": {...}, "device": "cpu", ...}}

Weights are always written from the CPU and load onto any device (``device=``): a run trained on
a GPU is evaluated and detected on a laptop, and the other way round. ``train.device`` records
where a run was trained, for information.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesa import __version__
from mesa.config import config_from_dict
from mesa.errors import MesaError
from mesa.io import (
    CONFIG,
    MODEL,
    as_read_back,
    load_tensors_with_metadata,
    read_json,
    save_tensors,
    write_json,
)
from mesa.runtime import resolve_device, to_device
from mesa.tasks import Task, get_task_class

#: The safetensors metadata key of the settings a model was saved with.
SAVED_WITH = "mesa_saved_with"


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    task: Task
    model: Any
    config: dict[str, Any]


def save(
    model: Any, task: Task, out: str | os.PathLike[str], train: dict[str, Any] | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` trained on ``task``."""
    from mesa.models import model_spec

    out = Path(out)
    config = {
        "mesa_version": __version__,
        "task": task.spec(),
        "model": model_spec(model),
        "train": train or {},
    }
    # the weights carry the settings they were trained with, so an edited config.json is caught
    saved = as_read_back({"task": config["task"], "model": config["model"]})
    saved_with = json.dumps(saved, sort_keys=True)
    save_tensors(out / MODEL, model.state_dict(), metadata={SAVED_WITH: saved_with})
    write_json(out / CONFIG, config)
    return out


def _check_saved_with(path: Path, config: dict[str, Any], metadata: dict[str, str]) -> None:
    """Refuse a config.json whose task or model settings differ from the ones the weights were
    saved with (an edit after training would evaluate the weights on another task silently)."""
    if SAVED_WITH not in metadata:
        return  # saved before the settings were recorded beside the weights
    saved = json.loads(metadata[SAVED_WITH])
    for part in ("task", "model"):
        now, then = config.get(part), saved.get(part)
        if now != then:
            diff = ""
            if isinstance(now, dict) and isinstance(then, dict):
                a, b = now.get("config", {}), then.get("config", {})
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                diff = f" ({part} option {keys[0]!r}: {a.get(keys[0])!r} in {CONFIG}, "
                diff += f"{b.get(keys[0])!r} for the weights)" if keys else ""
            raise MesaError(
                f"{path / CONFIG} was edited after the model was saved{diff}; restore it or retrain"
            )


def task_from_spec(spec: dict[str, Any]) -> Task:
    if not isinstance(spec, dict) or "name" not in spec:
        raise MesaError("config.json has no task name")
    cls = get_task_class(spec["name"])
    return cls(config_from_dict(cls.Config, dict(spec.get("config", {})), spec["name"]))


def load_run(
    path: str | os.PathLike[str], task: str | Task | None = None, device: Any = "cpu"
) -> Run:
    """Load a run directory. ``task`` (a name or a Task) must match the run's own task; the model
    comes onto ``device`` (``"cpu"``, the default, ``"cuda"`` or ``"auto"``), wherever it was
    trained."""
    where = resolve_device(device)
    from mesa.models import build_model

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MesaError(f"{path} is a file, not a run directory")
    if not path.is_dir():
        raise MesaError(f"run directory {path} does not exist")
    if not (path / MODEL).is_file():
        raise MesaError(f"{path} holds no model ({MODEL} missing): is it a run directory?")
    config = read_json(path / CONFIG)
    try:
        run_task = task_from_spec(config["task"])
        arch, model_cfg = config["model"]["arch"], config["model"]["config"]
    except (KeyError, TypeError):
        raise MesaError(f"{path / CONFIG} is not a mesa run config") from None
    if task is not None:
        name = task if isinstance(task, str) else task.name
        if name != run_task.name:
            raise MesaError(f"{path} is a run of task {run_task.name!r}, not {name!r}")
    model = build_model(arch, model_cfg)
    state, metadata = load_tensors_with_metadata(path / MODEL)
    _check_saved_with(path, config, metadata)
    bad = next(
        (k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()), None
    )
    if bad is not None:
        raise MesaError(f"{path / MODEL} holds non-finite weights (NaN or inf in {bad!r})")
    missing = set(model.state_dict()) ^ set(state)
    if missing:
        raise MesaError(f"{path / MODEL} does not match its config ({sorted(missing)[0]!r})")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise MesaError(f"{path / MODEL} does not match its config: {first}") from None
    model.eval()
    return Run(path=path, task=run_task, model=to_device(model, where), config=config)


def load(path: str | os.PathLike[str], device: Any = "cpu") -> Any:
    """Load the model of a run directory (safe: safetensors + JSON, no pickle) onto ``device``
    (the CPU unless asked: ``"cuda"`` or ``"auto"``)."""
    return load_run(path, device=device).model
