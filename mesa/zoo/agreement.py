"""Agreement between the mechanistic score and OOD behaviour across a zoo.

For every model we have a score ``s`` (from :func:`mesa.detect`, computed without OOD rollouts)
and a behavioural preference ``b = true_rate / (true_rate + spurious_rate)`` (from the OOD test).
Agreement is Spearman's ρ(s, b) and the AUROC of ``s`` for ``b > 0.5``, with percentile bootstrap
CIs, over the whole zoo and within each ``p``.

Recovering ``p`` is not detection: any score that tracks ``p`` correlates with behaviour across a
zoo. So every figure sits beside baselines computed on the same models — "predict from p" (the
score is ``p`` itself), the probe-decodability score, and chance — and beside the partial rank
correlation of ``s`` and ``b`` given ``p``. Only within-``p`` agreement and the partial
correlation speak to detection proper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score


def _spearman(s: np.ndarray, b: np.ndarray) -> float:
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(s, b).statistic)


def _auroc(s: np.ndarray, b: np.ndarray) -> float:
    y = b > 0.5
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def partial_spearman(s: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    """Rank correlation of ``s`` and ``b`` after regressing the rank of ``p`` out of both."""
    if len(s) < 4 or np.ptp(p) == 0:
        return _spearman(s, b)
    rs, rb, rp = (rankdata(v) for v in (s, b, p))
    design = np.column_stack([np.ones_like(rp), rp])

    def resid(v: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(design, v, rcond=None)
        return v - design @ coef

    es, eb = resid(rs), resid(rb)
    if np.allclose(es, 0) or np.allclose(eb, 0):
        return float("nan")
    return float(np.corrcoef(es, eb)[0, 1])


def _bootstrap(
    fn: Any, arrays: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
) -> tuple[float, float]:
    n = len(arrays[0])
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = fn(*(a[idx] for a in arrays))
        if not math.isnan(v):
            vals.append(v)
    if len(vals) < n_boot // 4:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return (float(lo), float(hi))


@dataclass
class Agreement:
    """Agreement of one score with behaviour on one set of models."""

    score: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    auroc: float
    auroc_ci: tuple[float, float]
    partial_spearman_given_p: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(
    score: np.ndarray,
    b: np.ndarray,
    p: np.ndarray,
    name: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> Agreement:
    score, b, p = (np.asarray(v, dtype=float) for v in (score, b, p))
    keep = ~(np.isnan(score) | np.isnan(b))
    score, b, p = score[keep], b[keep], p[keep]
    rng = np.random.default_rng(seed)
    return Agreement(
        score=name,
        n=len(score),
        spearman=_spearman(score, b),
        spearman_ci=_bootstrap(_spearman, [score, b], n_boot, rng),
        auroc=_auroc(score, b),
        auroc_ci=_bootstrap(_auroc, [score, b], n_boot, rng),
        partial_spearman_given_p=partial_spearman(score, b, p),
    )


def zoo_agreement(
    rows: Sequence[dict[str, Any]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Agreement of the causal score and the baselines, over the zoo and within each ``p``.

    ``rows`` are the members' result rows (keys ``p``, ``score``, ``probe_score``, ``b``).
    Chance is a score drawn uniformly at random (seeded), so its figures show what noise gives.
    """
    p = np.array([r["p"] for r in rows], dtype=float)
    b = np.array([r["b"] for r in rows], dtype=float)
    rng = np.random.default_rng(seed)
    scores = {
        "causal score": np.array([r["score"] for r in rows], dtype=float),
        "probe decodability": np.array([r["probe_score"] for r in rows], dtype=float),
        "predict from p": p,
        "chance": rng.random(len(rows)),
    }
    overall = [agreement(v, b, p, k, n_boot, seed).to_dict() for k, v in scores.items()]
    within: dict[str, list[dict[str, Any]]] = {}
    for pv in sorted(set(p.tolist())):
        m = p == pv
        within[f"{pv:g}"] = [
            agreement(v[m], b[m], p[m], k, n_boot, seed).to_dict()
            for k, v in scores.items()
            if k != "predict from p"
        ]
    return {"overall": overall, "within_p": within}
