"""mesa.probes on plain PyTorch models (no TransformerLens): hooks are module paths, read and
replaced at the module's output; a tuple output is read and replaced at its first element."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mesa.errors import MesaError
from mesa.probes import (
    collect_activations,
    erasure_effect,
    fit_das,
    fit_eraser,
    hook_names,
    interchange_subspace,
    patch_sweep,
    probe_sweep,
    steer,
    target_prob,
)
from tests.tiny_models import PlainCopy, PlainMLP, PlainTransformer


def _tokens(n: int, seed: int, vocab: int = 12, n_ctx: int = 6) -> torch.Tensor:
    return torch.randint(0, vocab, (n, n_ctx), generator=torch.Generator().manual_seed(seed))


def _output_of(module: nn.Module) -> object:
    out = module.__dict__.get("_seen")
    return out[0] if isinstance(out, tuple) else out


def _hand_patched(
    model: nn.Module, module: nn.Module, base: torch.Tensor, src_act: torch.Tensor, pos: int
) -> torch.Tensor:
    """The model on ``base`` with ``module``'s output at ``pos`` replaced by ``src_act``'s."""

    def hook(mod, args, output):
        first = output[0] if isinstance(output, tuple) else output
        first = first.clone()
        first[:, pos] = src_act[:, pos]
        return (first, *output[1:]) if isinstance(output, tuple) else first

    handle = module.register_forward_hook(hook)
    try:
        return model(base)
    finally:
        handle.remove()


def _hand_cache(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []

    def hook(mod, args, output):
        seen.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


def test_hook_names_are_module_paths():
    names = hook_names(PlainTransformer())
    assert names[:3] == ["embed", "pos_embed", "blocks.0"]
    assert "blocks.1.attn" in names and "blocks.0.mlp.0" in names
    assert "blocks" not in names  # a ModuleList is never called
    assert hook_names(PlainMLP()) == ["net", "net.0", "net.1", "net.2"]


def test_collect_reads_module_outputs():
    model = PlainMLP()
    x = torch.randn(37, 8)
    acts = collect_activations(model, x, ["net.1", "net"], batch_size=10)
    assert torch.allclose(acts["net.1"], torch.relu(model.net[0](x)), atol=1e-6)
    assert torch.allclose(acts["net"], model(x), atol=1e-6)
    tf = PlainTransformer().eval()
    tokens = _tokens(9, 0)
    attn = collect_activations(tf, tokens, ["blocks.0.attn"], position=-1)["blocks.0.attn"]
    # a tuple output (nn.MultiheadAttention's) is read at its first element
    expected = _hand_cache(tf, tf.blocks[0].attn, tokens)[:, -1]
    assert attn.shape == (9, 16) and torch.allclose(attn, expected, atol=1e-6)


@pytest.mark.parametrize("hook", ["blocks.0", "blocks.0.attn", "blocks.1.mlp", "embed"])
def test_patching_equals_a_hand_written_loop(hook):
    model = PlainTransformer().eval()
    base, source = _tokens(5, 1), _tokens(5, 2)
    metric = target_prob(3)
    ours = patch_sweep(model, base, source, [hook], metric, by="position")
    module = model.get_submodule(hook)
    src_act = _hand_cache(model, module, source)
    with torch.no_grad():
        loop = [float(metric(_hand_patched(model, module, base, src_act, p))) for p in range(6)]
        assert ours.base_value == pytest.approx(float(metric(model(base))), abs=1e-6)
        assert ours.source_value == pytest.approx(float(metric(model(source))), abs=1e-6)
    # the same float32 forward passes, batched differently: 1e-5 allows for summation order
    assert (ours.values[0] - torch.tensor(loop)).abs().max() <= 1e-5
    assert ours.values[0].max() - ours.values[0].min() > 1e-3  # positions differ: not vacuous


def test_patching_the_whole_activation_of_a_plain_mlp_recovers_the_source():
    result = patch_sweep(
        PlainMLP(), torch.zeros(3, 8), torch.ones(3, 8), ["net.1"], target_prob(0), by=None
    )
    assert result.recovery()[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_steering_a_plain_transformer_moves_every_position_along_the_unembedding():
    model = PlainTransformer().eval()
    tokens = _tokens(4, 3)
    direction = torch.randn(16, generator=torch.Generator().manual_seed(0))
    # ln_final's output feeds the (linear) unembedding: the shift is known exactly
    out = steer(model, tokens, "ln_final", direction, alpha=2.0)
    with torch.no_grad():
        shift = 2.0 * model.unembed.weight @ direction
        assert torch.allclose(out - model(tokens), shift.expand(4, 6, -1), atol=1e-5)


def test_erasure_and_probe_sweep_on_a_plain_mlp():
    model = PlainMLP()
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    labels = (x[:, 1] > 0).long()
    acts = collect_activations(model, x, ["net.0"])["net.0"]
    eraser, _ = fit_eraser(acts, labels)
    effect = erasure_effect(model, x, "net.0", eraser, lambda out: out[:, 0].mean())
    with torch.no_grad():
        erased_out = model.net[2](model.net[1](eraser(acts)))
    assert effect["after"] == pytest.approx(float(erased_out[:, 0].mean()), abs=1e-5)
    result = probe_sweep(model, x, labels, hooks=["net.0", "net.2"])
    assert result.rows[0].accuracy >= 0.9  # net.0 is linear in x


def test_probe_sweep_default_hooks_on_a_plain_transformer_at_a_position():
    model = PlainTransformer().eval()
    tokens = _tokens(120, 4)
    labels = (tokens[:, -1] >= 6).long()
    result = probe_sweep(model, tokens, labels, position=-1)
    hooks = [row.hook for row in result.rows]
    # pos_embed's output [pos, d] is not batch-first; attn.out_proj never runs as a module
    assert "pos_embed" not in hooks and "blocks.0.attn.out_proj" not in hooks
    assert {"embed", "blocks.0", "blocks.0.attn", "ln_final", "unembed"} <= set(hooks)
    assert result.rows[hooks.index("embed")].accuracy >= 0.9


def test_das_finds_the_copied_token_in_a_plain_model():
    g = torch.Generator().manual_seed(0)
    base, source = torch.randint(0, 10, (2, 400, 4), generator=g)
    das = fit_das(
        PlainCopy(), base, source, source[:, 0], "read", k=9, position=0, steps=60, lr=0.05,
        batch_size=64, test_size=0.25,
    )  # fmt: skip
    assert das.held_out_iia is not None and das.held_out_iia >= 0.95
    out = interchange_subspace(PlainCopy(), base[:5], source[:5], "read", das.basis.detach(), 0)
    assert out.shape == (5, 4, 10)


class _Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.layer(x))


class _SharedActivation(nn.Module):
    """One ReLU module applied twice, as plain models often do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(4, 8), nn.Linear(8, 2), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.act(x))))


def test_default_hooks_leave_out_a_module_that_runs_twice():
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    result = probe_sweep(_SharedActivation(), x, (x[:, 0] > 0).long())
    assert [row.hook for row in result.rows] == ["fc1", "fc2"]
    with pytest.raises(MesaError, match="module 'act' runs more than once"):
        probe_sweep(_SharedActivation(), x, (x[:, 0] > 0).long(), hooks=["act"])
    with pytest.raises(MesaError, match="no hook of the model gives one batch-first tensor"):
        probe_sweep(_Twice(), x, (x[:, 0] > 0).long())


class _DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)["y"]


class _Inner(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": x * 2}


def test_plain_module_refusals():
    x = torch.randn(3, 4)
    with pytest.raises(MesaError, match="module 'layer' runs more than once in a forward pass"):
        collect_activations(_Twice(), x, ["layer"])
    with pytest.raises(
        MesaError, match=r"module 'inner' returns dict; .* first element of a tuple"
    ):
        collect_activations(_DictOut(), x, ["inner"])
    tf = PlainTransformer()
    with pytest.raises(MesaError, match=r"'blocks\.0\.attn\.out_proj' did not run in the model's"):
        collect_activations(tf, _tokens(2, 0), ["blocks.0.attn.out_proj"])
    with pytest.raises(MesaError, match=r"'pos_embed' gives shape \(6, 16\), whose first axis"):
        collect_activations(tf, _tokens(2, 0), ["pos_embed"])
    with pytest.raises(MesaError, match=r"an index out of range in the model's forward pass"):
        collect_activations(tf, _tokens(2, 0) + 12, ["blocks.0"])  # no cfg.d_vocab to check first
