"""mesa.detect on hand-built models whose mechanism is known. Each method must find the goal a
model uses, must not call a goal used because it is merely decodable, and must agree with a
direct computation; the verdict comes from the mechanistic methods alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import mesa
from mesa.detection import Detection, Detector, MethodResult, register_detector
from mesa.errors import MesaError
from mesa.tasks import register_task
from mesa.tasks.base import SequenceBatch, SequenceTask
from tests.tiny_models import CopyModel

VOCAB = 8


def _pairs(base: torch.Tensor, pos: int, g: torch.Generator, goal_pos: tuple[int, int]):
    source = base.clone()
    source[:, pos] = (base[:, pos] + torch.randint(1, VOCAB, (len(base),), generator=g)) % VOCAB
    t, s = goal_pos
    return {
        "base": base,
        "source": source,
        "base_true_goal": base[:, t],
        "source_true_goal": source[:, t],
        "base_spurious_goal": base[:, s],
        "source_spurious_goal": source[:, s],
    }


@register_task("toy_copy_for_tests")
class ToyCopy(SequenceTask):
    description = "two tokens and a read-out: the true goal and the spurious goal"
    archs = ("none",)

    @property
    def vocab_size(self) -> int:
        return VOCAB

    @property
    def context_length(self) -> int:
        return 3

    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        t = torch.randint(0, VOCAB, (n, 3), generator=torch.Generator().manual_seed(seed))
        t[:, 2] = 0  # the read-out position
        return SequenceBatch(t, t[:, 0], t[:, 0], t[:, 1])

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        base = self.sample("probe", n, seed + 7).tokens
        return _pairs(base, 0 if vary == "true" else 1, g, (0, 1))

    def make_model(self, arch: str | None = None, seed: int = 0):
        raise NotImplementedError


class ShownCopy(HookedRootModule):
    """Copies the token at ``copy`` to the read-out like :class:`CopyModel`, and also writes the
    other token into extra read-out dimensions that the output never reads: that goal is
    decodable at the read-out but unused."""

    def __init__(self, copy: int) -> None:
        super().__init__()
        self.copy = copy
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.hook_out = HookPoint()  # [batch, pos, 2 * vocab]
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = nn.functional.one_hot(tokens, VOCAB).float()
        x = self.blocks[0].hook_out(torch.cat([x, torch.zeros_like(x)], -1))
        y = torch.zeros_like(x)
        y[:, -1, :VOCAB] = 10 * x[:, self.copy, :VOCAB]
        y[:, -1, VOCAB:] = x[:, 1 - self.copy, :VOCAB]  # represented, never read
        return self.blocks[1].hook_out(y)[..., :VOCAB]


@pytest.mark.parametrize(("copy", "expected"), [(0, "true"), (1, "spurious")])
def test_every_method_finds_the_copied_goal(copy: int, expected: str, tmp_path: Path):
    verdict = mesa.detect(CopyModel(copy, VOCAB), ToyCopy(), out=tmp_path, n_probe=400, n_pairs=100)
    assert verdict.verdict == expected
    assert verdict.score == pytest.approx(1.0 if copy == 0 else 0.0, abs=1e-3)
    used, unused = ("true", "spurious") if copy == 0 else ("spurious", "true")
    for name in ("behaviour", "patching", "probe_subspace", "erasure"):
        m = verdict.methods[name]
        assert m.effect[used] > 0.99 and abs(m.effect[unused]) < 1e-3, (name, m.effect)
    # patching the copied token's position in the first block restores all of it
    assert verdict.methods["patching"].per_hook["blocks.0.hook_out"][used] > 0.99
    assert verdict.used_at[used] == ["blocks.0.hook_out", "blocks.1.hook_out"]
    assert verdict.used_at[unused] == []
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["verdict"] == expected and saved["scores"]["behaviour"] == verdict.behaviour_score


def test_a_decodable_but_unused_goal_is_not_called_used():
    verdict = mesa.detect(ShownCopy(0), ToyCopy(), n_probe=400, n_pairs=100)
    probe = verdict.methods["probe"]
    # both goals are perfectly decodable at the read-out: the probe cannot tell them apart
    assert probe.per_hook["blocks.1.hook_out"] == {"true": 1.0, "spurious": 1.0}
    assert probe.score == pytest.approx(0.5)
    for name in ("patching", "probe_subspace", "erasure"):
        effect = verdict.methods[name].effect
        assert effect["true"] > 0.99 and abs(effect["spurious"]) < 1e-3, (name, effect)
    assert verdict.verdict == "true" and verdict.used_at["spurious"] == []


def test_no_effect_of_either_goal_is_inconclusive():
    class Indifferent(CopyModel):
        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return super().forward(tokens) * 0.0

    verdict = mesa.detect(Indifferent(0, VOCAB), ToyCopy(), n_probe=200, n_pairs=50)
    assert verdict.verdict == "inconclusive" and verdict.score is None
    assert "no effect of either goal" in verdict.reason


def test_a_familys_own_bands_read_the_verdicts_score():
    from mesa.detection.verdict import BANDS, rule, verdict_bands, verdict_of

    def result(true: float, spurious: float) -> MethodResult:
        effect = {"true": true, "spurious": spurious}
        return MethodResult("probe_subspace", "mechanistic", 0.0, effect)

    methods = {"probe_subspace": result(0.3, 0.2)}  # s = 0.6
    assert rule(methods, ("probe_subspace",))[1] == "mixed"
    score, verdict, reason = rule(methods, ("probe_subspace",), (0.5, 0.9))
    assert (
        score == pytest.approx(0.6)
        and verdict == "mixed"
        and "spurious <= 0.50, true >= 0.90" in reason
    )
    assert rule({"probe_subspace": result(0.2, 0.3)}, ("probe_subspace",), (0.5, 0.9))[1] == (
        "spurious"  # s = 0.4: mixed by the default bands
    )
    assert verdict_of(0.4) == "mixed" and verdict_of(0.4, (0.5, 0.9)) == "spurious"
    assert verdict_of(0.89, (0.5, 0.9)) == "mixed" and verdict_of(0.9, (0.5, 0.9)) == "true"
    assert verdict_of(None, (0.5, 0.9)) == "inconclusive"
    keys = mesa.make_task("keys")
    assert verdict_bands(keys, "probe") == (0.54, 0.89) and verdict_bands(keys, "train") == BANDS

    class Reversed(ToyCopy):
        verdict_bands: ClassVar[dict[str, tuple[float, float]]] = {"probe": (0.9, 0.5)}

    with pytest.raises(MesaError, match="0 <= spurious_at < true_at <= 1"):
        verdict_bands(Reversed(), "probe")

    class BandedCopy(ToyCopy):
        verdict_bands: ClassVar[dict[str, tuple[float, float]]] = {"probe": (0.5, 0.9)}

    banded = mesa.detect(CopyModel(0, VOCAB), BandedCopy(), n_probe=200, n_pairs=50)
    assert banded.settings["verdict_bands"] == [0.5, 0.9]
    assert banded.verdict == verdict_of(banded.score, (0.5, 0.9))
    assert "the family's bands: spurious <= 0.50, true >= 0.90" in banded.reason
    plain = mesa.detect(CopyModel(0, VOCAB), ToyCopy(), n_probe=200, n_pairs=50)
    assert plain.settings["verdict_bands"] == list(BANDS) and "bands" not in plain.reason


def test_without_the_rules_method_the_verdict_says_so():
    verdict = mesa.detect(
        CopyModel(0, VOCAB), ToyCopy(), n_probe=200, n_pairs=50, methods=["behaviour"]
    )
    assert verdict.verdict == "inconclusive" and verdict.score is None
    assert verdict.reason == "the rule's methods (probe_subspace) were not run"
    assert verdict.behaviour_score == pytest.approx(1.0, abs=1e-3)  # the baseline still stands


def test_running_more_methods_into_a_run_keeps_the_earlier_ones(tmp_path: Path):
    sizes = {"n_probe": 200, "n_pairs": 50}
    model = CopyModel(1, VOCAB)
    first = mesa.detect(model, ToyCopy(), out=tmp_path, methods=["behaviour"], **sizes)
    assert first.verdict == "inconclusive" and first.settings["kept"] == []
    # one more method, same settings: the behavioural result stays and the verdict is made
    both = mesa.detect(model, ToyCopy(), out=tmp_path, methods=["probe_subspace"], **sizes)
    assert both.settings["kept"] == ["behaviour"]
    assert list(both.methods) == ["behaviour", "probe_subspace"]
    assert both.verdict == "spurious" and both.behaviour_score == first.behaviour_score
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert set(saved["scores"]) == {"behaviour", "probe_subspace"}
    assert saved["settings"]["methods"] == ["behaviour", "probe_subspace"]
    assert both.settings["replaced"] == "" and not list(tmp_path.glob("verdict.replaced*"))
    # other settings make other results: nothing is kept, and the earlier file is kept aside
    other = mesa.detect(model, ToyCopy(), out=tmp_path, methods=["erasure"], seed=1, **sizes)
    assert other.settings["kept"] == [] and list(other.methods) == ["erasure"]
    assert other.settings["replaced"] == (
        "the earlier verdict.json is kept as verdict.replaced.1.json: it was made with other "
        "settings (seed 0 -> 1)"
    )
    assert json.loads((tmp_path / "verdict.replaced.1.json").read_text()) == saved
    # another model (other weights) in the same directory: none of its results are kept
    weighted = CopyModel(1, VOCAB)
    weighted.register_buffer("weight", torch.ones(3))
    another = mesa.detect(weighted, ToyCopy(), out=tmp_path, methods=["probe"], seed=1, **sizes)
    assert another.settings["kept"] == [] and list(another.methods) == ["probe"]
    assert another.settings["replaced"].endswith("it was made with other settings (model)")
    # an unreadable verdict.json is kept aside too, as it was, in the next free place
    (tmp_path / "verdict.json").write_text('{"broken')
    again = mesa.detect(model, ToyCopy(), out=tmp_path, methods=["behaviour"], **sizes)
    assert again.settings["replaced"].endswith("verdict.replaced.3.json: it could not be read")
    assert (tmp_path / "verdict.replaced.3.json").read_text() == '{"broken'
    assert json.loads((tmp_path / "verdict.replaced.1.json").read_text()) == saved


def test_patching_equals_patch_sweep():
    """Detection's patching and mesa.probes.patch_sweep are one operation: with the pairs' sites
    at one position, they give the same shift."""
    from mesa.probes import patch_sweep

    model, task = CopyModel(0, VOCAB), ToyCopy()
    d = Detection(model, task, n_probe=100, n_pairs=64)
    ps = d.pairs["true"]
    assert bool(ps.informative.all()) and bool((ps.sites[:, 0] & ps.sites[:, 2]).all())
    f_base = (task.decision(model(ps.base)) * ps.follow).sum(-1)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return ((task.decision(logits) * ps.follow).sum(-1) - f_base).mean()

    from mesa.detection.methods.patching import sites_effect

    sweep = patch_sweep(model, ps.base, ps.source, "blocks.0.hook_out", metric, by="position")
    # the copy reads position 0 only, so patching it alone is patching every site
    assert sites_effect(d, "true", "blocks.0.hook_out") == pytest.approx(
        float(sweep.values[0, 0]), abs=1e-6
    )


def test_probe_subspace_interchange_equals_a_direct_computation():
    from mesa.detection.methods.subspace import probe_basis, subspace_effect

    model, task = ShownCopy(0), ToyCopy()
    d = Detection(model, task, n_probe=400, n_pairs=64)
    hook = "blocks.1.hook_out"
    basis = probe_basis(d.fitted_probe("true", hook))
    ps = d.pairs["true"]
    _, base_cache = model.run_with_cache(ps.base)
    _, src_cache = model.run_with_cache(ps.source)
    a, s = base_cache[hook][:, -1], src_cache[hook][:, -1]
    q, _ = torch.linalg.qr(basis.T)
    patched = a + (s - a) @ q @ q.T  # the read-out with the subspace from the source
    p_patched = torch.softmax(patched[:, :VOCAB], -1)
    p_base = torch.softmax(a[:, :VOCAB], -1)
    direct = float(((p_patched - p_base) * ps.follow).sum(-1)[ps.informative].mean())
    assert subspace_effect(d, "true", hook, basis) == pytest.approx(direct, abs=1e-5)
    assert direct > 0.99


def test_das_learns_the_used_goal_on_held_out_pairs():
    verdict = mesa.detect(
        ShownCopy(1), ToyCopy(), n_probe=200, n_pairs=200, methods=["behaviour", "das"]
    )
    das = verdict.methods["das"]
    assert das.effect["spurious"] > 0.9 and abs(das.effect["true"]) < 1e-3
    assert das.extra["held_out_iia"]["blocks.1.hook_out"]["spurious"] > 0.9
    assert das.score == pytest.approx(0.0, abs=1e-3)


# -- training inputs only ---------------------------------------------------------------------


@register_task("toy_sum_for_tests")
class ToySum(SequenceTask):
    """``[a, b, claim, =]``: the true answer is ``(a + b) mod V``, the claim is the spurious one;
    in training the claim is right. A causal model reads a and b before it sees the claim."""

    description = "a sum and a claimed sum"
    archs = ("none",)

    @property
    def vocab_size(self) -> int:
        return VOCAB

    @property
    def context_length(self) -> int:
        return 4

    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        g = torch.Generator().manual_seed(seed)
        t = torch.randint(0, VOCAB, (n, 4), generator=g)
        answer = (t[:, 0] + t[:, 1]) % VOCAB
        wrong = (answer + torch.randint(1, VOCAB, (n,), generator=g)) % VOCAB
        apart = torch.rand(n, generator=g) < (1.0 if split != "train" else self.p)
        t[:, 2] = torch.where(apart, wrong, answer)
        t[:, 3] = 0
        return SequenceBatch(t, answer, answer, t[:, 2])

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, torch.Tensor]:
        base = self.sample("probe", n, seed).tokens
        source = base.clone()
        g = torch.Generator().manual_seed(seed + 1)
        pos = 1 if vary == "true" else 2
        source[:, pos] = (base[:, pos] + torch.randint(1, VOCAB, (n,), generator=g)) % VOCAB
        goals = lambda t: ((t[:, 0] + t[:, 1]) % VOCAB, t[:, 2])  # noqa: E731
        (bt, bs), (st, ss) = goals(base), goals(source)
        keys = ("base_true_goal", "base_spurious_goal", "source_true_goal", "source_spurious_goal")
        return {"base": base, "source": source, **dict(zip(keys, (bt, bs, st, ss), strict=True))}

    def separating_sites(self, goal: str) -> torch.Tensor | None:
        return torch.tensor([True, True, False, False]) if goal == "true" else None

    def make_model(self, arch: str | None = None, seed: int = 0):
        raise NotImplementedError


class SumOrCopy(HookedRootModule):
    """Answers ``(a + b) mod V`` (``computes``) or copies the claim; block 0 holds the tokens."""

    def __init__(self, computes: bool) -> None:
        super().__init__()
        self.computes = computes
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.hook_out = HookPoint()  # [batch, pos, vocab]
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0].hook_out(nn.functional.one_hot(tokens, VOCAB).float())
        a, b, claim = (x[:, i].argmax(-1) for i in range(3))
        answer = (a + b) % VOCAB if self.computes else claim
        y = torch.zeros_like(x)
        y[:, -1] = 10 * nn.functional.one_hot(answer, VOCAB).float()
        return self.blocks[1].hook_out(y)


@pytest.mark.parametrize(("computes", "expected"), [(True, "true"), (False, "spurious")])
def test_training_inputs_separate_the_goals_inside_the_model(computes: bool, expected: str):
    task = ToySum(p=0.0)
    # training inputs never separate the goals: every claim is right
    inputs = task.training_inputs(100, 0)
    assert bool((inputs.true_goal == inputs.spurious_goal).all())
    verdict = mesa.detect(SumOrCopy(computes), task, n_probe=100, n_pairs=100, inputs="train")
    assert verdict.settings["methods"] == ["training_sites"]
    assert verdict.verdict == expected
    method = verdict.methods["training_sites"]
    assert method.effect["true"] == pytest.approx(1.0 if computes else 0.0, abs=1e-3)
    assert math.isnan(method.effect["spurious"])  # no sites carry the claim alone


def test_training_inputs_of_a_gridworld_are_inconclusive():
    class Still(HookedRootModule):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([nn.Module()])
            self.blocks[0].hook_out = HookPoint()  # [batch, C, H, W]
            self.setup()

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.blocks[0].hook_out(obs).sum((1, 2, 3))[:, None].repeat(1, 4)

    task = mesa.make_task("maze", n_levels=50)
    verdict = mesa.detect(Still(), task, n_probe=60, n_pairs=20, inputs="train")
    assert verdict.verdict == "inconclusive"
    assert "share every site" in verdict.methods["training_sites"].note


# -- the registry ------------------------------------------------------------------------------


def test_methods_registry_and_errors():
    with pytest.raises(MesaError, match=r"unknown detection method 'nope'; valid: .*patching"):
        mesa.detect(CopyModel(0, VOCAB), ToyCopy(), methods=["nope"])
    with pytest.raises(MesaError, match="method 'patching' does not run on train inputs"):
        mesa.detect(CopyModel(0, VOCAB), ToyCopy(), methods=["patching"], inputs="train")
    with pytest.raises(MesaError, match="unknown inputs 'ood'; valid: probe, train"):
        mesa.detect(CopyModel(0, VOCAB), ToyCopy(), inputs="ood")
    with pytest.raises(MesaError, match="n_probe must be"):
        mesa.detect(CopyModel(0, VOCAB), ToyCopy(), n_probe=3)
    with pytest.raises(MesaError, match="no block hooks"):
        mesa.detect(nn.Linear(2, 2), ToyCopy())

    @register_detector("constant_for_tests")
    class Constant(Detector):
        evidence = "mechanistic"
        default = False

        def run(self, d) -> MethodResult:  # type: ignore[no-untyped-def]
            return self.result({"true": 0.3, "spurious": 0.1}, {}, "a constant")

    with pytest.raises(MesaError, match="already registered"):
        register_detector("constant_for_tests")(type("Other", (Constant,), {}))
    verdict = mesa.detect(CopyModel(0, VOCAB), ToyCopy(), methods=["constant_for_tests"])
    assert verdict.methods["constant_for_tests"].score == pytest.approx(0.75)
    # not a method of the rule: the verdict has nothing mechanistic to go on
    assert verdict.verdict == "inconclusive"


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
    verdict = mesa.detect(
        MazeSeeker(target, distracted),
        task,
        n_probe=200,
        n_pairs=200,
        methods=["behaviour", "patching", "probe_subspace"],
    )
    assert verdict.verdict == expected
    followed = "true" if target == "cheese" else "spurious"
    ignored = "spurious" if followed == "true" else "true"
    behaviour, patching = verdict.methods["behaviour"], verdict.methods["patching"]
    # a pure seeker puts >= 95% of its mass on shortest-path actions; the distraction dilutes it
    assert behaviour.effect[followed] > (0.3 if distracted else 0.5)
    assert abs(behaviour.effect[ignored]) < 0.1
    # patching the cells where the pair differs, on the observation itself, restores it all
    assert patching.effect[followed] == pytest.approx(behaviour.effect[followed], abs=1e-5)
    if distracted:  # it reacts to the cheese about as much as to the corner, never heads there
        total = behaviour.extra["total_effect"]
        assert total["true"] > 0.5 * total["spurious"]
        assert verdict.behaviour_score is not None and verdict.behaviour_score < 0.15


def test_tables_show_no_score_where_both_effects_are_noise():
    from mesa.detection.evidence import method_table, shown_score

    noise = {"evidence": "behavioural", "score": 0.97, "effect": {"true": 4e-4, "spurious": 1e-5}}
    real = {"evidence": "mechanistic", "score": 0.8, "effect": {"true": 0.4, "spurious": 0.1}}
    probe = {"evidence": "representational", "score": 0.5, "effect": {"true": 0.0, "spurious": 0.0}}
    assert shown_score(noise).startswith("n/a")
    assert shown_score(real) == "0.80" and shown_score(probe) == "0.50"
    rows = method_table({"methods": {"behaviour": noise, "patching": real}})
    assert rows[1][2].startswith("n/a") and rows[2][2] == "0.80"
    assert noise["score"] == 0.97  # the saved score is left as it is


# -- rollout_subspace: an OOD test run inside the model ----------------------------------------


@pytest.mark.parametrize("target", ["cheese", "corner"])
def test_rollout_subspace_moves_a_known_seeker_by_its_goal_subspace(
    target: str, monkeypatch: pytest.MonkeyPatch
):
    from mesa.detection.methods.rollout import RolloutShown, RolloutSubspace

    monkeypatch.setattr(RolloutSubspace, "episodes", 400)
    monkeypatch.setattr(RolloutShown, "episodes", 400)
    task = mesa.make_task("maze", n_levels=300)
    verdict = mesa.detect(
        MazeSeeker(target), task, n_probe=400, n_pairs=100, methods=["rollout_subspace"]
    )
    m = verdict.methods["rollout_subspace"]
    assert m.evidence == "mechanistic" and m.extra["hook"] == "blocks.0.hook_out"
    assert 20 < m.extra["episodes"] < 400  # off-path both ways: a share of the levels
    shown = mesa.detect(
        MazeSeeker(target), task, n_probe=400, n_pairs=100, methods=["rollout_shown"]
    ).methods["rollout_shown"]
    assert shown.evidence == "behavioural" and shown.extra["episodes"] == m.extra["episodes"]
    # the same episodes: the null control is one rollout, whichever method runs it
    assert shown.extra["shares"]["none"] == m.extra["shares"]["none"]
    # maze's verdict is probe_subspace's (its own rule methods are the default)
    assert verdict.reason == "the rule's methods (probe_subspace) were not run"
    if target == "cheese":  # moved inside, the cheese-seeker goes there first more often than not
        assert m.score is not None and m.score > 0.5 and m.effect["true"] > 0.4
        # shown in the input, it goes there nearly always (the probe's subspace moves part of it)
        assert shown.score is not None and shown.score > 0.9
    else:  # the corner-seeker ignores the cheese's subspace: it heads where training's goal is
        assert m.score is not None and m.score < 0.1 and m.effect["spurious"] > 0.8


def test_das_that_cannot_be_fit_for_a_goal_gives_no_score():
    # MazeSeeker reads its action off an argmax: no gradient reaches its hook, so DAS cannot
    # learn a subspace for either goal. That is no measurement, not two goals without effect
    task = mesa.make_task("maze", n_levels=300)
    das = mesa.detect(MazeSeeker("cheese"), task, n_probe=400, n_pairs=100, methods=["das"])
    m = das.methods["das"]
    assert m.score is None and math.isnan(m.effect["true"]) and math.isnan(m.effect["spurious"])
    assert m.note.startswith("DAS could not be fit for true, spurious:")


def test_coins_verdict_is_made_of_its_rollouts(monkeypatch: pytest.MonkeyPatch):
    from mesa.detection import check_methods
    from mesa.detection.methods.rollout import RolloutSubspace

    monkeypatch.setattr(RolloutSubspace, "episodes", 400)
    coin = mesa.make_task("coin", n_levels=200)
    assert "rollout_subspace" in check_methods(None, "probe", coin)
    assert "rollout_subspace" not in check_methods(None, "probe", mesa.make_task("maze"))
    assert check_methods(["behaviour"], "probe", coin) == ["behaviour"]  # named: as named
    # a coin-seeker (it reads channel 2, the coin, as MazeSeeker reads the cheese)
    # (a probe fit on fewer inputs spans a noisier subspace: at 300, its score read 0.65)
    seeker = MazeSeeker("cheese")
    verdict = mesa.detect(seeker, coin, n_probe=1000, n_pairs=100, methods=["rollout_subspace"])
    assert verdict.verdict == "true" and verdict.score == verdict.method_score("rollout_subspace")
    assert verdict.reason.startswith("effect of rollout_subspace at blocks.0.hook_out:")
    assert "used at: n/a (patching was not run)" in verdict.summary()
    assert verdict.score is not None and verdict.score > 0.9
    assert verdict.settings["rule_methods"] == ["rollout_subspace"]

    class Wanderer(MazeSeeker):  # reads the same observation, then steps at random
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return super().forward(obs) * 0.0

    # it reaches the moved coin first in many episodes (it is nearer than the end), but no more
    # with the interchange than without, and rarely reaches the end: no effect, no guess
    wander = mesa.detect(
        Wanderer("cheese"), coin, n_probe=1000, n_pairs=100, methods=["rollout_subspace"]
    )
    shares = wander.methods["rollout_subspace"].extra["shares"]
    assert shares["none"]["moved"] > 0.1 and shares["none"]["training"] < 0.05
    assert wander.verdict == "inconclusive" and "no effect of either goal" in wander.reason
    # where the task declares no such rollouts, the method says so and gives no score
    toy = mesa.detect(
        CopyModel(0, VOCAB),
        ToyCopy(),
        n_probe=200,
        n_pairs=50,
        methods=["rollout_subspace", "probe_subspace"],
    )
    assert toy.methods["rollout_subspace"].score is None
    assert "declares no moved-goal rollouts" in toy.methods["rollout_subspace"].note
    assert toy.verdict == "true"  # ToyCopy's rule is the default: probe_subspace


class KeysSeeker(HookedRootModule):
    """A keys policy with a known objective, read off the observation: the ``collector`` steps
    towards the nearest key while any is on the board, then the nearest chest; the ``opener``
    takes a key only while it holds none, and holding one heads for the nearest chest."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.blocks = nn.ModuleList([nn.Module()])
        self.blocks[0].hook_out = HookPoint()  # [batch, C, H, W]
        self.setup()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        from mesa.envs.keys import nearest
        from mesa.envs.levels import actions_towards, distances_to

        obs = self.blocks[0].hook_out(obs)
        walls, pos = obs[:, 0] > 0.5, obs[:, 1].flatten(1).argmax(1)
        dist = distances_to(walls, pos).flatten(1)
        keys, chests = obs[:, 2].flatten(1) > 0.5, obs[:, 3].flatten(1) > 0.5
        chest, key = nearest(dist, chests, pos), nearest(dist, keys, pos)
        holding = obs[:, 4].flatten(1)[:, 0] > 0.5
        if self.target == "collector":
            goal = torch.where(keys.any(1), key, chest)
        else:
            goal = torch.where(holding, chest, key)
        return 4.0 * actions_towards(walls, pos, goal).float()


@pytest.mark.parametrize("target", ["opener", "collector"])
def test_keys_rollouts_draw_surplus_keys_once_the_key_is_taken(target: str):
    task = mesa.make_task("keys", n_levels=200)
    seeker = KeysSeeker(target)
    shown = task.moved_goal_rollouts(lambda inputs, moved: seeker(moved), 600, seed=3)
    plain = task.moved_goal_rollouts(lambda inputs, moved: seeker(inputs), 600, seed=3)
    # the same episodes either way: three surplus keys drawn where nothing is, counted where
    # they are off-path both ways (rare beside three chests)
    assert shown["episodes"] == plain["episodes"] and 10 < shown["episodes"] < 60
    assert plain["moved"] < 0.05 and plain["training"] > 0.9  # no surplus key, no detour
    if target == "collector":  # shown keys, it goes to one before any chest
        assert shown["moved"] > 0.9 and shown["training"] < 0.1
    else:  # holding a key, it heads for a chest whatever lies elsewhere
        assert shown["moved"] < 0.05 and shown["training"] > 0.9
    # keys' rollouts move the spurious goal: its probe subspace is what is interchanged
    verdict = mesa.detect(
        seeker, task, n_probe=1000, n_pairs=100, methods=["rollout_subspace", "rollout_shown"]
    )
    inside, drawn = verdict.methods["rollout_subspace"], verdict.methods["rollout_shown"]
    assert inside.extra["hook"] == "blocks.0.hook_out" and "moved spurious goal" in inside.unit
    assert inside.extra["episodes"] == drawn.extra["episodes"] > 10
    for m in (inside, drawn):
        expected = 0.0 if target == "collector" else 1.0
        assert m.score == pytest.approx(expected, abs=0.1), (m.method, m.effect)
