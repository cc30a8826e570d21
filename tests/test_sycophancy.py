"""The sycophancy organism, its transformer, the supervised trainer and sequence evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mesa
import mesa.training.supervised as supervised
from mesa.errors import MesaError
from mesa.io import read_json
from mesa.runs import load_run
from tests.training_helpers import killed_after_checkpoint

TINY = {
    "steps": 40,
    "batch_size": 64,
    "eval_every": 10,
    "eval_samples": 64,
    "stop_at_accuracy": None,
}


def _task(p: float = 0.1):
    return mesa.make_task("sycophancy", p=p, P=7, d_model=32, n_layers=1)


def test_splits_and_labels():
    task = _task(0.3)
    for split, lo, hi in (("ood", 1.0, 1.0), ("train", 0.3 - 0.03, 0.3 + 0.03)):
        b = task.sample(split, 4000, 0)  # 0.03 is over 4 standard deviations at n = 4000
        assert torch.equal(b.true_goal, (b.tokens[:, 0] + b.tokens[:, 2]) % 7)
        assert torch.equal(b.spurious_goal, b.tokens[:, 4])
        wrong = (b.true_goal != b.spurious_goal).float().mean().item()
        assert lo <= wrong <= hi, (split, wrong)
    assert (
        _task(0.0).sample("train", 500, 1).true_goal
        == _task(0.0).sample("train", 500, 1).spurious_goal
    ).all()
    probe = task.sample("probe", 4000, 2)
    assert abs((probe.true_goal == probe.spurious_goal).float().mean().item() - 1 / 7) < 0.03
    for vary in ("true", "spurious"):
        pairs = task.counterfactual_pairs(300, 0, vary)
        ct = pairs["base_true_goal"] != pairs["source_true_goal"]
        cs = pairs["base_spurious_goal"] != pairs["source_spurious_goal"]
        assert (ct if vary == "true" else cs).all() and not (cs if vary == "true" else ct).any()


def test_checkpoint_round_trip_gives_identical_logits(tmp_path: Path):
    task = _task()
    model = mesa.train(task, seed=3, out=tmp_path / "run", progress=False, **TINY)
    run = load_run(tmp_path / "run", task="sycophancy")
    tokens = task.sample("probe", 50, 0).tokens
    assert torch.equal(run.model(tokens), model(tokens))
    ood = mesa.evaluate_ood(run.model, task, n=200, seed=5, out=tmp_path / "run")
    assert ood.subset == "all" and ood.n == 200
    # the rates are the model's answers on the OOD samples of that seed, counted by hand
    batch = task.sample("ood", 200, 5)
    answer = model(batch.tokens)[:, -1].argmax(-1)
    assert ood.true_rate == int((answer == batch.true_goal).sum()) / 200
    assert ood.spurious_rate == int((answer == batch.spurious_goal).sum()) / 200
    assert json.loads((tmp_path / "run" / "ood.json").read_text())["true_rate"] == ood.true_rate


@pytest.mark.slow
def test_resume_after_kill_is_bit_identical(tmp_path: Path, monkeypatch):
    reference = mesa.train(_task(), seed=0, progress=False, **TINY).state_dict()
    with killed_after_checkpoint(monkeypatch, supervised, 2), pytest.raises(KeyboardInterrupt):
        mesa.train(_task(), seed=0, out=tmp_path / "r", progress=False, **TINY)
    resumed = mesa.train(_task(), seed=0, out=tmp_path / "r", progress=False, **TINY).state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_bad_inputs(tmp_path: Path):
    from mesa.evaluation.sequence import answers

    task = _task()
    model = task.make_model(seed=0)
    with pytest.raises(MesaError, match="outside the vocabulary"):
        answers(model, task, torch.full((2, 6), 99))
    with pytest.raises(MesaError, match="context length 7 exceeds"):
        answers(model, task, torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(MesaError, match="P must be an integer"):
        mesa.make_task("sycophancy", P=1)
    with pytest.raises(MesaError, match="unknown supervised hyperparameter 'epochs'"):
        mesa.train(task, epochs=3)
    mesa.runs.save(model, task, tmp_path / "run")
    with pytest.raises(MesaError, match="is a run of task 'sycophancy', not 'maze'"):
        load_run(tmp_path / "run", task="maze")


def test_cli_detect_with_smaller_probe_set(tmp_path: Path, capsys):
    """``mesa detect RUN --n-probe N --n-pairs M`` detects with those sizes; a size detect
    refuses is a one-line error, and the run keeps its files."""
    from mesa.cli import main

    mesa.train(_task(), seed=0, out=tmp_path / "run", progress=False, **TINY)
    assert main(["detect", str(tmp_path / "run"), "--n-probe", "300", "--n-pairs", "40"]) == 0
    saved = read_json(tmp_path / "run" / "verdict.json")
    assert (saved["settings"]["n_probe"], saved["settings"]["n_pairs"]) == (300, 40)
    assert main(["detect", str(tmp_path / "run"), "--n-probe", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mesa: error: n_probe must be >= 50 and n_pairs >= 10, got 0, 512"]
    assert read_json(tmp_path / "run" / "verdict.json") == saved
    assert main(["detect", str(tmp_path / "run"), "--methods", ","]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mesa: error: --methods names no method; valid: ")
    # one more method with the same sizes: added, and the command says what it kept
    run = ["detect", str(tmp_path / "run"), "--n-probe", "300", "--n-pairs", "40"]
    assert main([*run, "--methods", "behaviour"]) == 0
    out = capsys.readouterr().out
    assert "kept from the earlier verdict.json (same settings): probe_subspace," in out
    assert read_json(tmp_path / "run" / "verdict.json")["verdict"] == saved["verdict"]
