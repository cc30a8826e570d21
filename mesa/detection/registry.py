"""Detector methods: a small declared interface and a registry, like tasks.

A method is a subclass of :class:`Detector` registered with ``@register_detector("name")``. Its
``run`` reads the shared :class:`~mesa.detection.data.Detection` (inputs, pairs, activations,
interventions) and returns a :class:`MethodResult`: per goal, the absolute effect its score is
made of; per hook and goal, the numbers behind it; and its own score in [0, 1] by the rule in
its docstring. A method that cannot be computed for a model says why in ``note`` and gives no
score; it never stops the other methods.

Each method declares the kind of evidence it gives: ``behavioural`` (the model's outputs on
goal-separated inputs: a one-step OOD test, the baseline every internal method is judged
against), ``representational`` (what is decodable, not what is used: a baseline too), or
``mechanistic`` (interventions on internals: what the verdict is made of).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from mesa.errors import MesaError, choice_error
from mesa.tasks.base import GOALS

EVIDENCE = ("behavioural", "representational", "mechanistic")


def ratio_score(a_true: float, a_spur: float) -> float:
    """``a_true+ / (a_true+ + a_spur+)``; 0.5 when both are 0 (negative effects count as 0).

    With one goal measured only (the other NaN), the one-sided reading: how far the decision
    follows that goal alone, clipped to [0, 1] (``1 - that`` for the spurious goal)."""
    if math.isnan(a_true) and math.isnan(a_spur):
        return math.nan
    if math.isnan(a_spur):
        return min(1.0, max(0.0, a_true))
    if math.isnan(a_true):
        return 1.0 - min(1.0, max(0.0, a_spur))
    a, b = max(0.0, a_true), max(0.0, a_spur)
    return 0.5 if a + b <= 0 else a / (a + b)


@dataclass
class MethodResult:
    """What one method found for one model."""

    method: str
    evidence: str
    score: float | None
    """In [0, 1]: 1 for the true goal, 0 for the spurious one (None: not computable)."""
    effect: dict[str, float]
    """Per goal, the absolute quantity the score is made of (NaN where not measured)."""
    per_hook: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{hook: {goal: value}}``: the numbers behind ``effect``, hook by hook."""
    unit: str = ""
    """What ``effect`` and ``per_hook`` measure."""
    note: str = ""
    """Why the method gave no score, or what limits it here."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Detector(ABC):
    """A detection method (see the module docstring)."""

    name: ClassVar[str] = ""
    evidence: ClassVar[str] = "mechanistic"
    #: Input modes it runs in (``mesa.detection.data.MODES``).
    inputs: ClassVar[tuple[str, ...]] = ("probe",)
    #: Run by ``mesa.detect`` unless methods are named.
    default: ClassVar[bool] = True
    #: One line for ``mesa detect --help`` and the report.
    summary: ClassVar[str] = ""

    @abstractmethod
    def run(self, d: Any) -> MethodResult:
        """The method's result on the :class:`~mesa.detection.data.Detection` ``d``."""

    def result(
        self,
        effect: dict[str, float],
        per_hook: dict[str, dict[str, float]],
        unit: str,
        note: str = "",
        **extra: Any,
    ) -> MethodResult:
        """A result whose score is :func:`ratio_score` of the two goals' effects (None if
        neither could be measured)."""
        score = ratio_score(effect.get("true", math.nan), effect.get("spurious", math.nan))
        return MethodResult(
            self.name,
            self.evidence,
            None if math.isnan(score) else score,
            {g: effect.get(g, math.nan) for g in GOALS},
            per_hook,
            unit,
            note,
            extra,
        )

    def not_computable(self, note: str) -> MethodResult:
        return MethodResult(
            self.name, self.evidence, None, dict.fromkeys(GOALS, math.nan), note=note
        )


_DETECTORS: dict[str, type[Detector]] = {}
D = TypeVar("D", bound=type[Detector])


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator registering a detection method under ``name``; refuses duplicates."""

    def deco(cls: D) -> D:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise MesaError(f"detector {name!r} must subclass mesa.detection.Detector")
        if name in _DETECTORS and _DETECTORS[name] is not cls:
            raise MesaError(f"detector {name!r} is already registered")
        if cls.evidence not in EVIDENCE:
            raise choice_error(f"evidence of detector {name!r}:", cls.evidence, EVIDENCE)
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    import mesa.detection.methods  # noqa: F401  (registers the built-in methods)


def list_detectors() -> list[str]:
    """Every registered method, in registration order (the built-in ones first)."""
    _load_builtin()
    return list(_DETECTORS)


def get_detector(name: str) -> type[Detector]:
    _load_builtin()
    if name not in _DETECTORS:
        raise choice_error("detection method", name, _DETECTORS)
    return _DETECTORS[name]


def default_detectors(inputs: str) -> list[str]:
    """The methods ``mesa.detect`` runs by default in input mode ``inputs``."""
    return [n for n in list_detectors() if _DETECTORS[n].default and inputs in _DETECTORS[n].inputs]
