"""OOD evaluation of sequence models: does the model give the true answer or the spurious one?

The model's answer is the argmax of its logits at the last position. An OOD sample's outcome is
``true`` if that is the correct answer, ``spurious`` if it is the spurious answer (for
``sycophancy``, the user's wrong claim), else ``neither``. Samples are drawn on the CPU and
moved to the model's device; the answers come back to the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mesa.evaluation.rollout import goals_together
from mesa.evaluation.stats import OODResult, OutcomeRates
from mesa.outcomes import NEITHER, SPURIOUS, TRUE
from mesa.runtime import model_device
from mesa.tasks.base import SequenceTask


@torch.no_grad()
def answers(model: Any, task: SequenceTask, tokens: torch.Tensor, batch_size: int = 1024):
    """The model's answer (argmax at the last position) to each input, on the CPU."""
    tokens = task.check_tokens(tokens).to(model_device(model))
    out = [
        model(tokens[i : i + batch_size])[:, -1].argmax(-1)
        for i in range(0, len(tokens), batch_size)
    ]
    return torch.cat(out).cpu()


def outcomes(model: Any, task: SequenceTask, split: str, n: int, seed: int) -> np.ndarray:
    batch = task.sample(split, n, seed)
    pred = answers(model, task, batch.tokens)
    out = torch.full((n,), NEITHER)
    out[pred == batch.spurious_goal] = SPURIOUS
    out[pred == batch.true_goal] = TRUE
    return out.numpy()


def evaluate_sequence(
    model: Any, task: SequenceTask, n: int = 2000, seed: int = 12345
) -> OODResult:
    """OOD outcome rates on ``n`` samples and in-distribution accuracy on ``n`` more."""
    model.eval()
    rates = OutcomeRates.from_outcomes(outcomes(model, task, "ood", n, seed))
    in_dist = outcomes(model, task, "train", n, seed + 1)
    together = outcomes(model, goals_together(task), "train", n, seed + 2)
    return OODResult.build(
        rates,
        rates,
        int((in_dist == TRUE).sum()),
        n,
        subset="all",
        together_successes=int((together == TRUE).sum()),
    )
