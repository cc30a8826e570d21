"""The error type of mesa.probes.

Every mistake a caller can make with a mesa.probes function (an unknown hook, inputs of the wrong
shape, labels that are not classes) raises :class:`MesaError` with one line that names the
problem and, where there is a choice, the valid choices. ``mesa.errors`` re-exports this class,
so ``except mesa.errors.MesaError`` catches the errors of mesa.probes and of the rest of mesa
alike. This module imports nothing, so importing it (or ``mesa.errors``) stays cheap.
"""

from __future__ import annotations


class MesaError(ValueError):
    """The one-line user-facing error shared by mesa.probes and the rest of mesa."""
