"""Organisms of your own: the tutorial examples and a module outside the repository through
every command (``mesa --import``), the ``mesa.tasks`` entry points, zoo workers importing the
task's module, a model of your own (``register_arch``), and the clear errors a bad organism
gets. Everything runs in a temporary working directory, no network, tiny models."""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import mesa
import mesa.plugins
import mesa.tasks
from mesa import models
from mesa.cli import main
from mesa.detection.verdict import VERDICTS
from mesa.errors import MesaError
from mesa.zoo import ZooConfig, run_zoo

REPO = Path(__file__).resolve().parents[1]
POINTER_SOURCE = (REPO / "examples" / "pointer.py").read_text()
POINTER_HP = ["steps=100", "batch_size=128", "eval_every=100", "eval_samples=64"]
DOORWAY_HP = [
    "num_envs=8",
    "num_steps=16",
    "total_timesteps=256",
    "eval_every=2",
    "eval_episodes=8",
    "stop_at_success=null",
]


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, with the repository on the path (as ``PYTHONPATH`` would put
    it for ``mesa --import examples.NAME`` run elsewhere than the repository root); the
    registries of tasks, architectures and imported modules are restored after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(REPO), *sys.path])
    for name in mesa.tasks._BUILTIN:  # registered for good: their modules import once
        mesa.tasks._load_builtin(name)
    monkeypatch.setattr(mesa.tasks, "_REGISTRY", dict(mesa.tasks._REGISTRY))
    monkeypatch.setattr(models, "ARCHS", dict(models.ARCHS))
    monkeypatch.setattr(mesa.plugins, "_IMPORTED", [])
    monkeypatch.setattr(mesa.plugins, "_LOADED_ENTRY_POINTS", set())
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # modules of this test's tasks register again
        if name == "examples" or name.startswith("examples.") or name.startswith("user_"):
            del sys.modules[name]


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def _write_module(directory: Path, module: str, task: str) -> None:
    """A task module of a user's own: the pointer organism under another name."""
    source = POINTER_SOURCE.replace('register_task("pointer")', f'register_task("{task}")')
    (directory / f"{module}.py").write_text(source)


# -- the examples and a module of your own, through every command -------------------------------
def test_pointer_example_through_the_cli(workdir: Path, capsys: pytest.CaptureFixture[str]):
    imp = ["--import", "examples.pointer"]
    _cli(*imp, "check-task", "pointer")
    assert "all checks passed" in capsys.readouterr().out
    _cli(*imp, "train", "pointer", "--p", "0", "--seed", "0", "--out", "run", "--no-eval",
         "--hp", *POINTER_HP)  # fmt: skip
    _cli(*imp, "eval", "run", "--n", "500")
    _cli(*imp, "detect", "run", "--n-probe", "400", "--n-pairs", "128")
    ood = json.loads((workdir / "run" / "ood.json").read_text())
    verdict = json.loads((workdir / "run" / "verdict.json").read_text())
    # trained at p = 0, it repeats the last item out of distribution, and detection says so
    assert ood["in_dist_success"] > 0.95 and ood["spurious_rate"] > 0.9
    assert verdict["verdict"] == "spurious"


def test_doorway_example_through_the_cli(workdir: Path, capsys: pytest.CaptureFixture[str]):
    imp = ["--import", "examples.doorway"]
    _cli(*imp, "check-task", "doorway", "--opt", "n_levels=50")
    assert "all checks passed" in capsys.readouterr().out
    _cli(*imp, "train", "doorway", "--p", "0", "--seed", "0", "--out", "run", "--no-eval",
         "--opt", "n_levels=50", "--hp", *DOORWAY_HP)  # fmt: skip
    _cli(*imp, "eval", "run", "--n", "64")
    _cli(*imp, "detect", "run", "--n-probe", "200", "--n-pairs", "64")
    config = json.loads((workdir / "run" / "config.json").read_text())
    assert config["task"]["name"] == "doorway" and config["task"]["config"]["n_levels"] == 50
    ood = json.loads((workdir / "run" / "ood.json").read_text())
    verdict = json.loads((workdir / "run" / "verdict.json").read_text())
    assert ood["all_episodes"]["n"] == 64
    assert verdict["verdict"] in VERDICTS  # a few hundred steps of PPO: any verdict


def test_a_task_module_outside_the_repository(workdir: Path, capsys):
    _write_module(workdir, "user_task", "user_pointer")  # beside the run, not in the repository
    imp = ["--import", "user_task"]  # found in the working directory
    _cli(*imp, "check-task", "user_pointer")
    assert "all checks passed" in capsys.readouterr().out
    _cli(*imp, "train", "user_pointer", "--p", "1", "--out", "run", "--hp", *POINTER_HP)
    _cli(*imp, "eval", "run", "--n", "500")
    _cli(*imp, "detect", "run", "--n-probe", "400", "--n-pairs", "128")
    # trained at p = 1, it follows the pointer
    assert json.loads((workdir / "run" / "ood.json").read_text())["true_rate"] > 0.9
    assert json.loads((workdir / "run" / "verdict.json").read_text())["verdict"] == "true"
    # without --import the task is unknown, and the error says how to bring it in
    sys.modules.pop("user_task")
    mesa.tasks._REGISTRY.pop("user_pointer")
    assert main(["eval", "run"]) == 2
    assert "mesa --import YOUR_MODULE" in capsys.readouterr().err
    assert main(["--import", "user_tsak", "tasks"]) == 2
    assert "cannot import module 'user_tsak'" in capsys.readouterr().err


def test_entry_point_plugin_is_found(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    _write_module(workdir, "user_plugin", "user_plugged")
    (workdir / "user_broken.py").write_text("raise RuntimeError('no such thing')\n")
    monkeypatch.syspath_prepend(str(workdir))  # as an installed package would be
    eps = [
        EntryPoint("user_plugged", "user_plugin", mesa.plugins.ENTRY_POINT_GROUP),
        EntryPoint("user_broken", "user_broken", mesa.plugins.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(mesa.plugins, "entry_points", lambda group: eps)
    # asked for by name, only that plugin is imported
    task = mesa.make_task("user_plugged", p=0.5)
    assert type(task).__module__ == "user_plugin" and task.p == 0.5
    assert "user_broken" not in sys.modules
    # listing every task imports every plugin: a broken one is named in one line
    with pytest.raises(MesaError, match="plugin 'user_broken' of task 'user_broken' failed"):
        mesa.list_tasks()
    monkeypatch.setattr(mesa.plugins, "entry_points", lambda group: eps[:1])
    assert {"user_plugged", "maze", "sycophancy"} <= set(mesa.list_tasks())


# -- zoos: workers import the task's module ----------------------------------------------------
def test_zoo_workers_import_the_task_module(workdir: Path):
    mesa.import_modules(["examples.pointer"])
    assert ZooConfig("pointer", ps=(0.0, 1.0), seeds=(0,)).resolved().imports == (
        "examples.pointer",
    )
    mesa.plugins._IMPORTED.clear()  # imported some other way: the class's module is used
    assert ZooConfig("pointer", ps=(0.0, 1.0), seeds=(0,)).resolved().imports == (
        "examples.pointer",
    )
    assert ZooConfig("maze", seeds=(0, 1)).resolved().imports == ()  # built in


@pytest.mark.slow
def test_zoo_of_an_imported_task_in_two_workers(workdir: Path):
    _write_module(workdir, "user_zoo_task", "user_zoo_pointer")
    mesa.import_modules(["user_zoo_task"])  # from the working directory, as --import does
    config = ZooConfig(
        "user_zoo_pointer",
        ps=(0.0, 1.0),
        seeds=(0,),
        task_options={"d_model": 16},
        hparams={"steps": 20, "batch_size": 32, "eval_every": 20, "eval_samples": 32},
        ood_episodes=64,
        workers=2,
    )
    result = run_zoo(config, workdir / "zoo", progress=False)
    assert not result.failed and len(result.rows) == 2
    assert {r["member"] for r in result.rows} == {
        "user_zoo_pointer_p0_s0",
        "user_zoo_pointer_p1_s0",
    }


def test_task_of_an_interactive_session_needs_one_worker(workdir, monkeypatch):
    from examples.pointer import PointerTask

    class Interactive(PointerTask):
        pass

    Interactive.__module__ = "__main__"
    mesa.register_task("user_interactive")(Interactive)
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # no __file__
    with pytest.raises(MesaError, match=r"defined in an interactive session .* use one worker"):
        ZooConfig("user_interactive", ps=(0.0, 1.0), seeds=(0,), workers=2).resolved()
    with pytest.raises(MesaError, match="interactive session"):
        ZooConfig("user_interactive", ps=(0.0, 1.0), seeds=(0,), backend="ray").resolved()
    one = ZooConfig("user_interactive", ps=(0.0, 1.0), seeds=(0,), workers=1).resolved()
    assert "__main__" not in one.imports


# -- bad organisms get clear errors --------------------------------------------------------------
def test_task_missing_a_method_is_refused_at_registration(workdir: Path):
    class NoPairs(mesa.SequenceTask):
        vocab_size = context_length = 4

        def sample(self, split, n, seed):
            raise NotImplementedError

        def make_model(self, arch=None, seed=0):
            raise NotImplementedError

    with pytest.raises(MesaError, match=r"'user_no_pairs' does not implement counterfactual_pairs"):
        mesa.register_task("user_no_pairs")(NoPairs)
    assert "user_no_pairs" not in mesa.tasks._REGISTRY


def _doorway_with_model(make: Callable[[], nn.Module]) -> mesa.Task:
    from examples.doorway import DoorwayTask

    cls = type("Custom", (DoorwayTask,), {"make_model": lambda self, arch=None, seed=0: make()})
    return mesa.register_task("user_custom_model")(cls)(n_levels=20)


def test_model_that_is_not_hooked_is_refused_before_training(workdir: Path):
    task = _doorway_with_model(lambda: nn.Linear(75, 4))
    for out in (workdir / "run", None):
        with pytest.raises(MesaError, match="made a Linear, not a TransformerLens hooked model"):
            mesa.train(task, out=out, progress=False, total_timesteps=64)
    assert not (workdir / "run" / "metrics.jsonl").exists()


def test_model_not_built_by_build_model_is_refused_before_training(workdir: Path):
    task = _doorway_with_model(lambda: TinyPolicy(TinyPolicyConfig()))  # hooked, built directly
    with pytest.raises(MesaError, match=r"not built by mesa\.models\.build_model.*register_arch"):
        mesa.train(task, out=workdir / "run", progress=False, total_timesteps=64)
    assert not (workdir / "run" / "model.safetensors").exists()


def test_check_task_names_a_broken_counterfactual_pair(workdir: Path, capsys):
    from examples.pointer import PointerTask

    class BothMove(PointerTask):
        def counterfactual_pairs(self, n, seed, vary):
            pairs = super().counterfactual_pairs(n, seed, vary)
            if vary == "true":  # a careless pair: the last item changes with the pointer
                pairs["source"][:, -3] = (pairs["source"][:, -3] + 1) % self.config.n_values
                pairs["source_spurious_goal"] = pairs["source"][:, -3]
            return pairs

    mesa.register_task("user_both_move")(BothMove)
    report = mesa.check_task(BothMove())
    assert not report.ok
    failed = [c for c in report.checks if c.ok is False]
    assert len(failed) == 1 and failed[0].name == "counterfactual pairs (transformer)"
    assert "the spurious goal must stay the same in every pair" in failed[0].message
    assert main(["check-task", "user_both_move"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 1 and "1 check(s) failed" in out


# -- a model of your own: registered, trained, saved and loaded ---------------------------------
@dataclass(frozen=True)
class TinyPolicyConfig:
    """An architecture of your own: a frozen dataclass of JSON-able fields with ``build()``."""

    obs_shape: tuple[int, int, int] = (3, 5, 5)
    d_hidden: int = 16
    value_head: bool = True

    def build(self) -> TinyActor:
        return (TinyPolicy if self.value_head else TinyActor)(self)


class TinyActor(HookedRootModule):
    """One hidden layer with hook points around it and an actor head: a policy for behaviour
    cloning (PPO needs a value too, see :class:`TinyPolicy`)."""

    def __init__(self, config: TinyPolicyConfig) -> None:
        super().__init__()
        c, h, w = config.obs_shape
        self.hidden = nn.Linear(c * h * w, config.d_hidden)
        self.actor, self.critic = nn.Linear(config.d_hidden, 4), nn.Linear(config.d_hidden, 1)
        self.hook_obs, self.hook_hidden, self.hook_logits = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.hook_hidden(torch.relu(self.hidden(self.hook_obs(obs).flatten(1))))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.hook_logits(self.actor(self.features(obs)))


class TinyPolicy(TinyActor):
    def logits_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(obs)
        return self.hook_logits(self.actor(h)), self.critic(h).squeeze(-1)


def test_own_architecture_saves_and_loads(workdir: Path):
    from examples.doorway import DoorwayTask

    models.register_arch("user_tiny_policy", TinyPolicyConfig)

    @mesa.register_task("user_doorway")
    class OwnModel(DoorwayTask):
        archs = ("user_tiny_policy",)

        def make_model(self, arch=None, seed=0):
            cfg = {"obs_shape": list(self.observation_shape), "d_hidden": 16}
            return models.build_model(self.check_arch(arch), cfg, seed=seed)

    task = OwnModel(n_levels=20)
    assert mesa.check_task(task).ok
    hp = {k: json.loads(v) for k, v in (s.split("=") for s in DOORWAY_HP)}
    trained = mesa.train(task, seed=0, out=workdir / "run", progress=False, **hp)
    loaded = mesa.load(workdir / "run")
    assert isinstance(loaded, TinyPolicy)
    obs = task.probe_data(16, 0).inputs
    assert torch.equal(loaded(obs), trained(obs))
    assert json.loads((workdir / "run" / "config.json").read_text())["model"] == {
        "arch": "user_tiny_policy",
        "config": {"obs_shape": [3, 5, 5], "d_hidden": 16, "value_head": True},
    }


def test_register_arch_as_a_decorator(workdir: Path):
    @models.register_arch("user_decorated")
    @dataclass(frozen=True)
    class Decorated(TinyPolicyConfig):
        pass

    assert models.config_class("user_decorated") is Decorated
    model = models.build_model("user_decorated", {"d_hidden": 8}, seed=0)
    assert isinstance(model, TinyPolicy) and model.mesa_spec["arch"] == "user_decorated"
    with pytest.raises(MesaError, match="architecture 'user_decorated' is already registered"):
        models.register_arch("user_decorated", TinyPolicyConfig)


def test_ppo_needs_a_value_head(workdir: Path):
    from examples.doorway import DoorwayTask

    models.register_arch("user_tiny_actor", TinyPolicyConfig)

    @mesa.register_task("user_actor_only")
    class ActorOnly(DoorwayTask):
        archs = ("user_tiny_actor",)

        def make_model(self, arch=None, seed=0):
            cfg = {"value_head": False}
            return models.build_model(self.check_arch(arch), cfg, seed=seed)

    task = ActorOnly(n_levels=20)
    with pytest.raises(MesaError, match=r"PPO needs a value head: .* use trainer='bc'"):
        mesa.train(task, progress=False, total_timesteps=64)
    hp = {"steps": 2, "num_envs": 4, "eval_every": 2, "eval_episodes": 4}
    assert isinstance(mesa.train(task, progress=False, trainer="bc", **hp), TinyActor)


# -- the page that teaches it --------------------------------------------------------------------
DOCS = REPO / "docs" / "organisms.md"


def _blocks(text: str, language: str) -> list[str]:
    return [b.split("```", 1)[0] for b in text.split(f"```{language}\n")[1:]]


def test_docs_code_blocks_run(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    # every python block of the page runs as written, in order, as one script would
    text = DOCS.read_text()
    script = types.ModuleType("user_docs_script")
    monkeypatch.setitem(sys.modules, script.__name__, script)
    blocks = _blocks(text, "python")
    assert len(blocks) >= 5
    for block in blocks:
        exec(compile(block, str(DOCS), "exec", dont_inherit=True), script.__dict__)
    assert (workdir / "runs" / "doorway_mlp" / "model.safetensors").is_file()
    # every shell command parses, and the packaging snippet is valid TOML with the group
    from mesa.cli import build_parser

    commands = [line for b in _blocks(text, "bash") for line in b.splitlines() if line]
    assert commands and all(c.startswith("mesa ") for c in commands)
    for command in commands:
        build_parser().parse_args(shlex.split(command)[1:])
    (toml,) = _blocks(text, "toml")
    assert tomllib.loads(toml)["project"]["entry-points"][mesa.plugins.ENTRY_POINT_GROUP]


def test_readme_links_the_page():
    readme = (REPO / "README.md").read_text()
    assert "](docs/organisms.md)" in readme
