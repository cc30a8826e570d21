"""Run directories: atomic file writes, one writer at a time, and names that stay inside.

A run directory holds ``config.json``, ``model.safetensors``, ``metrics.jsonl``, and after
evaluation ``ood.json`` and ``verdict.json``. Every file but the append-only ``metrics.jsonl``
is written to a temporary sibling and moved into place with :func:`os.replace`, so a killed
process never leaves a half-written file; a line of ``metrics.jsonl`` torn by a kill (or
otherwise unreadable) is set aside in ``metrics.corrupt.jsonl`` on resume, never silently
dropped with the records after it. Tensors are stored with safetensors and metadata as JSON:
loading never unpickles.

A directory has one writer: :func:`locked` holds an exclusive OS lock on ``DIR/.mesa.lock``
for as long as a process trains, evaluates or detects into it (the OS releases it when the
process ends, however it ends), and a second process is refused at once with the holder's PID.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mesa.errors import MesaError

CONFIG = "config.json"
MODEL = "model.safetensors"
METRICS = "metrics.jsonl"
OOD = "ood.json"
VERDICT = "verdict.json"
#: Verdicts a detection with other settings replaced, numbered from 1 (``.format(n=N)``).
VERDICT_REPLACED = "verdict.replaced.{n}.json"
METRICS_CORRUPT = "metrics.corrupt.jsonl"
LOCK = ".mesa.lock"

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def safe_name(name: object, what: str) -> str:
    """``name`` if it is a plain file name (letters, digits, ``_ . + -``; not starting with a
    dot): the only kind of name mesa joins to a directory when the name comes from a file."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise MesaError(f"{what} {name!r} is not a plain name (letters, digits, _ . + -)")
    return name


#: Locks this process holds: resolved directory -> (open lock file, depth of nesting).
_HELD: dict[Path, tuple[Any, int]] = {}


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


@contextmanager
def locked(directory: str | os.PathLike[str], what: str = "run directory") -> Iterator[Path]:
    """Hold ``directory``'s write lock (created if needed) inside the block. Re-entrant within
    a process; another process holding it makes this raise at once, naming its PID."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        key = path.resolve()
    except OSError as e:
        raise MesaError(f"cannot use {path} as a {what}: {e.strerror or e}") from None
    if key in _HELD:
        f, depth = _HELD[key]
        _HELD[key] = (f, depth + 1)
    else:
        try:
            f = (path / LOCK).open("a+")
        except OSError as e:
            raise MesaError(f"cannot write to {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise MesaError(
                f"{path} is in use by another mesa process ({_holder(path / LOCK)}); wait for it "
                "to finish or use another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        _HELD[key] = (f, 1)
    try:
        yield path
    finally:
        f, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (f, depth - 1)
        else:
            del _HELD[key]
            f.close()  # closing the file releases the lock


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


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, infinity: "not measured") as None, so that it
    is strict JSON, which parsers outside Python (``jq``, browsers) accept."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    return obj


def json_bytes(obj: Any) -> bytes:
    """``obj`` as strict JSON text (non-finite floats as null: :func:`strict`), indented."""
    return (json.dumps(strict(obj), indent=2, sort_keys=False, allow_nan=False) + "\n").encode()


def json_line(record: Mapping[str, Any]) -> str:
    """One line of a ``.jsonl`` file: ``record`` as strict JSON (:func:`strict`)."""
    return json.dumps(strict(dict(record)), allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as strict JSON (:func:`json_bytes`), atomically."""
    atomic_write_bytes(path, json_bytes(obj))


def as_read_back(obj: Any) -> Any:
    """``obj`` as it reads back from a JSON file :func:`write_json` wrote (lists for tuples,
    None for non-finite floats): what a saved setting is compared with."""
    return json.loads(json.dumps(strict(obj), allow_nan=False))


def nan_for_null(obj: Any) -> Any:
    """``obj`` read back from JSON with every null as NaN: for files and fields whose nulls can
    only be numbers :func:`write_json` wrote as null (``ood.json``, a method's effects)."""
    if obj is None:
        return math.nan
    if isinstance(obj, Mapping):
        return {k: nan_for_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_for_null(v) for v in obj]
    return obj


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
    return load_tensors_with_metadata(path)[0]


def load_tensors_with_metadata(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors of a safetensors file and its string metadata (empty if none)."""
    path = Path(path)
    if not path.is_file():
        raise MesaError(f"missing file {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, dict(metadata)
    except (SafetensorError, OSError, ValueError) as e:
        raise MesaError(f"corrupt safetensors file {path}: {e}") from None


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per line, flushed per record.

    On resume, :meth:`truncate_after` drops records logged after the checkpoint being resumed,
    so the curve of an interrupted-and-resumed run equals that of an uninterrupted one. Lines
    that are not a JSON object (torn by a kill, edited by hand) are skipped when reading and
    moved to ``metrics.corrupt.jsonl`` on resume; the records after them are kept.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json_line(record))
            f.flush()

    def _lines(self) -> tuple[list[dict[str, Any]], list[str]]:
        """``(records, unreadable lines)``."""
        if not self.path.is_file():
            return [], []
        good, bad = [], []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                good.append(record)
            elif line.strip():
                bad.append(line)
        return good, bad

    def read(self) -> list[dict[str, Any]]:
        return self._lines()[0]

    def truncate_after(self, step: int, key: str = "global_step") -> None:
        good, bad = self._lines()
        if bad:
            with (self.path.parent / METRICS_CORRUPT).open("a") as f:
                f.write("".join(line + "\n" for line in bad))
        keep = [r for r in good if isinstance(r.get(key, 0), int | float) and r.get(key, 0) <= step]
        atomic_write_bytes(self.path, "".join(json_line(r) for r in keep).encode())
