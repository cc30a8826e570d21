"""A family's verdict bands: where its score crosses b = 1/3 and 2/3 on development seeds.

The verdict reads its score by bands: ``spurious`` at or below 1/3, ``true`` at or above 2/3,
``mixed`` between. A score that ranks a family's members well but does not read on the scale of
the OOD preference ``b`` misses b's bands (keys' ``probe_subspace`` reads above b on its
development seeds: mean minus b +0.20, so members with b 0.18-0.40 read ``mixed``). This fits, on
development members (seeds < 100), ``logit(b) = a + c * logit(s)`` by least squares (``s`` and
``b`` clipped to [0.01, 0.99]; members without a score left out; two parameters, so that twenty
or thirty members fix it) and reports the scores where the fit crosses b = 1/3 and b = 2/3,
rounded to two decimals: the bands a family declares (:attr:`mesa.Task.verdict_bands`). Fitted
and counted on the same members, the bands flatter themselves; so each development member is
also read by bands fitted on the others (leave one out). The same fit is made for the
behavioural score, so that the baseline's verdicts are judged by bands of their own too, not
only by the default's.

With ``--judge`` zoos (test seeds, run after the family's bands were fixed in its task), the
verdict's score is read by the bands the family's task declares (what ``mesa detect`` reads it
by now), and each score by the default bands and by the development fit's, beside the zoos'
recorded verdicts; and, beside every set's ranking, the baselines (probe decodability,
predict-from-p, in-distribution success, chance). ::

    python -m experiments verdict_bands runs/dev_zoo/keys runs/dev_within_p/keys --what keys-dev
    python -m experiments verdict_bands runs/dev_zoo/keys runs/dev_within_p/keys \\
        --judge runs/test_zoo_200/keys runs/within_p_220/keys --what keys-test

writes ``results/verdict_bands/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import fmt, write_result

#: The scores fitted, by their results.csv column.
SCORES = {"verdict's score": "score", "behavioural score": "score_behaviour"}
CLIP = 0.01


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, CLIP, 1 - CLIP)
    return np.log(x / (1 - x))


def fit_bands(s: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """The fit of the module docstring over the members with a score and a measured ``b``: its
    intercept and slope, the range of scores it saw, and the bands ``(s at b = 1/3, s at b =
    2/3)``, or None with ``why`` where there are none (under three members; a fit that does not
    rise with ``s``: a score that does not rank b has no bands)."""
    keep = np.isfinite(s) & np.isfinite(b)
    n = int(keep.sum())
    out: dict[str, Any] = {"n": n, "intercept": None, "slope": None, "bands": None, "why": ""}
    if n < 3:
        return {**out, "why": f"{n} members with a score and a measured b: at least 3 are needed"}
    x, y = _logit(s[keep]), _logit(b[keep])
    a, c = np.linalg.lstsq(np.vstack([np.ones_like(x), x]).T, y, rcond=None)[0]
    out.update(
        intercept=float(a), slope=float(c), range=[float(s[keep].min()), float(s[keep].max())]
    )
    if not c > 0:
        return {**out, "why": "the fit does not rise with the score"}

    def at(target: float) -> float:
        z = (np.log(target / (1 - target)) - a) / c
        return round(float(1 / (1 + np.exp(-z))), 2)

    return {**out, "bands": [at(1 / 3), at(2 / 3)]}


def leave_one_out(s: np.ndarray, b: np.ndarray) -> dict[str, int]:
    """Each member's verdict by the bands fitted on the others, counted against behaviour: how
    well the fit's bands carry to a member they were not fitted on."""
    from experiments.internal_ood import calibrated

    verdicts = []
    for i in np.flatnonzero(np.isfinite(s) & np.isfinite(b)):
        others = np.arange(len(s)) != i
        bands = fit_bands(s[others], b[others])["bands"]
        if bands is not None:
            verdicts.append((s[i], b[i], tuple(bands)))
    counts = {"match": 0, "wrong": 0, "n": 0}
    for x, bb, bands in verdicts:
        one = calibrated(np.array([x]), np.array([bb]), bands)
        counts = {k: counts[k] + one[k] for k in counts}
    return counts


def read_rows(zoo: Path) -> list[dict[str, str]]:
    with (zoo / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r.get(key) or "nan") for r in rows], float)


def judge(
    rows: list[dict[str, str]], fits: dict[str, dict[str, Any]], declared: tuple[float, float]
) -> dict[str, Any]:
    """On one set of members: the recorded verdicts, each score's verdicts by the default bands
    and by its fitted ones, and the verdict's score by the bands its family declares now."""
    from experiments.internal_ood import calibrated
    from mesa.zoo.agreement import _auroc, _spearman, calibration

    b = _column(rows, "b")
    out: dict[str, Any] = {"members": len(rows), "recorded verdicts": calibration(rows)}
    for label, column in SCORES.items():
        s = _column(rows, column)
        keep = np.isfinite(s) & np.isfinite(b)
        bands = fits[label]["bands"]
        out[label] = {
            "default bands": calibrated(s[keep], b[keep]),
            "fitted bands": calibrated(s[keep], b[keep], tuple(bands)) if bands else None,
            "mean minus b": float(np.mean(s[keep] - b[keep])) if keep.any() else None,
            "spearman": _spearman(s[keep], b[keep]),
            "auroc": _auroc(s[keep], b[keep]),
        }
        if column == "score":
            out[label]["declared bands"] = calibrated(s[keep], b[keep], declared)
    out["baselines"] = baselines(rows, b)
    return out


#: The baselines ranked beside the scores (names of :func:`mesa.zoo.agreement.score_columns`).
BASELINES = ("probe", "predict from p", "in-dist success", "chance")


def baselines(rows: list[dict[str, str]], b: np.ndarray) -> dict[str, dict[str, float]]:
    """Spearman and AUROC (b > 1/2) of the baselines that need no internals-based verdict:
    probe decodability, predict-from-p, in-distribution success and a seeded random score, as
    the zoo ranks them."""
    from mesa.zoo.agreement import _auroc, _spearman, score_columns

    columns = score_columns(rows)
    out = {}
    for name in BASELINES:
        s = columns.get(name, np.full(len(rows), np.nan))
        keep = np.isfinite(s) & np.isfinite(b)
        out[name] = {"spearman": _spearman(s[keep], b[keep]), "auroc": _auroc(s[keep], b[keep])}
    return out


def _read_zoos(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Every zoo's rows, checked before any work: finished, each zoo once, development seeds
    to fit and test seeds to judge, probe inputs, one family."""
    sets: dict[str, list[dict[str, str]]] = {}
    for zoo in [*args.zoos, *args.judge]:
        if not (zoo / "results.csv").is_file():
            ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
        if str(zoo.resolve()) in {str(Path(z).resolve()) for z in sets}:
            ap.error(f"{zoo} is named twice: each zoo's members count once")
        sets[str(zoo)] = read_rows(zoo)
        try:
            test = [int(float(r["seed"])) >= 100 for r in sets[str(zoo)]]
        except (KeyError, TypeError, ValueError):
            ap.error(f"{zoo}/results.csv has a row without a seed")
        if zoo in args.zoos and any(test):
            ap.error(f"{zoo} holds test seeds (>= 100): bands are fitted on development seeds")
        if zoo in args.judge and not all(test):
            ap.error(f"{zoo} holds development seeds (< 100): judge on test seeds only")
        config = zoo / "zoo_config.json"
        if config.is_file() and json.loads(config.read_text()).get("inputs", "probe") != "probe":
            ap.error(f"{zoo} was detected with training inputs: bands here are for probe inputs")
    families = {r["family"] for rows in sets.values() for r in rows}
    if len(families) != 1:
        ap.error(
            f"the zoos hold {len(families)} families ({', '.join(sorted(families))}): "
            "give zoos of one family"
        )
    return {"family": families.pop(), "sets": sets}


def main(argv: list[str] | None = None) -> None:
    from mesa.detection.verdict import verdict_bands
    from mesa.tasks import get_task_class

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", type=Path, nargs="+", help="finished development zoos of one family")
    ap.add_argument("--judge", type=Path, nargs="+", default=[], help="finished test zoos")
    ap.add_argument("--what", required=True, help="a name for the result file")
    args = ap.parse_args(argv)
    read = _read_zoos(ap, args)
    sets, family = read["sets"], read["family"]
    declared = verdict_bands(get_task_class(family), "probe")
    dev = [r for z in args.zoos for r in sets[str(z)]]
    b = _column(dev, "b")
    fits = {label: fit_bands(_column(dev, col), b) for label, col in SCORES.items()}
    for label, col in SCORES.items():
        fits[label]["leave one out"] = leave_one_out(_column(dev, col), b)
    out: dict[str, Any] = {"family": family, "declared": list(declared), "fits": fits}
    out["sets"] = {name: judge(rows, fits, declared) for name, rows in sets.items()}
    out["sets"]["development, all"] = judge(dev, fits, declared)
    if args.judge:
        test = [r for z in args.judge for r in sets[str(z)]]
        out["sets"]["test, all"] = judge(test, fits, declared)
    print(table(out))
    write_result("verdict_bands", args.what, out)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {label: f"bands {f['bands']}" for label, f in result["fits"].items()}
    if "test, all" in result["sets"]:
        out["test, by the family's bands"] = _count(
            result["sets"]["test, all"]["verdict's score"]["declared bands"]
        )
    return out


def _count(c: dict[str, Any] | None) -> str:
    return "n/a" if c is None else f"{c['match']} of {c['n']} ({c['wrong']})"


def _rank(a: dict[str, Any]) -> str:
    return f"{fmt(a['spearman'])} / {fmt(a['auroc'])}"


def table(result: dict[str, Any]) -> str:
    lines = [
        "| score | development members | fit logit(b) = a + c logit(s): a, c | bands (s at b = "
        "1/3, 2/3) | "
        "leave one out: matching (wrong) |",
        "|---|---|---|---|---|",
    ]
    for label, f in result["fits"].items():
        bands = f"none ({f['why']})" if f["bands"] is None else ", ".join(map(fmt, f["bands"]))
        lines.append(
            f"| {label} | {f['n']} | {fmt(f['intercept'])}, {fmt(f['slope'])} | {bands} | "
            f"{_count(f['leave one out'])} |"
        )
    lo, hi = result["declared"]
    lines += [
        "",
        f"The family's bands, as its task declares them: spurious <= {fmt(lo)}, true >= "
        f"{fmt(hi)}. Verdicts matching behaviour (wrong side of 1/2), and ranking (Spearman with "
        "b / AUROC for b > 1/2):",
        "",
        "| members of | n | recorded verdicts | verdict's score by 1/3, 2/3 | by the family's "
        "bands | by its fit's | mean minus b | ranking | behavioural score by 1/3, 2/3 | by its "
        "fit's | ranking |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, j in result["sets"].items():
        v, h = j["verdict's score"], j["behavioural score"]
        lines.append(
            f"| {name} | {j['members']} | {_count(j['recorded verdicts'])} | "
            f"{_count(v['default bands'])} | {_count(v['declared bands'])} | "
            f"{_count(v['fitted bands'])} | {fmt(v['mean minus b'])} | {_rank(v)} | "
            f"{_count(h['default bands'])} | {_count(h['fitted bands'])} | {_rank(h)} |"
        )
    with_baselines = [(n, j) for n, j in result["sets"].items() if "baselines" in j]
    if with_baselines:  # results from before the baselines were recorded have none
        lines += [
            "",
            "Baselines beside them (Spearman / AUROC; within one p, predict-from-p is constant):",
            "",
            "| members of | " + " | ".join(BASELINES) + " |",
            "|---|" + "---|" * len(BASELINES),
        ]
        for name, j in with_baselines:
            cells = [_rank(j["baselines"][k]) for k in BASELINES]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
