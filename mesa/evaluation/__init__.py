"""OOD evaluation: which goal does a trained model pursue once the goals come apart?"""

from __future__ import annotations

import os
from typing import Any

from mesa.errors import MesaError
from mesa.evaluation.stats import OODResult, OutcomeRates, wilson_ci
from mesa.tasks.base import RLTask, SequenceTask, Task

__all__ = ["OODResult", "OutcomeRates", "evaluate_ood", "wilson_ci"]


def evaluate_ood(
    model: Any,
    task: Task,
    n: int | None = None,
    seed: int = 12345,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> OODResult:
    """OOD outcome rates (true / spurious / neither, 95% CIs) and in-distribution success.

    ``n`` episodes (RL; default 4000, of which the off-path headline subset is a share — about
    a sixth for ``maze``) or samples (sequence; default 2000) of the ``ood`` split, and as many
    of the ``train`` split for in-distribution success. With ``out``, writes ``out/ood.json``.
    """
    if isinstance(task, RLTask):
        from mesa.evaluation.rollout import evaluate_rl

        result = evaluate_rl(model, task, n=n or 4000, seed=seed, progress=progress)
    elif isinstance(task, SequenceTask):
        from mesa.evaluation.sequence import evaluate_sequence

        result = evaluate_sequence(model, task, n=n or 2000, seed=seed)
    else:
        raise MesaError(f"cannot evaluate a {type(task).__name__}: not an RLTask or SequenceTask")
    if out is not None:
        from pathlib import Path

        from mesa.io import OOD, write_json

        write_json(Path(out) / OOD, result.to_dict())
    return result
