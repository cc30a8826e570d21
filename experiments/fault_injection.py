"""Fault injection: bad input, concurrent writers, kills and corrupt files, as a table.

Each case runs ``mesa`` the way a careless or hostile user would, in a fresh scratch directory,
and records what happened: the exit status, the first line of the error (a traceback's last line
when there is one), whether a Python traceback was printed, and whether the files that were there
before are unchanged. The expected outcome of every case is a clean refusal (exit 1 or 2 with one
``mesa: error:`` line, no traceback, nothing lost) or, for kills and races, exactly one writer
proceeding. Fast ones are also tests (``tests/test_reliability.py``); this is the full table for
the next audit to start from. ::

    python -m experiments fault_injection

writes ``results/fault_injection/cases-<commit>.json`` (every case, its command and outcome).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.common import write_result

MESA = [sys.executable, "-m", "mesa"]
SYC = ["--opt", "P=7", "d_model=32", "n_layers=1"]
FAST = ["--hp", "steps=30", "batch_size=64", "eval_every=15", "eval_samples=64"]


def _run(argv: list[str], cwd: Path, timeout: float = 300) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*MESA, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    err = proc.stderr.strip().splitlines()
    error = next((line for line in err if line.startswith("mesa: error:")), err[-1] if err else "")
    return {
        "exit": proc.returncode,
        "error": error,
        "traceback": "Traceback (most recent call last)" in proc.stderr,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _snapshot(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _trained(root: Path, name: str = "run", *extra: str) -> Path:
    out = root / name
    _run(["train", "sycophancy", "--out", str(out), *SYC, *FAST, *extra], root)
    return out


def bad_settings(root: Path) -> list[dict[str, Any]]:
    """One-line refusals of bad flags and values, before any work."""
    cases = [
        ["--seed", "9223372036854775807"],
        ["--hp", "steps=10.5"],
        ["--hp", "num_threads=-1"],
        ["--hp", "learning_rate=NaN"],
        ["--hp", "warmup_steps=abc"],
        ["--hp", "batch_size=1000000000000"],
        ["--opt", "n_layers=0"],
        ["--opt", "d_model=-5"],
        ["--opt", "d_model=0"],
        ["--p", "1.5"],
        ["--p", "nan"],
    ]
    rows = []
    for extra in cases:
        out = root / "bad"
        result = _run(["train", "sycophancy", "--out", str(out), *extra], root)
        trained = (out / "model.safetensors").exists()
        rows.append({"case": f"train {' '.join(extra)}", **result, "trained": trained})
        shutil.rmtree(out, ignore_errors=True)
    (root / "a_file").write_text("x")
    for out, label in ((root / "a_file", "an existing file"), (Path("/proc/mesa"), "read-only")):
        result = _run(["train", "sycophancy", "--out", str(out), *SYC, *FAST], root)
        rows.append({"case": f"train --out {label}", **result})
    for bad in (["anneal_lr=no"], ["gamma=abc"], ["num_envs=1000000000000"]):
        out = root / "ppo"
        result = _run(["train", "maze", "--out", str(out), "--hp", *bad], root)
        rows.append({"case": f"train maze --hp {bad[0]}", **result})
    return rows


def data_loss(root: Path) -> list[dict[str, Any]]:
    """Nothing of a run is lost or silently replaced."""
    rows = []
    run = _trained(root)
    before = _snapshot(run)
    result = _run(["train", "sycophancy", "--p", "0.5", "--out", str(run), *SYC, *FAST], root)
    rows.append(
        {
            "case": "train another run into a finished one",
            **result,
            "files_unchanged": _snapshot(run) == before,
        }
    )
    config = json.loads((run / "config.json").read_text())
    edited = json.loads(json.dumps(config))
    edited["task"]["config"]["P"] = 11
    (run / "config.json").write_text(json.dumps(edited))
    rows.append({"case": "eval after config.json was edited", **_run(["eval", str(run)], root)})
    edited = json.loads(json.dumps(config))
    edited["model"]["config"]["d_model"] = "wide"
    (run / "config.json").write_text(json.dumps(edited))
    rows.append({"case": "eval with a wrong field type", **_run(["eval", str(run)], root)})
    (run / "config.json").write_text(json.dumps(config))
    (run / "model.safetensors").write_bytes(b"not a model")
    rows.append({"case": "eval with corrupt weights", **_run(["eval", str(run)], root)})
    return rows


def _two_at_once(start: Callable[[], subprocess.Popen], wait_for: Path) -> dict[str, Any]:
    first = start()
    deadline = time.time() + 120
    while not wait_for.exists() and time.time() < deadline:
        time.sleep(0.2)
    t0 = time.perf_counter()
    second = start()
    _, err = second.communicate(timeout=120)
    refused_in = time.perf_counter() - t0
    first.kill()
    first.wait()
    return {
        "second_exit": second.returncode,
        "second_error": next((x for x in err.splitlines() if "error" in x), ""),
        "second_refused_in_s": round(refused_in, 2),
    }


def concurrency(root: Path) -> list[dict[str, Any]]:
    """Two writers on one directory: one proceeds, the other is refused at once."""

    def popen(argv: list[str]) -> Callable[[], subprocess.Popen]:
        return lambda: subprocess.Popen(
            [*MESA, *argv], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    long = ["--hp", "steps=100000", "eval_every=50", "stop_at_accuracy=null"]
    train = ["train", "sycophancy", "--out", str(root / "busy"), *SYC, *long]
    zoo = ["zoo", "sycophancy", "--out", str(root / "zoo"), "--p", "0", "0.5", "--seeds", "1"]
    zoo += [*SYC, *long]
    return [
        {
            "case": "two trains on one --out",
            **_two_at_once(popen(train), root / "busy" / "metrics.jsonl"),
        },
        {
            "case": "two zoos on one --out",
            **_two_at_once(popen(zoo), root / "zoo" / "zoo_config.json"),
        },
    ]


def _descendants(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def interrupts(root: Path) -> list[dict[str, Any]]:
    """A zoo's workers die with it, however it is stopped."""
    rows = []
    if not Path("/proc/self/stat").exists():
        return [{"case": "zoo interrupts", "skipped": "needs /proc"}]
    for sig in ("SIGINT", "SIGTERM", "SIGKILL"):
        out = root / f"zoo_{sig}"
        argv = ["zoo", "sycophancy", "--out", str(out), "--p", "0", "0.5", "--seeds", "3"]
        argv += [*SYC, "--hp", "steps=100000", "eval_every=50", "stop_at_accuracy=null"]
        proc = subprocess.Popen(
            [*MESA, *argv], cwd=root, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.time() + 180
        while len(list(out.glob("members/*/metrics.jsonl"))) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = _descendants(proc.pid)
        proc.send_signal(getattr(signal, sig))
        time.sleep(5)
        left = [w for w in workers if _alive(w)]
        code = proc.wait(timeout=30)
        members = len(list(out.glob("members/*")))
        rows.append(
            {
                "case": f"{sig} to a zoo",
                "exit": code,
                "workers": len(workers),
                "alive_after_5s": len(left),
                "members_started": members,
            }
        )
    return rows


SECTIONS = {
    "bad_settings": bad_settings,
    "data_loss": data_loss,
    "concurrency": concurrency,
    "interrupts": interrupts,
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = ap.parse_args(argv)
    env_root = Path(tempfile.mkdtemp(prefix="mesa-faults-"))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for name in args.sections:
            scratch = env_root / name
            scratch.mkdir()
            results[name] = SECTIONS[name](scratch)
            print(f"{name}: {len(results[name])} cases", flush=True)
    finally:
        shutil.rmtree(env_root, ignore_errors=True)
    write_result("fault_injection", "cases", {"sections": results})
    print(table({"sections": results}))


def headline(result: dict[str, Any]) -> dict[str, Any]:
    cases = [c for rows in result["sections"].values() for c in rows]
    return {
        "cases": len(cases),
        "tracebacks": sum(bool(c.get("traceback")) for c in cases),
        "workers left alive": sum(c.get("alive_after_5s", 0) for c in cases),
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| section | case | outcome |", "|---|---|---|"]
    for section, rows in result["sections"].items():
        for c in rows:
            outcome = {k: v for k, v in c.items() if k != "case"}
            lines.append(f"| {section} | {c['case']} | {json.dumps(outcome)} |")
    return "\n".join(lines)
