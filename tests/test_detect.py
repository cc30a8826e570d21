"""mesa.detect on hand-built models whose mechanism is known: one copies the true goal's token,
the other the spurious goal's. Detection must tell them apart from forward passes alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mesa
from mesa.errors import MesaError
from mesa.tasks import register_task
from mesa.tasks.base import SequenceBatch, SequenceTask
from tests.tiny_models import CopyModel

VOCAB = 8


@register_task("toy_copy_for_tests")
class ToyCopy(SequenceTask):
    description = "two tokens: the true goal and the spurious goal"
    archs = ("none",)

    @property
    def vocab_size(self) -> int:
        return VOCAB

    @property
    def context_length(self) -> int:
        return 2

    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        t = torch.randint(0, VOCAB, (n, 2), generator=torch.Generator().manual_seed(seed))
        return SequenceBatch(t, t[:, 0], t[:, 0], t[:, 1])

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        base = torch.randint(0, VOCAB, (n, 2), generator=g)
        source = base.clone()
        pos = 0 if vary == "true" else 1
        source[:, pos] = (base[:, pos] + torch.randint(1, VOCAB, (n,), generator=g)) % VOCAB
        return {
            "base": base,
            "source": source,
            "base_true_goal": base[:, 0],
            "source_true_goal": source[:, 0],
            "base_spurious_goal": base[:, 1],
            "source_spurious_goal": source[:, 1],
        }

    def make_model(self, arch: str | None = None, seed: int = 0):
        raise NotImplementedError


@pytest.mark.parametrize(("copy", "expected"), [(0, "true"), (1, "spurious")])
def test_detect_tells_true_from_spurious(copy: int, expected: str, tmp_path: Path):
    task = ToyCopy()
    verdict = mesa.detect(CopyModel(copy, VOCAB), task, out=tmp_path, n_probe=400, n_pairs=100)
    assert verdict.verdict == expected
    assert verdict.score == pytest.approx(1.0 if copy == 0 else 0.0, abs=1e-3)
    used, unused = ("true", "spurious") if copy == 0 else ("spurious", "true")
    assert verdict.total_effect[used] > 0.99 and verdict.total_effect[unused] < 1e-6
    rows = {e.hook: e for e in verdict.evidence}
    # the copied token is decodable at the answer position after the copy; the other is not
    late = rows["blocks.1.hook_out"]
    d_used, d_unused = (late.d_true, late.d_spur) if copy == 0 else (late.d_spur, late.d_true)
    assert d_used == 1.0 and d_unused < 0.35
    # patching the copied token's position in the first block restores the whole effect
    first = rows["blocks.0.hook_out"]
    assert (first.c_true if copy == 0 else first.c_spur) == pytest.approx(1.0)
    # erasing the used goal at the last block removes the decision's sensitivity to it
    assert (late.e_true if copy == 0 else late.e_spur) > 0.9
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["verdict"] == expected and len(saved["evidence"]) == 2


def test_detect_bad_input():
    with pytest.raises(MesaError, match="n_probe must be"):
        mesa.detect(CopyModel(0, VOCAB), ToyCopy(), n_probe=3)
    with pytest.raises(MesaError, match="no block hooks"):
        mesa.detect(nn.Linear(2, 2), ToyCopy())
