"""The cell-token transformer policy and behaviour cloning: shapes, hooks, determinism, resume,
safe save/load, detection on cell tokens, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mesa
import mesa.training.bc as bc
from mesa.errors import MesaError
from mesa.probes import probe_sweep
from tests.training_helpers import killed_after_checkpoint, same, weights

TINY = {"steps": 12, "num_envs": 16, "eval_every": 4, "eval_episodes": 8, "stop_at_success": None}


def _task(p: float = 0.2):
    return mesa.make_task("maze", p=p, size=5, n_levels=20)


def test_cell_tokens_and_hooks():
    task = _task()
    model = task.make_model("cell_transformer", seed=0)
    batch = task.probe_batch(8, seed=0)
    obs = batch["obs"]
    tokens = model.tokens(obs)
    c, h, w = obs.shape[1:]
    assert tokens.shape == (8, h * w + 1)
    assert int(tokens.max()) == 2**c and bool((tokens[:, -1] == 2**c).all())  # read-out token
    # the agent's cell carries the agent bit (channel 1) and walls the wall bit (channel 0)
    agent_cell = obs[:, 1].flatten(1).argmax(1)
    assert bool((tokens[torch.arange(8), agent_cell] & 2).all())
    walls = obs[:, 0].flatten(1) > 0
    assert bool(((tokens[:, :-1] & 1) > 0).eq(walls).all())
    logits, cache = model.run_with_cache(obs)
    assert logits.shape == (8, 4) and torch.allclose(logits, model(obs))
    assert cache["blocks.0.hook_resid_pre"].shape == (8, h * w + 1, 32)
    assert "blocks.0.attn.hook_pattern" in model.hook_dict
    # mesa.probes works on it unchanged, like on the conv and MLP policies
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
    big = task.probe_batch(200, seed=1)
    result = probe_sweep(model, big["obs"], big["true_goal"], hooks=hooks, groups=big["group"])
    assert [row.hook for row in result.rows] == hooks
    # the cheese's cell token is in the embedding: decodable far above chance and the control
    # task (measured 0.81 and 0.75 against chance 0.09 and control 0.11 on this data)
    assert all(row.accuracy > result.chance + 0.4 for row in result.rows)
    assert all(row.selectivity > 0.4 for row in result.rows)
    with pytest.raises(MesaError, match="observations must have shape"):
        model(obs[:, :2])


@pytest.mark.slow
def test_bc_bit_identical_and_resume(tmp_path: Path, monkeypatch):
    kw = {"arch": "cell_transformer", "progress": False, **TINY}
    reference = weights(mesa.train(_task(), seed=0, **kw))
    assert same(reference, weights(mesa.train(_task(), seed=0, **kw)))
    assert not same(reference, weights(mesa.train(_task(), seed=1, **kw)))

    # killed after the second checkpoint (step 8 of 12)
    with killed_after_checkpoint(monkeypatch, bc, 2), pytest.raises(KeyboardInterrupt):
        mesa.train(_task(), seed=0, out=tmp_path / "run", **kw)
    resumed = mesa.train(_task(), seed=0, out=tmp_path / "run", **kw)
    assert same(weights(resumed), reference)
    records = mesa.io.MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    steps = [r["global_step"] for r in records]
    assert steps == sorted(set(steps)) and steps[-1] == 12
    assert all("eval/ood_true_rate" in r for r in records if r["global_step"] % 4 == 0)

    loaded = mesa.load(tmp_path / "run")
    assert loaded.mesa_spec["arch"] == "cell_transformer"
    obs = _task().probe_batch(16, 0)["obs"]
    assert torch.equal(loaded(obs), resumed(obs))


@pytest.mark.slow
def test_bc_learns_the_expert_with_a_conv_policy():
    task = _task(p=0.0)
    untrained = mesa.evaluate_ood(task.make_model("conv", 0), task, n=200)
    hp = {"steps": 300, "num_envs": 64, "eval_every": 300, "stop_at_success": None}
    model = mesa.train(task, seed=0, trainer="bc", progress=False, **hp)
    trained = mesa.evaluate_ood(model, task, n=200)
    assert trained.in_dist_success >= 0.9 > untrained.in_dist_success


def test_detection_localises_cell_tokens():
    from mesa.detection import Detection
    from mesa.detection.methods.patching import sites_effect

    task = _task()
    model = task.make_model("cell_transformer", seed=0)
    hooks = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
    d = Detection(model, task, hooks=hooks, n_probe=60, n_pairs=64)
    delta = d.directed("true")
    assert int(d.pairs["true"].informative.sum()) > 0 and abs(delta) > 1e-6
    # at the embedding the differing cells (and the read-out token) are all the pair's
    # difference: patching them there must restore the source's decision exactly
    assert sites_effect(d, "true", "blocks.0.hook_resid_pre") == pytest.approx(delta, abs=1e-5)
    assert sites_effect(d, "true", "blocks.0.hook_resid_post") is not None  # cells are located


def test_trainer_errors():
    task = _task()
    with pytest.raises(MesaError, match="unknown trainer 'dqn'; valid: bc, ppo, supervised"):
        mesa.train(task, trainer="dqn")
    with pytest.raises(MesaError, match="trainer 'supervised' cannot train 'maze'; valid: ppo, bc"):
        mesa.train(task, trainer="supervised")
    with pytest.raises(MesaError, match="PPO needs a value head"):
        mesa.train(task, arch="cell_transformer", trainer="ppo")
    with pytest.raises(MesaError, match="expert_prob must be in"):
        mesa.train(task, arch="cell_transformer", expert_prob=1.5)
    with pytest.raises(MesaError, match="unknown behaviour cloning hyperparameter 'lr'"):
        mesa.train(task, arch="cell_transformer", lr=0.1)
