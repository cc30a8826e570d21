"""User-facing errors.

Every mistake a user can make (an unknown task, a bad ``p``, a corrupt run directory) raises
:class:`MesaError` with a one-line message that names the problem and, where there is a choice,
the valid choices. The CLI prints it as ``mesa: error: ...`` and exits 2, without a traceback.
Something that works but not as asked warns with :class:`MesaWarning` (``mesa: warning: ...``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

# defined in mesa.probes, which imports nothing else from mesa, so that one class serves both
from mesa.probes.errors import MesaError

__all__ = ["MesaError", "MesaWarning", "choice_error", "print_warnings_on_one_line"]


class MesaWarning(UserWarning):
    """A setting mesa carried out other than as written (the CLI prints it on one line)."""


_python_format = warnings.formatwarning


def _one_line(message, category, *rest, **kw):  # type: ignore[no-untyped-def]
    if issubclass(category, MesaWarning):
        return f"mesa: warning: {message}\n"
    return _python_format(message, category, *rest, **kw)


def print_warnings_on_one_line() -> None:
    """Print :class:`MesaWarning` as ``mesa: warning: ...``, like errors, not in Python's
    file-and-line form; other warnings unchanged. The CLI and zoo workers call it."""
    warnings.formatwarning = _one_line


def choice_error(what: str, got: object, valid: Iterable[object]) -> MesaError:
    """``unknown task 'mze'; valid: coin, lookalike, maze``."""
    names = ", ".join(str(v) for v in sorted(valid, key=str))
    return MesaError(f"unknown {what} {got!r}; valid: {names}")
