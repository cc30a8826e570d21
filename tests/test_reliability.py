"""Reliability: one writer per directory, no path taken from data, no run trained over another,
nothing lost from a torn log or checkpoint, and bad settings refused before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mesa
from mesa.cli import main
from mesa.errors import MesaError
from mesa.io import METRICS, METRICS_CORRUPT, MetricsLog, locked
from mesa.zoo import ZooConfig, run_zoo

OPTS = {"P": 7, "d_model": 32, "n_layers": 1}
HP = {"steps": 30, "batch_size": 64, "eval_every": 15, "eval_samples": 64}
ROOT = Path(__file__).parents[1]


def _hold_lock(directory: Path) -> subprocess.Popen:
    """Another process holding ``directory``'s lock until it is killed."""
    code = (
        "import sys, time\nfrom mesa.io import locked\n"
        f"with locked({str(directory)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        task = mesa.make_task("sycophancy", p=0.0, **OPTS)
        start = time.perf_counter()
        with pytest.raises(
            MesaError, match=rf"in use by another mesa process \(pid {holder.pid}\)"
        ):
            mesa.train(task, seed=0, out=run, progress=False, **HP)
        with pytest.raises(MesaError, match=f"pid {holder.pid}"):
            run_zoo(
                ZooConfig("sycophancy", ps=(0.0, 0.5), seeds=(0,), task_options=OPTS, hparams=HP),
                run,
                progress=False,
            )
        assert time.perf_counter() - start < 2.0
        assert not (run / METRICS).exists()  # the refused writers wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the OS released the lock with the process: the directory is free again
    with locked(run):
        pass


def test_lock_is_reentrant_within_a_process(tmp_path: Path):
    with locked(tmp_path / "d"), locked(tmp_path / "d"):
        pass
    with locked(tmp_path / "d"):
        pass


def test_out_that_is_a_file_or_unwritable_is_refused_before_training(tmp_path: Path):
    task = mesa.make_task("sycophancy", p=0.0, **OPTS)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MesaError, match=r"cannot use .*file as a run directory"):
        mesa.train(task, out=tmp_path / "file", progress=False, **HP)
    with pytest.raises(MesaError, match=r"cannot use .*as a run directory"):
        mesa.train(task, out="/proc/mesa-run", progress=False, **HP)


def test_member_names_never_collide():
    base = dict(family="sycophancy", seeds=(0,), task_options=OPTS)
    with pytest.raises(MesaError, match=r"p 0.2 is given twice"):
        ZooConfig(ps=(0.2, 0.2), **base).resolved()
    with pytest.raises(MesaError, match=r"would share the member directory sycophancy_p0.1_s"):
        ZooConfig(ps=(0.1, 0.1000001), **base).resolved()
    with pytest.raises(MesaError, match="a seed is given twice"):
        ZooConfig(**{**base, "ps": (0.0, 0.5), "seeds": (1, 1)}).resolved()
    assert ZooConfig(ps=(0.1, 0.10001), **base).resolved().ps == (0.1, 0.10001)


def test_zoo_settings_refused_before_any_work(tmp_path: Path):
    base = dict(family="sycophancy", ps=(0.0, 0.5), seeds=(0,), task_options=OPTS)
    with pytest.raises(MesaError, match="unknown supervised hyperparameter 'lr'"):
        run_zoo(ZooConfig(**base, hparams={"lr": 1}), tmp_path / "z1", progress=False)
    with pytest.raises(MesaError, match=r"steps must be an integer, got 10.5"):
        run_zoo(ZooConfig(**base, hparams={"steps": 10.5}), tmp_path / "z2", progress=False)
    assert not (tmp_path / "z1" / "members").exists()


def _fake_zoo(root: Path, family: str, member: str) -> None:
    root.mkdir()
    (root / "zoo.json").write_text(json.dumps({"settings": {"family": family}, "agreement": {}}))
    (root / "results.csv").write_text(f"member,p,seed\n{member},0,0\n")


@pytest.mark.parametrize(
    ("family", "member", "bad"),
    [
        ("../../x", "m", "family"),
        ("/tmp/x", "m", "family"),
        ("maze", "../..", "member"),
        ("maze", "a/b", "member"),
    ],
)
def test_report_takes_no_path_from_data(tmp_path: Path, family: str, member: str, bad: str):
    from mesa.report import write_report

    _fake_zoo(tmp_path / "zoo", family, member)
    with pytest.raises(MesaError, match=f"{bad} in .* is not a plain name"):
        write_report(tmp_path / "zoo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo"]  # nothing written outside


def test_task_names_are_plain_names():
    from mesa.tasks import register_task

    with pytest.raises(MesaError, match=r"task name '../x' is not a plain name"):
        register_task("../x")


def test_corrupt_metrics_lines_are_set_aside_not_cut(tmp_path: Path):
    log = MetricsLog(tmp_path / METRICS)
    for step in (10, 20, 30, 40):
        log.append({"global_step": step})
    lines = (tmp_path / METRICS).read_text().splitlines()
    lines.insert(1, '{"global_step": 15, "torn')  # a bad line in the middle
    (tmp_path / METRICS).write_text("\n".join(lines) + "\n[1, 2]\n")
    assert [r["global_step"] for r in log.read()] == [10, 20, 30, 40]
    log.truncate_after(30)
    assert [r["global_step"] for r in log.read()] == [10, 20, 30]
    assert (tmp_path / METRICS_CORRUPT).read_text().splitlines() == [
        '{"global_step": 15, "torn',
        "[1, 2]",
    ]


@pytest.mark.slow
def test_checkpoint_json_behind_the_tensors_resumes_from_the_tensors(tmp_path: Path, monkeypatch):
    import mesa.training.supervised as supervised
    from tests.training_helpers import killed_after_checkpoint, same, weights

    task = mesa.make_task("sycophancy", p=0.0, **OPTS)
    hp = {**HP, "stop_at_accuracy": None}
    reference = weights(mesa.train(task, seed=0, progress=False, **hp))
    run = tmp_path / "run"
    with killed_after_checkpoint(monkeypatch, supervised, 1), pytest.raises(KeyboardInterrupt):
        mesa.train(task, seed=0, out=run, progress=False, **hp)
    # as if killed between the two files of the next checkpoint: the readable copy is stale
    stale = json.loads((run / "checkpoint.json").read_text())
    stale["step"] = 0
    (run / "checkpoint.json").write_text(json.dumps(stale))
    assert same(reference, weights(mesa.train(task, seed=0, out=run, progress=False, **hp)))


@pytest.mark.slow
def test_edited_config_and_broken_weights_are_refused_on_load(tmp_path: Path):
    from safetensors.torch import load_file, save_file

    task = mesa.make_task("sycophancy", p=0.0, **OPTS)
    run = tmp_path / "run"
    mesa.train(task, seed=0, out=run, progress=False, **HP)
    config = json.loads((run / "config.json").read_text())

    edited = json.loads(json.dumps(config))
    edited["task"]["config"]["P"] = 11
    (run / "config.json").write_text(json.dumps(edited))
    with pytest.raises(MesaError, match=r"was edited after the model was saved \(task option 'P'"):
        mesa.load(run)

    edited = json.loads(json.dumps(config))
    edited["model"]["config"]["d_model"] = "wide"
    (run / "config.json").write_text(json.dumps(edited))
    with pytest.raises(MesaError, match="d_model must be an integer, got 'wide'"):
        mesa.load(run)

    (run / "config.json").write_text(json.dumps(config))
    tensors = load_file(run / "model.safetensors")
    key = sorted(tensors)[0]
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_file(tensors, run / "model.safetensors")
    with pytest.raises(MesaError, match=f"non-finite weights .NaN or inf in '{key}'"):
        mesa.load(run)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "9223372036854775807"], r"seed must be an integer in \[0, 4294967295\]"),
        (["--hp", "steps=10.5"], "steps must be an integer, got 10.5"),
        (["--hp", "num_threads=-1"], "num_threads must be at least 1, got -1"),
        (["--hp", "learning_rate=NaN"], "learning_rate must be a finite number, got nan"),
        (["--hp", "warmup_steps=abc"], "warmup_steps must be an integer, got 'abc'"),
        (["--hp", "batch_size=1000000000000"], "needs about .* GiB, more than this machine"),
        (["--opt", "n_layers=0"], "n_layers must be at least 1, got 0"),
        (["--opt", "d_model=-5"], "d_model must be at least 1, got -5"),
        (["--opt", "d_model=0"], "d_model must be at least 1, got 0"),
        (["--opt", "p=0.5"], "p is not an --opt option: set it with --p"),
    ],
)
def test_bad_training_settings_are_one_line_errors(tmp_path: Path, capsys, argv, message):
    out = tmp_path / "run"
    code = main(["train", "sycophancy", "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("mesa: error: "), err
    assert pytest.importorskip("re").search(message, err[0]), err[0]
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"anneal_lr": "no"}, "anneal_lr must be true or false, got 'no'"),
        ({"gamma": "abc"}, "gamma must be a finite number, got 'abc'"),
        ({"num_envs": 10**12}, "needs about .* GiB, more than this machine"),
    ],
)
def test_bad_ppo_settings_are_refused_before_work(hp, message):
    with pytest.raises(MesaError, match=message):
        mesa.train(mesa.make_task("maze", size=5, n_levels=20), progress=False, **hp)


def test_huge_level_pool_is_refused():
    with pytest.raises(MesaError, match="maze level pool needs about"):
        mesa.make_task("maze", size=15, n_levels=10**9)


def test_zoo_with_failures_exits_non_zero(tmp_path: Path, monkeypatch, capsys):
    import mesa.zoo.runner as runner

    def fail(zoo_dir, name, p, seed, config):
        raise MesaError(f"{name} could not be trained")

    monkeypatch.setattr(runner, "run_member", fail)
    argv = ["zoo", "sycophancy", "--out", str(tmp_path / "z"), "--p", "0", "0.5", "--seeds", "1"]
    argv += ["--workers", "1", "--opt", "P=7", "d_model=32", "n_layers=1"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "0 members, 2 failed" in out and "sycophancy_p0_s0 could not be trained" in out


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left to collect


def _describe(pid: int) -> str:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return f"{pid}: gone"
    return f"{pid} state {state}: {cmd}"


ZOO_SCRIPT = """
import signal
# as from a terminal, where Ctrl-C interrupts: a shell starts a background job with SIGINT
# ignored, and the zoo would inherit that from a test suite run in the background
signal.signal(signal.SIGINT, signal.default_int_handler)
from mesa.zoo import ZooConfig, run_zoo
config = ZooConfig("sycophancy", ps=(0.0, 0.5), seeds=(0, 1, 2), workers=2,
                   task_options={"P": 7, "d_model": 32, "n_layers": 1},
                   hparams={"steps": 100000, "eval_every": 50, "stop_at_accuracy": None})
run_zoo(config, OUT, progress=False)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_zoos_workers_die_with_it(tmp_path: Path, how: str):
    import signal

    out = tmp_path / "zoo"
    proc = subprocess.Popen(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n{ZOO_SCRIPT}"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while len(list(out.glob("members/*/metrics.jsonl"))) < 2:  # both workers are training
            assert proc.poll() is None and time.time() < deadline, proc.stderr
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(getattr(signal, how))
        # they die within 5 s (checked as they go, so a quick death is not waited out)
        deadline = time.time() + 5
        while (alive := [w for w in workers if _alive(w)]) and time.time() < deadline:
            time.sleep(0.2)
        # on failure, say what each survivor is and its state (D: in uninterruptible I/O)
        assert not alive, [_describe(w) for w in alive] + [f"zoo: {_describe(proc.pid)}"]
        assert proc.wait(timeout=10) != 0
        # nothing queued was started: only the two members that were running have a directory
        assert len(list(out.glob("members/*"))) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _pid_once_two_ran(folder: str) -> int:
    """Leave this worker's pid in ``folder`` and wait (up to a minute) until two workers have:
    jobs that need two workers at once, so the test does not depend on how fast workers start."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.time() + 60
    while len(os.listdir(folder)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return os.getpid()


@pytest.mark.slow
def test_a_run_grows_into_the_workers_it_is_lent(tmp_path: Path):
    """Inside ``growing``, a run given one worker starts a second once the capacity rises
    (here: once its first job has started), while jobs still wait; outside, it never grows."""
    from mesa.zoo.workers import growing, run_in_workers

    ran = tmp_path / "ran"
    ran.mkdir()
    pids: dict[str, int] = {}
    errors: list[str] = []

    def on_done(name: str, pid: int, error: str | None) -> None:
        errors.extend([error] if error else [])
        pids[name] = pid

    jobs = [(f"job{i}", (str(ran),)) for i in range(4)]
    t0 = time.time()
    with growing(lambda: 2 if any(ran.iterdir()) else 1):
        run_in_workers(_pid_once_two_ran, jobs, 1, on_done)
    assert not errors and len(pids) == 4 and len(set(pids.values())) == 2
    assert time.time() - t0 < 50  # the first job did not wait out its minute alone
    for f in ran.iterdir():
        f.unlink()
    pids.clear()
    (ran / "other").touch()  # one pid already there: these jobs need no second worker
    run_in_workers(_pid_once_two_ran, jobs[:3], 1, on_done)  # not inside growing
    assert not errors and len(pids) == 3 and len(set(pids.values())) == 1


@pytest.mark.slow
def test_a_zoo_that_ends_normally_lets_its_workers_exit(tmp_path: Path):
    """Idle workers take their end marker and exit by themselves once the work is done: killed,
    they would leave semaphores behind and Python would warn about them at shutdown."""
    argv = ["zoo", "sycophancy", "--p", "0", "0.5", "--seeds", "1", "--workers", "2"]
    argv += ["--out", str(tmp_path / "z"), "--opt", "P=7", "d_model=32", "n_layers=1"]
    argv += ["--hp", "steps=40", "batch_size=64", "eval_every=20", "eval_samples=64"]
    argv += ["--methods", "behaviour"]
    done = subprocess.run(
        [sys.executable, "-m", "mesa", *argv], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "z" / "members").glob("*/ood.json"))) == 2
    assert "leaked" not in done.stderr and "Traceback" not in done.stderr, done.stderr
