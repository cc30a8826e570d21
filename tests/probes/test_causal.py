"""Patching (equal to TransformerLens), DAS, LEACE erasure and steering, on tiny models."""

from __future__ import annotations

import pytest
import torch
from concept_erasure import LeaceFitter
from sklearn.linear_model import LogisticRegression

from mesa.errors import MesaError
from mesa.probes import (
    LinearProbe,
    collect_activations,
    erasure_effect,
    fit_das,
    fit_eraser,
    fit_erasers,
    interchange_accuracy,
    logit_diff,
    patch_sweep,
    steer,
    target_prob,
)
from mesa.probes.erasure import _constrain_trace
from tests.tiny_models import CopyModel, TinyConv, TinyMLP, tiny_transformer

VOCAB = 10


def _copier() -> CopyModel:
    return CopyModel(copy=0, vocab=VOCAB)


@pytest.mark.parametrize("name", ["resid_pre", "attn_out", "mlp_out"])
def test_patching_equals_transformer_lens(name):
    import transformer_lens.patching as tlp

    model = tiny_transformer(n_layers=4).eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (torch.randint(0, 20, (4, 8), generator=g) for _ in range(2))
    _, clean_cache = model.run_with_cache(clean)
    metric = logit_diff(3, 7)
    reference = getattr(tlp, f"get_act_patch_{name}")(model, corrupted, clean_cache, metric)
    ours = patch_sweep(
        model, corrupted, clean, [f"blocks.{i}.hook_{name}" for i in range(4)], metric
    )
    # both compute the same float32 forward passes; 1e-5 allows for summation order only
    assert (ours.values - reference).abs().max() <= 1e-5


def test_head_position_patching_equals_transformer_lens():
    import transformer_lens.patching as tlp

    model = tiny_transformer(n_layers=2).eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (torch.randint(0, 20, (4, 8), generator=g) for _ in range(2))
    _, clean_cache = model.run_with_cache(clean)
    metric = logit_diff(3, 7)
    reference = tlp.get_act_patch_attn_head_out_by_pos(model, corrupted, clean_cache, metric)
    hooks = [f"blocks.{i}.attn.hook_z" for i in range(2)]
    ours = patch_sweep(model, corrupted, clean, hooks, metric, by="head_position")
    assert ours.values.shape == reference.shape == (2, 8, 4)  # [layer, pos, head]
    assert reference.abs().max() > 0.1  # heads matter: the comparison is not vacuous
    # the same float32 forward passes; 1e-5 allows for summation order only
    assert (ours.values - reference).abs().max() <= 1e-5


def test_patching_starts_at_the_patched_block_on_a_bridge():
    model = tiny_transformer(n_layers=4).eval()
    g = torch.Generator().manual_seed(0)
    clean, corrupted = (torch.randint(0, 20, (4, 8), generator=g) for _ in range(2))
    calls = {"block0": 0, "block3": 0}

    def count(name):
        def hook(act, hook=None):
            calls[name] += 1

        return hook

    model.add_hook("blocks.0.hook_resid_pre", count("block0"))
    model.add_hook("blocks.3.hook_resid_pre", count("block3"))
    try:
        patch_sweep(model, corrupted, clean, ["blocks.3.hook_mlp_out"], logit_diff(3, 7))
    finally:
        model.reset_hooks()
    # block 0 runs only in the source and base runs; block 3 also in the check that running
    # from block 3 reproduces the base output, and in the one batched patched pass
    assert calls == {"block0": 2, "block3": 4}


def _copy_pairs(n: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, VOCAB, (n, 4), generator=g)
    source = torch.randint(0, VOCAB, (n, 4), generator=g)
    return base, source


def test_patching_finds_the_copied_position():
    base, source = _copy_pairs()
    result = patch_sweep(
        _copier(),
        base,
        source,
        ["blocks.0.hook_out", "blocks.1.hook_out"],
        target_prob(source[:, 0]),
    )
    first, second = result.recovery()
    # layer 0: position 0 carries the answer, the others nothing
    assert first[0] == pytest.approx(1.0, abs=1e-6)
    assert first[1:].abs().max() < 1e-6
    # layer 1: the answer has moved to the last position
    assert second[-1] == pytest.approx(1.0, abs=1e-6)
    assert second[:-1].abs().max() < 1e-6


@pytest.mark.slow
def test_das_finds_the_variable_where_it_lives():
    base, source = _copy_pairs(512)
    labels = source[:, 0]  # after interchanging token 0's subspace the answer is source's token
    train, test = slice(0, 384), slice(384, 512)
    das = fit_das(
        _copier(),
        base[train],
        source[train],
        labels[train],
        "blocks.0.hook_out",
        k=VOCAB - 1,
        position=0,
        steps=200,
        lr=0.05,
    )
    iia = interchange_accuracy(
        _copier(),
        base[test],
        source[test],
        labels[test],
        "blocks.0.hook_out",
        das.basis.detach(),
        position=0,
    )
    assert iia >= 0.95
    wrong = fit_das(
        _copier(),
        base[train],
        source[train],
        labels[train],
        "blocks.0.hook_out",
        k=VOCAB - 1,
        position=1,
        steps=200,
        lr=0.05,
    )
    iia_wrong = interchange_accuracy(
        _copier(),
        base[test],
        source[test],
        labels[test],
        "blocks.0.hook_out",
        wrong.basis.detach(),
        position=1,
    )
    assert iia_wrong <= 0.3  # position 1 is not where the answer comes from


def test_patching_by_cell_and_whole_on_conv_and_mlp():
    conv = TinyConv()
    base, source = torch.zeros(3, 3, 5, 5), torch.zeros(3, 3, 5, 5)
    source[:, 0, 2, 2] = 5.0
    result = patch_sweep(
        conv, base, source, ["hook_obs", "blocks.0.hook_out"], logit_diff(0, 1), by="cell"
    )
    assert result.values.shape == (2, 25)
    rec = result.recovery()
    assert rec[0, 12] == pytest.approx(1.0, abs=1e-5)  # the input cell that differs
    assert rec[0, :12].abs().max() < 1e-6
    whole = patch_sweep(
        TinyMLP(), torch.zeros(2, 8), torch.ones(2, 8), ["hook_hidden"], logit_diff(0, 1), by=None
    )
    assert whole.recovery()[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_patching_errors():
    mlp = TinyMLP()
    with pytest.raises(MesaError, match="base and source inputs differ in shape"):
        patch_sweep(mlp, torch.zeros(2, 8), torch.zeros(3, 8), ["hook_in"], logit_diff(0, 1))
    with pytest.raises(MesaError, match="cannot patch hook 'hook_in' of shape"):
        patch_sweep(
            mlp, torch.zeros(2, 8), torch.zeros(2, 8), ["hook_in"], logit_diff(0, 1), by="position"
        )
    with pytest.raises(MesaError, match="unknown hook"):
        patch_sweep(mlp, torch.zeros(2, 8), torch.zeros(2, 8), ["nope"], logit_diff(0, 1))
    with pytest.raises(MesaError, match="NaN activations"):
        patch_sweep(
            mlp,
            torch.zeros(2, 8),
            torch.full((2, 8), float("nan")),
            ["hook_in"],
            logit_diff(0, 1),
            by=None,
        )


def test_leace_leaves_no_linear_trace():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).long()
    model = TinyMLP()
    acts = collect_activations(model, x, ["hook_in"])["hook_in"]
    eraser, _ = fit_eraser(acts[:3000], y[:3000])
    erased = eraser(acts)
    before = (
        LogisticRegression(max_iter=1000).fit(acts[:3000], y[:3000]).score(acts[3000:], y[3000:])
    )
    probe = LogisticRegression(max_iter=1000).fit(erased[:3000], y[:3000])
    chance = max(y[3000:].float().mean().item(), 1 - y[3000:].float().mean().item())
    assert before > 0.95
    # LEACE guarantees no linear classifier beats a constant on the fitting distribution; on
    # 1000 fresh examples, 2 points is about 1.3 binomial standard deviations of slack
    assert probe.score(erased[3000:], y[3000:]) <= chance + 0.02


def _leace_fitter_eraser(acts, labels, shrinkage):
    classes, idx = torch.unique(labels, return_inverse=True)
    fitter = LeaceFitter(acts.shape[1], len(classes), dtype=torch.float32, shrinkage=shrinkage)
    return fitter.update(acts, torch.nn.functional.one_hot(idx, len(classes)).float()).eraser


@pytest.mark.parametrize("shrinkage", [True, False])
def test_fit_erasers_equals_leace_fitter_for_each_concept(shrinkage):
    g = torch.Generator().manual_seed(1)
    n, d = 600, 40
    goal_a = torch.randint(0, 7, (n,), generator=g)
    goal_b = torch.randint(0, 3, (n,), generator=g) * 10  # any label values
    x = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)
    x = x * torch.rand(d, generator=g) * 4  # badly scaled, correlated features
    x[:, :5] += goal_a[:, None].float()
    x[:, 5:8] -= goal_b[:, None].float() / 10
    fitted = fit_erasers(x, [goal_a, goal_b], shrinkage=shrinkage)
    for (eraser, classes), labels in zip(fitted, (goal_a, goal_b), strict=True):
        assert torch.equal(classes, torch.unique(labels))
        ref = _leace_fitter_eraser(x, labels, shrinkage)(x)
        # the same edit up to float32 rounding, relative to the edit's size
        assert (eraser(x) - ref).norm() / (x - ref).norm() < 1e-4
        # and what LEACE promises: every class has the overall mean after erasure
        erased = eraser(x)
        for c in classes:
            gap = erased[labels == c].mean(0) - erased.mean(0)
            assert gap.abs().max() < 1e-3 * x.abs().max()


def test_erasure_trace_constraint_mixes_towards_the_orthogonal_projection():
    # an oblique rank-1 "erasure" that inflates the covariance's trace: the constraint must mix
    # it with I - u u' so that the trace stays, as LeaceFitter's constrain_cov_trace does
    g = torch.Generator().manual_seed(2)
    d = 6
    a = torch.randn(d, d, generator=g)
    sigma = a @ a.T + torch.eye(d)
    u = torch.nn.functional.normalize(torch.randn(d, 1, generator=g), dim=0)
    left = 3.0 * u + torch.randn(d, 1, generator=g)
    right = u.T.clone()
    before = torch.trace(sigma)
    p = torch.eye(d) - left @ right
    assert torch.trace(p @ sigma @ p.T) > before  # the case the constraint is for
    left2, right2 = _constrain_trace(left, right, u, sigma)
    p2 = torch.eye(d) - left2 @ right2
    assert torch.trace(p2 @ sigma @ p2.T) == pytest.approx(float(before), rel=1e-4)
    # I - P2 = alpha (I - P) + (1 - alpha) u u' for one alpha in [0, 1]
    basis = torch.stack([(left @ right).flatten(), (u @ u.T).flatten()], 1)
    coef = torch.linalg.lstsq(basis, (left2 @ right2).flatten()[:, None]).solution.flatten()
    assert 0 <= float(coef[0]) <= 1 and float(coef.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(basis @ coef, (left2 @ right2).flatten(), atol=1e-5)
    # an erasure that does not inflate the trace is returned as it is
    same = _constrain_trace(u, u.T, u, sigma)
    assert torch.equal(same[0], u) and torch.equal(same[1], u.T)


def test_fit_erasers_bad_input():
    x = torch.randn(20, 4)
    with pytest.raises(MesaError, match="at least two classes"):
        fit_erasers(x, [torch.zeros(20)])
    with pytest.raises(MesaError, match=r"20 activations need 20 labels .* got \(19,\)"):
        fit_erasers(x, [torch.arange(19) % 2])
    with pytest.raises(MesaError, match=r"in one dimension, got \(20, 2\)"):
        fit_erasers(x, [torch.zeros(20, 2)])
    with pytest.raises(MesaError, match="NaN"):
        fit_erasers(torch.full((20, 4), float("nan")), [torch.arange(20) % 2])


def _linear_readout(model_kind: str):
    """A model, inputs, a hook, its position, the output's read-out, and the matrix W with
    ``read-out = W @ activation + b``: the hook feeds the read-out through a linear map only."""
    g = torch.Generator().manual_seed(0)
    if model_kind == "mlp":
        model = TinyMLP()
        return (
            model,
            torch.randn(400, 8, generator=g),
            "hook_hidden",
            None,
            lambda o: o,
            model.w2.weight,
        )
    if model_kind == "conv":
        with torch.random.fork_rng(devices=[]):  # TinyConv draws torch's default init
            torch.manual_seed(0)
            model = TinyConv()
        inputs = torch.randn(400, 3, 5, 5, generator=g)
        return model, inputs, "blocks.1.hook_out", None, lambda o: o, model.head.weight
    model = tiny_transformer().eval()
    inputs = torch.randint(0, 20, (400, 8), generator=g)
    return model, inputs, "ln_final.hook_out", -1, lambda o: o[:, -1], model.W_U.T


def _fresh_probe_accuracy(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Held-out accuracy of a (barely regularised) probe fit on the first half of the examples,
    scored on the rest."""
    x, y, half = features.numpy(), labels.numpy(), len(labels) // 2
    return float(LinearProbe(C=100).fit(x[:half], y[:half]).score(x[half:], y[half:]))


@pytest.mark.parametrize("model_kind", ["mlp", "conv", "transformer"])
def test_erasing_a_concept_in_the_forward_pass_leaves_a_fresh_probe_at_chance(model_kind):
    model, inputs, hook, pos, readout, _ = _linear_readout(model_kind)
    with torch.no_grad():
        out = readout(model(inputs))
    labels = (out[:, 0] - out[:, 1] > (out[:, 0] - out[:, 1]).median()).long()  # in the output
    acts = collect_activations(model, inputs, [hook], position=pos)[hook]
    eraser, _ = fit_eraser(acts, labels)
    effect = erasure_effect(
        model, inputs, hook, eraser, lambda o: _fresh_probe_accuracy(readout(o), labels), pos
    )
    assert effect["before"] >= 0.9
    # the output is linear in the erased activation, so no linear probe on it beats a constant;
    # chance is 0.5 (median split) and 200 held-out examples leave about 3.5 points of noise
    assert effect["after"] <= 0.6
    assert effect["drop"] >= 0.3


@pytest.mark.parametrize("model_kind", ["mlp", "conv", "transformer"])
def test_steering_along_a_direction_moves_the_output_by_the_known_amount(model_kind):
    model, inputs, hook, pos, readout, weight = _linear_readout(model_kind)
    inputs = inputs[:5]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        plain = model(inputs)
        direction = torch.randn(weight.shape[1], generator=g)
        shift = 3.0 * weight @ direction  # what adding 3 * direction at the hook must do
        steered = steer(model, inputs, hook, direction, alpha=3.0,
                        positions=None if pos is None else [pos])  # fmt: skip
        assert torch.allclose(readout(steered) - readout(plain), shift.expand(5, -1), atol=1e-4)
        assert shift.abs().max() > 0.1  # not vacuous
        if model_kind == "transformer":
            # at the chosen position only; a d_model direction with no positions: everywhere
            assert torch.allclose(steered[:, :-1], plain[:, :-1], atol=1e-6)
            everywhere = steer(model, inputs, hook, direction, alpha=3.0)
            assert torch.allclose(everywhere - plain, shift.expand(5, 8, -1), atol=1e-4)
            # a direction of one whole example's size is added as it is
            whole = torch.zeros(8, 32)
            whole[2] = direction
            at_two = steer(model, inputs, hook, whole.flatten(), alpha=3.0) - plain
            assert torch.allclose(at_two[:, 2], shift.expand(5, -1), atol=1e-4)
            assert at_two[:, [0, 1, 3, 4, 5, 6, 7]].abs().max() < 1e-5


@pytest.mark.parametrize("model_kind", ["mlp", "conv", "transformer"])
def test_zero_steering_changes_nothing(model_kind):
    model, inputs, hook, pos, _, weight = _linear_readout(model_kind)
    steered = steer(model, inputs[:5], hook, torch.zeros(weight.shape[1]), alpha=3.0,
                    positions=None if pos is None else [pos])  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(steered, model(inputs[:5]), atol=1e-6)


def test_steering_moves_output_along_the_direction():
    model = TinyMLP()
    x = torch.randn(5, 4 * 2)
    d = torch.tensor([1.0, 0.0, 0.0, -1.0])
    out = steer(model, x, "hook_out", d, alpha=2.0)
    assert torch.allclose(out - model(x), 2.0 * d.expand(5, 4), atol=1e-6)
    with pytest.raises(MesaError, match="direction has 3 entries"):
        steer(model, x, "hook_out", torch.ones(3))
    with pytest.raises(MesaError, match="NaN"):
        steer(model, x, "hook_out", torch.full((4,), float("nan")))
