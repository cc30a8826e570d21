"""DAS: minibatches, held-out IIA, class-label and mask targets, and one-line refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mesa.errors import MesaError
from mesa.probes import fit_das, interchange_accuracy
from mesa.probes.subspace import _log_prob
from tests.tiny_models import CopyModel, PlainCopy, TinyMLP, tiny_transformer

VOCAB = 10


def _pairs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n, 4), generator=g), torch.randint(
        0, VOCAB, (n, 4), generator=g
    )


def _fit(model, base, target, position, **kwargs):
    base, source = base
    options = {"k": VOCAB - 1, "steps": 60, "lr": 0.05, "batch_size": 64, "test_size": 0.25}
    return fit_das(model, base, source, target, "blocks.0.hook_out", position=position,
                   **(options | kwargs))  # fmt: skip


def test_held_out_iia_where_the_variable_lives_and_where_it_does_not():
    pairs = _pairs(400)
    labels = pairs[1][:, 0]  # interchanging token 0's subspace makes the answer source's token
    das = _fit(CopyModel(), pairs, labels, position=0)
    assert len(das.test_index) == 100
    assert das.held_out_iia is not None and das.held_out_iia >= 0.95
    assert das.train_iia is not None and das.train_iia >= 0.95
    # the attached score is the held-out pairs' IIA, as interchange_accuracy computes it
    test = das.test_index
    again = interchange_accuracy(CopyModel(), pairs[0][test], pairs[1][test], labels[test],
                                 "blocks.0.hook_out", das.basis.detach(), position=0)  # fmt: skip
    assert again == pytest.approx(das.held_out_iia)
    wrong = _fit(CopyModel(), pairs, labels, position=1)
    assert wrong.held_out_iia is not None and wrong.held_out_iia <= 0.3


def test_a_mask_of_acceptable_outputs_as_the_target():
    base, source = pairs = _pairs(400, seed=1)
    # acceptable: the source's token or the one after it (never the base's: no free hits)
    mask = torch.zeros(400, VOCAB, dtype=torch.bool)
    mask[torch.arange(400), source[:, 0]] = True
    mask[torch.arange(400), (source[:, 0] + 1) % VOCAB] = True
    keep = ~mask[torch.arange(400), base[:, 0]]
    pairs, mask = (base[keep], source[keep]), mask[keep]
    das = _fit(CopyModel(), pairs, mask, position=0)
    assert das.held_out_iia is not None and das.held_out_iia >= 0.95
    basis = das.basis.detach()

    def iia(target):
        return interchange_accuracy(CopyModel(), *pairs, target, "blocks.0.hook_out", basis, 0)

    labels = pairs[1][:, 0]
    one_hot = nn.functional.one_hot(labels, VOCAB)
    # a one-hot mask is the same target as its labels, bool or float
    assert iia(one_hot.bool()) == iia(one_hot.float()) == iia(labels) >= 0.95
    assert iia(mask.float() * 0.5) == iia(mask)  # weights inside the mask: still a hit
    assert iia(~mask) <= 0.05  # the output leaves the complement


def test_mask_loss_is_minus_log_of_the_masked_probability():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=g)
    mask = torch.rand(5, 4, generator=g) * (torch.rand(5, 4, generator=g) > 0.4)
    mask[:, 0] = 0.3  # every row accepts something
    expected = (torch.softmax(logits, -1) * mask).sum(-1).log()
    assert torch.allclose(_log_prob(logits, mask), expected, atol=1e-6)
    labels = torch.tensor([0, 3, 1, 2, 2])
    assert torch.allclose(_log_prob(logits, labels), -nn.functional.cross_entropy(
        logits, labels, reduction="none"), atol=1e-6)  # fmt: skip


def test_minibatches_of_batch_size_and_the_models_own_frozen_parameters_kept():
    model = PlainCopy()
    rows: list[int] = []
    model.read.register_forward_pre_hook(lambda mod, args: rows.append(len(args[0])))
    base, source = _pairs(150)
    fit_das(model, base, source, source[:, 0], "read", k=3, position=0, steps=5, batch_size=32)
    # the source activations in chunks of 32, then 5 steps: one epoch of shuffled minibatches of
    # 32 pairs (the last one the 22 left), then the training IIA in chunks of 32 again
    assert rows == [32, 32, 32, 32, 22] * 3
    mlp = TinyMLP()
    mlp.w1.requires_grad_(False)  # the caller's choice, which fitting must not undo
    x = torch.randn(40, 8)
    fit_das(mlp, x, x.flip(0), torch.arange(40) % 4, "hook_hidden", steps=2)
    assert not mlp.w1.weight.requires_grad and mlp.w2.weight.requires_grad


class _Discretised(nn.Module):
    """The output is computed from the argmax of a hidden layer: no gradient reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.one_hot(self.hidden(x).argmax(-1), 6).float()
        return self.head(h)


def test_das_refusals():
    x = torch.randn(30, 4)
    labels = torch.arange(30) % 3
    with pytest.raises(MesaError, match=r"does not depend differentiably on hook 'hidden' \(no"):
        fit_das(_Discretised(), x, x.flip(0), labels, "hidden", steps=3)
    bridge = tiny_transformer(n_layers=1)
    tokens = torch.randint(0, 20, (6, 8), generator=torch.Generator().manual_seed(0))
    with pytest.raises(MesaError, match=r"hook 'embed.hook_in' holds torch.int64 values"):
        fit_das(bridge, tokens, tokens.flip(0), tokens[:, 0], "embed.hook_in", steps=1)
    mlp = TinyMLP()  # 4 outputs
    x8 = torch.randn(30, 8)
    with pytest.raises(MesaError, match=r"target mask row 2 accepts no output"):
        mask = torch.ones(30, 4, dtype=torch.bool)
        mask[2] = False
        fit_das(mlp, x8, x8.flip(0), mask, "hook_hidden", steps=1)
    with pytest.raises(MesaError, match=r"the target mask has 5 columns; the model gives 4"):
        fit_das(mlp, x8, x8.flip(0), torch.ones(30, 5), "hook_hidden", steps=1)
    with pytest.raises(MesaError, match=r"target labels must be output classes 0\.\.3"):
        fit_das(mlp, x8, x8.flip(0), torch.full((30,), 4), "hook_hidden", steps=1)
    with pytest.raises(MesaError, match=r"targets are continuous"):
        fit_das(mlp, x8, x8.flip(0), torch.rand(30), "hook_hidden", steps=1)
    with pytest.raises(MesaError, match=r"test_size must be in \[0, 1\), got 1.5"):
        fit_das(mlp, x8, x8.flip(0), labels % 4, "hook_hidden", steps=1, test_size=1.5)
    with pytest.raises(MesaError, match=r"basis has shape \(2, 5\); .* 16 entries per example"):
        interchange_accuracy(mlp, x8, x8.flip(0), labels % 4, "hook_hidden", torch.ones(2, 5))


def test_fit_das_learns_when_called_under_no_grad():
    pairs = _pairs(200, seed=2)
    with torch.no_grad():  # as a caller's evaluation code may be
        das = _fit(CopyModel(), pairs, pairs[1][:, 0], position=0)
    assert das.held_out_iia is not None and das.held_out_iia >= 0.95
