"""Shared helpers of the experiments: where results go and how they are named and stamped,
timing medians, and the data of a trained policy that several benchmarks read.

Every result is written by :func:`write_result` (or, for a figure or an image beside it,
:func:`write_bytes`), atomically through :mod:`mesa.io`, to

    results/<experiment>/<what>-<commit>.json

where ``<what>`` names what was run (family, seeds, settings; see each script) and ``<commit>``
is the short git commit of the code that ran it, with ``-dirty`` appended when tracked files
outside ``results/`` had uncommitted changes. Rerunning the same command on the same commit
replaces its result; anything else gets a new name. Each JSON starts with the stamp of
:func:`stamp`: ``experiment``, ``what``, ``command``, ``commit``, ``dirty``, ``date`` (UTC) and
``machine``.
"""

from __future__ import annotations

import io
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mesa.io import atomic_write_bytes, write_json

#: The repository the experiments belong to.
REPO = Path(__file__).resolve().parent.parent
#: Where results go; ``python -m experiments --results DIR`` points it elsewhere (smoke runs).
RESULTS = Path(__file__).resolve().parent / "results"
#: The command line of the experiment being run, as ``python -m experiments`` received it
#: (set by :func:`experiments.run`; None when a script's ``main`` is called directly).
COMMAND: str | None = None

STAMP_KEYS = ("experiment", "what", "command", "commit", "dirty", "date", "machine")


def results_dir() -> Path:
    return RESULTS


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }


def git_commit(repo: Path = REPO) -> tuple[str, bool]:
    """``(short commit, dirty)`` of the git checkout ``repo`` lies in: dirty when tracked files
    outside ``experiments/results`` differ from the commit. ``("unknown", True)`` outside
    git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        repo = Path(git("rev-parse", "--show-toplevel"))
        commit = git("rev-parse", "--short=7", "HEAD")
        changed = git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":!experiments/results"
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return commit, bool(changed)


def command_line() -> str:
    """The command that is running: :data:`COMMAND`, or this process's own argv."""
    if COMMAND is not None:
        return COMMAND
    return shlex.join(["python", *sys.argv])


def stamp(experiment: str, what: str) -> dict[str, Any]:
    """The fields every result starts with (see the module's docstring)."""
    commit, dirty = git_commit()
    return {
        "experiment": experiment,
        "what": what,
        "command": command_line(),
        "commit": commit,
        "dirty": dirty,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


def slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits, ``.``, ``_`` and ``-`` only."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    if not out:
        raise ValueError(f"nothing left of {text!r} to name a result by")
    return out


def seeds_slug(seeds: Sequence[int]) -> str:
    """``seeds4-7`` for a run of consecutive seeds, ``seed0`` for one, else ``seeds0_2_5``."""
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"seed{seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds{seeds[0]}-{seeds[-1]}"
    return "seeds" + "_".join(map(str, seeds))


def result_stem(
    experiment: str, what: str, commit: str, dirty: bool, results: Path | None = None
) -> Path:
    """``results/<experiment>/<what>-<commit>[-dirty]`` (no suffix)."""
    name = f"{slug(what)}-{commit}" + ("-dirty" if dirty else "")
    return (results or results_dir()) / experiment / name


def with_suffix(stem: Path, suffix: str) -> Path:
    """``stem`` + ``suffix`` (a name part such as ``p0.2`` is not taken for a suffix)."""
    return stem.with_name(stem.name + suffix)


def write_result(
    experiment: str, what: str, payload: dict[str, Any], results: Path | None = None
) -> Path:
    """Stamp ``payload`` and write it atomically to its ``.json``; return that path. Files
    that go with it (figures) take the same name with another suffix: :func:`write_bytes`."""
    head = stamp(experiment, what)
    clash = set(head) & set(payload)
    if clash:
        raise ValueError(f"payload keys {sorted(clash)} would overwrite the stamp")
    stem = result_stem(experiment, what, head["commit"], head["dirty"], results)
    path = with_suffix(stem, ".json")
    write_json(path, {**head, **payload})
    print(f"wrote {path}")
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    atomic_write_bytes(path, data)
    print(f"wrote {path}")
    return path


def write_figure(path: Path, fig: Any, dpi: int = 110) -> Path:
    """A matplotlib figure as PNG, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return write_bytes(path, buf.getvalue())


def parse_assignments(items: Sequence[str] | None) -> dict[str, Any]:
    """``["steps=30", "size=7", "x=null"]`` -> ``{"steps": 30, "size": 7, "x": None}``, as
    ``mesa``'s ``--opt``/``--hp`` read them (:func:`mesa.config.parse_assignments`)."""
    from mesa.config import parse_assignments as parse

    return parse(list(items or []), "KEY=VALUE")


def fmt(x: Any, digits: int = 2) -> str:
    """A number for a table: ``n/a`` for None or NaN, else ``digits`` decimals."""
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return f"{x:.{digits}f}"


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


#: The trained policy the probe and erasure benchmarks read (trained once, then reused).
POLICY_RUN = Path("runs/bench_probe_fit/coin_p0.2_s5")


def policy_bench_args(
    doc: str, repeats: int, threads: int, argv: Sequence[str] | None = None
) -> Any:
    """The command line of a benchmark on the trained policy (``--repeats``, ``--threads``,
    ``--run``), parsed, with torch's threads set."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--threads", type=int, default=threads, help="torch threads")
    ap.add_argument("--run", type=Path, default=POLICY_RUN, help="the trained policy's run")
    ap.add_argument(
        "--opt",
        nargs="*",
        metavar="KEY=VALUE",
        help="coin options when the policy is trained here (smoke runs: n_levels=50)",
    )
    ap.add_argument(
        "--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters, likewise"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def detection_data(run: Path, n_probe: int = 2000) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """What ``mesa.detect`` reads from a finished run: ``({hook: activations [n_probe, d]},
    {goal: labels}, layout groups or None)`` on the probe split (seed 0), through the public
    ``mesa.detection`` API."""
    from mesa.detection import Detection
    from mesa.runs import load_run

    loaded = load_run(run)
    d = Detection(loaded.model, loaded.task, n_probe=n_probe)
    return d.acts, {"true": d.labels("true"), "spurious": d.labels("spurious")}, d.probe.groups


def policy_activations(
    run: Path = POLICY_RUN,
    task_options: dict[str, Any] | None = None,
    hparams: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """:func:`detection_data` of a trained ``coin`` policy (p = 0.2, seed 5; trained into
    ``run`` the first time, about a minute, with ``task_options`` and ``hparams`` if given)."""
    import mesa

    if not (run / "model.safetensors").is_file():
        print(f"training coin p=0.2 seed 5 into {run} (once)", flush=True)
        task = mesa.make_task("coin", p=0.2, **(task_options or {}))
        mesa.train(task, seed=5, out=run, progress=False, **(hparams or {}))
    acts, labels, groups = detection_data(run)
    assert groups is not None  # gridworld probe splits are grouped by layout
    return acts, labels, groups


def probe_subspace_score(row: dict[str, str]) -> float | None:
    """A results.csv row's ``probe_subspace`` score (None where it has none): the verdict's in
    every family until ``57ab686``, when coin's verdict became ``rollout_subspace``'s; rows of
    zoos older than the per-method columns give the verdict's score."""
    value = row.get("score_probe_subspace", row.get("score", ""))
    return float(value) if value not in ("", "nan", None) else None
