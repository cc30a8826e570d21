"""OOD evaluation: which goal does a trained model pursue once the goals come apart?"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from mesa.errors import MesaError
from mesa.evaluation.stats import OODResult, OutcomeRates, wilson_ci
from mesa.io import OOD, locked, write_json
from mesa.runtime import check_memory, check_seed, resolve_device, to_device
from mesa.tasks.base import RLTask, SequenceTask, Task

__all__ = ["OODResult", "OutcomeRates", "evaluate_ood", "wilson_ci"]


def evaluate_ood(
    model: Any,
    task: Task,
    n: int | None = None,
    seed: int = 12345,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    device: Any = None,
) -> OODResult:
    """OOD outcome rates (true / spurious / neither, 95% CIs) and in-distribution success.

    ``n`` episodes (RL; default 4000, of which the off-path headline subset is a share — about
    a sixth for ``maze``) or samples (sequence; default 2000) of the ``ood`` split, and as many
    of the ``train`` split for in-distribution success. With ``out``, writes ``out/ood.json``.

    It runs where the model is; ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``) moves the model
    there first, in place as ``nn.Module.to`` does. The rates are the same numbers on any device
    up to the draws: on a GPU, episodes are drawn by GPU generators.
    """
    if device is not None:
        to_device(model, resolve_device(device))
    with locked(out) if out is not None else contextlib.nullcontext():
        result = _evaluate(model, task, n, seed, progress)
        if out is not None:
            write_json(Path(out) / OOD, result.to_dict())
    return result


def _evaluate(model: Any, task: Task, n: int | None, seed: int, progress: bool) -> OODResult:
    check_seed(seed)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise MesaError(f"n must be a positive integer, got {n!r}")
    if isinstance(task, RLTask):
        from mesa.evaluation.rollout import evaluate_rl

        check_memory((n or 4000) * task.input_bytes(), "this OOD evaluation")
        return evaluate_rl(model, task, n=n or 4000, seed=seed, progress=progress)
    if isinstance(task, SequenceTask):
        from mesa.evaluation.sequence import evaluate_sequence

        return evaluate_sequence(model, task, n=n or 2000, seed=seed)
    raise MesaError(f"cannot evaluate a {type(task).__name__}: not an RLTask or SequenceTask")
