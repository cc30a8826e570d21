"""Registry, configs, run directories and the CLI's error handling (no training)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import mesa
from mesa.errors import MesaError
from mesa.io import MetricsLog, read_json, save_tensors, write_json
from mesa.runs import load_run, save
from mesa.tasks import RLTask, TaskConfig, get_task_class, register_task
from mesa.tasks.base import SequenceBatch, SequenceTask
from tests.tiny_models import TinyMLP


@dataclass(frozen=True)
class TinyMLPConfig:
    d_in: int = 8
    d_out: int = 4

    def build(self) -> TinyMLP:
        # draws its init seed from the global RNG, which build_model seeds
        return TinyMLP(d_in=self.d_in, d_out=self.d_out, seed=int(torch.randint(0, 2**31, ())))


@dataclass(frozen=True)
class ToyConfig(TaskConfig):
    width: int = 3
    """Toy option."""


@register_task("toy_seq_for_tests")
class ToySeq(SequenceTask):
    Config = ToyConfig
    description = "a toy sequence task used by the tests"
    archs = ("tiny_mlp",)

    @property
    def vocab_size(self) -> int:
        return 10

    @property
    def context_length(self) -> int:
        return 4

    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        g = torch.Generator().manual_seed(seed)
        t = torch.randint(0, 10, (n, 4), generator=g)
        return SequenceBatch(t, t[:, 0], t[:, 0], t[:, 1])

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, torch.Tensor]:
        base = self.sample("probe", n, seed).tokens
        source = base.clone()
        pos = 0 if vary == "true" else 1
        source[:, pos] = (base[:, pos] + 1) % 10
        return {
            "base": base,
            "source": source,
            "base_true_goal": base[:, 0],
            "source_true_goal": source[:, 0],
            "base_spurious_goal": base[:, 1],
            "source_spurious_goal": source[:, 1],
        }

    def make_model(self, arch: str | None = None, seed: int = 0):
        from mesa.models import build_model

        return build_model(self.check_arch(arch), {}, seed=seed)


@pytest.fixture()
def tiny_arch(monkeypatch):
    from mesa import models

    monkeypatch.setitem(models.ARCHS, "tiny_mlp", f"{__name__}:TinyMLPConfig")
    return "tiny_mlp"


def test_p_is_validated():
    for bad in (-0.1, 1.5, float("nan"), True, "0.1"):
        with pytest.raises(MesaError, match="p must be"):
            ToySeq(p=bad)
    assert ToySeq(p=1).p == 1.0


def test_unknown_option_names_valid_ones():
    with pytest.raises(
        MesaError, match=r"unknown toy_seq_for_tests option 'size'; valid: p, width"
    ):
        ToySeq(size=3)


def test_unknown_task_names_valid_ones(monkeypatch):
    from mesa import tasks

    monkeypatch.setattr(tasks, "_BUILTIN", {})
    with pytest.raises(MesaError, match=r"unknown task 'mze'; valid: .*toy_seq_for_tests"):
        mesa.make_task("mze")


def test_registry_refuses_duplicates_and_non_tasks():
    with pytest.raises(MesaError, match="already registered"):

        @register_task("toy_seq_for_tests")
        class Other(ToySeq):
            pass

    with pytest.raises(MesaError, match="must subclass"):
        register_task("not_a_task")(dict)  # type: ignore[arg-type]
    assert get_task_class("toy_seq_for_tests") is ToySeq
    assert issubclass(get_task_class("toy_seq_for_tests"), SequenceTask)
    assert not issubclass(ToySeq, RLTask)


def test_check_tokens_errors():
    task = ToySeq()
    with pytest.raises(MesaError, match="outside the vocabulary"):
        task.check_tokens(torch.tensor([[1, 2, 3, 10]]))
    with pytest.raises(MesaError, match="context length 5 exceeds"):
        task.check_tokens(torch.zeros(1, 5, dtype=torch.long))


def test_atomic_json_and_corrupt_json(tmp_path: Path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert read_json(tmp_path / "a.json") == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(MesaError, match="corrupt JSON"):
        read_json(tmp_path / "b.json")
    with pytest.raises(MesaError, match="missing file"):
        read_json(tmp_path / "c.json")


def test_metrics_log_truncates_after_resume_point(tmp_path: Path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (10, 20, 30):
        log.append({"global_step": step})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"global_step": 4')  # a line cut by a kill
    log.truncate_after(20)
    assert [r["global_step"] for r in log.read()] == [10, 20]


def test_save_load_round_trip(tmp_path: Path, tiny_arch):
    task = ToySeq(p=0.2, width=5)
    model = task.make_model(seed=3)
    save(model, task, tmp_path / "run", train={"trainer": "test"})
    run = load_run(tmp_path / "run")
    assert run.task.config == task.config
    x = torch.randn(6, 8)
    assert torch.equal(run.model(x), model(x))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["arch"] == tiny_arch
    # the same seed builds the same weights; another seed does not
    assert torch.equal(task.make_model(seed=3)(x), model(x))
    assert not torch.equal(task.make_model(seed=4)(x), model(x))


def test_load_errors(tmp_path: Path, tiny_arch):
    with pytest.raises(MesaError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MesaError, match="holds no model"):
        load_run(tmp_path / "empty")
    task = ToySeq()
    save(task.make_model(), task, tmp_path / "run")
    with pytest.raises(MesaError, match="is a run of task 'toy_seq_for_tests', not 'maze'"):
        load_run(tmp_path / "run", task="maze")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(MesaError, match="corrupt safetensors"):
        load_run(tmp_path / "run")
    save_tensors(tmp_path / "run" / "model.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(MesaError, match="does not match its config"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text('{"task": 3}')
    with pytest.raises(MesaError):
        load_run(tmp_path / "run")


def test_cli_help_does_not_import_heavy_modules():
    heavy = ("torch", "transformer_lens", "sklearn", "matplotlib")
    code = (
        "import sys, mesa, mesa.cli; mesa.cli.build_parser().format_help(); "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_errors_are_one_line(tmp_path: Path):

    cases = [
        ["train", "no_such_task", "--out", str(tmp_path / "x")],
        ["train", "toy_seq_for_tests", "--p", "1.5", "--out", str(tmp_path / "x")],
        ["eval", str(tmp_path / "missing")],
    ]
    for argv in cases:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, tests.test_core, mesa.cli; sys.exit(mesa.cli.main({argv!r}))",
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mesa: error: "), proc.stderr


def test_readme_probe_imports_run():
    # the README's import list of mesa.probes is documentation that must run as written
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    imports = [b for b in blocks if b.startswith("from mesa.probes import")]
    assert len(imports) == 1
    namespace: dict[str, object] = {}
    exec(imports[0], namespace)
    import mesa.probes

    listed = {n for n in namespace if not n.startswith("__")}
    assert listed and listed <= set(mesa.probes.__all__)
