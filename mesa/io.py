"""Run directories and atomic file writes.

A run directory holds ``config.json``, ``model.safetensors``, ``metrics.jsonl``, and after
evaluation ``ood.json`` and ``verdict.json``. Every file is written to a temporary sibling and
moved into place with :func:`os.replace`, so a killed process never leaves a half-written file.
Tensors are stored with safetensors and metadata as JSON: loading never unpickles.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mesa.errors import MesaError

CONFIG = "config.json"
MODEL = "model.safetensors"
METRICS = "metrics.jsonl"
OOD = "ood.json"
VERDICT = "verdict.json"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MesaError(f"missing file {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MesaError(f"corrupt JSON in {path}: {e.msg if hasattr(e, 'msg') else e}") from None


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write tensors atomically (contiguous CPU copies; shared storage is cloned)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(flat, tmp, metadata=dict(metadata) if metadata else None)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise MesaError(f"missing file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise MesaError(f"corrupt safetensors file {path}: {e}") from None


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per line, flushed per record.

    On resume, :meth:`truncate_after` drops records logged after the checkpoint being resumed,
    so the curve of an interrupted-and-resumed run equals that of an uninterrupted one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(dict(record)) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: everything after it is dropped
        return out

    def truncate_after(self, step: int, key: str = "global_step") -> None:
        keep = [r for r in self.read() if r.get(key, 0) <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in keep).encode())
