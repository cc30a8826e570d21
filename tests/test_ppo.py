"""PPO: bit-identical for a seed, exact resume after a kill, and clear errors."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import mesa
import mesa.training.ppo as ppo
from mesa.errors import MesaError
from tests.training_helpers import killed_after_checkpoint, same, weights

TINY = {
    "num_envs": 8,
    "num_steps": 16,
    "total_timesteps": 8 * 16 * 6,
    "eval_every": 2,
    "eval_episodes": 8,
    "stop_at_success": None,
}


def _task():
    return mesa.make_task("maze", p=0.1, n_levels=20)


@pytest.mark.slow
def test_same_seed_bit_identical_and_other_seed_differs(tmp_path: Path):
    a = weights(mesa.train(_task(), seed=1, out=tmp_path / "a", progress=False, **TINY))
    b = weights(mesa.train(_task(), seed=1, progress=False, **TINY))
    c = weights(mesa.train(_task(), seed=2, progress=False, **TINY))
    assert same(a, b)
    assert not same(a, c)
    records = mesa.io.MetricsLog(tmp_path / "a" / "metrics.jsonl").read()
    assert [r["global_step"] for r in records] == [128 * i for i in range(1, 7)]
    assert all("eval/ood_true_rate" in r for r in records[1::2])
    for key in ("charts/success_rate", "losses/value_loss", "losses/entropy", "charts/sps"):
        assert key in records[0]


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_sameweights(tmp_path: Path, monkeypatch):
    reference = weights(mesa.train(_task(), seed=0, progress=False, **TINY))
    # killed after the second checkpoint (update 4 of 6)
    with killed_after_checkpoint(monkeypatch, ppo, 2), pytest.raises(KeyboardInterrupt):
        mesa.train(_task(), seed=0, out=tmp_path / "run", progress=False, **TINY)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    resumed = mesa.train(_task(), seed=0, out=tmp_path / "run", progress=False, **TINY)
    assert same(weights(resumed), reference)
    steps = [
        r["global_step"] for r in mesa.io.MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 768  # no duplicated records
    loaded = mesa.load(tmp_path / "run")
    obs = _task().probe_batch(16, 0)["obs"]
    assert torch.equal(loaded(obs), resumed(obs))


def test_errors(tmp_path: Path):
    with pytest.raises(MesaError, match="unknown PPO hyperparameter 'lr'; valid: total_timesteps"):
        mesa.train(_task(), lr=0.1)
    with pytest.raises(MesaError, match="num_envs must be at least 1"):
        mesa.train(_task(), num_envs=0)
    with pytest.raises(MesaError, match="unknown architecture for task 'maze': 'resnet'"):
        mesa.train(_task(), arch="resnet")
    with pytest.raises(MesaError, match=r"seed must be an integer in \[0, 4294967295\]"):
        mesa.train(_task(), seed=-1)
    small = {**TINY, "total_timesteps": 8 * 16 * 2}
    run = tmp_path / "run"
    first = weights(mesa.train(_task(), seed=0, out=run, progress=False, **small))
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    # the same run again: the finished model, nothing retrained or rewritten
    assert same(first, weights(mesa.train(_task(), seed=0, out=run, progress=False, **small)))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == files
    coin = mesa.make_task("coin", n_levels=20)
    with pytest.raises(
        MesaError, match=r"holds a finished run with other settings .differs in task"
    ):
        mesa.train(coin, seed=0, out=run, progress=False, **small)
    with pytest.raises(MesaError, match="differs in seed"):
        mesa.train(_task(), seed=1, out=run, progress=False, **small)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == files  # untouched
    (run / "config.json").unlink()  # as if killed before the end: a checkpoint only
    (run / "model.safetensors").unlink()
    with pytest.raises(MesaError, match="checkpoint of another run"):
        mesa.train(coin, seed=0, out=run, progress=False, **small)
    (run / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(MesaError, match="corrupt safetensors"):
        mesa.train(_task(), seed=0, out=tmp_path / "run", progress=False, **small)


def test_a_budget_that_is_not_whole_rollouts_warns_on_one_line(tmp_path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default million: 244 rollouts, 0.06% off, silent
        assert ppo.whole_rollouts(ppo.PPOConfig()) == 244
    small = {**TINY, "total_timesteps": 8 * 16 + 5}  # one rollout of 128 steps, and 5 over
    with pytest.warns(mesa.MesaWarning, match="training runs 1 rollout.s., 128 steps"):
        mesa.train(_task(), seed=0, progress=False, **small)
    hp = [f"{k}={v}" for k, v in small.items() if v is not None]  # stop_at_success: default
    argv = ["train", "maze", "--p", "0.1", "--opt", "n_levels=20", "--out", str(tmp_path / "r")]
    cli = [sys.executable, "-m", "mesa", *argv, "--hp", *hp]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mesa: warning: total_timesteps 133 is not a whole number of rollouts" in done.stderr
    assert "UserWarning" not in done.stderr and "ppo.py" not in done.stderr
