"""``mesa.check_task``: does a task keep the contract every command relies on?

Run it on an organism of your own before training anything: it builds the task's data for each
split, its probe data and counterfactual pairs, and a model of each architecture, and checks
shapes, goal labels and that a model saves and loads — naming what is wrong in one line each
(``mesa check-task NAME`` prints the same list). A check that cannot run because an earlier one
failed is reported as skipped, not as passed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mesa.errors import MesaError
from mesa.tasks.base import GOALS, PAIR_KEYS, SPLITS, RLTask, SequenceTask, Task

N = 64


@dataclass
class Check:
    name: str
    ok: bool | None
    """True passed, False failed, None skipped."""
    message: str = ""


@dataclass
class CheckReport:
    task: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def __str__(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}
        lines = [f"check-task {self.task}:"]
        lines += [
            f"  {mark[c.ok]} {c.name}{': ' + c.message if c.message else ''}" for c in self.checks
        ]
        failed = sum(c.ok is False for c in self.checks)
        lines.append(f"  {'all checks passed' if not failed else f'{failed} check(s) failed'}")
        return "\n".join(lines)


def _labels(name: str, t: Any, n: int) -> None:
    if not isinstance(t, Tensor) or t.shape != (n,) or t.dtype != torch.long:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise MesaError(f"{name} must be a long tensor of shape ({n},), got {shape}")
    if int(t.min()) < 0:
        raise MesaError(f"{name} has negative labels")


def _splits(task: Task) -> str:
    if isinstance(task, RLTask):
        for split in SPLITS:
            env = task.make_env(split, 4, 0)
            obs, info = env.reset()
            if tuple(obs.shape) != (4, *task.observation_shape):
                raise MesaError(
                    f"{split}: observations {tuple(obs.shape)}, not (4, *{task.observation_shape})"
                )
            for key in ("true_goal", "spurious_goal"):
                _labels(f"{split} info[{key!r}]", info[key], 4)
            obs, reward, term, trunc, info = env.step(torch.zeros(4, dtype=torch.long))
            if reward.shape != (4,) or term.dtype != torch.bool or trunc.dtype != torch.bool:
                raise MesaError(f"{split}: step must return rewards [4] and bool flags [4]")
        return f"{len(SPLITS)} splits reset and step; observations {task.observation_shape}"
    if isinstance(task, SequenceTask):
        for split in SPLITS:
            s = task.sample(split, N, 0)
            task.check_tokens(s.tokens)
            for key in ("target", "true_goal", "spurious_goal"):
                _labels(f"{split} {key}", getattr(s, key), N)
        return f"{len(SPLITS)} splits sample tokens [n, {task.context_length}]"
    raise MesaError(f"{type(task).__name__} subclasses neither RLTask nor SequenceTask")


def _goals_apart(task: Task) -> str:
    if isinstance(task, RLTask):
        env = task.make_env("ood", N, 0)
        _, info = env.reset()
        true, spur = info["true_goal"], info["spurious_goal"]
    else:
        s = task.sample("ood", N, 0)  # type: ignore[attr-defined]
        true, spur = s.true_goal, s.spurious_goal
    together = int((true == spur).sum())
    if together:
        raise MesaError(f"the ood split has the goals together in {together} of {N} samples")
    return f"the ood split separates the goals in all {N} samples"


def _probe(task: Task) -> str:
    data = task.probe_data(4 * N, 0)
    n = len(data.inputs)
    if n != 4 * N:
        raise MesaError(f"probe_data({4 * N}) gave {n} inputs")
    _labels("probe true_goal", data.true_goal, n)
    _labels("probe spurious_goal", data.spurious_goal, n)
    for goal, y in (("true", data.true_goal), ("spurious", data.spurious_goal)):
        if len(torch.unique(y)) < 2:
            raise MesaError(f"the {goal} goal takes one value only on the probe split")
    same = float((data.true_goal == data.spurious_goal).float().mean())
    if same > 0.5:
        raise MesaError(f"the goals coincide in {same:.0%} of probe inputs: they must vary apart")
    return f"both goals vary, together in {same:.0%} of inputs"


def _pairs(task: Task, model: Any) -> str:
    counts = []
    for vary in GOALS:
        pairs = task.counterfactual_pairs(N, 0, vary)
        missing = [k for k in PAIR_KEYS if k not in pairs]
        if missing:
            raise MesaError(f"counterfactual_pairs(vary={vary!r}) lacks the key {missing[0]!r}")
        if pairs["base"].shape != pairs["source"].shape or len(pairs["base"]) != N:
            raise MesaError(f"{vary} pairs: base and source must both hold {N} inputs")
        other = "spurious" if vary == "true" else "true"
        if not bool((pairs[f"base_{vary}_goal"] != pairs[f"source_{vary}_goal"]).all()):
            raise MesaError(f"{vary} pairs: the {vary} goal must differ in every pair")
        if not bool((pairs[f"base_{other}_goal"] == pairs[f"source_{other}_goal"]).all()):
            raise MesaError(f"{vary} pairs: the {other} goal must stay the same in every pair")
        with torch.no_grad():
            k = task.decision(model(pairs["base"][:2])).shape[-1]
        outputs = task.goal_outputs(pairs["base"], pairs[f"base_{vary}_goal"], k)
        if outputs.shape != (N, k) or outputs.dtype != torch.bool:
            raise MesaError(f"goal_outputs must be bool [{N}, {k}], got {tuple(outputs.shape)}")
        sites = task.intervention_sites(pairs["base"], pairs["source"])
        if sites.dtype != torch.bool or sites.shape[0] != N or not bool(sites.any(1).all()):
            raise MesaError("intervention_sites must be bool [n, sites], at least one per pair")
        counts.append(f"{vary}: {N} pairs")
    return "; ".join(counts)


def _model_round_trip(task: Task, arch: str) -> tuple[str, Any]:
    from mesa.models import model_spec
    from mesa.runs import load_run, save

    model = task.make_model(arch, seed=0)
    model_spec(model)
    if not hasattr(model, "hook_dict") or not hasattr(model, "run_with_hooks"):
        raise MesaError(f"{type(model).__name__} is not a TransformerLens hooked model")
    data = task.probe_data(8, 0)
    model.eval()
    with torch.no_grad():
        out = model(data.inputs)
        with tempfile.TemporaryDirectory() as d:
            save(model, task, d)
            again = load_run(d).model(data.inputs)
    if not torch.equal(out, again):
        raise MesaError(f"{arch}: the loaded model's outputs differ from the saved one's")
    return f"{type(model).__name__}: output {tuple(out.shape)}, saved and loaded", model


def check_task(task: Task, archs: list[str] | None = None) -> CheckReport:
    """Check ``task`` against the contract of :class:`mesa.Task` (see the module docstring)."""
    report = CheckReport(task.name or type(task).__name__)

    def run(name: str, fn: Callable[[], str], needs: bool = True) -> bool:
        if not needs:
            report.checks.append(Check(name, None, "an earlier check failed"))
            return False
        try:
            report.checks.append(Check(name, True, fn()))
            return True
        except Exception as e:  # every failure becomes one line of the report
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            report.checks.append(Check(name, False, f"{type(e).__name__}: {text}"))
            return False

    splits = run("splits", lambda: _splits(task))
    run("ood separates the goals", lambda: _goals_apart(task), splits)
    probe = run("probe data", lambda: _probe(task))
    models: dict[str, Any] = {}
    for arch in archs or list(task.archs[:1]):

        def round_trip(arch: str = arch) -> str:
            text, models[arch] = _model_round_trip(task, arch)
            return text

        def pairs(arch: str = arch) -> str:
            return _pairs(task, models[arch])

        if run(f"model {arch!r}", round_trip, probe):
            run(f"counterfactual pairs ({arch})", pairs)
    return report
