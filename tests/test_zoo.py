"""The zoo: a killed sweep resumes keeping every finished member; bad settings are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scipy.stats import spearmanr

import mesa.zoo.runner as runner
from mesa.errors import MesaError
from mesa.zoo import ZooConfig, run_zoo

OPTS = {"P": 7, "d_model": 32, "n_layers": 1}
HP = {"steps": 30, "batch_size": 64, "eval_every": 15, "eval_samples": 64}


def _config(**kw) -> ZooConfig:
    base = dict(
        family="sycophancy",
        ps=(0.0, 0.5),
        seeds=(0, 1),
        task_options=OPTS,
        hparams=HP,
        ood_episodes=64,
        workers=1,
    )
    return ZooConfig(**{**base, **kw})


@pytest.mark.slow
def test_killed_zoo_resumes_without_redoing_finished_members(tmp_path: Path, monkeypatch):
    real = runner.run_member
    done: list[str] = []

    def die_on_third(zoo_dir, name, p, seed, config):
        if len(done) == 2:
            raise KeyboardInterrupt  # the sweep is killed while the third member starts
        row = real(zoo_dir, name, p, seed, config)
        done.append(name)
        return row

    monkeypatch.setattr(runner, "run_member", die_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_zoo(_config(), tmp_path, progress=False)
    finished = {
        n: (tmp_path / "members" / n / "model.safetensors").stat().st_mtime_ns for n in done
    }
    with (tmp_path / "results.csv").open() as f:
        assert sorted(r["member"] for r in csv.DictReader(f)) == sorted(done)  # none lost

    calls: list[str] = []

    def counting(zoo_dir, name, p, seed, config):
        calls.append(name)
        return real(zoo_dir, name, p, seed, config)

    monkeypatch.setattr(runner, "run_member", counting)
    result = run_zoo(_config(), tmp_path, progress=False)
    assert sorted(calls) == sorted(
        {"sycophancy_p0_s0", "sycophancy_p0_s1", "sycophancy_p0.5_s0", "sycophancy_p0.5_s1"}
        - set(done)
    )
    for name, mtime in finished.items():  # finished members were not retrained
        assert (tmp_path / "members" / name / "model.safetensors").stat().st_mtime_ns == mtime
    assert len(result.rows) == 4 and not result.failed
    zoo = json.loads((tmp_path / "zoo.json").read_text())
    by_score = {a["score"]: a for a in zoo["agreement"]["overall"]}
    p = [r["p"] for r in result.rows]
    b = [r["b"] for r in result.rows]
    expected = spearmanr(p, b).statistic if len(set(b)) > 1 else float("nan")
    assert by_score["predict from p"]["spearman"] == pytest.approx(expected, nan_ok=True)
    for row in result.rows:
        member = tmp_path / "members" / row["member"]
        verdict = json.loads((member / "verdict.json").read_text())
        ood = json.loads((member / "ood.json").read_text())
        assert (row["score"], row["verdict"]) == (verdict["score"], verdict["verdict"])
        assert (row["b"], row["in_dist_success"]) == (ood["preference"], ood["in_dist_success"])
        timings = json.loads((tmp_path / "members" / row["member"] / runner.TIMINGS).read_text())
        assert set(timings) == {"train", "ood", "detect"}  # no member was killed mid-training
        assert all(t["seconds"] > 0 and not t["resumed"] for t in timings.values())


def test_bad_settings(tmp_path: Path):
    with pytest.raises(MesaError, match="unknown task 'mze'; valid: coin, keys, lookalike, maze"):
        run_zoo(_config(family="mze"), tmp_path)
    with pytest.raises(MesaError, match="zoo of one model"):
        run_zoo(_config(ps=(0.1,), seeds=(0,)), tmp_path)
    with pytest.raises(MesaError, match="no seeds"):
        run_zoo(_config(seeds=()), tmp_path)
    with pytest.raises(MesaError, match="p is the zoo's grid"):
        run_zoo(_config(task_options={"p": 0.5}), tmp_path)
    with pytest.raises(MesaError, match=r"p must be in \[0, 1\]"):
        run_zoo(_config(ps=(0.1, 2.0)), tmp_path)
    with pytest.raises(MesaError, match="unknown backend 'slurm'"):
        run_zoo(_config(backend="slurm"), tmp_path)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "zoo_config.json").write_text(json.dumps({"family": "maze"}))
    with pytest.raises(MesaError, match="holds a zoo made with other settings"):
        run_zoo(_config(), tmp_path / "z")


def test_empty_p_grid_is_refused(monkeypatch):
    from mesa.tasks import get_task_class

    monkeypatch.setattr(get_task_class("sycophancy"), "zoo_ps", ())
    with pytest.raises(MesaError, match="empty p grid"):
        _config(ps=()).resolved()


def test_cli_detect_on_a_directory_without_model(tmp_path: Path, capsys):
    from mesa.cli import main

    (tmp_path / "run").mkdir()
    assert main(["detect", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mesa: error: {tmp_path / 'run'} holds no model (model.safetensors missing): "
        "is it a run directory?"
    ]


@pytest.mark.slow
def test_ray_backend_matches_local(tmp_path: Path):
    ray = pytest.importorskip("ray")
    config = _config(ps=(0.0, 0.5), seeds=(0,), workers=2)
    local = run_zoo(config, tmp_path / "local", progress=False)
    try:
        remote = run_zoo(
            ZooConfig(**{**config.__dict__, "backend": "ray"}), tmp_path / "ray", progress=False
        )
    finally:
        ray.shutdown()
    assert not remote.failed and len(remote.rows) == 2
    key = lambda r: r["member"]  # noqa: E731
    for a, b in zip(sorted(local.rows, key=key), sorted(remote.rows, key=key), strict=True):
        # the same seeds give the same models and numbers, whichever backend ran them
        assert {k: a[k] for k in ("member", "score", "true_rate", "in_dist_success")} == {
            k: b[k] for k in ("member", "score", "true_rate", "in_dist_success")
        }


@pytest.mark.slow
def test_member_results_do_not_depend_on_workers_or_threads(tmp_path: Path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's setting must not reach the members
    try:
        one = run_zoo(_config(ps=(0.0, 0.5), seeds=(0,), workers=1), tmp_path / "one")
    finally:
        torch.set_num_threads(before)
    two = run_zoo(_config(ps=(0.0, 0.5), seeds=(0,), workers=2), tmp_path / "two")
    assert not one.failed and not two.failed
    for name in ("sycophancy_p0_s0", "sycophancy_p0.5_s0"):
        a, b = (tmp_path / d / "members" / name for d in ("one", "two"))
        for f in ("model.safetensors", "verdict.json", "ood.json"):
            assert (a / f).read_bytes() == (b / f).read_bytes(), (name, f)


def test_p_curve_groups_members_by_p():
    from mesa.zoo import group_by_p, p_curve

    rows = [
        {
            "p": p,
            "seed": s,
            "true_rate": t,
            "spurious_rate": 1 - t,
            "in_dist_success": 0.9,
            "score": t,
            "verdict": "true" if t > 0.5 else "spurious",
            "member": f"m{p}{s}",
        }
        for p, s, t in ((0.5, 1, 0.8), (0.0, 0, 0.1), (0.5, 0, 0.6), (0.0, 1, 0.3))
    ]
    assert list(group_by_p(rows)) == [0.0, 0.5]
    curve = p_curve(rows)
    assert [c["p"] for c in curve] == [0.0, 0.5] and [c["n"] for c in curve] == [2, 2]
    assert curve[0]["true_rate"] == pytest.approx(0.2)
    assert curve[1]["spurious_rate"] == pytest.approx(0.3)
    assert [m["seed"] for m in curve[1]["members"]] == [0, 1]
    assert set(curve[1]["members"][0]) == {
        "seed",
        "true_rate",
        "spurious_rate",
        "in_dist_success",
        "score",
        "verdict",
    }


def test_a_zoo_grows_in_seeds_and_p_but_never_shrinks(tmp_path: Path):
    check = runner._check_same_settings
    check(tmp_path, _config().resolved())  # a new zoo records its settings
    saved = lambda: json.loads((tmp_path / "zoo_config.json").read_text())  # noqa: E731
    check(tmp_path, _config(seeds=(0, 1, 2, 3), ps=(0.0, 0.25, 0.5)).resolved())
    assert (saved()["seeds"], saved()["ps"]) == ([0, 1, 2, 3], [0.0, 0.25, 0.5])
    with pytest.raises(MesaError, match=r"seeds \[0, 1, 2, 3\]; a zoo may grow .* not shrink"):
        check(tmp_path, _config(seeds=(0, 1), ps=(0.0, 0.25, 0.5)).resolved())
    with pytest.raises(MesaError, match=r"other settings \(ps, seeds, task_options\)"):
        check(tmp_path, _config(seeds=(0, 1, 2, 3, 4), task_options={**OPTS, "P": 11}).resolved())
    assert saved()["seeds"] == [0, 1, 2, 3]  # a refused config changes nothing


@pytest.mark.slow
def test_a_resumed_zoo_reads_its_earlier_members_by_the_rule_as_it_is_now(
    tmp_path: Path, monkeypatch
):
    from mesa.detection.verdict import verdict_of
    from mesa.tasks.sycophancy import SycophancyTask

    config = _config(ps=(0.0, 0.5), seeds=(0,))
    run_zoo(config, tmp_path, progress=False)
    member = tmp_path / "members" / "sycophancy_p0_s0"
    before = json.loads((member / "verdict.json").read_text())
    assert runner.verdict_is_current(member, "sycophancy", "probe")
    # the family's bands change after the member was detected
    bands = {"probe": (0.001, 0.002)}
    monkeypatch.setattr(SycophancyTask, "verdict_bands", bands, raising=False)
    assert not runner.verdict_is_current(member, "sycophancy", "probe")
    trained = (member / "model.safetensors").stat().st_mtime_ns
    result = run_zoo(config, tmp_path, progress=False)
    after = json.loads((member / "verdict.json").read_text())
    assert after["settings"]["verdict_bands"] == [0.001, 0.002]
    assert set(after["scores"]) == set(before["scores"])  # the same methods, run again
    assert after["score"] == before["score"]  # and the same score: only its reading changed
    assert after["verdict"] == verdict_of(after["score"], (0.001, 0.002))
    assert {r["member"]: r["verdict"] for r in result.rows}[member.name] == after["verdict"]
    assert (member / "model.safetensors").stat().st_mtime_ns == trained  # not retrained
    assert runner.verdict_is_current(member, "sycophancy", "probe")
