"""Benchmark: fitting LEACE erasers as ``mesa.detect`` does, ``fit_erasers`` vs ``LeaceFitter``.

``mesa.detect`` erases each goal the decision follows at every detection hook, with erasers fit
on the probe split's activations. ``concept_erasure.LeaceFitter`` estimates and
eigendecomposes the covariance once per goal and forms several d x d products;
``mesa.probes.fit_erasers`` shares one estimate and eigendecomposition between the goals of a
hook and keeps the rest rank-k. On a trained ``coin`` policy's four detection hooks (2,000 probe
examples; goals of 54 and 3 classes; the policy of ``bench_probe_fit.py``, trained once into
``--run``), per hook: the median time of LeaceFitter for both goals (one after the other),
``fit_erasers`` for both at once and for one goal alone (all interleaved), and the largest
difference between the two erasers' outputs relative to the size of LeaceFitter's edit.
One torch thread by default, as a zoo worker runs. See ``bench_erasure.md``. ::

    python -m experiments bench_erasure --repeats 5 --threads 1

writes ``results/bench_erasure/<run>-threads<T>-<commit>.json`` (``<run>``: the policy's run
directory's name, ``coin_p0.2_s5`` by default).
"""

from __future__ import annotations

from typing import Any

import torch

from experiments.common import (
    paired_times,
    parse_assignments,
    policy_activations,
    policy_bench_args,
    write_result,
)
from mesa.probes import fit_erasers


def leace_fitter(x: torch.Tensor, labels: torch.Tensor) -> Any:
    from concept_erasure import LeaceFitter

    classes, idx = torch.unique(labels, return_inverse=True)
    z = torch.nn.functional.one_hot(idx, len(classes)).float()
    return LeaceFitter(x.shape[1], len(classes), dtype=torch.float32).update(x, z).eraser


def main(argv: list[str] | None = None) -> None:
    args = policy_bench_args(__doc__, repeats=5, threads=1, argv=argv)
    acts, labels, _ = policy_activations(
        args.run, parse_assignments(args.opt), parse_assignments(args.hp)
    )
    goals = list(labels.values())
    rows = []
    for hook, x in acts.items():
        medians, times = paired_times(
            {
                "leace_fitter_both": lambda x=x: [leace_fitter(x, y) for y in goals],
                "fit_erasers_both": lambda x=x: fit_erasers(x, goals),
                "fit_erasers_one": lambda x=x: fit_erasers(x, goals[:1]),
            },
            args.repeats,
        )
        ours = fit_erasers(x, goals)
        rel_diff = []
        for (eraser, _), y in zip(ours, goals, strict=True):
            ref = leace_fitter(x, y)(x)
            rel_diff.append(float((eraser(x) - ref).norm() / (x - ref).norm()))
        row = {
            "hook": hook,
            "dim": x.shape[1],
            "classes": [len(torch.unique(y)) for y in goals],
            "seconds": medians,
            "all_seconds": times,
            "speedup_both": medians["leace_fitter_both"] / medians["fit_erasers_both"],
            "relative_difference": rel_diff,
        }
        print(
            f"{hook} (d={row['dim']}): LeaceFitter {medians['leace_fitter_both']:.3f} s, "
            f"fit_erasers {medians['fit_erasers_both']:.3f} s (one goal "
            f"{medians['fit_erasers_one']:.3f} s), {row['speedup_both']:.2f}x, rel. diff "
            + ", ".join(f"{d:.1e}" for d in rel_diff),
            flush=True,
        )
        rows.append(row)
    write_result(
        "bench_erasure",
        f"{args.run.name}-threads{args.threads}",
        {"run": str(args.run), "rows": rows, "repeats": args.repeats, "threads": args.threads},
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    speedups = [r["speedup_both"] for r in result["rows"]]
    return {
        "LeaceFitter / fit_erasers, min": min(speedups),
        "max": max(speedups),
        "max relative difference": max(max(r["relative_difference"]) for r in result["rows"]),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Medians of {result['repeats']} interleaved repeats, {result['threads']} torch "
        "thread(s), seconds.",
        "",
        "| hook | d | classes | LeaceFitter, both goals | fit_erasers, both | fit_erasers, one "
        "| speed-up (both) | relative difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        s = r["seconds"]
        lines.append(
            f"| `{r['hook']}` | {r['dim']} | {', '.join(map(str, r['classes']))} | "
            f"{s['leace_fitter_both']:.3f} | {s['fit_erasers_both']:.3f} | "
            f"{s['fit_erasers_one']:.3f} | {r['speedup_both']:.2f}x | "
            + ", ".join(f"{d:.1e}" for d in r["relative_difference"])
            + " |"
        )
    return "\n".join(lines)
