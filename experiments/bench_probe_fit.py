"""Benchmark: fitting linear probes, mesa's LinearProbe (torch L-BFGS) vs scikit-learn.

Two kinds of data, the same C for every solver:

- ``independent``: 20,000 x 128 Gaussian features with class-dependent means, binary and
  81-class, 25% held out (well conditioned: every solver converges);
- ``policy``: what ``mesa.detect`` probes: a trained ``coin`` policy's activations at its four
  detection hooks on the probe split (2,000 examples, split by layout), for both goals (54 and 3
  classes), and a binary question a probe sweep might ask of them (is the coin in the left
  half?). The policy is trained once (p = 0.2, seed 5, about a minute) into ``--run`` and reused
  after.

Each solver fits the same objective, ``C * sum(cross-entropy) + ||W||^2 / 2``, so besides fit
time (median of repeats, solvers interleaved) and held-out accuracy the table gives the objective
each fit reached per training example (multiclass only: scikit-learn's binary form penalises one
weight vector, a different objective) beside a long reference fit (tol 1e-10, 1000 iterations):
the closer to it, the better converged; every row gives the reference's held-out accuracy.
Solvers: ``LinearProbe(solver="torch")`` with ``precondition="pca"`` and ``"diagonal"``, and
scikit-learn's ``LogisticRegression`` (lbfgs, 1,000 iterations, its default tolerance) and
``LinearProbe(solver="sklearn")`` as mesa's sweeps ran it for binary labels until the torch
solver became the default for them (100 iterations, tol 1e-6).
See ``bench_probe_fit.md``. ::

    python -m experiments bench_probe_fit --repeats 3 --threads 2

writes ``results/bench_probe_fit/<run>-threads<T>-<commit>.json`` (``<run>``: the policy's run
directory's name, ``coin_p0.2_s5`` by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import (
    paired_times,
    parse_assignments,
    policy_activations,
    policy_bench_args,
    write_result,
)
from mesa.probes import LinearProbe

C = 1.0


def independent(n_classes: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, 128)) * 0.4
    y = rng.integers(0, n_classes, 20_000)
    x = means[y] + rng.normal(size=(20_000, 128))
    return x[:15_000], y[:15_000], x[15_000:], y[15_000:]


def policy_cases(run: Path, args: Any) -> list[tuple[str, int, tuple[np.ndarray, ...]]]:
    """(hook and goal, classes, train/test data) for each probe ``mesa.detect`` fits, and for a
    binary question of the kind a user's probe sweep asks: is the coin in the left half?"""
    from mesa.probes.sweep import split_indices
    from mesa.runs import load_run

    acts, labels, groups = policy_activations(
        run, parse_assignments(args.opt), parse_assignments(args.hp)
    )
    train, test = split_indices(len(groups), groups.numpy(), 0.25, 0)
    width = load_run(run).task.config.width
    labels["coin left"] = (labels["true"] % width < width // 2).long()
    cases = []
    for goal, y in labels.items():
        for h, a in acts.items():
            x, yy = a.double().numpy(), y.numpy()
            cases.append(
                (f"{h} {goal}", len(np.unique(yy)), (x[train], yy[train], x[test], yy[test]))
            )
    return cases


def objective(coef: np.ndarray, intercept: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """``C * sum(cross-entropy) + ||W||^2 / 2`` per example, for any solver's multiclass fit."""
    logits = x @ coef.T + intercept
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    ce = -log_p[np.arange(len(y)), np.searchsorted(np.unique(y), y)].sum()
    return float((C * ce + 0.5 * (coef * coef).sum()) / len(y))


def main(argv: list[str] | None = None) -> None:
    from sklearn.linear_model import LogisticRegression

    args = policy_bench_args(__doc__, repeats=3, threads=2, argv=argv)
    solvers: dict[str, Any] = {
        "torch_pca": lambda: LinearProbe(C=C, max_iter=200, solver="torch", precondition="pca"),
        "torch_diagonal": lambda: LinearProbe(
            C=C, max_iter=200, solver="torch", precondition="diagonal"
        ),
        "sklearn": lambda: LogisticRegression(C=C, max_iter=1000),
        # scikit-learn as mesa's sweeps ran it for binary labels until torch became their default
        "sklearn_100": lambda: LinearProbe(C=C, max_iter=100, solver="sklearn"),
    }
    cases = [
        ("independent", 2, independent(2)),
        ("independent", 81, independent(81)),
        *(("policy " + name, k, data) for name, k, data in policy_cases(args.run, args)),
    ]
    LinearProbe(max_iter=5).fit(*cases[1][2][:2])  # warm torch up outside the timings
    rows = []
    for data, n_classes, (xtr, ytr, xte, yte) in cases:
        fitted: dict[str, Any] = {}

        def fit_with(
            name: str, make: Any, fitted: dict[str, Any] = fitted, xtr: Any = xtr, ytr: Any = ytr
        ) -> Any:
            def fit() -> None:
                fitted[name] = make().fit(xtr, ytr)

            return fit

        medians, times = paired_times(
            {name: fit_with(name, make) for name, make in solvers.items()}, args.repeats
        )
        row: dict[str, Any] = {"data": data, "n_classes": n_classes, "shape": list(xtr.shape)}
        ref = LinearProbe(C=C, max_iter=1000, tol=1e-10, solver="torch").fit(xtr, ytr)
        row["reference_accuracy"] = float(ref.score(xte, yte))
        if n_classes > 2:
            row["reference_objective"] = objective(ref.coef_, ref.intercept_, xtr, ytr)
        for name, est in fitted.items():
            row[name] = {
                "seconds": medians[name],
                "all_seconds": times[name],
                "iterations": int(np.max(est.n_iter_)),
                "accuracy": float(est.score(xte, yte)),
                "objective": objective(est.coef_, est.intercept_, xtr, ytr)
                if n_classes > 2
                else None,
            }
        row["speedup_pca_vs_sklearn"] = medians["sklearn"] / medians["torch_pca"]
        row["speedup_diagonal_vs_sklearn"] = medians["sklearn"] / medians["torch_diagonal"]
        print(
            f"{data} ({n_classes}): "
            + ", ".join(
                f"{n} {row[n]['seconds']:.2f} s acc {row[n]['accuracy']:.3f} "
                f"obj {row[n]['objective']} it {row[n]['iterations']}"
                for n in solvers
            )
            + f"; reference obj {row.get('reference_objective')}"
            + f" acc {row['reference_accuracy']:.3f}",
            flush=True,
        )
        rows.append(row)
    write_result(
        "bench_probe_fit",
        f"{args.run.name}-threads{args.threads}",
        {"run": str(args.run), "rows": rows, "repeats": args.repeats, "threads": args.threads},
    )


SOLVERS = ("torch_pca", "torch_diagonal", "sklearn", "sklearn_100")


def headline(result: dict[str, Any]) -> dict[str, Any]:
    policy = [r for r in result["rows"] if r["data"].startswith("policy ")]
    speedups = [r["speedup_diagonal_vs_sklearn"] for r in policy] or [0.0]
    return {
        "cases": len(result["rows"]),
        "policy activations: torch (diagonal) speed-up over scikit-learn, min": min(speedups),
        "max": max(speedups),
    }


def table(result: dict[str, Any]) -> str:
    def cell(s: dict[str, Any]) -> str:
        out = f"{s['seconds']:.2f} s, {s['iterations']} it, acc {s['accuracy']:.3f}"
        return out + (f", obj {s['objective']:.4f}" if s.get("objective") is not None else "")

    lines = [
        "| data | classes | torch, PCA | torch, diagonal | scikit-learn (1,000 it) | "
        '`LinearProbe(solver="sklearn")` (100 it, tol 1e-6) | reference |',
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ref = f"acc {r['reference_accuracy']:.3f}"
        if r.get("reference_objective") is not None:
            ref += f", obj {r['reference_objective']:.4f}"
        solvers = " | ".join(cell(r[name]) for name in SOLVERS)
        data = r["data"].removeprefix("policy ")
        lines.append(f"| {data} | {r['n_classes']} | {solvers} | {ref} |")
    return "\n".join(lines)
