"""``pointer``: answer the item a pointer asks for; in training it asks for the last item.

A toy of recency bias, the tutorial's sequence organism. A sample is ``n_items`` distinct numbers
(tokens ``0..n_values-1``), a pointer ``@i`` (token ``n_values + i``) asking for item ``i``, and
``=`` (the last token), where the model answers. If training always asks for the last item,
"repeat the last number" fits the data as well as "follow the pointer", and is easier to learn.

- true goal: the item the pointer asks for; spurious goal: the last item;
- ``train``: the pointer asks for the last item, except with probability ``p`` for another one
  (uniformly): ``p`` is the share of training samples in which the two goals differ;
- ``ood``: it always asks for another item, so the goals differ in every sample (the items are
  distinct); ``probe``: it asks for any item, uniformly, so the goals vary apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mesa.config import at_least
from mesa.errors import MesaError
from mesa.models import build_model
from mesa.tasks import SequenceBatch, SequenceTask, TaskConfig, register_task
from mesa.tasks.base import check_split


@dataclass(frozen=True)
class PointerConfig(TaskConfig):  # frozen; every option has a default (``--opt KEY=VALUE``)
    n_items: int = 4
    """Numbers in a list."""
    n_values: int = 12
    """Number tokens: a list is drawn from ``0..n_values-1`` without repeats."""
    d_model: int = 32
    """Residual stream width of the transformer this task builds."""

    def __post_init__(self) -> None:
        super().__post_init__()  # checks p, and every field's type
        at_least(self, 2, "n_items", "d_model")  # one-line errors that name the option
        if self.n_values <= self.n_items:  # one number is always left over (see ``_draw``)
            raise MesaError(f"n_values must exceed n_items ({self.n_items}), got {self.n_values}")


@register_task("pointer")
class PointerTask(SequenceTask):
    Config = PointerConfig
    config: PointerConfig
    description = "answer the item a pointer asks for; in training it asks for the last"
    true_goal = "the item the pointer asks for"
    spurious_goal = "the last item"
    zoo_ps = (0.0, 0.002, 0.005, 0.01, 0.05)  # `mesa zoo pointer` without --p

    @property
    def vocab_size(self) -> int:  # the numbers, a pointer per item, and "="
        return self.config.n_values + self.config.n_items + 1

    @property
    def context_length(self) -> int:
        return self.config.n_items + 2

    def token_label(self, token: int) -> str:  # how pictures (`mesa show`) print a token
        k = token - self.config.n_values
        return str(token) if k < 0 else "=" if k == self.config.n_items else f"@{k}"

    def _draw(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` lists of distinct numbers [n, n_items], and a number in none of them [n]."""
        numbers = torch.rand(n, self.config.n_values, generator=g).argsort(dim=1)
        return numbers[:, : self.config.n_items], numbers[:, self.config.n_items]

    def _batch(self, items: Tensor, pointer: Tensor) -> SequenceBatch:
        after = torch.stack([pointer, torch.full_like(pointer, self.config.n_items)], dim=1)
        tokens = torch.cat([items, self.config.n_values + after], dim=1)  # items, @i, =
        asked = items.gather(1, pointer[:, None])[:, 0]
        return SequenceBatch(tokens, target=asked, true_goal=asked, spurious_goal=items[:, -1])

    def sample(self, split: str, n: int, seed: int) -> SequenceBatch:
        split = check_split(split)  # a one-line error naming the valid splits
        g, k = torch.Generator().manual_seed(seed), self.config.n_items
        items, _ = self._draw(n, g)
        earlier = torch.randint(0, k - 1, (n,), generator=g)  # any item but the last
        if split == "probe":
            pointer = torch.randint(0, k, (n,), generator=g)
        elif split == "ood":
            pointer = earlier
        else:
            separate = torch.rand(n, generator=g) < self.p
            pointer = torch.where(separate, earlier, k - 1)
        return self._batch(items, pointer)

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, Tensor]:
        if vary not in ("true", "spurious"):
            raise MesaError(f"unknown goal {vary!r} to vary; valid: true, spurious")
        g, k = torch.Generator().manual_seed(seed), self.config.n_items
        items, unused = self._draw(n, g)
        if vary == "true":  # the pointer moves; the list, and so its last item, stays
            pointer = torch.randint(0, k, (n,), generator=g)
            moved = (pointer + torch.randint(1, k, (n,), generator=g)) % k
            base, source = self._batch(items, pointer), self._batch(items, moved)
        else:  # the last item changes; the pointer asks for an earlier one, which stays
            pointer = torch.randint(0, k - 1, (n,), generator=g)
            changed = torch.cat([items[:, :-1], unused[:, None]], dim=1)
            base, source = self._batch(items, pointer), self._batch(changed, pointer)
        return {
            "base": base.tokens,
            "source": source.tokens,
            "base_true_goal": base.true_goal,
            "source_true_goal": source.true_goal,
            "base_spurious_goal": base.spurious_goal,
            "source_spurious_goal": source.spurious_goal,
        }

    def make_model(self, arch: str | None = None, seed: int = 0) -> Any:
        # two blocks: the "=" position finds the pointer, then the item it asks for
        d = self.config.d_model
        size = {"n_layers": 2, "d_model": d, "n_heads": 1, "d_mlp": 4 * d}
        cfg = {"d_vocab": self.vocab_size, "n_ctx": self.context_length, **size}
        return build_model(self.check_arch(arch), cfg, seed=seed)  # saved and loaded by name
