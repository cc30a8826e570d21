"""A zoo's members grouped by ``p``, and the misgeneralization curve: the mean OOD rates per ``p``.

The report's figures and the experiment scripts read the curve from here, so it is computed one
way everywhere. ``rows`` are a zoo's result rows (``ZooResult.rows`` or ``results.csv``: keys
``p``, ``seed``, ``true_rate``, ``spurious_rate``, ``in_dist_success``, ``score``, ``verdict``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

#: The per-member keys :func:`p_curve` keeps beside each ``p``'s means.
MEMBER_KEYS = ("seed", "true_rate", "spurious_rate", "in_dist_success", "score", "verdict")


def group_by_p(rows: Iterable[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    """``{p: rows with that p}``, in increasing ``p``, each group in the order given."""
    groups: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(float(r["p"]), []).append(r)
    return dict(sorted(groups.items()))


def p_curve(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per ``p``: ``p``, ``n`` (members), the means of ``true_rate``,
    ``spurious_rate`` and ``in_dist_success``, and ``members`` (each member's
    :data:`MEMBER_KEYS` that it has, in seed order)."""
    return [
        {
            "p": p,
            "n": len(group),
            "true_rate": statistics.mean(float(r["true_rate"]) for r in group),
            "spurious_rate": statistics.mean(float(r["spurious_rate"]) for r in group),
            "in_dist_success": statistics.mean(float(r["in_dist_success"]) for r in group),
            "members": [
                {k: r[k] for k in MEMBER_KEYS if k in r}
                for r in sorted(group, key=lambda r: int(r.get("seed", 0)))
            ],
        }
        for p, group in group_by_p(rows).items()
    ]
