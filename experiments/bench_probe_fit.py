"""Benchmark: fitting linear probes, mesa's LinearProbe (torch L-BFGS) vs scikit-learn.

20,000 x 128 synthetic activations (Gaussian, class-dependent means), 20% held out, binary and
81-class; the same C for both. Reports fit time (median of repeats) and held-out accuracy of
``LinearProbe(solver="torch")`` and of scikit-learn's ``LogisticRegression`` (lbfgs), measured
side by side. See ``bench_probe_fit.md``.

    python experiments/bench_probe_fit.py      # writes experiments/results/bench_probe_fit.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_time, write_json

from mesa.probes import LinearProbe


def data(n_classes: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, 128)) * 0.4
    y = rng.integers(0, n_classes, 20_000)
    x = means[y] + rng.normal(size=(20_000, 128))
    return x[:16_000], y[:16_000], x[16_000:], y[16_000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n_classes in (2, 81):
        xtr, ytr, xte, yte = data(n_classes)
        row: dict[str, object] = {"n_classes": n_classes}
        for name, make in (
            ("mesa_torch", lambda: LinearProbe(C=1.0, max_iter=200)),
            ("sklearn", lambda: LogisticRegression(C=1.0, max_iter=1000)),
        ):
            fitted: list[object] = []

            def fit(make=make, fitted=fitted, xtr=xtr, ytr=ytr) -> None:
                fitted.append(make().fit(xtr, ytr))

            med, times = median_time(fit, args.repeats)
            row[f"{name}_s"] = med
            row[f"{name}_all_s"] = times
            row[f"{name}_accuracy"] = float(fitted[-1].score(xte, yte))  # type: ignore[attr-defined]
        row["speedup"] = row["sklearn_s"] / row["mesa_torch_s"]  # type: ignore[operator]
        row["accuracy_gap_points"] = 100 * (row["mesa_torch_accuracy"] - row["sklearn_accuracy"])  # type: ignore[operator]
        print(row)
        rows.append(row)
    write_json("bench_probe_fit", {"rows": rows, "repeats": args.repeats, "threads": args.threads})


if __name__ == "__main__":
    main()
