"""Shared helpers of the experiment scripts: timing medians and JSON/Markdown output."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def paired_times(
    fns: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Medians and all times of several functions, run interleaved (A B A B ...) so that a
    shared machine's load drifts over all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}, times


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


#: The trained policy the probe and erasure benchmarks read (trained once, then reused).
POLICY_RUN = Path("runs/bench_probe_fit/coin_p0.2_s5")


def policy_bench_args(doc: str, repeats: int, threads: int) -> Any:
    """The command line of a benchmark on the trained policy (``--repeats``, ``--threads``,
    ``--run``), parsed, with torch's threads set."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--threads", type=int, default=threads, help="torch threads")
    ap.add_argument("--run", type=Path, default=POLICY_RUN, help="the trained policy's run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    return args


def detection_data(
    run: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
    """What ``mesa.detect`` reads from a finished run: ``({hook: activations [2000, d]},
    {goal: labels}, layout groups or None)`` on the probe split (seed 0)."""
    from mesa.detection import _probe_data, detection_hooks
    from mesa.detection.evidence import flat_activations
    from mesa.runs import load_run

    loaded = load_run(run)
    hooks = detection_hooks(loaded.model)
    inputs, y_true, y_spur, groups = _probe_data(loaded.task, 2000, 0)
    acts = flat_activations(loaded.model, inputs, hooks, loaded.task.kind)
    return acts, {"true": y_true, "spurious": y_spur}, groups


def policy_activations(
    run: Path = POLICY_RUN,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """:func:`detection_data` of a trained ``coin`` policy (p = 0.2, seed 5; trained into
    ``run`` the first time, about a minute)."""
    import mesa

    if not (run / "model.safetensors").is_file():
        print(f"training coin p=0.2 seed 5 into {run} (once)", flush=True)
        mesa.train(mesa.make_task("coin", p=0.2), seed=5, out=run, progress=False)
    acts, labels, groups = detection_data(run)
    assert groups is not None  # gridworld probe splits are grouped by layout
    return acts, labels, groups
