"""The experiments suite: one entry point that knows every script, results stamped and written
atomically under names of what they ran, and an index and pages generated from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mesa.io
from experiments import EXPERIMENTS, HELPERS, HERE, common, index

REPO = HERE.parent


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_listing_names_every_script_and_nothing_else():
    scripts = {p.stem for p in HERE.glob("*.py")} - set(HELPERS)
    registered = [e.name for e in EXPERIMENTS]
    assert len(registered) == len(set(registered))
    assert set(registered) == scripts  # nothing unregistered, nothing registered that is missing
    assert not [p.name for p in HERE.iterdir() if p.suffix in (".sh", ".ipynb")]
    out = _run()
    assert out.returncode == 0, out.stderr
    for e in EXPERIMENTS:
        line = next(ln for ln in out.stdout.splitlines() if ln.split()[:1] == [e.name])
        assert e.purpose in line and f"[{e.page}]" in line
        assert (HERE / e.page).is_file(), e.page
        assert callable(e.module().main)
    assert "index" in out.stdout
    readme = (HERE / "README.md").read_text()
    assert all(f"| `{e.name}` |" in readme for e in EXPERIMENTS)  # the README's table too
    bad = _run("no_such_experiment")
    assert bad.returncode == 2 and "unknown experiment 'no_such_experiment'" in bad.stderr


def test_write_result_stamps_and_names_by_what_and_commit(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(common, "COMMAND", "python -m experiments demo_exp --x 1")
    path = common.write_result("demo_exp", "coin seeds 4-7", {"value": 1.5}, results=tmp_path)
    commit, dirty = common.git_commit()
    assert path == tmp_path / "demo_exp" / (
        f"coin-seeds-4-7-{commit}" + ("-dirty" if dirty else "") + ".json"
    )
    data = json.loads(path.read_text())
    assert list(data)[: len(common.STAMP_KEYS)] == list(common.STAMP_KEYS)
    assert data["command"] == "python -m experiments demo_exp --x 1"
    assert data["commit"] == commit and data["experiment"] == "demo_exp"
    assert data["date"].endswith("+00:00") and data["date"][:2] == "20"
    assert {"python", "torch", "cpus"} <= set(data["machine"]) and data["value"] == 1.5
    with pytest.raises(ValueError, match="overwrite the stamp"):
        common.write_result("demo_exp", "x", {"commit": "mine"}, results=tmp_path)
    assert common.seeds_slug([7, 4, 5, 6]) == "seeds4-7"
    assert common.seeds_slug([0]) == "seed0" and common.seeds_slug([0, 2]) == "seeds0_2"
    # a name part with a dot is not taken for a suffix
    assert (
        common.with_suffix(tmp_path / "coin_p0.2_s5-abc", ".json").name == "coin_p0.2_s5-abc.json"
    )


def test_write_result_is_atomic(tmp_path: Path, monkeypatch):
    """The write goes through mesa.io: a failure mid-write leaves the old file whole and no
    temporary file behind."""
    calls = []
    real = mesa.io.atomic_write_bytes

    def spy(path, data):
        calls.append(Path(path))
        real(path, data)

    monkeypatch.setattr(mesa.io, "atomic_write_bytes", spy)
    path = common.write_result("demo_exp", "one", {"v": 1}, results=tmp_path)
    assert calls == [path]
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        common.write_result("demo_exp", "one", {"v": 2}, results=tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def _fake_results(root: Path) -> None:
    """One stamped result of bench_patching and one archived bench_env file."""
    (root / "bench_patching").mkdir(parents=True)
    (root / "bench_patching" / "threads1-abc1234.json").write_text(
        json.dumps(
            {
                "experiment": "bench_patching",
                "what": "threads1",
                "command": "python -m experiments bench_patching --repeats 1",
                "commit": "abc1234",
                "dirty": False,
                "date": "2030-01-02T03:04:05+00:00",
                "machine": {},
                "cases": {
                    "resid_pre": {
                        "median_transformer_lens_s": 0.8,
                        "median_mesa_s": 0.1,
                        "speedup": 8.0,
                        "max_abs_difference": 0.0,
                    }
                },
                "min_speedup": 8.0,
                "max_abs_difference": 0.0,
            }
        )
    )
    (root / "bench_patching" / "notes.json").write_text("[1, 2]")  # not a result: skipped
    archive = root / "archive"
    archive.mkdir()
    (archive / "bench_env.json").write_text(
        json.dumps(
            {
                "minigrid_empty_8x8": {"steps_per_s": 5000.0},
                "minigrid_empty_8x8_after": {"steps_per_s": 4000.0},
                "mesa_maze": [
                    {
                        "num_envs": 16,
                        "copy_obs": False,
                        "steps_per_s": 9e6,
                        "ratio_to_minigrid": 2e3,
                    }
                ],
                "best_ratio_copied": 900.0,
                "best_ratio_live_buffer": 2000.0,
            }
        )
    )
    (archive / "provenance.json").write_text(
        json.dumps(
            [
                {
                    "file": "bench_env.json",
                    "experiment": "bench_env",
                    "commit": "def5678",
                    "date": "2029-05-06T07:08:09+00:00",
                    "command": "python experiments/bench_env.py --repeats 5",
                    "now": "python -m experiments bench_env --repeats 5",
                    "note": "an old one",
                }
            ]
        )
    )


def test_index_on_a_fake_results_dir(tmp_path: Path):
    results, pages = tmp_path / "results", tmp_path
    _fake_results(results)
    (pages / "page.md").write_text(
        "# A page\n\n<!-- results: results/archive/bench_env.json -->\nstale\n"
        "<!-- end results -->\n\nprose\n"
    )
    out = index.write_index(results, pages=pages)
    text = out.read_text()
    patching = text[text.index("## bench_patching") : text.index("## bench_training")]
    assert (
        "[bench_patching/threads1-abc1234.json](bench_patching/threads1-abc1234.json) (latest)"
        in patching
    )
    assert (
        "| 2030-01-02 | abc1234 | `python -m experiments bench_patching --repeats 1` |" in patching
    )
    assert "min speed-up 8; max \\|difference\\| 0" in patching
    env = text[text.index("## bench_env") : text.index("## bench_patching")]
    assert "archive/bench_env.json" in env and "def5678 (recorded in)" in env
    assert "best x MiniGrid, copied 900; live buffer 2,000" in env
    assert "notes.json" not in text
    assert "## bench_zoo" in text and "No results yet." in text  # every experiment has a section
    readme = (results / "archive" / "README.md").read_text()
    assert "| [bench_env.json](bench_env.json) | def5678 | 2029-05-06 |" in readme
    assert "`python -m experiments bench_env --repeats 5`" in readme
    page = (pages / "page.md").read_text()
    assert "stale" not in page and page.endswith("<!-- end results -->\n\nprose\n")
    assert "From `results/archive/bench_env.json` (recorded in def5678, 2029-05-06)" in page
    assert "| mesa `maze` | 16 | live buffer | 9,000,000 | 2,000 |" in page
    (pages / "bad.md").write_text("<!-- results: results/nothing.json -->\n<!-- end results -->\n")
    with pytest.raises(FileNotFoundError, match=r"cites results/nothing\.json"):
        index.write_index(results, pages=pages)


def test_pages_tables_are_what_their_results_say():
    """Every page's results markers name a result, and its table is regenerated from it
    (``python -m experiments index`` leaves the pages as they are)."""
    found = index.collect(HERE / "results")
    by_path = {r.path.resolve(): r for r in found}
    cited = 0
    for page in sorted(HERE.glob("*.md")):
        assert index.render_page(page, by_path) == page.read_text(), page.name
        cited += page.read_text().count("<!-- results: ")
    assert cited >= 15
    # every archived file has its provenance line
    archived = {r.path.name for r in found if r.archived}
    assert {"bench_zoo_seeds4-7.json", "maze_long_budget", "demo_report_screenshot.png"} <= archived
    for r in found:
        assert index.headline(r), r.path


def test_bench_env_smoke(tmp_path: Path):
    pytest.importorskip("minigrid")
    out = _run(
        "--results", str(tmp_path), "bench_env", "--repeats", "1", "--threads", "1",
        "--num-envs", "4", "--steps", "3", "--minigrid-steps", "50",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "bench_env").glob("threads1-custom-*.json")
    data = json.loads(path.read_text())
    assert data["command"].startswith(f"python -m experiments --results {tmp_path} bench_env")
    assert data["mesa_maze"][0]["num_envs"] == 4
    assert "bench_env/" + path.name in (tmp_path / "INDEX.md").read_text()


@pytest.mark.slow
def test_bench_device_smoke(tmp_path: Path):
    """The CPU half (the GPU's joins it where torch sees one): engine rows, a training run."""
    out = _run(
        "--results", str(tmp_path), "bench_device", "--devices", "cpu", "--seeds", "1",
        "--threads", "1", "--repeats", "1", "--num-envs", "4", "--steps", "3",
        "--opt", "size=5", "n_levels=20",
        "--hp", "total_timesteps=256", "num_envs=8", "num_steps=16", "eval_every=2",
        "eval_episodes=8", "--ood-episodes", "16",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "bench_device").glob("maze-seed0-cpu-threads1-custom-*.json")
    data = json.loads(path.read_text())
    assert data["devices"] == ["cpu"] and data["engine"][0]["num_envs"] == 4
    assert data["training"][0]["global_step"] == 256
    from experiments import bench_device

    assert "| cpu | 0/1 | n/a |" in bench_device.table(data)  # 256 steps: under 500 episodes


@pytest.mark.slow
def test_misgeneralization_smoke(tmp_path: Path):
    """A two-model sycophancy zoo: the curve (mesa.zoo.p_curve), its figure and the index."""
    out = _run(
        "--results", str(tmp_path / "results"), "misgeneralization", "--family", "sycophancy",
        "--p", "0", "0.5", "--seeds", "1", "--zoo", str(tmp_path / "zoo"),
        "--opt", "P=7", "d_model=32", "n_layers=1",
        "--hp", "steps=30", "batch_size=64", "eval_every=15", "eval_samples=64",
        "--ood-episodes", "64",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "results" / "misgeneralization").glob("sycophancy-seed0-custom-*.json")
    assert path.with_suffix(".png").is_file()
    data = json.loads(path.read_text())
    assert [c["p"] for c in data["curve"]] == [0.0, 0.5]
    assert data["hparams"]["steps"] == 30 and data["task_options"]["P"] == 7
    assert "| 0.5 | 1 |" in out.stdout  # the table it prints


def _fake_dev_zoo(
    root: Path, members: list[tuple[float, int, float, dict[str, tuple[float, float]]]]
):
    """A finished zoo as detection_rules reads it: results.csv and each member's verdict.json
    (per-method absolute effects, true and spurious)."""
    import csv

    root.mkdir(parents=True)
    rows = []
    for p, seed, b, effects in members:
        name = f"m_p{p}_s{seed}"
        (root / "members" / name).mkdir(parents=True)
        methods = {
            m: {"effect": {"true": t, "spurious": s}, "score": t / (t + s)}
            for m, (t, s) in effects.items()
        }
        verdict = {"methods": methods, "scores": {m: v["score"] for m, v in methods.items()}}
        (root / "members" / name / "verdict.json").write_text(json.dumps(verdict))
        rows.append(
            {"family": "toy", "p": p, "seed": seed, "member": name, "b": b, "in_dist_success": 0.99}
        )
    with (root / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_detection_rules_scores_candidates_and_baselines_and_refuses_test_seeds(tmp_path: Path):
    from experiments import detection_rules

    # erasure tracks behaviour; patching measures nothing (below the floor); behaviour is
    # miscalibrated (calls everyone spurious)
    members = []
    for i, (p, b) in enumerate([(0.0, 0.1), (0.0, 0.2), (0.5, 0.8), (0.5, 0.9)]):
        effects = {
            "erasure": (0.4 * b, 0.4 * (1 - b)),
            "probe_subspace": (0.3, 0.3),
            "patching": (0.01, 0.02),
            "behaviour": (0.1 * b, 0.4),
        }
        members.append((p, i, b, effects))
    _fake_dev_zoo(tmp_path / "toy", members)
    rows = detection_rules._rows(tmp_path / "toy")
    result = detection_rules.evaluate(rows)
    erasure = result["erasure"]["calibration"]
    assert (erasure["match"], erasure["wrong"], erasure["n"]) == (4, 0, 4)
    assert result["patching"]["calibration"]["inconclusive"] == 4  # below FLOOR: no verdict
    assert result["probe_subspace"]["calibration"]["match"] == 0  # 0.5 everywhere: mixed
    behaviour = result["baseline: behaviour"]["calibration"]
    assert behaviour["wrong"] == 2  # the two b > 1/2 members called spurious
    assert result["erasure"]["spearman"] == pytest.approx(1.0)
    assert detection_rules.choose(result) == "erasure"
    assert "baseline: predict from p" in detection_rules.table(
        {"families": {"toy": result}, "overall": result}
    )

    _fake_dev_zoo(tmp_path / "test", [(0.0, 100, 0.1, {"erasure": (0.1, 0.3)})])
    with pytest.raises(SystemExit, match="test seeds"):
        detection_rules._rows(tmp_path / "test")


def test_within_p_reports_how_many_members_converged(tmp_path: Path):
    from experiments import bench_within_p

    (tmp_path / "results.csv").write_text("member,in_dist_success\na,0.99\nb,0.963\nc,0.97\n")
    d = bench_within_p.in_dist_range(tmp_path)
    assert d == {"min": 0.963, "max": 0.99, "converged": 2, "n": 3}
    family = {
        "p": 0.03,
        "split": {"above": 2, "below": 1, "splits": False},
        "in_dist": d,
        "cost": {"search_share": 0.2, "overhead_share": 1.5},
        "wall_s": 60.0,
        "agreement": {},
    }
    result = {"population": 3, "seeds": [100, 101, 102], "probes": 4, "total_wall_s": 60.0}
    page = bench_within_p.table({**result, "families": {"toy": family}})
    assert "| toy | 0.03 | 2 : 1 | no | 96.3%-99.0% (2 of 3 >= 97%) | 0.20 | 1.50 | 1.0 |" in page
    del family["cost"]["overhead_share"]  # results recorded before it say n/a
    page = bench_within_p.table({**result, "families": {"toy": family}})
    assert "| 0.20 | n/a | 1.0 |" in page
    family["split"].update(trained=2, stopped_early=0.01)  # a last population stopped early
    page = bench_within_p.table({**result, "families": {"toy": family}})
    assert "| toy | 0.03 | 2 : 1 (stopped after 2) | no |" in page


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--lanes", "3"], "--lanes 3 is more than --workers (2)"),
        (["--families", "keys", "--lanes", "2"], "--lanes 2 is more than the families given (1)"),
        (["--workers", "3", "--lanes", "2"], "--workers 3 cannot be shared evenly among --lanes 2"),
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--backend", "ray", "--lanes", "2"], "with --backend ray use --lanes 1"),
        (["--families", "nosuch"], "bench_within_p: error: nosuch: unknown task 'nosuch'"),
        (["--population", "2"], "lookalike: a population of 2 cannot hold 4 members on each"),
    ],
)
def test_within_p_lanes_are_checked_before_anything_runs(argv, says, capsys):
    from experiments import bench_within_p

    with pytest.raises(SystemExit) as exit:
        bench_within_p.main(argv)
    assert says in capsys.readouterr().err + str(exit.value.code)


@pytest.mark.slow
def test_within_p_lanes_train_the_same_members_and_name_a_failed_family(tmp_path: Path):
    """Families searched side by side (each lane a worker process) train the very members that
    one family at a time does; a family that fails is named once the others are done."""
    import csv

    from experiments import bench_within_p
    from mesa.errors import MesaError

    def search(out: Path) -> dict:
        return {
            "out": str(out),
            "first_seed": 100,
            "population": 2,
            "probes": 1,
            "seeds_per_probe": 1,
            "moves": 0,
            "min_each_side": 1,
            "workers": 1,
            "options": {"P": 7, "d_model": 32, "n_layers": 1},
            "hparams": {"steps": 40, "batch_size": 64, "eval_every": 20, "eval_samples": 64},
        }

    one = bench_within_p.run_families(["sycophancy"], search(tmp_path / "one"), lanes=1)
    with pytest.raises(MesaError, match="no-such-family: unknown task"):
        bench_within_p.run_families(
            ["sycophancy", "no-such-family"], search(tmp_path / "two"), lanes=2
        )

    def rows(out: Path) -> list[tuple[str, str]]:
        p = one["sycophancy"]["p"]
        with (out / "sycophancy" / f"p{p:g}" / "results.csv").open() as fh:
            return [(r["member"], r["b"]) for r in csv.DictReader(fh)]

    assert rows(tmp_path / "one") == rows(tmp_path / "two") and len(rows(tmp_path / "one")) == 2
    # once one lane ended, the other was told it may use both workers (that a run then grows
    # is tested in test_reliability; the rows above show members do not depend on it)
    lent = json.loads((tmp_path / "two" / bench_within_p.SHARE).read_text())
    assert lent == {"workers_per_lane": 2}


def test_bench_ppo_phases_smoke(tmp_path: Path):
    from experiments import bench_ppo_phases

    out = _run(
        "--results", str(tmp_path), "bench_ppo_phases", "--families", "coin", "--updates", "2",
        "--minibatch-steps", "2", "--hp", "num_envs=8", "num_steps=16", "eval_every=1",
        "eval_episodes=8", "--opt", "n_levels=20",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "bench_ppo_phases").glob("coin-updates2-custom-*.json")
    (row,) = json.loads(path.read_text())["rows"]
    assert row["steps_per_update"] == 128 and row["evals"] == 2
    assert set(row["per_update_s"]) == {"rollout", "advantages", "update", "eval"}
    assert sum(row["share"].values()) == pytest.approx(1.0)
    assert all(v > 0 for v in row["per_update_s"].values())
    step = row["minibatch_step"]
    assert step["minibatch"] == 32 and step["ms_default"] > 0 and step["ms_channels_last"] > 0
    assert 0 < step["conv_share"] < 1
    assert "ms_compiled" not in step  # torch.compile only with --compiled
    step.update(ms_compiled=12.345, compile_s=3.0)  # the table shows it when it was measured
    assert "channels-last / compiled |" in bench_ppo_phases.table({"rows": [row]})
    assert " / 12.3 | " in bench_ppo_phases.table({"rows": [row]})


def test_compute_floor_sums_member_phases(tmp_path: Path):
    from experiments import compute_floor

    runs = tmp_path / "runs"
    for family, member, seconds in (("coin", "a", (60, 6, 2)), ("coin", "b", (40, 4, 1)),
                                    ("maze", "c", (100, 10, 3))):  # fmt: skip
        d = runs / family / "members" / member
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"task": {"name": family}}))
        t = {
            p: {"seconds": s, "resumed": member == "b"}
            for p, s in zip(compute_floor.PHASES, seconds, strict=True)
        }
        (d / "timings.json").write_text(json.dumps(t))
    wall = tmp_path / "wall.json"
    wall.write_text(json.dumps({"total_wall_s": 150.0}))
    out = _run("--results", str(tmp_path / "res"), "compute_floor", str(runs / "coin"), str(runs),
               "--workers", "2", "--wall-from", str(wall))  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (tmp_path / "res" / "compute_floor").glob("coin-runs-*.json")
    result = json.loads(path.read_text())
    assert result["families"]["coin"] == {
        "members": 2, "resumed": 3, "train": 100.0, "ood": 10.0, "detect": 3.0}  # fmt: skip
    assert result["families"]["maze"]["members"] == 1  # each member counted once
    assert result["worker_s"] == 226.0 and result["floor_s"] == 113.0 and result["wall_s"] == 150.0
    assert "at least **1.9 min** against 2.5 min recorded (the floor is 75% of it)" in out.stdout
    bad = _run("--results", str(tmp_path / "res"), "compute_floor", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "not a directory" in bad.stderr


def test_pooled_within_p_reads_populations_and_refuses_overlaps(tmp_path: Path):
    rng = np.random.default_rng(0)

    def population(name: str, family: str, first_seed: int, b: np.ndarray) -> Path:
        d = tmp_path / name
        d.mkdir()
        cols = ["member", "family", "p", "seed", "verdict", "score", "b", "in_dist_success",
                "score_behaviour", "score_probe"]  # fmt: skip
        lines = [",".join(cols)]
        for i, bb in enumerate(b):
            s, beh = bb + rng.normal(0, 0.1), bb + rng.normal(0, 0.1)
            lines.append(f"m{i},{family},0.05,{first_seed + i},mixed,{s},{bb},0.98,{beh},0.5")
        (d / "results.csv").write_text("\n".join(lines) + "\n")
        return d

    a = population("a", "coin", 100, rng.uniform(0, 1, 12))
    c = population("c", "coin", 200, rng.uniform(0, 1, 12))
    one_sided = population("one_sided", "maze", 100, rng.uniform(0.6, 1, 12))
    res = tmp_path / "res"
    out = _run("--results", str(res), "pooled_within_p", str(a), str(c), str(one_sided),
               "--what", "t", "--n-boot", "100")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = (res / "pooled_within_p").glob("t-*.json")
    result = json.loads(path.read_text())
    assert result["pooled"]["all"]["populations"] == 2
    assert [p["path"] for p in result["populations"]] == [str(a), str(c)]
    assert result["left_out"] == [f"{one_sided} (12 : 0)"]
    assert path.with_suffix(".png").is_file()
    assert "| all | 2 | mechanistic score |" in out.stdout
    overlap = _run("--results", str(res), "pooled_within_p", str(a), str(a), "--what", "t")
    assert overlap.returncode == 2 and "share coin seed 100" in overlap.stderr
    missing = _run("--results", str(res), "pooled_within_p", str(tmp_path), "--what", "t")
    assert missing.returncode != 0 and "no results.csv" in missing.stderr
    broken = population("broken", "coin", 300, rng.uniform(0, 1, 4))
    csv_path = broken / "results.csv"
    csv_path.write_text(
        csv_path.read_text()
        .replace(",0.98,", ",0.98,")
        .replace("m0,coin,0.05,300,mixed,", "m0,coin,0.05,,mixed,")
    )
    bad = _run("--results", str(res), "pooled_within_p", str(broken), "--what", "t")
    assert bad.returncode == 1 and "member m0 has no b or seed" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("target", ["cheese", "corner"])
def test_goal_pursuit_measures_a_known_seeker(target: str):
    import mesa
    from experiments import goal_pursuit
    from mesa.detection.data import Detection
    from tests.test_detect import MazeSeeker

    task = mesa.make_task("maze", n_levels=300)
    d = Detection(MazeSeeker(target), task, n_probe=100, n_pairs=200)
    width = task.observation_shape[2]
    true, spur = (goal_pursuit.pursuit(d, g, 2, width) for g in ("true", "spurious"))
    followed, ignored = (true, spur) if target == "cheese" else (spur, true)
    # logits 4 on shortest-path actions: about 95% of a perfect follower's turn, near or far
    assert followed["share_all"] > 0.9 and followed["share_near"] > 0.9
    # moving the corner grows or shrinks the maze (wall edits), which now and then moves the
    # cheese's shortest path too: the ignored goal's share is small, not zero
    assert abs(ignored["share_all"]) < 0.15 < 0.9 < followed["share_all"]
    assert 0 < followed["pairs_near"] < followed["pairs_all"] <= 200
    visible, hidden = goal_pursuit.true_rates(MazeSeeker(target), task, 2, 300, 0)
    assert goal_pursuit.relative({"true": true, "spurious": spur}) == pytest.approx(
        1.0 if target == "cheese" else 0.0, abs=0.15
    )
    if target == "cheese":  # blind to the cheese, it heads for cell 0 instead and rarely finds it
        assert visible > 0.9 and hidden < 0.5
    else:  # the cheese channel is not what it reads: hiding it changes nothing
        assert visible == hidden


def test_goal_pursuit_refuses_a_family_whose_goal_has_no_channel_of_its_own(tmp_path: Path):
    import mesa

    zoo = tmp_path / "zoo"
    task = mesa.make_task("lookalike")
    mesa.save(task.make_model("conv", seed=0), task, zoo / "members" / "m0", {"seed": 0})
    (zoo / "results.csv").write_text("member,p,b,score,verdict\nm0,0.0,0.2,0.1,spurious\n")
    out = _run("--results", str(tmp_path / "res"), "goal_pursuit", str(zoo), "--what", "t")
    assert out.returncode == 2 and "m0 is a lookalike member" in out.stderr
    assert "(coin, maze)" in out.stderr and "members:" not in out.stderr  # refused before any work


def test_internal_ood_moves_a_known_seeker_by_its_goal_subspace(tmp_path: Path):
    import mesa
    from experiments import internal_ood
    from mesa.detection.data import Detection
    from mesa.detection.methods.subspace import probe_basis
    from tests.test_detect import MazeSeeker

    task = mesa.make_task("maze", n_levels=300)
    hook = "blocks.0.hook_out"
    shares = {}
    for target in ("cheese", "corner"):
        model = MazeSeeker(target)
        basis = probe_basis(Detection(model, task, n_probe=400).fitted_probe("true", hook))
        shares[target] = {
            m: internal_ood.episodes(model, task, hook, basis, m, 1000, 0)
            for m in internal_ood.MODES
        }
    # the cheese-seeker reads the cheese from the observation: shown at c2, it goes there
    # first in most episodes (some time out); with only the cheese probe's subspace moved (its
    # directions mix in walls and agent), in fewer, but far more than unmoved
    cheese = shares["cheese"]
    assert cheese["none"]["c2"] < 0.1 and cheese["none"]["goal"] > 0.9
    assert internal_ood.b_hat(cheese["shown"]) > 0.7
    assert internal_ood.b_hat(cheese["subspace"]) > 0.5
    # the corner-seeker ignores the cheese: moving it, inside or on the screen, changes nothing
    assert 50 < cheese["none"]["episodes"] < 1000  # off-path both ways: a share of the levels
    share = internal_ood.change_in_subspace(MazeSeeker("cheese"), task, hook, basis, 200, 0)
    assert 0.3 < share < 1.0  # the probe's subspace holds part of the cheese's change, not all
    corner = shares["corner"]
    assert all(internal_ood.b_hat(corner[m]) < 0.1 for m in internal_ood.MODES)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "results.csv").write_text("member,family,p,seed,b,score\nm,maze,0.1,100,0.5,0.5\n")
    out = _run("--results", str(tmp_path / "res"), "internal_ood", str(zoo), "--what", "t")
    assert out.returncode == 2 and "test seeds (>= 100)" in out.stderr


def test_rollout_baseline_refuses_a_zoo_without_the_rollout_verdict(tmp_path: Path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "results.csv").write_text("member,family,p,seed,b,score\nm,coin,0.1,1,0.5,0.5\n")
    out = _run("--results", str(tmp_path / "res"), "rollout_baseline", str(zoo), "--what", "t")
    assert out.returncode == 2 and "was not detected with rollout_subspace" in out.stderr
    missing = _run("--results", str(tmp_path / "res"), "rollout_baseline", str(tmp_path / "no"))
    assert missing.returncode == 2


def test_rollout_hooks_refuses_test_seeds(tmp_path: Path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "results.csv").write_text("member,family,p,seed,b,score\nm,coin,0.1,100,0.5,0.5\n")
    out = _run("--results", str(tmp_path / "res"), "rollout_hooks", str(zoo), "--what", "t")
    assert out.returncode == 2 and "test seeds (>= 100)" in out.stderr


def test_noise_ceiling_is_high_where_b_is_well_apart_and_low_where_it_is_not():
    from experiments.noise_ceiling import ceiling

    n = np.full(8, 1500)
    apart = ceiling(np.round(np.linspace(0.1, 0.9, 8) * n), n, draws=200, scale=4, seed=0)
    assert apart["ceiling"]["auroc"] == 1.0 and apart["ceiling"]["spearman"] > 0.99
    # eight members within 0.47-0.53 on 300 episodes each: noise as large as their spread
    n = np.full(8, 300)
    close = ceiling(np.round(np.linspace(0.47, 0.53, 8) * n), n, draws=400, scale=4, seed=0)
    assert 0.5 < close["ceiling"]["auroc"] < 0.9 and close["ceiling"]["auroc_p5"] < 0.7
    # measured again on four times the episodes, a perfect detector would agree better
    assert close["x4"]["auroc"] > close["x1"]["auroc"] + 0.05


def test_noise_ceiling_calibration_misses_only_members_at_a_bands_edge():
    from experiments.noise_ceiling import ceiling

    # preferences well inside the bands: a perfect detector's verdicts all match
    n = np.full(6, 1000)
    clear = ceiling(np.round(np.array([0.1, 0.15, 0.5, 0.55, 0.85, 0.9]) * n), n, 200, 4, 0)
    assert clear["calibration"]["match"] == 6 and clear["calibration"]["n"] == 6
    # b just past 1/3 and 2/3 on 100 episodes: the preference may lie either side
    n = np.full(4, 100)
    edge = ceiling(np.array([10, 32, 68, 90]), n, 400, 4, 0)["calibration"]
    assert 2.5 < edge["match"] < 3.9 and edge["match_p5"] < 4


def test_noise_ceiling_refuses_what_is_no_zoo(tmp_path: Path):
    out = _run(
        "--results", str(tmp_path / "res"), "noise_ceiling", str(tmp_path / "no"), "--what", "t"
    )
    assert out.returncode == 2 and "is not a finished zoo" in out.stderr


def test_verdict_bands_are_where_the_fit_crosses_a_third_and_two_thirds():
    from experiments.verdict_bands import fit_bands

    s = np.linspace(0.1, 0.95, 12)
    logit = np.log(s / (1 - s))
    b = 1 / (1 + np.exp(-(-0.7 + 0.7 * logit)))  # a score that reads above b, as keys' does
    fit = fit_bands(s, b)
    assert fit["intercept"] == pytest.approx(-0.7) and fit["slope"] == pytest.approx(0.7)
    # s where -0.7 + 0.7 logit(s) = logit(1/3) and logit(2/3): about 0.50 and 0.88
    lo, hi = (1 / (1 + np.exp(-(np.log(t / (1 - t)) + 0.7) / 0.7)) for t in (1 / 3, 2 / 3))
    assert fit["bands"] == [round(lo, 2), round(hi, 2)] and 0.45 < lo < 0.55 < 0.85 < hi
    s[0] = np.nan  # a member without a score is left out, and one without a measured b
    b[1] = np.nan
    assert fit_bands(s, b)["n"] == 10 and fit_bands(s, b)["bands"] == fit["bands"]
    # a score that falls as b rises has no bands, nor do two members
    falling = fit_bands(s[2:][::-1], b[2:])
    assert falling["bands"] is None and "does not rise" in falling["why"]
    assert "at least 3" in fit_bands(s[2:4], b[2:4])["why"]


def _fake_scored_zoo(root: Path, family: str, seeds: range, s: np.ndarray, b: np.ndarray):
    root.mkdir(parents=True)
    rows = ["member,family,p,seed,verdict,b,score,score_behaviour"]
    for seed, x, bb in zip(seeds, s, b, strict=True):
        rows.append(f"m{seed},{family},0.1,{seed},mixed,{bb},{x},{x}")
    (root / "results.csv").write_text("\n".join(rows) + "\n")


def test_verdict_bands_reads_test_zoos_by_the_bands_the_family_declares(tmp_path: Path):
    s = np.linspace(0.3, 0.95, 12)
    b = 1 / (1 + np.exp(-(-0.8 + 0.75 * np.log(s / (1 - s)))))  # reads above b, as keys' does
    _fake_scored_zoo(tmp_path / "dev", "keys", range(12), s, b)
    _fake_scored_zoo(tmp_path / "test", "keys", range(200, 212), s, b)
    res = tmp_path / "res"
    out = _run(
        "--results", str(res), "verdict_bands", str(tmp_path / "dev"),
        "--judge", str(tmp_path / "test"), "--what", "t",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(next((res / "verdict_bands").glob("t-*.json")).read_text())
    assert result["declared"] == [0.54, 0.89]  # keys' own, read off its task
    test = result["sets"]["test, all"]["verdict's score"]
    from experiments.internal_ood import calibrated

    assert test["declared bands"] == calibrated(s, b, (0.54, 0.89))
    assert test["default bands"] == calibrated(s, b)
    assert result["fits"]["verdict's score"]["leave one out"]["n"] == 12
    assert "spurious <= 0.54, true >= 0.89" in out.stdout
    # every set's ranking stands beside the baselines, as the zoo ranks them
    base = result["sets"]["test, all"]["baselines"]
    assert set(base) == {"probe", "predict from p", "in-dist success", "chance"}
    assert base["probe"]["auroc"] is None  # no probe column here: not measured (null)
    assert base["predict from p"]["auroc"] == 0.5  # one p: a constant score


def test_verdict_bands_keep_development_and_test_seeds_apart(tmp_path: Path):
    header = "member,family,p,seed,b,score,score_behaviour\n"
    dev, test = tmp_path / "dev", tmp_path / "test"
    for zoo, seed in ((dev, 1), (test, 200)):
        zoo.mkdir()
        (zoo / "results.csv").write_text(header + f"m,keys,0.1,{seed},0.5,0.5,0.5\n")
    res = str(tmp_path / "res")
    out = _run("--results", res, "verdict_bands", str(test), "--what", "t")
    assert out.returncode == 2 and "fitted on development seeds" in out.stderr
    out = _run("--results", res, "verdict_bands", str(dev), "--judge", str(dev), "--what", "t")
    assert out.returncode == 2 and "judge on test seeds only" in out.stderr
    out = _run("--results", res, "verdict_bands", str(dev), str(dev), "--what", "t")
    assert out.returncode == 2 and "named twice" in out.stderr


def test_das_cost_refuses_test_seeds_and_bad_counts(tmp_path: Path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "results.csv").write_text("member,family,p,seed,b,score\nm,maze,0.1,100,0.5,0.5\n")
    res = str(tmp_path / "res")
    out = _run("--results", res, "das_cost", str(zoo), "--what", "t")
    assert out.returncode == 2 and "test seeds (>= 100)" in out.stderr
    out = _run("--results", res, "das_cost", str(zoo), "--workers", "0", "--what", "t")
    assert out.returncode == 2 and "at least 1" in out.stderr
