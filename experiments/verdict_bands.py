"""A family's verdict bands: where its score crosses b = 1/3 and 2/3 on development seeds.

The verdict reads its score by bands: ``spurious`` at or below 1/3, ``true`` at or above 2/3,
``mixed`` between. A score that ranks a family's members well but does not read on the scale of
the OOD preference ``b`` misses b's bands (keys' ``probe_subspace`` reads above b on its
development seeds: mean minus b +0.16, so members with b 0.18-0.26 read ``mixed``). This fits, on
development members (seeds < 100), ``logit(b) = a + c * logit(s)`` by least squares (``s`` and
``b`` clipped to [0.01, 0.99]; members without a score left out; two parameters, so that twenty
or thirty members fix it) and reports the scores where the fit crosses b = 1/3 and b = 2/3,
rounded to two decimals: the bands a family declares (:attr:`mesa.Task.verdict_bands`). The
same fit is made for the behavioural score, so that the baseline's verdicts are judged by bands
of their own too, not only by the default's.

With ``--judge`` zoos (test seeds, run after the family's bands were fixed in its task), each
score's verdicts are counted against behaviour by the default bands and by the development
fit's, beside the zoos' recorded verdicts (what ``mesa detect`` said). ::

    python -m experiments verdict_bands runs/dev_zoo/keys runs/dev_within_p/keys --what keys-dev
    python -m experiments verdict_bands runs/dev_zoo/keys runs/dev_within_p/keys \\
        --judge runs/test_zoo_200/keys runs/within_p_220/keys --what keys-test

writes ``results/verdict_bands/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
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
    """The fit of the module docstring over the members where ``s`` is defined: its intercept
    and slope, and the bands ``(s at b = 1/3, s at b = 2/3)``, or None where the fit does not
    rise with ``s`` (a score that does not rank b has no bands)."""
    keep = ~np.isnan(s)
    x, y = _logit(s[keep]), _logit(b[keep])
    a, c = np.linalg.lstsq(np.vstack([np.ones_like(x), x]).T, y, rcond=None)[0]
    if keep.sum() < 3 or not c > 0:
        return {"n": int(keep.sum()), "intercept": float(a), "slope": float(c), "bands": None}

    def at(target: float) -> float:
        z = (np.log(target / (1 - target)) - a) / c
        return round(float(1 / (1 + np.exp(-z))), 2)

    return {
        "n": int(keep.sum()),
        "intercept": float(a),
        "slope": float(c),
        "bands": [at(1 / 3), at(2 / 3)],
    }


def read_rows(zoo: Path) -> list[dict[str, str]]:
    with (zoo / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r.get(key) or "nan") for r in rows], float)


def judge(rows: list[dict[str, str]], fits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """On one set of members: the recorded verdicts, and each score's verdicts by the default
    bands and by its fitted ones, against behaviour."""
    from experiments.internal_ood import calibrated
    from mesa.zoo.agreement import _auroc, _spearman, calibration

    b = _column(rows, "b")
    out: dict[str, Any] = {"members": len(rows), "recorded verdicts": calibration(rows)}
    for label, column in SCORES.items():
        s = _column(rows, column)
        keep = ~np.isnan(s)
        bands = fits[label]["bands"]
        out[label] = {
            "default bands": calibrated(s[keep], b[keep]),
            "fitted bands": calibrated(s[keep], b[keep], tuple(bands)) if bands else None,
            "mean minus b": float(np.mean(s[keep] - b[keep])) if keep.any() else None,
            "spearman": _spearman(s[keep], b[keep]),
            "auroc": _auroc(s[keep], b[keep]),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", type=Path, nargs="+", help="finished development zoos of one family")
    ap.add_argument("--judge", type=Path, nargs="*", default=[], help="finished test zoos")
    ap.add_argument("--what", required=True, help="a name for the result file")
    args = ap.parse_args(argv)
    sets: dict[str, list[dict[str, str]]] = {}
    for zoo in [*args.zoos, *args.judge]:  # every zoo checked before any work
        if not (zoo / "results.csv").is_file():
            ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
        sets[str(zoo)] = read_rows(zoo)
        test = [int(float(r["seed"])) >= 100 for r in sets[str(zoo)]]
        if zoo in args.zoos and any(test):
            ap.error(f"{zoo} holds test seeds (>= 100): bands are fitted on development seeds")
        if zoo in args.judge and not all(test):
            ap.error(f"{zoo} holds development seeds (< 100): judge on test seeds only")
    families = {r["family"] for rows in sets.values() for r in rows}
    if len(families) != 1:
        ap.error(f"the zoos hold {len(families)} families ({', '.join(sorted(families))}): one")
    dev = [r for z in args.zoos for r in sets[str(z)]]
    b = _column(dev, "b")
    fits = {label: fit_bands(_column(dev, col), b) for label, col in SCORES.items()}
    out: dict[str, Any] = {"family": families.pop(), "fits": fits, "sets": {}}
    for name, rows in [*sets.items(), ("development, all", dev)]:
        out["sets"][name] = judge(rows, fits)
    if args.judge:
        out["sets"]["test, all"] = judge([r for z in args.judge for r in sets[str(z)]], fits)
    print(table(out))
    write_result("verdict_bands", args.what, out)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {label: f"bands {f['bands']}" for label, f in result["fits"].items()}


def _count(c: dict[str, Any] | None) -> str:
    return "n/a" if c is None else f"{c['match']} of {c['n']} ({c['wrong']})"


def table(result: dict[str, Any]) -> str:
    lines = [
        "| score | development members | fit: intercept, slope | bands (s at b = 1/3, 2/3) |",
        "|---|---|---|---|",
    ]
    for label, f in result["fits"].items():
        bands = (
            "none (the fit does not rise)"
            if f["bands"] is None
            else f"{fmt(f['bands'][0])}, {fmt(f['bands'][1])}"
        )
        lines.append(f"| {label} | {f['n']} | {fmt(f['intercept'])}, {fmt(f['slope'])} | {bands} |")
    lines += [
        "",
        "Verdicts matching behaviour (wrong side of 1/2):",
        "",
        "| members of | n | recorded verdicts | verdict's score, bands 1/3, 2/3 | by its fitted "
        "bands | mean minus b | behavioural score, bands 1/3, 2/3 | by its fitted bands |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, j in result["sets"].items():
        v, h = j["verdict's score"], j["behavioural score"]
        lines.append(
            f"| {name} | {j['members']} | {_count(j['recorded verdicts'])} | "
            f"{_count(v['default bands'])} | {_count(v['fitted bands'])} | "
            f"{fmt(v['mean minus b'])} | {_count(h['default bands'])} | "
            f"{_count(h['fitted bands'])} |"
        )
    ranked = [(n, j) for n, j in result["sets"].items() if "auroc" in j["verdict's score"]]
    if ranked:  # results from before ranking was recorded have none
        lines += [
            "",
            "Ranking (Spearman with b / AUROC for b > 1/2):",
            "",
            "| members of | verdict's score | behavioural score |",
            "|---|---|---|",
        ]
        for name, j in ranked:
            v, h = j["verdict's score"], j["behavioural score"]
            lines.append(
                f"| {name} | {fmt(v['spearman'])} / {fmt(v['auroc'])} | "
                f"{fmt(h['spearman'])} / {fmt(h['auroc'])} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
