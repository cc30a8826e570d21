"""Devices: one resolution rule, CPU results unchanged, a device honoured end to end, and the
GPU paths (marked ``gpu``: skipped, with the reason, where torch sees no CUDA GPU).

The suite runs on the CPU (``tests/conftest.py``); on a CPU the device argument must change
nothing: the CPU tests elsewhere keep their bits, and here a run made with ``device="cpu"``
equals one made with the default ``"auto"``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mesa
import mesa.training.ppo as ppo
from mesa import runtime
from mesa.cli import main
from mesa.envs.levels import build_pool
from mesa.envs.moved import MovedEnv
from mesa.errors import MesaError
from mesa.io import load_tensors_with_metadata, save_tensors
from mesa.tasks.base import env_on, takes_device
from mesa.training.checkpoint import META_KEY, TENSORS
from tests.training_helpers import killed_after_checkpoint, same, weights

TINY_PPO = {
    "num_envs": 8,
    "num_steps": 16,
    "total_timesteps": 8 * 16 * 4,
    "eval_every": 2,
    "eval_episodes": 8,
    "stop_at_success": None,
}
META = torch.device("meta")


def _maze(**options):
    return mesa.make_task("maze", p=0.2, size=5, n_levels=20, **options)


# -- resolution ------------------------------------------------------------------------------
def test_auto_is_the_cpu_without_cuda_and_the_cpu_is_always_there():
    for device in ("auto", None, "cpu", torch.device("cpu")):
        assert runtime.resolve_device(device) == torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "says"),
    [
        ("cuda", "device 'cuda' is not available: torch sees no CUDA GPU here (available: cpu)"),
        ("cuda:1", "device 'cuda:1' is not available"),
        (torch.device("cuda", 0), "device 'cuda:0' is not available"),
        ("gpu", "unknown device 'gpu'"),
        ("meta", "unknown device 'meta'"),
        (3, "unknown device '3'"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line_naming_the_choices(device, says):
    with pytest.raises(MesaError) as e:
        runtime.resolve_device(device)
    message = str(e.value)
    assert says in message and "\n" not in message
    assert message.endswith("valid: cpu, cuda, cuda:N, auto")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "maze", "--out", "RUN", "--device", "cuda"],
        ["eval", "RUN", "--device", "cuda"],
        ["detect", "RUN", "--device", "gpu"],
        ["zoo", "maze", "--out", "RUN", "--device", "cuda"],
        ["demo", "--out", "RUN", "--device", "cuda"],
    ],
)
def test_cli_device_errors_are_one_line(tmp_path: Path, capsys, argv):
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    assert main(argv) == 2  # refused before any work: nothing is loaded, trained or written
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesa: error: ") and "\n" not in err
    assert "valid: cpu, cuda, cuda:N, auto" in err
    assert not (tmp_path / "run").exists()


def test_zoo_gpus_need_ray_and_ray_members_run_where_ray_puts_them():
    from mesa.zoo import ZooConfig

    base = {"family": "maze", "ps": (0.0, 1.0), "seeds": (0,)}
    assert ZooConfig(**base).resolved().device == "cpu"
    with pytest.raises(MesaError, match="gpus_per_member needs backend ray"):
        ZooConfig(**base, gpus_per_member=1).resolved()
    with pytest.raises(MesaError, match="gpus_per_member must be a number >= 0"):
        ZooConfig(**base, gpus_per_member=-1).resolved()
    ray = {**base, "backend": "ray"}
    assert ZooConfig(**ray).resolved().device == "cpu"
    assert ZooConfig(**ray, gpus_per_member=0.5).resolved().device == "cuda"
    with pytest.raises(MesaError, match="runs its members on cuda, not 'cpu'; valid: auto, cuda"):
        ZooConfig(**ray, gpus_per_member=0.5, device="cpu").resolved()


def test_how_a_zoo_runs_is_not_part_of_its_settings_but_a_gpu_zoo_stays_on_gpus(tmp_path):
    from mesa.zoo.runner import ZooConfig, _check_same_settings, _json_settings

    settings = _json_settings(ZooConfig("maze", device="cpu", deterministic=True))
    assert not {"device", "deterministic", "gpus_per_member", "workers"} & set(settings)
    assert settings == _json_settings(ZooConfig("maze"))  # CPU zoos: the settings they had
    _check_same_settings(tmp_path, ZooConfig("maze", device="cuda:0"))
    assert _json_settings(ZooConfig("maze", device="cuda:0"))["device"] == "cuda"
    _check_same_settings(tmp_path, ZooConfig("maze", device="cuda", workers=1))
    with pytest.raises(MesaError, match="holds a zoo made on cuda; continue it there"):
        _check_same_settings(tmp_path, ZooConfig("maze", device="cpu"))


# -- the CPU: the device argument changes nothing ---------------------------------------------
@pytest.mark.slow
def test_cpu_round_trip_honours_the_device_and_keeps_the_bits(tmp_path: Path):
    task = _maze()
    auto = mesa.train(task, seed=3, out=tmp_path / "auto", progress=False, **TINY_PPO)
    cpu = mesa.train(task, seed=3, out=tmp_path / "cpu", device="cpu", progress=False, **TINY_PPO)
    assert same(weights(auto), weights(cpu))
    assert all(p.device.type == "cpu" for p in cpu.parameters())
    train = json.loads((tmp_path / "cpu" / "config.json").read_text())["train"]
    assert train["device"] == "cpu" and train["deterministic"] is False
    fingerprint = json.loads((tmp_path / "cpu" / "checkpoint.json").read_text())["fingerprint"]
    assert "device" not in json.dumps(fingerprint)
    loaded = mesa.load(tmp_path / "cpu", device="cpu")
    assert runtime.model_device(loaded) == torch.device("cpu")
    a = mesa.evaluate_ood(loaded, task, n=64, device="cpu").to_dict()
    b = mesa.evaluate_ood(cpu, task, n=64).to_dict()
    assert a == b
    v1 = mesa.detect(loaded, task, n_probe=100, n_pairs=16, device="cpu").to_dict()
    v2 = mesa.detect(cpu, task, n_probe=100, n_pairs=16).to_dict()
    assert json.dumps(v1, sort_keys=True) == json.dumps(v2, sort_keys=True)


def _rewrite_checkpoint_meta(run_dir: Path, edit) -> None:
    tensors, metadata = load_tensors_with_metadata(run_dir / TENSORS)
    meta = json.loads(metadata[META_KEY])
    edit(meta)
    save_tensors(run_dir / TENSORS, tensors, {**metadata, META_KEY: json.dumps(meta)})


@pytest.mark.slow
def test_checkpoints_resume_on_their_kind_of_device_and_old_ones_on_the_cpu(
    tmp_path: Path, monkeypatch
):
    task = _maze()
    reference = weights(mesa.train(task, seed=0, progress=False, **TINY_PPO))
    for name, edit in (
        ("old", lambda meta: meta.pop("device")),  # written before devices were recorded
        ("gpu", lambda meta: meta.update(device="cuda")),
    ):
        run = tmp_path / name
        with killed_after_checkpoint(monkeypatch, ppo, 1), pytest.raises(KeyboardInterrupt):
            mesa.train(task, seed=0, out=run, progress=False, **TINY_PPO)
        _rewrite_checkpoint_meta(run, edit)
        if name == "old":
            resumed = mesa.train(task, seed=0, out=run, progress=False, **TINY_PPO)
            assert same(weights(resumed), reference)
        else:
            with pytest.raises(MesaError, match="checkpoint written on cuda; resume it there"):
                mesa.train(task, seed=0, out=run, device="cpu", progress=False, **TINY_PPO)


def test_deterministic_algorithms_are_on_inside_and_as_before_after():
    assert not torch.are_deterministic_algorithms_enabled()
    with runtime.deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with runtime.deterministic_algorithms(False):
        assert not torch.are_deterministic_algorithms_enabled()


# -- what moves where (a round trip through the meta device: shapes without a GPU) -------------
def test_pools_copy_once_per_device_and_share_the_cpu_distances():
    import numpy as np

    walls = np.zeros((3, 3), dtype=bool)
    pool = build_pool([(walls, 6, 2)], 3, 3)
    assert pool.to("cpu") is pool
    copy = pool.to(META)
    assert copy is pool.to(META) and copy.device == META
    assert copy.to(META) is copy and copy.to("cpu") is pool
    assert copy.dist.device == META and copy.dist.shape == pool.dist.shape


class _CpuOnlyTask:
    """A task of your own whose make_env takes no device."""

    def __init__(self) -> None:
        self.inner = _maze()

    def make_env(self, split, num_envs, seed):
        return self.inner.make_env(split, num_envs, seed)


def test_an_env_without_a_device_is_moved_and_on_the_cpu_left_alone():
    task = _CpuOnlyTask()
    assert not takes_device(task.make_env) and takes_device(_maze().make_env)
    plain = env_on(task, "train", 4, 0, torch.device("cpu"))  # type: ignore[arg-type]
    assert type(plain).__name__ == "GridEnv"
    moved = env_on(task, "train", 4, 0, META)  # type: ignore[arg-type]
    assert isinstance(moved, MovedEnv)
    obs, info = moved.reset()
    assert obs.device == META and info["true_goal"].device == META
    obs, reward, term, trunc, info = moved.step(torch.zeros(4, dtype=torch.long))
    assert obs.device == reward.device == term.device == info["episode_outcome"].device == META
    assert moved.optimal_action().device == META and moved.observe().shape == obs.shape
    assert moved.num_envs == 4 and moved.pool is moved.env.pool  # the rest reads through
    state = moved.state_dict()
    moved.load_state_dict(state)  # the wrapped engine's own state, on its own device


def test_built_in_envs_take_the_device_they_are_given():
    for family in ("maze", "coin", "lookalike"):
        task = mesa.make_task(family, n_levels=20)
        env = task.make_env("train", 4, 0, device="cpu")
        assert env.device == torch.device("cpu") and env.generator.device.type == "cpu"
        a = task.make_env("train", 4, 0)
        b = task.make_env("train", 4, 0, device=torch.device("cpu"))
        assert torch.equal(a.reset()[0], b.reset()[0])  # the CPU default is the CPU


# -- the GPU paths (skipped without CUDA) ------------------------------------------------------
@pytest.mark.gpu
def test_gpu_auto_resolves_to_cuda():
    assert runtime.resolve_device("auto").type == "cuda"
    assert runtime.resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["maze", "coin", "lookalike"])
def test_gpu_engine_steps_like_the_cpu_engine_from_the_same_state(family):
    task = mesa.make_task(family, p=0.3, n_levels=50)
    cpu, gpu = task.make_env("train", 64, 0), task.make_env("train", 64, 0, device="cuda")
    cpu.reset()
    gpu.reset()
    state = {k: v for k, v in cpu.state_dict().items() if k != "rng"}
    for k, v in state.items():  # the episodes' state, not the generator's stream
        setattr(gpu, k, v.to(gpu.device))
    gpu._obs = None
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        assert torch.equal(cpu.observe(), gpu.observe().cpu())
        assert torch.equal(cpu.optimal_action(), gpu.optimal_action().cpu())
        assert torch.equal(cpu.off_path(), gpu.off_path().cpu())
        actions = torch.randint(0, 4, (64,), generator=g)
        out_c, out_g = cpu.step(actions), gpu.step(actions.cuda())
        done = out_c[2] | out_c[3]
        assert torch.equal(done, (out_g[2] | out_g[3]).cpu())
        for key in ("episode_outcome", "episode_off_path", "episode_length"):
            assert torch.equal(out_c[4][key], out_g[4][key].cpu())
        if bool(done.any()):  # resets draw from each device's own generator: resync
            for k in state:
                setattr(gpu, k, getattr(cpu, k).to(gpu.device))
            gpu._obs = None
    assert gpu.observe().device.type == "cuda" and gpu.pool.next_cell.device.type == "cuda"


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("family", "options"),
    [
        ("maze", {}),
        ("maze", {"trainer": "bc", "steps": 8, "num_envs": 16, "eval_every": 4}),
        ("maze", {"arch": "cell_transformer", "steps": 8, "num_envs": 16, "eval_every": 4}),
        ("sycophancy", {"steps": 20, "batch_size": 64, "eval_every": 10, "eval_samples": 64}),
    ],
)
def test_gpu_run_trains_there_and_loads_detects_anywhere(tmp_path: Path, family, options):
    if family == "maze":
        task = _maze()
        hp = options or TINY_PPO
    else:
        task = mesa.make_task(family, p=0.2, P=7, d_model=32, n_layers=1)
        hp = options
    model = mesa.train(task, seed=0, out=tmp_path / "run", device="cuda", progress=False, **hp)
    assert runtime.model_device(model).type == "cuda"
    train = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert train["device"].startswith("cuda")
    on_cpu = mesa.load(tmp_path / "run")  # a GPU-trained run detects on the CPU
    x = task.probe_data(8, 0).inputs
    assert torch.allclose(on_cpu(x), model(x.cuda()).cpu(), atol=1e-4)
    for m in (on_cpu, model):
        ood = mesa.evaluate_ood(m, task, n=64)
        verdict = mesa.detect(m, task, n_probe=100, n_pairs=16)
        assert 0 <= ood.true_rate <= 1 and verdict.verdict


@pytest.mark.gpu
def test_gpu_checkpoint_does_not_resume_on_the_cpu(tmp_path: Path, monkeypatch):
    with killed_after_checkpoint(monkeypatch, ppo, 1), pytest.raises(KeyboardInterrupt):
        mesa.train(_maze(), seed=0, out=tmp_path / "r", device="cuda", progress=False, **TINY_PPO)
    with pytest.raises(MesaError, match="written on cuda"):
        mesa.train(_maze(), seed=0, out=tmp_path / "r", device="cpu", progress=False, **TINY_PPO)
    resumed = mesa.train(
        _maze(), seed=0, out=tmp_path / "r", device="cuda", progress=False, **TINY_PPO
    )
    assert runtime.model_device(resumed).type == "cuda"


@pytest.mark.gpu
def test_gpu_deterministic_runs_repeat_their_bits():
    # what the README claims for --deterministic on a GPU: a seed repeats on one machine
    runs = [
        weights(
            mesa.train(
                _maze(), seed=5, device="cuda", deterministic=True, progress=False, **TINY_PPO
            )
        )
        for _ in range(2)
    ]
    assert same(*runs)
