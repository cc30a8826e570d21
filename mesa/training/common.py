"""What the trainers share: settings, run directory, resume fingerprint, and the AdamW step of
the behaviour-cloning and supervised trainers.

A run's *fingerprint* (task, architecture, seed, hyperparameters) says what the run is; a
checkpoint resumes only into the same fingerprint. The device a run computes on is not in it: it
is how the run computes, recorded in ``config.json`` for information. A checkpoint does record
the kind of device it was written on (``cpu`` or ``cuda``) and resumes only on that kind: the
generators' states it holds are a CPU's or a GPU's, and one cannot continue the other's stream.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mesa.config import at_least, check_fields, config_from_dict, in_range
from mesa.errors import MesaError
from mesa.io import (
    CONFIG,
    METRICS,
    MODEL,
    OOD,
    VERDICT,
    MetricsLog,
    as_read_back,
    read_json,
)
from mesa.runtime import check_memory, resolve_device, to_device
from mesa.tasks.base import Task
from mesa.training.checkpoint import (
    env_tensors,
    has_checkpoint,
    load_checkpoint,
    restore_env,
    save_checkpoint,
)

#: The policy's own random draws (sampled actions, minibatch order, the behaviour-cloning mix)
#: come from a generator seeded this far from the run's seed, apart from the environments'.
ACTING_SEED_OFFSET = 7919
#: Records between two evaluations are logged every this many steps.
LOG_EVERY = 10
#: The trainers' per-checkpoint evaluation uses the seed ``EVAL_SEED + seed``: the same episodes
#: or samples at every checkpoint, so the curve over training compares checkpoints, not samples.
EVAL_SEED = 1_000_000


@dataclass
class RunSetup:
    cfg: Any
    arch: str
    run_dir: Path | None
    log: MetricsLog | None
    fingerprint: dict[str, Any]
    """What a checkpoint must match to be resumed: task, architecture, seed, hyperparameters."""
    finished: bool = False
    """The run directory already holds this very run, trained to the end."""
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    """Where the run computes: its model, environments and generators."""
    deterministic: bool = False
    """Whether it runs with torch's deterministic algorithms (recorded for information)."""

    def load_finished(self) -> Any:
        """The finished run's model, on the run's device (see :attr:`finished`)."""
        from mesa.runs import load_run

        assert self.run_dir is not None
        return load_run(self.run_dir, device=self.device).model

    def generator(self, offset: int) -> torch.Generator:
        """A generator on the run's device seeded with the run's seed plus ``offset``."""
        from mesa.runtime import generator

        return generator(self.device, self.fingerprint["seed"] + offset)

    def resume(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        generators: dict[str, torch.Generator],
        env: Any = None,
        step_key: str = "step",
    ) -> dict[str, Any] | None:
        """Restore model, optimiser, generators (and ``env``) from the run's checkpoint and cut
        ``metrics.jsonl`` back to its step (``meta[step_key]``); return the checkpoint's meta.
        Without a checkpoint, drop the metrics of an earlier run that never checkpointed and
        return None (a fresh run)."""
        if self.run_dir and has_checkpoint(self.run_dir):
            meta, extra = load_checkpoint(
                self.run_dir, model, opt, generators, self.fingerprint, self.device
            )
            if env is not None:
                restore_env(env, extra)
            if self.log:
                self.log.truncate_after(meta[step_key])
            return meta
        if self.log and self.log.path.exists():
            self.log.path.unlink()
        return None

    def progress_bar(
        self, total: int, initial: int, progress: bool, trainer: str, task: Task, seed: int
    ) -> Any:
        """The run's progress bar, named by what it trains (disabled without ``progress``)."""
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=initial,
            disable=not progress,
            desc=f"{trainer} {task.name} p={task.p:g} seed={seed}",
            unit_scale=True,
        )

    def checkpoint(
        self,
        record: dict[str, Any],
        step: int,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        generators: dict[str, torch.Generator],
        env: Any,
        meta: dict[str, Any],
    ) -> None:
        """Log an evaluation ``record`` and save a checkpoint at ``step`` (with a run directory);
        ``meta`` holds the trainer's counters, the run's fingerprint is added."""
        if self.run_dir is None or self.log is None:
            return
        self.log.append(record)
        extra = env_tensors(env) if env is not None else {}
        meta = {**meta, "fingerprint": self.fingerprint, "device": self.device.type}
        save_checkpoint(self.run_dir, step, model, opt, generators, extra, meta)

    def finish(self, model: Any, task: Task, trainer: str, global_step: int, stopped: bool) -> Any:
        """Put ``model`` in eval mode and, with a run directory, save it with its training
        record; return it."""
        from mesa.runs import save

        model.eval()
        if self.run_dir:
            save(
                model,
                task,
                self.run_dir,
                train={
                    "trainer": trainer,
                    "seed": self.fingerprint["seed"],
                    "arch": self.arch,
                    "hparams": dataclasses.asdict(self.cfg),
                    "global_step": global_step,
                    "stopped_early": stopped,
                    # how it computed, for information: not part of what the run is
                    "device": str(self.device),
                    "deterministic": self.deterministic,
                },
            )
        return model


def new_model(
    task: Task, arch: str, seed: int, run_dir: Path | None, device: torch.device | None = None
) -> Any:
    """A fresh model from ``task.make_model``, on ``device`` (default the CPU); refused before
    any training when detection could not read it (no TransformerLens hook interface) or it could
    not be saved into ``run_dir`` (not built by :func:`mesa.models.build_model`). The weights are
    initialised on the CPU, so a seed starts every device from the same weights."""
    model = task.make_model(arch, seed)
    if not (hasattr(model, "hook_dict") and hasattr(model, "run_with_hooks")):
        raise MesaError(
            f"task {task.name!r} made a {type(model).__name__}, not a TransformerLens hooked "
            "model (a HookedRootModule with HookPoints, or a TransformerBridge)"
        )
    if run_dir is not None:
        from mesa.models import model_spec

        model_spec(model)
    return to_device(model, device or torch.device("cpu"))


def check_batch_memory(task: Task, n_inputs: int, what: str) -> None:
    """Refuse sizes that cannot fit before any work: ``n_inputs`` observations or samples held
    at once, each with room for the model's activations (a rough upper estimate)."""
    check_memory(n_inputs * task.input_bytes(), what)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _finished_run(run_dir: Path, fingerprint: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds this run finished (True), nothing of a run yet (False); refuses
    a directory that holds another run, so that no run is ever trained over another."""
    if not (run_dir / CONFIG).is_file():
        strays = [name for name in (MODEL, OOD, VERDICT) if (run_dir / name).is_file()]
        if strays and not has_checkpoint(run_dir):
            raise MesaError(
                f"{run_dir} holds {strays[0]} of another run; use another --out or delete it"
            )
        return False
    config = read_json(run_dir / CONFIG)
    train = config.get("train") if isinstance(config, dict) else None
    if not isinstance(train, dict):
        raise MesaError(f"{run_dir} holds a {CONFIG} that is not a mesa run's; use another --out")
    recorded = {
        "task": config.get("task"),
        "arch": train.get("arch"),
        "seed": train.get("seed"),
        "hparams": train.get("hparams"),
    }
    diff = _differences(recorded, fingerprint)
    if diff:
        raise MesaError(
            f"{run_dir} holds a finished run with other settings (differs in {', '.join(diff)}); "
            "use another --out or delete it"
        )
    return True


def setup_run(
    task: Task,
    seed: int,
    out: str | os.PathLike[str] | None,
    arch: str | None,
    config_cls: type[Any],
    hparams: dict[str, Any],
    what: str,
    device: Any = "cpu",
    deterministic: bool = False,
) -> RunSetup:
    cfg = config_from_dict(config_cls, hparams, what, noun="hyperparameter")
    device = resolve_device(device)
    arch = task.check_arch(arch)
    run_dir = Path(out) if out is not None else None
    # as it reads back from JSON (lists, not tuples), so that it compares equal after a resume
    fingerprint = as_read_back(
        {"task": task.spec(), "arch": arch, "seed": seed, "hparams": dataclasses.asdict(cfg)}
    )
    return RunSetup(
        cfg=cfg,
        arch=arch,
        run_dir=run_dir,
        log=MetricsLog(run_dir / METRICS) if run_dir else None,
        fingerprint=fingerprint,
        finished=_finished_run(run_dir, fingerprint) if run_dir else False,
        device=device,
        deterministic=deterministic,
    )


@dataclass(frozen=True)
class AdamWConfig:
    """Hyperparameters shared by the trainers that take one AdamW step per batch."""

    steps: int = 3000
    """Optimiser steps (an upper bound where the trainer stops early)."""
    learning_rate: float = 1e-3
    """AdamW step size (constant after a linear warm-up)."""
    warmup_steps: int = 100
    """Linear learning-rate warm-up."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    eval_every: int = 250
    """Steps between evaluations (in-distribution and OOD rates) and checkpoints."""
    num_threads: int = 1
    """torch threads; results depend on it, so it is part of the run's settings."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "steps", "eval_every", "num_threads")
        at_least(self, 0, "warmup_steps", "weight_decay")
        in_range(self, "learning_rate", 0.0, 10.0, open_low=True)
        in_range(self, "max_grad_norm", 0.0, math.inf, open_low=True)

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )

    def step(
        self, model: torch.nn.Module, opt: torch.optim.Optimizer, loss: torch.Tensor, step: int
    ) -> None:
        """One optimiser step on ``loss`` (step numbers count from 1)."""
        opt.param_groups[0]["lr"] = self.learning_rate * min(1.0, step / max(1, self.warmup_steps))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
        opt.step()
