"""Helpers of the trainer tests: weight snapshots, and killing a run right after a checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch


def weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@contextmanager
def killed_after_checkpoint(monkeypatch: Any, trainer: ModuleType, n: int) -> Iterator[None]:
    """Inside the block, the ``n``-th checkpoint a trainer writes raises ``KeyboardInterrupt``
    right after it is written, as if the run were killed there; the real save is back afterwards.
    (``trainer`` names the trainer under test; every trainer saves through mesa.training.common.)"""
    from mesa.training import common

    trainer = common
    real = trainer.save_checkpoint
    saves = []

    def save_then_die(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        saves.append(1)
        if len(saves) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    try:
        yield
    finally:
        monkeypatch.setattr(trainer, "save_checkpoint", real)
