"""The jaxtyping shapes on mesa.probes' public signatures hold at run time (checked by beartype):
correct calls on a tiny MLP, conv net, transformer and plain PyTorch transformer pass, and a wrong
shape is refused."""

from __future__ import annotations

import inspect

import pytest
import torch
from beartype import beartype
from jaxtyping import TypeCheckError, jaxtyped

from mesa import probes
from tests.tiny_models import PlainTransformer, TinyConv, TinyMLP, tiny_transformer


def checked(fn):
    # unwrap torch.no_grad() and the like: the annotations are on the function they wrap
    return jaxtyped(typechecker=beartype)(inspect.unwrap(fn))


@pytest.mark.parametrize("kind", ["mlp", "conv", "transformer", "plain"])
@torch.no_grad()  # as the unwrapped functions would run
def test_annotated_signatures_hold_on_every_model_kind(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "mlp":
        model, hook = TinyMLP(), "hook_hidden"
        x = torch.randn(32, 8, generator=g)
    elif kind == "conv":
        model, hook = TinyConv(), "hook_obs"
        x = torch.rand(32, 3, 5, 5, generator=g)
    elif kind == "transformer":
        model, hook = tiny_transformer(n_layers=2), "blocks.1.hook_resid_pre"
        x = torch.randint(0, 20, (32, 6), generator=g)
    else:
        model, hook = PlainTransformer(n_ctx=6), "blocks.1"
        x = torch.randint(0, 12, (32, 6), generator=g)
    acts = checked(probes.collect_activations)(model, x, [hook])[hook]
    d = acts.shape[1]
    labels = (acts[:, 0] > acts[:, 0].median()).long()
    eraser, classes = checked(probes.fit_eraser)(acts, labels)
    assert classes.tolist() == [0, 1]
    metric = probes.target_prob(0)
    result = checked(probes.patch_sweep)(model, x, x.flip(0), [hook], metric, by=None)
    assert result.values.shape == (1, 1)
    # directions and subspaces live in the flattened activation of one example
    out = checked(probes.steer)(model, x, hook, torch.ones(d))
    assert out.shape[0] == 32
    out = checked(probes.interchange_subspace)(model, x, x.flip(0), hook, torch.eye(d)[:2])
    assert out.shape[0] == 32
    # numpy arrays where tensors go
    checked(probes.fit_eraser)(acts.numpy(), labels.numpy())
    checked(probes.fit_erasers)(acts.numpy(), [labels.numpy(), labels])
    targets = torch.zeros(32, dtype=torch.long)
    das = checked(probes.fit_das)(model, x, x.flip(0), targets, hook, steps=1, batch_size=8)
    iia = checked(probes.interchange_accuracy)(model, x, x.flip(0), targets, hook, das.basis)
    assert 0.0 <= iia <= 1.0
    n_out = model(x[:1]).shape[-1]
    mask = torch.ones(32, n_out, dtype=torch.bool)
    assert checked(probes.interchange_accuracy)(model, x, x.flip(0), mask, hook, das.basis) == 1.0
    with pytest.raises(TypeCheckError):
        checked(probes.fit_eraser)(acts[0], labels)  # [d] instead of [n, d]
    with pytest.raises(TypeCheckError):  # 31 targets for 32 pairs
        checked(probes.fit_das)(model, x, x.flip(0), targets[:31], hook, steps=1)
    with pytest.raises(TypeCheckError):
        checked(probes.steer)(model, x, hook, torch.ones(2, d))  # a matrix, not a direction
