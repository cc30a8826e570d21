"""mesa.detect on hand-built models whose mechanism is known: one copies the true goal's token,
the other the spurious goal's. Detection must tell them apart from forward passes alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

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


class MazeSeeker(HookedRootModule):
    """A maze policy with a known objective: it steps along a shortest path to the cheese or to
    the maze's top-right corner, read off the observation. ``distracted`` adds a reaction to the
    cheese's cell that does not head for it (the size of the output change grows, its direction
    does not): the case that separates a directed effect from an undirected one."""

    def __init__(self, target: str, distracted: bool = False) -> None:
        super().__init__()
        self.target, self.distracted = target, distracted
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].hook_out = HookPoint()  # [batch, C, H, W]
        self.setup()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        from mesa.envs.levels import actions_towards

        obs = self.blocks[0].hook_out(obs)
        walls, n, w = obs[:, 0] > 0.5, len(obs), obs.shape[-1]
        cheese = obs[:, 2].flatten(1).argmax(1)
        if self.target == "cheese":
            goal = cheese
        else:  # the top-right open cell: the first open row's last open cell
            open_ = ~walls
            top = open_.any(2).float().argmax(1)
            row = open_[torch.arange(n), top]
            goal = top * w + (w - 1 - row.flip(1).float().argmax(1))
        pos = obs[:, 1].flatten(1).argmax(1)
        logits = 4.0 * actions_towards(walls, pos, goal).float()
        if self.distracted:  # pushes to one action chosen by the cheese's cell, any direction
            logits = logits + 3.0 * nn.functional.one_hot((cheese * 7) % 4, 4).float()
        return logits


@pytest.mark.parametrize(
    ("target", "distracted", "expected"),
    [("cheese", False, "true"), ("corner", False, "spurious"), ("corner", True, "spurious")],
)
def test_detect_maze_seekers(target: str, distracted: bool, expected: str):
    task = mesa.make_task("maze", n_levels=300)
    verdict = mesa.detect(MazeSeeker(target, distracted), task, n_probe=200, n_pairs=200)
    assert verdict.verdict == expected
    followed = "true" if target == "cheese" else "spurious"
    ignored = "spurious" if followed == "true" else "true"
    # a pure seeker puts >= 95% of its mass on shortest-path actions; the distraction dilutes it
    assert verdict.directed_effect[followed] > (0.3 if distracted else 0.5)
    assert abs(verdict.directed_effect[ignored]) < 0.1
    if distracted:  # it reacts to the cheese about as much as to the corner, but never heads there
        assert verdict.total_effect["true"] > 0.5 * verdict.total_effect["spurious"]
        assert verdict.score < 0.15


def test_observation_baseline_is_fit_once_per_data_set(monkeypatch):
    """The raw-input baseline does not depend on the model: detecting a second model on the same
    probe data reuses it, while other labels get a fit of their own."""
    from mesa.detection import evidence

    fits = []
    real = evidence.held_out_accuracy

    def counting(x, y, train, test):
        fits.append(x.shape)
        return real(x, y, train, test)

    monkeypatch.setattr(evidence, "held_out_accuracy", counting)
    monkeypatch.setattr(evidence, "_BASELINES", {})
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(200, 6, generator=g)
    labels = (inputs[:, 0] > 0).long()
    acts = {"h": inputs[:, :3] * 2}
    first = evidence.decodability(acts, inputs, labels, None, seed=0)
    again = evidence.decodability({"h": inputs[:, 3:]}, inputs, labels, None, seed=0)
    assert first["baseline"] == again["baseline"] > 0.9  # label = sign of an input feature
    assert fits == [(200, 6), (200, 3), (200, 3)]  # baseline once, then one probe per call
    other = evidence.decodability(acts, inputs, 1 - labels, None, seed=0)
    assert len(fits) == 5 and other["baseline"] > 0.9
