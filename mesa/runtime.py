"""The process's compute settings: the device, torch's thread count, seeds' range, and memory
estimates.

**Device.** Every command and API entry point that computes takes a device: ``"cpu"``, ``"cuda"``
(or ``"cuda:N"``), or ``"auto"`` (CUDA when torch sees a GPU, else the CPU). One function,
:func:`resolve_device`, turns that into a ``torch.device`` or a one-line error, so no two places
can disagree about what ``"auto"`` means. The device is *how* a run computes, not *what* it is:
it is not part of a run's settings fingerprint (a run trained on a GPU is the same run, resumed
on the same kind of device; see ``mesa.training.common``), and it is recorded in ``config.json``
for information only.

**Reproducibility.** On the CPU a seed gives the same bits on every run. On a GPU, random draws
come from generators on the GPU (a different stream from the CPU's), and some kernels sum in a
nondeterministic order; :func:`deterministic_algorithms` turns on torch's deterministic
implementations where they exist.

A model's weights depend on the number of threads torch splits its reductions over (a sum
computed in another order rounds differently), so every training, evaluation and detection runs
with a thread count fixed by its settings — ``num_threads``, 1 by default — and never by how
many workers or cores happen to be there. A seed is an integer in ``[0, MAX_SEED]``.

Sizes that would not fit in memory (``num_envs=10**9``) are refused before any work, from an
estimate of the largest buffers, instead of failing with a ``MemoryError`` partway.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mesa.errors import MesaError

if TYPE_CHECKING:
    import torch

#: Largest seed: derived seeds (``seed * 1_000_003 + step``) stay well inside 63 bits.
MAX_SEED = 2**32 - 1
#: Share of the machine's memory one run may plan to use before it is refused.
MEMORY_SHARE = 0.8
#: What a device argument may say (``cuda:N`` picks one of several GPUs).
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "auto")
_CHOICES = ", ".join(DEVICE_CHOICES)
#: cuBLAS needs this workspace setting for deterministic matrix products on CUDA >= 10.2.
CUBLAS_WORKSPACE = ":4096:8"


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (the one question :func:`resolve_device` asks of the
    machine; tests stand it in to pin the suite to the CPU)."""
    import torch

    return bool(torch.cuda.is_available())


def _unavailable(device: Any) -> MesaError:
    """The one-line error for a device this machine does not have: what it has instead."""
    import torch

    have = ["cpu"]
    if cuda_available():
        have += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    why = "" if len(have) > 1 else ": torch sees no CUDA GPU here"
    return MesaError(
        f"device {str(device)!r} is not available{why} (available: {', '.join(have)}); "
        f"valid: {_CHOICES}"
    )


def resolve_device(device: Any = "auto") -> torch.device:
    """The ``torch.device`` that ``device`` names: ``"cpu"``, ``"cuda"`` (the current GPU),
    ``"cuda:N"``, ``"auto"`` or None (CUDA when available, else the CPU), or a ``torch.device``.
    A device this machine does not have is a one-line :class:`MesaError` naming the valid
    choices and what is available."""
    import torch

    if device is None or device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    try:
        resolved = torch.device(device) if isinstance(device, str | torch.device) else None
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise MesaError(f"unknown device {str(device)!r}; valid: {_CHOICES}")
    if resolved.type == "cpu":
        return torch.device("cpu")
    if not cuda_available():
        raise _unavailable(device)
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= torch.cuda.device_count():
        raise _unavailable(device)
    return torch.device("cuda", index)


def model_device(model: Any) -> torch.device:
    """The device of a model's weights (its first parameter or buffer; the CPU if it has none)."""
    from mesa.probes.hooks import model_device as device_of

    return device_of(model)


def to_device(model: Any, device: torch.device) -> Any:
    """Move ``model``'s weights to ``device`` in place (as ``nn.Module.to`` does) and return it;
    a model already there is left as it is. A TransformerLens model's ``cfg.device`` follows
    (its own ``to`` would print a line to the terminal on every move)."""
    import torch

    if model_device(model) == device:
        return model
    modules = model.modules() if callable(getattr(model, "modules", None)) else [model]
    for module in modules:
        cfg = getattr(module, "cfg", None)
        if cfg is not None and hasattr(cfg, "device"):
            cfg.device = str(device)
    return torch.nn.Module.to(model, device)


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``. On the CPU it is the very generator mesa
    always used (``torch.Generator().manual_seed(seed)``), so CPU draws keep their bits."""
    import torch

    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms(on: bool = True) -> Iterator[None]:
    """Inside the block (when ``on``), torch uses deterministic algorithms where they exist and
    warns where an operation has none (``torch.use_deterministic_algorithms(True,
    warn_only=True)``), cuDNN picks no kernels by timing, and cuBLAS gets the workspace setting
    it needs (:data:`CUBLAS_WORKSPACE`, only if unset: it must be in place before the process's
    first cuBLAS call, so set ``CUBLAS_WORKSPACE_CONFIG`` yourself when a process has already
    used the GPU). Afterwards everything is as before. On the CPU mesa's results are
    bit-identical without it."""
    if not on:
        yield
        return
    import torch

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def check_seed(seed: object, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise MesaError(f"{what} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return seed


def set_threads(n: int) -> None:
    """Run torch on ``n`` threads (results depend on it; see the module docstring)."""
    import torch

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MesaError(f"num_threads must be an integer of at least 1, got {n!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block, and on as many as before after it."""
    import torch

    before = torch.get_num_threads()
    set_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def physical_memory() -> int:
    """Bytes of memory on this machine (0 where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(nbytes: float, what: str) -> None:
    """Refuse a plan that needs more than :data:`MEMORY_SHARE` of the machine's memory."""
    total = physical_memory()
    if total and nbytes > MEMORY_SHARE * total:
        raise MesaError(
            f"{what} needs about {nbytes / 2**30:.1f} GiB, more than this machine's "
            f"{total / 2**30:.1f} GiB allow; choose smaller sizes"
        )
