"""Small transformers built offline with TransformerLens (``TransformerBridge.boot_native``).

No hub, no pretrained weights: the architecture comes from a config and the weights from the
seeded RNG. The bridge exposes TransformerLens's standard hook names
(``blocks.{l}.hook_resid_pre``, ``blocks.{l}.attn.hook_pattern``, ``blocks.{l}.hook_mlp_out``,
...), so ``mesa.probes`` and ``mesa.detect`` read and patch them like any hooked model. The model
maps tokens ``[batch, pos]`` to logits ``[batch, pos, d_vocab]``; tasks read the answer at the
last position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mesa.config import at_least, check_fields
from mesa.errors import MesaError, choice_error
from mesa.runtime import check_memory

#: MLP activations the transformer can be built with.
ACT_FNS = ("relu", "gelu")


@dataclass(frozen=True)
class SequenceTransformerConfig:
    d_vocab: int
    """Vocabulary size."""
    n_ctx: int
    """Context length."""
    n_layers: int = 2
    """Transformer blocks."""
    d_model: int = 64
    """Residual stream width."""
    n_heads: int = 4
    """Attention heads per block (``d_head = d_model // n_heads``)."""
    d_mlp: int = 256
    """MLP hidden width."""
    act_fn: str = "relu"
    """MLP activation."""
    d_vocab_out: int | None = None
    """Output classes (None: ``d_vocab``, logits over the vocabulary)."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "d_vocab", "n_ctx", "n_layers", "d_model", "n_heads", "d_mlp")
        at_least(self, 1, "d_vocab_out")
        if self.d_model % self.n_heads:
            raise MesaError(
                f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})"
            )
        if self.act_fn not in ACT_FNS:
            raise choice_error("act_fn", self.act_fn, ACT_FNS)
        # parameters: embeddings, unembedding, and per block attention (4 d^2) and MLP (2 d d_mlp)
        params = (self.d_vocab + self.n_ctx + (self.d_vocab_out or self.d_vocab)) * self.d_model
        params += self.n_layers * (4 * self.d_model**2 + 2 * self.d_model * self.d_mlp)
        check_memory(4 * params, "this transformer")

    def build(self) -> Any:
        # imported here: transformer_lens costs seconds to import
        from transformer_lens import TransformerBridge, TransformerBridgeConfig

        cfg = TransformerBridgeConfig(
            d_model=self.d_model,
            d_head=self.d_model // self.n_heads,
            n_layers=self.n_layers,
            n_ctx=self.n_ctx,
            n_heads=self.n_heads,
            d_vocab=self.d_vocab,
            d_mlp=self.d_mlp,
            d_vocab_out=self.d_vocab if self.d_vocab_out is None else self.d_vocab_out,
            act_fn=self.act_fn,
            normalization_type="LN",
            # the bridge seeds torch itself when given a seed; build_model already forked and
            # seeded the RNG, so draw the bridge's seed from it to keep one source of truth
            seed=int(torch.randint(0, 2**31 - 1, ())),
        )
        return TransformerBridge.boot_native(cfg)
