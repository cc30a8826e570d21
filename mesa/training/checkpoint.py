"""Training checkpoints for exact resume: safetensors for tensors, JSON for the rest.

A checkpoint is one file, ``checkpoint.safetensors``: model, optimizer state, RNG states and any
extra tensors such as the environments' state under prefixed keys, and in its metadata the JSON
of everything else (counters, the optimizer's param groups, a fingerprint of the run's settings).
It is written atomically, so it is always whole and self-consistent. ``checkpoint.json`` beside
it is a readable copy of that metadata, written after it; a kill between the two leaves the copy
one checkpoint behind, and a resume reads the metadata inside the tensor file.

Tensors are written from the CPU whatever device they were on, and read back onto the model's
and optimizer's own device. Generator states are the one thing that does not travel: a CPU
generator's state and a GPU generator's are different objects, so a checkpoint records the kind
of device it was written on and resumes only on that kind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mesa.errors import MesaError
from mesa.io import load_tensors_with_metadata, read_json, save_tensors, write_json

TENSORS, META = "checkpoint.safetensors", "checkpoint.json"
#: The safetensors metadata key holding the checkpoint's JSON meta.
META_KEY = "mesa_checkpoint"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for k, v in state.items():
            if isinstance(v, Tensor):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    extra_tensors: dict[str, Tensor],
    meta: dict[str, Any],
) -> None:
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"optim.{k}": v for k, v in opt_tensors.items()}
    tensors |= {f"rng.{k}": g.get_state() for k, g in generators.items()}
    tensors |= {f"extra.{k}": v for k, v in extra_tensors.items()}
    tensors["step"] = torch.tensor(step)
    full_meta = {"step": step, "optimizer": opt_meta, **meta}
    save_tensors(
        run_dir / TENSORS, tensors, metadata={"step": str(step), META_KEY: json.dumps(full_meta)}
    )
    write_json(run_dir / META, full_meta)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / TENSORS).is_file()


def _read(run_dir: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The checkpoint's meta and tensors, the meta read from inside the tensor file (files from
    before the meta moved there: from ``checkpoint.json``, which must then agree on the step)."""
    tensors, metadata = load_tensors_with_metadata(run_dir / TENSORS)
    if META_KEY in metadata:
        try:
            return json.loads(metadata[META_KEY]), tensors
        except json.JSONDecodeError:
            raise MesaError(f"{run_dir / TENSORS} has corrupt metadata") from None
    meta = read_json(run_dir / META)
    if int(tensors.get("step", torch.tensor(-1))) != meta.get("step"):
        raise MesaError(
            f"{run_dir} holds checkpoint files of two different steps (written by an older "
            f"version); delete {TENSORS} and {META} to restart"
        )
    return meta, tensors


def load_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    fingerprint: dict[str, Any],
    device: torch.device | None = None,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Restore model, optimizer and generators; return ``(meta, extra tensors)``.

    Refuses a checkpoint whose run settings (task, seed, hyperparameters) differ, or one written
    on another kind of device than ``device`` (default the CPU; checkpoints from before devices
    were recorded were written on the CPU): its generators' states are that device's.
    """
    meta, tensors = _read(run_dir)
    if meta.get("fingerprint") != fingerprint:
        saved = meta.get("fingerprint") or {}
        diff = sorted(
            k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
        )
        raise MesaError(
            f"{run_dir} holds a checkpoint of another run (differs in {', '.join(diff)}); "
            "use another --out"
        )
    saved_on, here = meta.get("device", "cpu"), (device or torch.device("cpu")).type
    if saved_on != here:
        raise MesaError(
            f"{run_dir} holds a checkpoint written on {saved_on}; resume it there "
            f"(--device {saved_on}), or train on {here} into another --out"
        )
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd)
    except RuntimeError:
        raise MesaError(f"{run_dir / TENSORS} does not match the model") from None
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            pid, name = k[6:].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for pid, extra in meta["optimizer"]["scalars"].items():
        state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    for k, g in generators.items():
        g.set_state(tensors[f"rng.{k}"])
    extras = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta, extras


def env_tensors(env: Any) -> dict[str, Tensor]:
    """An environment's state as extra checkpoint tensors (named ``env.*``)."""
    return {f"env.{k}": v for k, v in env.state_dict().items()}


def restore_env(env: Any, extra: dict[str, Tensor]) -> None:
    """Load into ``env`` the state :func:`env_tensors` put among a checkpoint's extra tensors."""
    env.load_state_dict({k[4:]: v for k, v in extra.items() if k.startswith("env.")})
