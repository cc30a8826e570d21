"""How well detection predicted OOD behaviour across a zoo, beside the baselines that do not
look inside a model.

For every member there is the mechanistic score ``s`` (the verdict's, from interventions on
internals, no OOD rollouts), each method's own score, and the behavioural preference
``b = true_rate / (true_rate + spurious_rate)`` from the OOD test. Agreement of a score with
``b`` is Spearman's rho and the AUROC of the score for ``b > 1/2``, with percentile-bootstrap
95% intervals.

Recovering ``p`` is not detection: any score that tracks ``p`` correlates with behaviour across a
zoo, and so does a one-step behavioural test. So every score sits beside the baselines, computed
on the same members: **chance** (a seeded random score), **predict from p**, **in-distribution
success** (on the ``train`` split at the member's ``p``, whose separated episodes make it partly
an OOD test), **success with the goals together** and the **final training loss** (training
progress, apart from which goal is learned), the **probe-decodability** score
(what is represented) and the **behavioural** score (outputs on goal-separated inputs). And
beside each score's **partial** rank correlation with ``b`` given ``p``, given the behavioural
score, and given in-distribution success: what the score adds to each. Only agreement within one
``p`` — reported where at least :data:`MIN_EACH_SIDE` members fall on each side of ``b = 1/2``,
and where predict-from-p is at its floor of 0.5 AUROC — and those partial correlations speak to
detection proper.

**Calibration** counts verdicts against behaviour: a member matches when it is called ``true``
with ``b > 2/3``, ``spurious`` with ``b < 1/3``, and, in between, ``mixed`` or the verdict on
``b``'s side of 1/2; calling a member with ``b > 1/2`` ``spurious``, or with ``b < 1/2``
``true``, is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from mesa.tables import fmt

#: Within one p, agreement is measured where at least this many members lie on each side of 1/2.
MIN_EACH_SIDE = 3
#: The baselines' row names.
CHANCE, FROM_P, IN_DIST, TRAIN_LOSS = "chance", "predict from p", "in-dist success", "train loss"
TOGETHER = "success, goals together"
BEHAVIOUR, PROBE, MECHANISTIC = "behaviour", "probe", "mechanistic score"


def _spearman(s: np.ndarray, b: np.ndarray) -> float:
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(s, b).statistic)


def _auroc(s: np.ndarray, b: np.ndarray) -> float:
    y = b > 0.5
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def partial_spearman(s: np.ndarray, b: np.ndarray, z: np.ndarray) -> float:
    """Rank correlation of ``s`` and ``b`` after regressing the rank of ``z`` out of both."""
    keep = ~np.isnan(z)
    s, b, z = s[keep], b[keep], z[keep]
    if len(s) < 4 or np.ptp(z) == 0:
        return _spearman(s, b)
    rs, rb, rz = (rankdata(v) for v in (s, b, z))
    design = np.column_stack([np.ones_like(rz), rz])

    def resid(v: np.ndarray) -> np.ndarray:
        coef, *_ = np.linalg.lstsq(design, v, rcond=None)
        return v - design @ coef

    es, eb = resid(rs), resid(rb)
    if np.allclose(es, 0) or np.allclose(eb, 0):
        return float("nan")
    return float(np.corrcoef(es, eb)[0, 1])


def _bootstrap(
    fn: Callable[..., float], arrays: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator
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
    """Agreement of one score with behaviour on one set of members."""

    score: str
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    auroc: float
    auroc_ci: tuple[float, float]
    partial_spearman_given_p: float
    partial_given_p_ci: tuple[float, float]
    partial_given_behaviour: float
    partial_given_behaviour_ci: tuple[float, float]
    partial_given_in_dist: float
    partial_given_in_dist_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(
    score: np.ndarray,
    b: np.ndarray,
    given: dict[str, np.ndarray],
    name: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> Agreement:
    """Agreement of ``score`` with ``b``; ``given`` holds ``p``, ``behaviour`` and ``in_dist``
    per member for the partial correlations."""
    score, b = np.asarray(score, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(score) | np.isnan(b))
    score, b = score[keep], b[keep]
    z = {k: np.asarray(v, dtype=float)[keep] for k, v in given.items()}
    rng = np.random.default_rng(seed)

    def partial(key: str) -> tuple[float, tuple[float, float]]:
        value = partial_spearman(score, b, z[key])
        return value, _bootstrap(partial_spearman, [score, b, z[key]], n_boot, rng)

    (pp, pp_ci), (pb, pb_ci), (pi, pi_ci) = (partial(k) for k in ("p", "behaviour", "in_dist"))
    return Agreement(
        score=name,
        n=len(score),
        spearman=_spearman(score, b),
        spearman_ci=_bootstrap(_spearman, [score, b], n_boot, rng),
        auroc=_auroc(score, b),
        auroc_ci=_bootstrap(_auroc, [score, b], n_boot, rng),
        partial_spearman_given_p=pp,
        partial_given_p_ci=pp_ci,
        partial_given_behaviour=pb,
        partial_given_behaviour_ci=pb_ci,
        partial_given_in_dist=pi,
        partial_given_in_dist_ci=pi_ci,
    )


def _column(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([_float(r.get(key)) for r in rows], dtype=float)


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def score_columns(rows: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, np.ndarray]:
    """Every score to judge, by name: the mechanistic score, each method's (``score_<method>``
    columns), and the baselines that do not look inside a model."""
    scores = {MECHANISTIC: _column(rows, "score")}
    methods = [k[len("score_") :] for k in (rows[0] if rows else {}) if k.startswith("score_")]
    for m in methods:
        scores[m] = _column(rows, f"score_{m}")
    scores[FROM_P] = _column(rows, "p")
    scores[IN_DIST] = _column(rows, "in_dist_success")
    if not np.isnan(_column(rows, "together_success")).all():
        scores[TOGETHER] = _column(rows, "together_success")
    if not np.isnan(_column(rows, "train_loss")).all():
        scores[TRAIN_LOSS] = -_column(rows, "train_loss")  # lower loss ranks higher
    scores[CHANCE] = np.random.default_rng(seed).random(len(rows))
    return scores


def _row_order(row: dict[str, Any]) -> tuple[float, float, str]:
    return _float(row.get("p")), _float(row.get("seed")), str(row.get("member", ""))


def calibration(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Verdicts against behaviour (see the module docstring)."""
    counts: dict[str, Any] = {"match": 0, "wrong": 0, "mixed_or_other": 0, "inconclusive": 0}
    counts["n"] = 0
    for r in rows:
        b, v = _float(r.get("b")), r.get("verdict")
        if math.isnan(b):
            continue
        counts["n"] += 1
        if v == "inconclusive":
            counts["inconclusive"] += 1
        elif (v == "spurious" and b > 0.5) or (v == "true" and b < 0.5):
            counts["wrong"] += 1
        elif (
            (v == "true" and b > 2 / 3)
            or (v == "spurious" and b < 1 / 3)
            or (1 / 3 <= b <= 2 / 3 and v in ("mixed", "true" if b > 0.5 else "spurious"))
        ):
            counts["match"] += 1
        else:
            counts["mixed_or_other"] += 1
    n = max(1, counts["n"])
    counts["match_rate"] = counts["match"] / n
    counts["inconclusive_rate"] = counts["inconclusive"] / n
    return counts


def zoo_agreement(
    rows: Sequence[dict[str, Any]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Agreement of every score with behaviour over the zoo and within each ``p``, and the
    verdicts' calibration. ``rows`` are the members' result rows (:func:`mesa.zoo.member_row`),
    in any order: they are put in ``results.csv``'s order (by p, then seed) first, so the
    seeded chance score and the bootstrap intervals do not depend on which member finished
    first (the order a zoo's workers hand them back in)."""
    rows = sorted(rows, key=_row_order)
    p, b = _column(rows, "p"), _column(rows, "b")
    scores = score_columns(rows, seed)
    given = {"p": p, "behaviour": _column(rows, "score_behaviour"), "in_dist": scores[IN_DIST]}
    overall = [agreement(v, b, given, k, n_boot, seed).to_dict() for k, v in scores.items()]
    within: dict[str, Any] = {}
    for pv in sorted(set(p.tolist())):
        m = p == pv
        above = int((b[m] > 0.5).sum())
        below = int((b[m] < 0.5).sum())
        entry: dict[str, Any] = {"n": int(m.sum()), "above": above, "below": below}
        if min(above, below) >= MIN_EACH_SIDE:
            sub = {k: v[m] for k, v in given.items()}
            entry["agreement"] = [
                agreement(v[m], b[m], sub, k, n_boot, seed).to_dict()
                for k, v in scores.items()
                if k != FROM_P
            ]
        within[f"{pv:g}"] = entry
    return {"overall": overall, "within_p": within, "calibration": calibration(rows)}


# -- as tables (the report and Jupyter show them) ---------------------------------------------


def agreement_table(agreement: dict[str, Any]) -> list[list[str]]:
    """Every score's agreement with OOD behaviour over the zoo, baselines included."""
    head = ["score", "models", "Spearman ρ", "95% CI", "AUROC (b > 0.5)", "95% CI"]
    head += ["partial ρ | p", "partial ρ | behaviour", "partial ρ | in-dist"]
    rows = [head]
    for a in agreement.get("overall", []):
        rows.append(
            [
                a["score"],
                str(a["n"]),
                fmt(a["spearman"]),
                fmt(a["spearman_ci"]),
                fmt(a["auroc"]),
                fmt(a["auroc_ci"]),
                f"{fmt(a['partial_spearman_given_p'])} {fmt(a.get('partial_given_p_ci'))}",
                f"{fmt(a.get('partial_given_behaviour'))} "
                f"{fmt(a.get('partial_given_behaviour_ci'))}",
                f"{fmt(a.get('partial_given_in_dist'))} {fmt(a.get('partial_given_in_dist_ci'))}",
            ]
        )
    return rows


def within_p_table(agreement: dict[str, Any]) -> list[list[str]]:
    """Agreement within each p where members split (else how many fell on each side)."""
    rows = [["p", "members (b > ½ / b < ½)", "score", "Spearman ρ [95% CI]", "AUROC [95% CI]"]]
    for p, entry in agreement.get("within_p", {}).items():
        split = f"{entry['n']} ({entry['above']} / {entry['below']})"
        items = entry.get("agreement")
        if not items:
            rows.append([p, split, "too few on one side", "", ""])
            continue
        for a in items:
            rows.append(
                [
                    p,
                    split,
                    a["score"],
                    f"{fmt(a['spearman'])} {fmt(a['spearman_ci'])}",
                    f"{fmt(a['auroc'])} {fmt(a['auroc_ci'])}",
                ]
            )
    return rows


def calibration_line(agreement: dict[str, Any]) -> str:
    cal = agreement.get("calibration")
    if not cal:
        return ""
    return (
        f"Verdicts against behaviour: {cal['match']} of {cal['n']} match (true for b > 2/3, "
        f"spurious for b < 1/3, in between mixed or the side of 1/2), {cal['wrong']} wrong "
        f"(spurious with b > 1/2 or true with b < 1/2), {cal['mixed_or_other']} mixed outside "
        f"[1/3, 2/3], {cal['inconclusive']} inconclusive."
    )


# -- pooled over populations -------------------------------------------------------------------

#: The scores :func:`pooled_within_p` pools: the verdict's, and the baselines beside it.
POOLED_SCORES = (MECHANISTIC, BEHAVIOUR, PROBE, IN_DIST, TOGETHER, CHANCE)
#: The per-population statistics pooled: AUROC for b > 1/2, Spearman, partial rho | behaviour.
POOLED_STATS = ("auroc", "spearman", "partial_given_behaviour")
#: The mechanistic score's differences from the behavioural one, paired within a population.
PAIRED_STATS = ("auroc_minus_behaviour", "spearman_minus_behaviour")
#: A population enters a statistic's pooled mean only where the statistic is defined in it and
#: in at least this share of its members' bootstrap resamples (a partial rho given behaviour is
#: undefined where behaviour ranks b perfectly; a rank statistic, where a score is constant).
MIN_DEFINED = 0.9


def _rank_auroc(s: np.ndarray, b: np.ndarray) -> float:
    """AUROC of ``s`` for ``b > 1/2`` by the rank-sum (ties count half, as roc_auc_score's;
    undefined for a constant score, like Spearman); written out because the pooled bootstrap
    calls it hundreds of thousands of times."""
    y = b > 0.5
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0 or np.ptp(s) == 0:
        return float("nan")
    return float((rankdata(s)[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _rank_corr(rx: np.ndarray, ry: np.ndarray) -> float:
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _population_stats(
    scores: dict[str, np.ndarray], b: np.ndarray, behaviour: np.ndarray
) -> dict[str, dict[str, float]]:
    """One population's AUROC, Spearman and partial rho given behaviour for every score, and the
    mechanistic score's paired differences from the behavioural one. The partial correlation is
    the closed form of :func:`partial_spearman`'s residual regression on ranks,
    ``(r_sb - r_sz r_bz) / sqrt((1 - r_sz^2)(1 - r_bz^2))``: the same number, fast enough for a
    bootstrap."""
    out = {}
    for name, s in scores.items():
        keep = ~(np.isnan(s) | np.isnan(b))
        s_k, b_k = s[keep], b[keep]
        rs, rb = rankdata(s_k), rankdata(b_k)
        rho = _rank_corr(rs, rb) if len(s_k) >= 3 else float("nan")
        partial = float("nan")
        z = behaviour[keep]
        if name != BEHAVIOUR and not np.isnan(z).any() and len(s_k) >= 4:
            rz = rankdata(z)
            r_sz, r_bz = _rank_corr(rs, rz), _rank_corr(rb, rz)
            if math.isnan(r_sz) or math.isnan(r_bz):  # behaviour constant: nothing to remove
                partial = rho
            elif abs(r_sz) < 1 - 1e-12 and abs(r_bz) < 1 - 1e-12:
                partial = (rho - r_sz * r_bz) / math.sqrt((1 - r_sz**2) * (1 - r_bz**2))
        out[name] = {
            "auroc": _rank_auroc(s_k, b_k),
            "spearman": rho,
            "partial_given_behaviour": partial,
        }
    if MECHANISTIC in out and BEHAVIOUR in out:
        for stat, base in zip(PAIRED_STATS, ("auroc", "spearman"), strict=True):
            out[MECHANISTIC][stat] = out[MECHANISTIC][base] - out[BEHAVIOUR][base]
    return out


def _group_means(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per statistic (columns of ``values`` [slots, K]), the mean over the slots where ``rows``
    [slots, K] is True; NaN where none is, or where any of them is undefined."""
    count = rows.sum(0)
    undefined = (rows & np.isnan(values)).any(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(rows, np.nan_to_num(values), 0.0).sum(0) / count
    mean[undefined | (count == 0)] = np.nan
    return mean  # type: ignore[no-any-return]


def _interval(draws: np.ndarray, n_boot: int) -> tuple[float, float]:
    ok = draws[~np.isnan(draws)]
    if len(ok) < 0.75 * n_boot:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return (float(lo), float(hi))


def pooled_within_p(
    populations: Sequence[Sequence[dict[str, Any]]], n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Agreement within ``p`` pooled over populations (each one family's result rows at one
    ``p``; the caller picks them, e.g. with :data:`MIN_EACH_SIDE` members each side of 1/2).

    Each population's AUROC (b > 1/2), Spearman and partial rho given the behavioural score are
    computed within it, as :func:`zoo_agreement` does within a ``p`` (the chance score is seeded
    apart per population), and the mechanistic score's differences from the behavioural one are
    paired within it. The pooled value is their mean over populations, per family and over all.
    Two 95% intervals: ``_ci``, a two-level percentile bootstrap (the populations resampled within
    each family, then the members within each population), which counts the members' noise on
    top of the populations' spread and so errs wide; and ``_ci_populations``, the populations
    alone resampled, which errs narrow with three or four populations a family. A statistic
    undefined in a population, or in more than a tenth of its members' resamples
    (:data:`MIN_DEFINED`), leaves that population out of its mean (``left_out`` names them); in
    a kept population, a members' resample where it is undefined is replaced by another where it
    is defined."""
    if not populations:
        raise ValueError("no populations to pool")
    pops, names, keys = _pooling_inputs(populations, seed)

    def vector(scores: dict[str, np.ndarray], b: np.ndarray) -> np.ndarray:
        st = _population_stats({k: scores[k] for k in names}, b, scores[BEHAVIOUR])
        return np.array([st[n][k] for n, k in keys], dtype=float)

    rng = np.random.default_rng(seed)
    point = np.array([vector(p[1], p[2]) for p in pops])  # [P, K]
    member_draws = np.empty((len(pops), n_boot, len(keys)))
    for i, (_, scores, b, _) in enumerate(pops):
        for r in range(n_boot):
            idx = rng.integers(0, len(b), len(b))
            member_draws[i, r] = vector({k: v[idx] for k, v in scores.items()}, b[idx])
    defined = (~np.isnan(member_draws)).mean(1)  # [P, K]
    kept = ~np.isnan(point) & (defined >= MIN_DEFINED)
    families = sorted({p[0] for p in pops})
    members = {f: [i for i, p in enumerate(pops) if p[0] == f] for f in families}
    groups = {**members, "all": list(range(len(pops)))}
    two_level, pops_only = _bootstrap_means(point, member_draws, kept, members, groups, rng)
    out: dict[str, Any] = {"scores": names, "min_defined": MIN_DEFINED, "populations": []}
    for i, (family, _, b, rows) in enumerate(pops):
        st: dict[str, dict[str, float]] = {}
        for k, (n, stat) in enumerate(keys):
            st.setdefault(n, {})[stat] = float(point[i, k])
        out["populations"].append(
            {
                "family": family,
                "p": _float(rows[0].get("p")),
                "seeds": [int(_float(r.get("seed"))) for r in rows],
                "above": int((b > 0.5).sum()),
                "below": int((b < 0.5).sum()),
                "stats": st,
                "left_out": [f"{n} {stat}" for k, (n, stat) in enumerate(keys) if not kept[i, k]],
            }
        )
    out["pooled"] = {
        g: _pooled_group(group, keys, point, kept, two_level[g], pops_only[g])
        for g, group in groups.items()
    }
    return out


def _pooled_group(
    group: list[int],
    keys: list[tuple[str, str]],
    point: np.ndarray,
    kept: np.ndarray,
    two_level: np.ndarray,
    pops_only: np.ndarray,
) -> dict[str, Any]:
    """One group's pooled means, both intervals and how many populations each pools."""
    n_boot = len(two_level)
    mean = _group_means(point[group], kept[group])
    entry: dict[str, Any] = {"populations": len(group), "scores": {}}
    for k, (n, stat) in enumerate(keys):
        v = entry["scores"].setdefault(n, {})
        v[stat] = float(mean[k])
        v[f"{stat}_ci"] = _interval(two_level[:, k], n_boot)
        v[f"{stat}_ci_populations"] = _interval(pops_only[:, k], n_boot)
        v[f"{stat}_n"] = int(kept[group, k].sum())
    return entry


def _pooling_inputs(
    populations: Sequence[Sequence[dict[str, Any]]], seed: int
) -> tuple[
    list[tuple[str, dict[str, np.ndarray], np.ndarray, list[dict[str, Any]]]],
    list[str],
    list[tuple[str, str]],
]:
    """Each population as ``(family, scores, b, rows)`` (rows in results.csv's order, chance
    seeded apart per population), the scores every population has, and the statistics' keys."""
    pops = []
    for i, rows in enumerate(populations):
        rows = sorted(rows, key=_row_order)
        cols = score_columns(rows, seed + i)
        scores = {k: cols[k] for k in POOLED_SCORES if k in cols}
        scores[BEHAVIOUR] = _column(rows, "score_behaviour")
        pops.append((str(rows[0].get("family", "?")), scores, _column(rows, "b"), rows))
    names = [k for k in POOLED_SCORES if all(k in p[1] for p in pops)]
    keys = [(n, st) for n in names for st in POOLED_STATS]
    if MECHANISTIC in names and BEHAVIOUR in names:
        keys += [(MECHANISTIC, st) for st in PAIRED_STATS]
    return pops, names, keys


def _bootstrap_means(
    point: np.ndarray,
    member_draws: np.ndarray,
    kept: np.ndarray,
    members: dict[str, list[int]],
    groups: dict[str, list[int]],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per group, ``[n_boot, K]`` means of the two-level and of the populations-only draws."""
    n_pops, n_boot, n_keys = member_draws.shape
    two_level = {g: np.empty((n_boot, n_keys)) for g in groups}
    pops_only = {g: np.empty((n_boot, n_keys)) for g in groups}
    # a kept population's resample where a statistic is undefined (all members on one side of
    # 1/2, say) takes another of its resamples where it is defined instead
    fill = {
        (i, k): member_draws[i, ~np.isnan(member_draws[i, :, k]), k]
        for i in range(n_pops)
        for k in range(n_keys)
        if kept[i, k]
    }
    for r in range(n_boot):
        slots = np.concatenate([rng.choice(m, len(m)) for m in members.values()])
        draw = member_draws[slots, rng.integers(0, n_boot, len(slots))]
        for j, k in zip(*np.nonzero(np.isnan(draw) & kept[slots]), strict=True):
            draw[j, k] = rng.choice(fill[(int(slots[j]), int(k))])
        for g, group in groups.items():
            rows = kept[slots] & np.isin(slots, group)[:, None]
            two_level[g][r] = _group_means(draw, rows)
            pops_only[g][r] = _group_means(point[slots], rows)
    return two_level, pops_only
