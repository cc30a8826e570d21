"""Per-hook evidence as the report reads it from a verdict: the one place to adapt.

A verdict (``verdict.json``, or a :class:`mesa.detection.Verdict`) holds each detection method's
result: its score, its absolute effect per goal and, for most methods, a number per hook and
goal. Every report figure and table reads them through this module:

- :func:`hook_evidence`: a row per hook with the probe's held-out accuracy (``d_true``,
  ``d_spur``, beside chance and the observation-only baseline) and, in absolute terms, the shift
  towards a moved goal that patching its sites restores (``c_true``, ``c_spur``; the ``patching``
  method), that interchanging its probe subspace restores (``s_true``, ``s_spur``) and that erasing
  it removes (``e_true``, ``e_spur``);
- :func:`method_table`: every method's evidence kind, score and effects;
- **represented**: the probe's selectivity ``(d - chance) / (1 - chance)`` in [0, 1];
- **used**: the patching effect ``c`` (already absolute: about 0 where the decision ignores the
  goal, about its directed effect where the goal's information flows through the hook).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

GOALS = ("true", "spurious")
#: per-hook key prefix -> the method whose per-hook numbers it holds
_PER_HOOK = {"c": "patching", "s": "probe_subspace", "e": "erasure"}
#: The per-hook numbers the report draws.
EVIDENCE_KEYS = tuple(
    f"{k}_{g}" for k in ("d", "chance", "baseline", *_PER_HOOK) for g in ("true", "spur")
)


def _as_dict(verdict: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    return verdict.to_dict() if hasattr(verdict, "to_dict") else verdict


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _short(goal: str) -> str:
    return "true" if goal == "true" else "spur"


def hook_evidence(verdict: Mapping[str, Any] | Any) -> list[dict[str, Any]]:
    """One row per hook, in detection's order: ``{"hook", "localised", "input_layer", "d_true",
    ...}`` with every key of :data:`EVIDENCE_KEYS` (NaN where the verdict lacks it).
    ``localised`` is False for hooks that hold no input sites (patching does not score them)."""
    v = _as_dict(verdict)
    methods = v.get("methods", {})
    settings = v.get("settings", {})
    decodability = methods.get("probe", {}).get("extra", {}).get("decodability", {})
    patched = methods.get("patching", {}).get("per_hook", {})
    rows = []
    for hook in settings.get("hooks", []):
        row: dict[str, Any] = {
            "hook": hook,
            "localised": hook in patched,
            "input_layer": hook in settings.get("input_layer", []),
        }
        for g in GOALS:
            dec = decodability.get(g, {})
            row[f"d_{_short(g)}"] = _number(dec.get("hooks", {}).get(hook, {}).get("accuracy"))
            row[f"chance_{_short(g)}"] = _number(dec.get("chance"))
            row[f"baseline_{_short(g)}"] = _number(dec.get("baseline"))
            for key, method in _PER_HOOK.items():
                per_hook = methods.get(method, {}).get("per_hook", {})
                row[f"{key}_{_short(g)}"] = _number(per_hook.get(hook, {}).get(g))
        rows.append(row)
    return rows


def directed_effects(verdict: Mapping[str, Any] | Any) -> dict[str, float]:
    """``{"true": Delta_true, "spurious": Delta_spur}``: the behavioural baseline (NaN where
    it was not run)."""
    effect = _as_dict(verdict).get("methods", {}).get("behaviour", {}).get("effect", {})
    return {g: _number(effect.get(g)) for g in GOALS}


def represented(row: Mapping[str, Any], goal: str) -> float:
    """Probe selectivity of ``goal`` ("true" or "spurious") at one hook row, in [0, 1]."""
    d, chance = row[f"d_{_short(goal)}"], row[f"chance_{_short(goal)}"]
    if math.isnan(d) or math.isnan(chance):
        return math.nan
    return min(1.0, max(0.0, (d - chance) / max(1e-9, 1.0 - chance)))


def used(row: Mapping[str, Any], goal: str, directed: Mapping[str, float] | None = None) -> float:
    """The patching effect of ``goal`` at one hook row (absolute; ``directed`` is not needed)."""
    return float(row[f"c_{_short(goal)}"])


def shown_score(method: Mapping[str, Any]) -> str:
    """A method's score as tables show it: ``n/a`` where both goals' absolute effects are below
    the verdict's floor (a ratio of two effects that small is noise, e.g. on an untrained model).
    The saved score is unchanged."""
    from mesa.detection.verdict import EFFECT_FLOOR
    from mesa.tables import fmt

    score = _number(method.get("score"))
    if method.get("evidence") == "representational":
        return fmt(score)
    effects = [_number(method.get("effect", {}).get(g)) for g in GOALS]
    if all(not math.isnan(e) and e < EFFECT_FLOOR for e in effects):
        return f"n/a (effects < {EFFECT_FLOOR})"
    return fmt(score)


def method_table(verdict: Mapping[str, Any] | Any) -> list[list[str]]:
    """Every method's evidence kind, score and absolute effect per goal (header first)."""
    from mesa.tables import fmt

    rows = [["method", "evidence", "score", "true goal", "spurious goal", "note"]]
    for name, m in _as_dict(verdict).get("methods", {}).items():
        effect = m.get("effect", {})
        rows.append(
            [
                name,
                str(m.get("evidence", "")),
                shown_score(m),
                fmt(_number(effect.get("true")), 3),
                fmt(_number(effect.get("spurious")), 3),
                str(m.get("note", "")),
            ]
        )
    return rows


def evidence_table(verdict: Mapping[str, Any] | Any) -> list[list[str]]:
    """The per-hook evidence as table rows (header first), for the report and Jupyter."""
    from mesa.tables import fmt

    head = ["hook", "D_true", "D_spur", "chance", "C_true", "C_spur", "S_true", "S_spur"]
    rows = [[*head, "E_true", "E_spur"]]
    for r in hook_evidence(verdict):
        note = " (input)" if r["input_layer"] else "" if r["localised"] else " (no sites)"
        rows.append(
            [
                r["hook"] + note,
                fmt(r["d_true"]),
                fmt(r["d_spur"]),
                f"{fmt(r['chance_true'])} / {fmt(r['chance_spur'])}",
                *(fmt(r[f"{k}_{g}"], 3) for k in _PER_HOOK for g in ("true", "spur")),
            ]
        )
    return rows


def verdict_line(verdict: Mapping[str, Any] | Any) -> str:
    """``verdict: true (mechanistic score 0.91; ...)`` with the two baselines beside it."""
    from mesa.tables import fmt

    v = _as_dict(verdict)
    d = directed_effects(v)
    behaviour = v.get("methods", {}).get("behaviour")
    behaviour_score = (
        shown_score(behaviour) if behaviour else fmt(_number(v.get("behaviour_score")))
    )
    return (
        f"verdict: {v.get('verdict', 'n/a')} (mechanistic score {fmt(_number(v.get('score')))}: "
        f"{v.get('reason', '')}); baselines: behavioural score "
        f"{behaviour_score} (directed effect: true goal {fmt(d['true'], 3)}"
        f", spurious goal {fmt(d['spurious'], 3)}), probe-decodability score "
        f"{fmt(_number(v.get('probe_score')))}"
    )
