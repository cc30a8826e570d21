"""Diagnostic: what ``LinearProbe``'s stopping tolerance costs and buys in ``mesa.detect``.

For each given zoo member it fits every decodability probe ``detect`` fits (each
hook, each goal with two or more values; the same split) at several values of ``tol``, and
records the fit time (one torch thread, as in a zoo worker) and how far each held-out accuracy
lies from a long reference fit (``tol`` 1e-10, 2,000 iterations). The default, 1e-6, was fixed
before this was measured; the script changes nothing in mesa. See ``probe_tolerance.md``. ::

    python -m experiments probe_tolerance runs/bench_zoo_s8c/coin/members/coin_p0_s8 ...

writes ``results/probe_tolerance/<families>-<n>members-<commit>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.common import detection_data, write_result
from mesa.probes import LinearProbe
from mesa.probes.sweep import split_indices

TOLS = (1e-6, 3e-6, 1e-5)


def member(path: Path) -> dict[str, Any]:
    acts, labels_by_goal, groups = detection_data(path)
    seconds = dict.fromkeys(TOLS, 0.0)
    deviation: dict[float, list[float]] = {t: [] for t in TOLS}
    for goal_labels in labels_by_goal.values():
        labels = goal_labels.numpy()
        if len(np.unique(labels)) < 2:  # a constant goal: detect fits no probe
            continue
        train, test = split_indices(
            len(labels), None if groups is None else groups.numpy(), 0.25, 0
        )
        for a in acts.values():
            x, y = a.numpy(), labels
            ref = LinearProbe(max_iter=2000, tol=1e-10).fit(x[train], y[train])
            ref_acc = ref.score(x[test], y[test])
            for tol in TOLS:
                t0 = time.perf_counter()
                probe = LinearProbe(max_iter=100, tol=tol).fit(x[train], y[train])
                seconds[tol] += time.perf_counter() - t0
                deviation[tol].append(abs(probe.score(x[test], y[test]) - ref_acc))
    return {
        str(tol): {
            "fit_seconds": seconds[tol],
            "max_abs_deviation": max(deviation[tol]),
            "mean_abs_deviation": float(np.mean(deviation[tol])),
            "fits": len(deviation[tol]),
        }
        for tol in TOLS
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("members", nargs="+", type=Path, help="zoo member directories")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for path in args.members:
        rows[path.name] = member(path)
        print(
            path.name,
            "; ".join(
                f"tol {t}: {r['fit_seconds']:.2f} s, max dev {r['max_abs_deviation']:.4f}"
                for t, r in rows[path.name].items()
            ),
            flush=True,
        )
    families = sorted({path.name.split("_p")[0] for path in args.members})
    write_result(
        "probe_tolerance",
        f"{'-'.join(families)}-{len(args.members)}members",
        {"member_dirs": [str(p) for p in args.members], "members": rows, "threads": 1},
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"members": len(result["members"])}
    for tol in next(iter(result["members"].values())):
        rows = [m[tol] for m in result["members"].values()]
        out[f"tol {tol}: fit s (all)"] = sum(r["fit_seconds"] for r in rows)
        out[f"tol {tol}: max deviation"] = max(r["max_abs_deviation"] for r in rows)
    return out


def table(result: dict[str, Any]) -> str:
    tols = list(next(iter(result["members"].values())))
    lines = [
        "Fit seconds of every decodability probe of a member (one torch thread), and the "
        "largest distance of a held-out accuracy from the long reference fit's.",
        "",
        "| member | " + " | ".join(f"tol {t}: s, max dev" for t in tols) + " |",
        "|---|" + "---|" * len(tols),
    ]
    for name, m in result["members"].items():
        cells = " | ".join(
            f"{m[t]['fit_seconds']:.2f}, {m[t]['max_abs_deviation']:.4f}" for t in tols
        )
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
