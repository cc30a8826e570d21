"""Rates with confidence intervals, and the OOD result written to ``ood.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mesa.outcomes import NEITHER, SPURIOUS, TRUE
from mesa.probes.stats import wilson as wilson_ci

#: Below this in-distribution success the summary warns that the model has not learned its task.
LOW_IN_DIST = 0.9


@dataclass
class OutcomeRates:
    """Rates of each OOD outcome over ``n`` episodes/samples, with 95% Wilson intervals."""

    n: int
    true_rate: float
    spurious_rate: float
    neither_rate: float
    true_ci: tuple[float, float]
    spurious_ci: tuple[float, float]
    neither_ci: tuple[float, float]

    @classmethod
    def from_outcomes(cls, outcomes: np.ndarray) -> OutcomeRates:
        outcomes = np.asarray(outcomes)
        n = int(outcomes.size)
        counts = {k: int((outcomes == k).sum()) for k in (TRUE, SPURIOUS, NEITHER)}
        rate = (lambda k: counts[k] / n) if n else (lambda k: float("nan"))
        return cls(
            n=n,
            true_rate=rate(TRUE),
            spurious_rate=rate(SPURIOUS),
            neither_rate=rate(NEITHER),
            true_ci=wilson_ci(counts[TRUE], n),
            spurious_ci=wilson_ci(counts[SPURIOUS], n),
            neither_ci=wilson_ci(counts[NEITHER], n),
        )

    @property
    def preference(self) -> float:
        """Behavioural preference ``b = true / (true + spurious)`` (NaN if neither was reached)."""
        total = self.true_rate + self.spurious_rate
        return self.true_rate / total if total > 0 else float("nan")


@dataclass
class OODResult:
    """What ``mesa.evaluate_ood`` returns and ``ood.json`` holds.

    For gridworlds the headline rates are on the *off-path* subset (neither goal is on a shortest
    path from the start to the other), since an on-path true goal is reached by a policy that
    only seeks the spurious one, and an on-path spurious goal by one that seeks the true goal;
    ``all_episodes`` holds the rates over every episode. For
    sequence tasks both are the same samples.
    """

    true_rate: float
    spurious_rate: float
    neither_rate: float
    true_ci: tuple[float, float]
    spurious_ci: tuple[float, float]
    neither_ci: tuple[float, float]
    n: int
    preference: float
    in_dist_success: float
    in_dist_ci: tuple[float, float]
    in_dist_n: int
    subset: str
    all_episodes: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    """Why the headline counts what it counts, where that is not the family's usual subset."""
    together_success: float = float("nan")
    """Success on training inputs with the goals together (the ``train`` split at ``p = 0``),
    where pursuing either goal succeeds: how well the task is learned, apart from which goal.
    (``in_dist_success`` is on the ``train`` split at the model's own ``p``, whose separated
    episodes tell the goals apart, so at ``p > 0`` it is partly an OOD test.)"""
    together_ci: tuple[float, float] = (float("nan"), float("nan"))

    @classmethod
    def build(
        cls,
        headline: OutcomeRates,
        everything: OutcomeRates,
        in_dist_successes: int,
        in_dist_n: int,
        subset: str,
        note: str = "",
        together_successes: int | None = None,
    ) -> OODResult:
        return cls(
            true_rate=headline.true_rate,
            spurious_rate=headline.spurious_rate,
            neither_rate=headline.neither_rate,
            true_ci=headline.true_ci,
            spurious_ci=headline.spurious_ci,
            neither_ci=headline.neither_ci,
            n=headline.n,
            preference=headline.preference,
            in_dist_success=in_dist_successes / in_dist_n if in_dist_n else float("nan"),
            in_dist_ci=wilson_ci(in_dist_successes, in_dist_n),
            in_dist_n=in_dist_n,
            subset=subset,
            all_episodes={**asdict(everything), "preference": everything.preference},
            note=note,
            together_success=(
                float("nan") if together_successes is None else together_successes / in_dist_n
            ),
            together_ci=(
                (float("nan"), float("nan"))
                if together_successes is None
                else wilson_ci(together_successes, in_dist_n)
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OODResult:
        """The result an ``ood.json`` holds."""
        from mesa.errors import MesaError
        from mesa.io import nan_for_null

        d = nan_for_null(d)  # ood.json holds numbers and text only: a null was a NaN
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except TypeError:
            missing = sorted(names - set(d))
            raise MesaError(f"not an OOD result: missing {', '.join(missing)}") from None

    def table(self) -> list[list[str]]:
        """Rows (header first): each outcome's rate and 95% CI, headline and every episode."""
        from mesa.tables import fmt

        every = self.all_episodes
        rows = [["outcome", f"rate ({self.subset})", "95% CI", "rate (all episodes)"]]
        for name in ("true", "spurious", "neither"):
            rows.append(
                [
                    name,
                    fmt(getattr(self, f"{name}_rate"), 3),
                    fmt(getattr(self, f"{name}_ci"), 3),
                    fmt(every.get(f"{name}_rate"), 3),
                ]
            )
        return rows

    def caption(self) -> str:
        from mesa.tables import fmt

        return (
            f"OOD ({self.subset}, n = {self.n}): preference b = {fmt(self.preference)}; "
            f"in-distribution success {fmt(self.in_dist_success, 3)} "
            f"{fmt(self.in_dist_ci, 3)} (n = {self.in_dist_n}; with the goals together "
            f"{fmt(self.together_success, 3)})"
        )

    def _repr_html_(self) -> str:
        from mesa.tables import html_table

        return html_table(self.table(), caption=self.caption(), inline=True)

    def summary(self) -> str:
        lo, hi = self.true_ci
        return (
            f"OOD ({self.subset}, n={self.n}): true {self.true_rate:.1%} [{lo:.1%}, {hi:.1%}], "
            f"spurious {self.spurious_rate:.1%}, neither {self.neither_rate:.1%}; "
            f"in-distribution success {self.in_dist_success:.1%} (n={self.in_dist_n}; with the "
            f"goals together {self.together_success:.1%})"
            + (f"\nnote: {self.note}" if self.note else "")
            + (
                f"\nwarning: in-distribution success is below {LOW_IN_DIST:.0%}: the model has "
                "not learned its task, so its OOD rates (and detection) say little about the goal "
                "it pursues; train longer"
                if self.in_dist_success < LOW_IN_DIST
                else ""
            )
        )
