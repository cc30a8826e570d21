"""Per-hook evidence as the report reads it from a verdict: the one place to adapt.

For each hook it inspects, detection records how well each goal can be decoded there (``d_true``,
``d_spur``, beside chance and an observation-only baseline) and what share of the decision's turn
towards each goal a localised intervention there restores (``c_true``, ``c_spur``). Every report
figure reads those numbers through :func:`hook_evidence` and :func:`directed_effects`, so when
detection's output changes shape (new methods, renamed fields) only this module changes.

Two derived quantities make the per-hook maps:

- **represented**: the probe's selectivity ``(d - chance) / (1 - chance)``, clipped to [0, 1]:
  0 at chance, 1 for a perfect probe (chance differs between goals, raw accuracy does not
  compare);
- **used**: ``c(h) * max(0, Delta)``, the part of the decision's turn towards the goal that
  flows through ``h``. ``c`` alone is a share of ``Delta`` and is noise when the decision ignores
  the goal (``Delta`` near 0); weighting by ``Delta`` shows such a goal as used nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: The per-hook numbers the report draws.
EVIDENCE_KEYS = (
    "d_true",
    "d_spur",
    "chance_true",
    "chance_spur",
    "baseline_true",
    "baseline_spur",
    "c_true",
    "c_spur",
    "e_true",
    "e_spur",
)


def _as_dict(verdict: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    return verdict.to_dict() if hasattr(verdict, "to_dict") else verdict


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def hook_evidence(verdict: Mapping[str, Any] | Any) -> list[dict[str, Any]]:
    """One row per hook, in detection's order: ``{"hook": name, "localised": bool, "d_true":
    ..., ...}`` with every key of :data:`EVIDENCE_KEYS` (NaN where the verdict lacks it).

    ``verdict`` is a ``verdict.json`` dict or a :class:`mesa.detection.Verdict`. ``localised`` is
    False for hooks that were patched whole (no cell or position axis): they restore the whole
    effect by construction.
    """
    v = _as_dict(verdict)
    local = v.get("settings", {}).get("localised_hooks")
    rows = []
    for e in v.get("evidence", []):
        hook = str(e["hook"])
        rows.append(
            {
                "hook": hook,
                "localised": local is None or hook in local,
                **{k: _number(e.get(k)) for k in EVIDENCE_KEYS},
            }
        )
    return rows


def directed_effects(verdict: Mapping[str, Any] | Any) -> dict[str, float]:
    """``{"true": Delta_true, "spurious": Delta_spur}`` (NaN where absent)."""
    effect = _as_dict(verdict).get("directed_effect", {})
    return {g: _number(effect.get(g)) for g in ("true", "spurious")}


def represented(row: Mapping[str, Any], goal: str) -> float:
    """Probe selectivity of ``goal`` ("true" or "spurious") at one hook row, in [0, 1]."""
    d, chance = (
        (row["d_true"], row["chance_true"])
        if goal == "true"
        else (
            row["d_spur"],
            row["chance_spur"],
        )
    )
    if math.isnan(d) or math.isnan(chance):
        return math.nan
    return min(1.0, max(0.0, (d - chance) / max(1e-9, 1.0 - chance)))


def used(row: Mapping[str, Any], goal: str, directed: Mapping[str, float]) -> float:
    """``c(h) * max(0, Delta)`` of ``goal`` at one hook row (``c`` alone if Delta is unknown)."""
    c = row["c_true"] if goal == "true" else row["c_spur"]
    delta = directed.get(goal, math.nan)
    return c if math.isnan(delta) else c * max(0.0, delta)


def evidence_table(verdict: Mapping[str, Any] | Any) -> list[list[str]]:
    """The per-hook evidence as table rows (header first), for the report and Jupyter."""
    from mesa.report.tables import fmt

    rows = [["hook", "D_true", "D_spur", "chance", "C_true", "C_spur", "E_true", "E_spur"]]
    for r in hook_evidence(verdict):
        rows.append(
            [
                r["hook"] + ("" if r["localised"] else " (whole)"),
                fmt(r["d_true"]),
                fmt(r["d_spur"]),
                f"{fmt(r['chance_true'])} / {fmt(r['chance_spur'])}",
                *(fmt(r[k]) for k in ("c_true", "c_spur", "e_true", "e_spur")),
            ]
        )
    return rows


def verdict_line(verdict: Mapping[str, Any] | Any) -> str:
    """``verdict: true (score s = 0.91; probe-decodability score 0.50; directed effect ...)``."""
    from mesa.report.tables import fmt

    v = _as_dict(verdict)
    d = directed_effects(v)
    return (
        f"verdict: {v.get('verdict', 'n/a')} (score s = {fmt(_number(v.get('score')))}; "
        f"probe-decodability score {fmt(_number(v.get('probe_score')))}; directed effect: true "
        f"goal {fmt(d['true'], 3)}, spurious goal {fmt(d['spurious'], 3)})"
    )
