"""DAS (opt-in) on finished development zoos: what it costs beside the default methods, and
how its score agrees with OOD behaviour.

``das`` learns a ``k``-dimensional subspace per goal and hook by gradient descent (the model
frozen), so it is not in ``mesa detect``'s default set (``--methods das`` adds it). Per member,
in one process and one torch thread (as a zoo worker runs; ``--workers`` members at once), side
by side:

- ``default``: ``mesa.detect`` with the default methods (its setup included), the time a zoo
  spends on detection;
- ``das``: the ``das`` method alone on the same shared measurement (setup excluded): what
  ``--methods das`` adds;

each also as a share of the member's recorded training time. Beside the times, DAS's score
(``A_true+ / (A_true+ + A_spur+)``, absolute held-out effects) against the member's OOD
preference ``b``:
Spearman, AUROC (b > 1/2), verdicts by 1/3 and 2/3, next to the zoo's verdict score and the
behavioural score (``results.csv``). It refuses seeds >= 100: a method that is not the rule is
studied on development seeds. It writes nothing into the zoos. ::

    python -m experiments das_cost runs/dev_within_p/maze --workers 2 --what maze-dev-within-p

writes ``results/das_cost/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import fmt, write_result
from experiments.internal_ood import score_agreement

#: The recorded scores set beside DAS's, by their results.csv column.
BESIDE = {"verdict's score": "score", "behavioural score": "score_behaviour"}


def measure(member: Path) -> dict[str, Any]:
    """One member's times and DAS result (see the module docstring)."""
    import mesa
    from mesa.detection import Detection
    from mesa.detection.methods.das import DistributedAlignmentSearch
    from mesa.io import read_json
    from mesa.runs import load_run
    from mesa.zoo.runner import TIMINGS

    run = load_run(member)
    train_s = float(read_json(member / TIMINGS)["train"]["seconds"])
    t0 = time.perf_counter()
    mesa.detect(run.model, run.task)
    default_s = time.perf_counter() - t0
    d = Detection(run.model, run.task)
    t0 = time.perf_counter()
    das = DistributedAlignmentSearch().run(d)
    das_s = time.perf_counter() - t0
    return {
        "train_s": train_s,
        "default_s": default_s,
        "das_s": das_s,
        "das": das.score,
        "das_effect": das.effect,
        "note": das.note,
    }


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def zoo_result(zoo: Path, rows: list[dict[str, str]], workers: int) -> dict[str, Any]:
    """Every member of ``rows`` measured, ``workers`` at a time (each in its own process, one
    torch thread: a member's two times are taken side by side in one process)."""
    from tqdm.auto import tqdm

    paths = [zoo / "members" / r["member"] for r in rows]
    with ProcessPoolExecutor(workers, get_context("spawn"), initializer=_one_thread) as pool:
        measured = list(tqdm(pool.map(measure, paths), total=len(paths), desc=zoo.name))
    members = [
        {
            "member": r["member"],
            "b": float(r["b"]),
            **{k: float(r.get(c) or "nan") for k, c in BESIDE.items()},
            **m,
        }
        for r, m in zip(rows, measured, strict=True)
    ]
    return {"members": members, **summary(members, rows[0]["family"])}


def summary(members: list[dict[str, Any]], family: str) -> dict[str, Any]:
    """Median times and shares, and each score's agreement with b (the verdict's score read by
    the family's bands, as the verdict reads it; DAS's and behaviour's by 1/3 and 2/3)."""
    from mesa.detection.verdict import verdict_bands
    from mesa.tasks import get_task_class

    b = np.array([m["b"] for m in members])
    own = verdict_bands(get_task_class(family), "probe")

    def median(key: str) -> float:
        return statistics.median(m[key] for m in members)

    def column(key: str) -> np.ndarray:
        return np.array([np.nan if m[key] is None else m[key] for m in members], float)

    return {
        "default_s_median": median("default_s"),
        "das_s_median": median("das_s"),
        "default_share_median": statistics.median(m["default_s"] / m["train_s"] for m in members),
        "das_share_median": statistics.median(m["das_s"] / m["train_s"] for m in members),
        "das_over_default_median": statistics.median(m["das_s"] / m["default_s"] for m in members),
        "agreement": {
            k: score_agreement(column(k), b, bands=own if k == "verdict's score" else None)
            for k in ("das", *BESIDE)
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", type=Path, nargs="+", help="finished zoos (development seeds)")
    ap.add_argument("--what", required=True, help="a name for the result file")
    ap.add_argument("--members", type=int, help="per zoo, this many members spread over it")
    ap.add_argument("--workers", type=int, default=1, help="members measured at once")
    args = ap.parse_args(argv)
    if (args.members is not None and args.members < 1) or args.workers < 1:
        ap.error("--members and --workers must be at least 1")
    zoos = {}
    for zoo in args.zoos:  # every zoo checked before any work
        if not (zoo / "results.csv").is_file():
            ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
        with (zoo / "results.csv").open(newline="") as f:
            zoos[zoo] = list(csv.DictReader(f))
        if any(int(float(m["seed"] or -1)) >= 100 for m in zoos[zoo]):
            ap.error(f"{zoo} holds test seeds (>= 100): this is for development seeds only")
        if args.members is not None and args.members < len(zoos[zoo]):
            pick = np.linspace(0, len(zoos[zoo]) - 1, args.members).round().astype(int)
            zoos[zoo] = [zoos[zoo][i] for i in pick]
    out = {
        "threads": 1,
        "workers": args.workers,
        "zoos": {str(z): zoo_result(z, rows, args.workers) for z, rows in zoos.items()},
    }
    print(table(out))
    write_result("das_cost", args.what, out)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        z: f"DAS {fmt(r['das_share_median'] * 100, 1)}% of training, AUROC "
        f"{fmt(r['agreement']['das']['auroc'])}"
        for z, r in result["zoos"].items()
    }


def _agree(a: dict[str, Any]) -> str:
    v = a["verdicts"]
    return f"{fmt(a['spearman'])} / {fmt(a['auroc'])}; {v['match']} of {v['n']} ({v['wrong']})"


def table(result: dict[str, Any]) -> str:
    lines = [
        "| members of | members | detect, default methods: s (share of training) | das alone: s "
        "(share) | das / default | DAS: Spearman / AUROC; verdicts (wrong) | verdict's score | "
        "behavioural score |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for z, r in result["zoos"].items():
        a = r["agreement"]
        lines.append(
            f"| {Path(z).as_posix()} | {len(r['members'])} | {fmt(r['default_s_median'], 1)} "
            f"({fmt(r['default_share_median'] * 100, 1)}%) | {fmt(r['das_s_median'], 1)} "
            f"({fmt(r['das_share_median'] * 100, 1)}%) | {fmt(r['das_over_default_median'], 1)}x "
            f"| {_agree(a['das'])} | {_agree(a[next(iter(BESIDE))])} | "
            f"{_agree(a['behavioural score'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
