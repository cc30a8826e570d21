"""The process's compute settings: torch's thread count, seeds' range, and memory estimates.

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

from mesa.errors import MesaError

#: Largest seed: derived seeds (``seed * 1_000_003 + step``) stay well inside 63 bits.
MAX_SEED = 2**32 - 1
#: Share of the machine's memory one run may plan to use before it is refused.
MEMORY_SHARE = 0.8


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
