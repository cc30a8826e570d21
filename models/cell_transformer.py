"""A transformer policy for the gridworlds: every grid cell is a token.

A cell's token is the bit pattern of its observation channels (wall, agent, objects ...), so a
frame of ``C`` channels has a vocabulary of ``2**C`` cell tokens plus one read-out token appended
after the ``H * W`` cells, where the action logits are read (the bridge is causal, so the last
position is the one that attends to every cell). Positions ``0 .. H*W - 1`` are the cells in
row-major order, which is how :mod:`mesa.detection` localises an intervention on a cell.

The transformer itself is a ``TransformerBridge`` built offline by
:class:`mesa.models.transformer.SequenceTransformerConfig`, so every standard TransformerLens hook
name (``blocks.{l}.hook_resid_pre``, ``blocks.{l}.attn.hook_pattern`` ...) is available. The policy
wraps it to take observations ``[batch, C, H, W]`` like the conv and MLP policies and to return
action logits ``[batch, n_actions]``; ``hook_dict``, ``run_with_cache`` and ``run_with_hooks``
pass through to the bridge, so ``mesa.probes`` treats it like any hooked model. It has no value
head: it is trained by behaviour cloning (:mod:`mesa.training.bc`), not PPO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from mesa.config import at_least, check_fields
from mesa.errors import MesaError
from mesa.models.transformer import SequenceTransformerConfig


@dataclass(frozen=True)
class CellTransformerPolicyConfig:
    obs_shape: tuple[int, int, int]
    """Observation shape (channels, height, width); channels are 0/1."""
    n_actions: int = 4
    """Number of discrete actions."""
    n_layers: int = 2
    """Transformer blocks."""
    d_model: int = 32
    """Residual stream width (small: 50 tokens per observation make the bridge's eager
    attention the cost of training)."""
    n_heads: int = 4
    """Attention heads per block."""
    d_mlp: int = 128
    """MLP hidden width."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "n_actions", "n_layers", "d_model", "n_heads", "d_mlp")
        if min(self.obs_shape) < 1 or not 1 <= self.obs_shape[0] <= 12:
            raise MesaError(
                f"obs_shape must be (channels, height, width) with 1..12 channels, "
                f"got {self.obs_shape}"
            )

    def build(self) -> CellTransformerPolicy:
        return CellTransformerPolicy(self)


class CellTransformerPolicy(nn.Module):
    """Cells as tokens, a causal transformer, action logits at a final read-out token."""

    _bits: Tensor

    def __init__(self, config: CellTransformerPolicyConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.obs_shape
        self.readout_token = 2**c
        self.bridge = SequenceTransformerConfig(
            d_vocab=2**c + 1,
            n_ctx=h * w + 1,
            n_layers=config.n_layers,
            d_model=config.d_model,
            n_heads=config.n_heads,
            d_mlp=config.d_mlp,
            d_vocab_out=config.n_actions,
        ).build()
        self.register_buffer("_bits", 2 ** torch.arange(c), persistent=False)

    def tokens(self, obs: Float[Tensor, "batch C H W"]) -> Int[Tensor, "batch cells_plus_1"]:
        """The cell tokens of ``obs`` (row-major) followed by the read-out token."""
        if obs.ndim != 4 or tuple(obs.shape[1:]) != self.config.obs_shape:
            shape = ", ".join(map(str, self.config.obs_shape))
            raise MesaError(f"observations must have shape [batch, {shape}], got {list(obs.shape)}")
        cells = (obs.flatten(2) > 0.5).long().mul(self._bits[:, None]).sum(1)  # [batch, H*W]
        readout = torch.full((len(obs), 1), self.readout_token, dtype=torch.long, device=obs.device)
        return torch.cat([cells, readout], dim=1)

    @property
    def hook_dict(self) -> dict[str, Any]:
        return self.bridge.hook_dict  # type: ignore[no-any-return]

    def forward(self, obs: Float[Tensor, "batch C H W"]) -> Float[Tensor, "batch n_actions"]:
        """Action logits."""
        return self.bridge(self.tokens(obs))[:, -1]  # type: ignore[no-any-return]

    def run_with_cache(self, obs: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        logits, cache = self.bridge.run_with_cache(self.tokens(obs), *args, **kwargs)
        return logits[:, -1], cache

    def run_with_hooks(self, obs: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return self.bridge.run_with_hooks(self.tokens(obs), *args, **kwargs)[:, -1]  # type: ignore[no-any-return]
