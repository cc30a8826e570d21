"""User-facing errors.

Every mistake a user can make (an unknown task, a bad ``p``, a corrupt run directory) raises
:class:`MesaError` with a one-line message that names the problem and, where there is a choice,
the valid choices. The CLI prints it as ``mesa: error: ...`` and exits 2, without a traceback.
Something that works but not as asked warns with :class:`MesaWarning` (``mesa: warning: ...``).
"""

from __future__ import annotations

from collections.abc import Iterable

# defined in mesa.probes, which imports nothing else from mesa, so that one class serves both
from mesa.probes.errors import MesaError

__all__ = ["MesaError", "MesaWarning", "choice_error"]


class MesaWarning(UserWarning):
    """A setting mesa carried out other than as written (the CLI prints it on one line)."""


def choice_error(what: str, got: object, valid: Iterable[object]) -> MesaError:
    """``unknown task 'mze'; valid: coin, lookalike, maze``."""
    names = ", ".join(str(v) for v in sorted(valid, key=str))
    return MesaError(f"unknown {what} {got!r}; valid: {names}")
