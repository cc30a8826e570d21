"""Every mistake a caller makes with mesa.probes is one line (MesaError) naming the problem, the
same way in every function; numpy arrays are accepted where tensors are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mesa.errors import MesaError
from mesa.probes import (
    ErasureFitter,
    LinearProbe,
    collect_activations,
    erasure_effect,
    fit_eraser,
    fit_erasers,
    interchange_subspace,
    logit_diff,
    patch_sweep,
    probe_sweep,
    steer,
)
from tests.tiny_models import TinyMLP, tiny_transformer


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: collect_activations(m, x, ["hook_in"]),
        lambda m, x: patch_sweep(m, x, x, ["hook_in"], logit_diff(0, 1), by=None),
        lambda m, x: steer(m, x, "hook_out", torch.ones(4)),
        lambda m, x: probe_sweep(m, x, torch.zeros(0, dtype=torch.long), hooks=["hook_in"]),
        lambda m, x: interchange_subspace(m, x, x, "hook_in", torch.eye(8)[:1]),
    ],
)
def test_empty_inputs_are_one_error_everywhere(call):
    with pytest.raises(MesaError, match=r"inputs are empty \(shape \(0, 8\)\)") as error:
        call(TinyMLP(), torch.zeros(0, 8))
    _one_line(error)


def test_out_of_vocabulary_tokens():
    model = tiny_transformer(n_layers=1).eval()  # d_vocab 20
    good = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    bad = good.clone()
    bad[1, 3] = 25
    message = r"base inputs hold token ids \d+\.\.25, outside the model's vocabulary 0\.\.19"
    with pytest.raises(MesaError, match=message):
        patch_sweep(model, bad, good, ["blocks.0.hook_resid_pre"], logit_diff(0, 1))
    with pytest.raises(MesaError, match=r"hold token ids -1\.\."):
        collect_activations(model, good - 1, ["blocks.0.hook_resid_pre"])


def test_a_metric_must_return_one_number():
    model = tiny_transformer(n_layers=1).eval()
    x = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    per_example = lambda logits: logits[:, -1, 0]  # noqa: E731
    message = r"the metric must return one number for a batch .* returned shape \(3,\)"
    with pytest.raises(MesaError, match=message) as error:
        patch_sweep(model, x, x.flip(0), ["blocks.0.hook_resid_pre"], per_example)
    _one_line(error)
    mlp = TinyMLP()
    inputs = torch.randn(20, 8)
    eraser, _ = fit_eraser(torch.randn(20, 16), torch.arange(20) % 2)
    with pytest.raises(MesaError, match=r"returned shape \(20,\)"):
        erasure_effect(mlp, inputs, "hook_hidden", eraser, lambda out: out[:, 0])


def test_unknown_hooks_suggest_the_closest_names():
    model = tiny_transformer(n_layers=2)
    with pytest.raises(MesaError) as error:
        collect_activations(model, torch.zeros(1, 8, dtype=torch.long), ["blocks.0.attn.hook_zz"])
    message = _one_line(error)
    assert message.startswith("unknown hook 'blocks.0.attn.hook_zz'; closest: blocks.0.attn.hook_z")
    assert "the model has 113 hook points (mesa.probes.hook_names(model) lists them)" in message
    with pytest.raises(MesaError, match=r"unknown hook 'resid'; the model has 113 hook points"):
        patch_sweep(model, torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long),
                    ["resid"], logit_diff(0, 1))  # fmt: skip
    # a small model lists every hook
    with pytest.raises(MesaError, match=r"valid: hook_in, hook_hidden, hook_out$"):
        steer(TinyMLP(), torch.zeros(1, 8), "hook_hiden", torch.ones(16))


def test_erasers_accept_numpy():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(200, 6)).astype(np.float32)
    labels = (acts[:, 0] > 0).astype(np.int64)
    eraser_np, classes = fit_eraser(acts, labels)
    eraser_t, _ = fit_eraser(torch.from_numpy(acts), torch.from_numpy(labels))
    x = torch.from_numpy(acts)
    assert torch.equal(classes, torch.tensor([0, 1]))
    assert torch.allclose(eraser_np(x), eraser_t(x))
    (eraser_both, _), (eraser_half, _) = fit_erasers(acts, [labels, labels // 2 + (acts[:, 1] > 0)])
    assert torch.allclose(eraser_both(x), eraser_t(x))
    fitter = ErasureFitter(6, 2).update(acts[:100], labels[:100]).update(acts[100:], labels[100:])
    # LEACE: after erasure both classes have the same mean
    erased = fitter.eraser(x)
    gap = erased[torch.from_numpy(labels) == 1].mean(0) - erased[
        torch.from_numpy(labels) == 0
    ].mean(0)
    assert gap.abs().max() < 1e-4


def test_continuous_labels_are_refused_and_integer_valued_floats_accepted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    continuous = x[:, 0] * 3.7
    message = r"labels are continuous \(non-integer floats\); .* discretise them first"
    with pytest.raises(MesaError, match=message):
        LinearProbe().fit(x, continuous)
    with pytest.raises(MesaError, match=message):
        fit_eraser(x, continuous)
    with pytest.raises(MesaError, match=message):
        fit_erasers(x, [x[:, 1] > 0, continuous])
    with pytest.raises(MesaError, match=message):
        ErasureFitter(8, 2).update(x, continuous)
    with pytest.raises(MesaError, match=message):
        probe_sweep(TinyMLP(), torch.from_numpy(x), torch.from_numpy(continuous), hooks=["hook_in"])
    with pytest.raises(MesaError, match="labels contain NaN or infinity"):
        fit_eraser(x, np.where(x[:, 0] > 0, 1.0, np.nan))
    integer_valued = (x[:, 0] > 0).astype(np.float64)
    probe = LinearProbe().fit(x, integer_valued)
    assert probe.classes_.tolist() == [0.0, 1.0] and probe.score(x, integer_valued) >= 0.95
    result = probe_sweep(TinyMLP(), x, integer_valued, hooks=["hook_in"])  # numpy in, too
    assert result.rows[0].accuracy >= 0.9
    _, classes = fit_eraser(x, integer_valued)
    assert classes.tolist() == [0.0, 1.0]


def test_steering_checks_its_direction_and_positions():
    model = tiny_transformer(n_layers=1).eval()
    x = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(0))
    hook = "blocks.0.hook_resid_pre"  # [batch, 8, 32]
    with pytest.raises(MesaError, match=r"direction has 5 entries; .* 32 per position or 256 per"):
        steer(model, x, hook, torch.ones(5))
    with pytest.raises(MesaError, match=r"position 8 out of range for 8 positions"):
        steer(model, x, hook, torch.ones(32), positions=[8])
    with pytest.raises(MesaError, match=r"at chosen positions .* 32 per position"):
        steer(model, x, hook, torch.ones(256), positions=[0])
    with pytest.raises(MesaError, match=r"positions need a \[batch, pos, \.\.\.\] hook"):
        steer(TinyMLP(), torch.zeros(2, 8), "hook_out", torch.ones(4), positions=[0])


def test_erasure_checks_the_eraser_and_the_position():
    mlp = TinyMLP()
    x = torch.randn(20, 8)
    eraser, _ = fit_eraser(torch.randn(20, 16), torch.arange(20) % 2)
    with pytest.raises(MesaError, match=r"eraser was fit on 16 features; .* has 8 per example"):
        erasure_effect(mlp, x, "hook_in", eraser, lambda out: out.mean())
    model = tiny_transformer(n_layers=1).eval()
    tokens = torch.randint(0, 20, (20, 8), generator=torch.Generator().manual_seed(0))
    wide, _ = fit_eraser(torch.randn(20, 32), torch.arange(20) % 2)
    with pytest.raises(MesaError, match=r"position 9 out of range for 8 positions"):
        erasure_effect(model, tokens, "blocks.0.hook_resid_pre", wide, lambda o: o.mean(), 9)
