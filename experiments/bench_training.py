"""Benchmark: wall time to train the organisms on this machine, and of detection per model.

- ``maze`` (conv policy, PPO): time until the rolling success rate over the last 500 training
  episodes reaches 95%, then in-distribution success on 1000 fresh episodes;
- ``sycophancy`` (transformer, supervised): time until in-distribution accuracy reaches 99.5%;
- ``maze`` with the cell-token transformer policy (behaviour cloning): time until success on the
  trainer's evaluation episodes reaches 90%;
- ``mesa.detect`` on each trained model, as a share of its training time.

Medians over seeds. See ``bench_training.md``.

    python experiments/bench_training.py --seeds 3

writes ``experiments/results/bench_training.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json

import mesa


def one(family: str, p: float, seed: int, hparams: dict, arch: str | None = None) -> dict:
    task = mesa.make_task(family, p=p)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model = mesa.train(task, seed=seed, out=tmp, arch=arch, progress=False, **hparams)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        verdict = mesa.detect(model, task)
        detect_s = time.perf_counter() - t0
    ood = mesa.evaluate_ood(model, task)
    row = {
        "family": family,
        "arch": arch or task.archs[0],
        "p": p,
        "seed": seed,
        "train_s": train_s,
        "detect_s": detect_s,
        "detect_share": detect_s / train_s,
        "in_dist_success": ood.in_dist_success,
        "ood_true_rate": ood.true_rate,
        "ood_spurious_rate": ood.spurious_rate,
        "verdict": verdict.verdict,
        "score": verdict.score,
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in range(args.seeds):
        rows.append(one("maze", 0.0, seed, {"stop_at_success": 0.95}))
        rows.append(one("sycophancy", 0.0, seed, {}))
        rows.append(one("maze", 0.0, seed, {"stop_at_success": 0.9}, arch="cell_transformer"))
    summary = {}
    for key in sorted({(r["family"], r["arch"]) for r in rows}):
        group = [r for r in rows if (r["family"], r["arch"]) == key]
        name = "/".join(key)
        summary[name] = {
            k: statistics.median(r[k] for r in group)
            for k in ("train_s", "detect_s", "detect_share", "in_dist_success")
        }
        print(name, summary[name])
    write_json("bench_training", {"rows": rows, "median": summary, "threads": args.threads})


if __name__ == "__main__":
    main()
