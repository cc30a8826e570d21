"""User-facing errors.

Every mistake a user can make (an unknown task, a bad ``p``, a corrupt run directory) raises
:class:`MesaError` with a one-line message that names the problem and, where there is a choice,
the valid choices. The CLI prints it as ``mesa: error: ...`` and exits 2, without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class MesaError(ValueError):
    """A one-line, user-facing error."""


def choice_error(what: str, got: object, valid: Iterable[object]) -> MesaError:
    """``unknown task 'mze'; valid: coin, lookalike, maze``."""
    names = ", ".join(str(v) for v in sorted(valid, key=str))
    return MesaError(f"unknown {what} {got!r}; valid: {names}")
