"""Tiny hooked models built in code, for tests of mesa.probes (no training, no network).

- :class:`TinyMLP`: ``x -> relu(W1 x) -> W2``, hooks ``hook_in``, ``hook_hidden``, ``hook_out``.
- :class:`TinyConv`: a two-block conv net over ``[batch, C, H, W]`` with ``blocks.{i}.hook_out``.
- :func:`tiny_transformer`: a TransformerLens ``TransformerBridge`` built offline.
- :class:`PlainMLP`, :class:`PlainTransformer`, :class:`PlainCopy`: plain ``nn.Module`` models
  (no TransformerLens), whose hooks are module paths.
"""

from __future__ import annotations

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint


class TinyMLP(HookedRootModule):
    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Linear(d_in, d_hidden)
        self.w2 = nn.Linear(d_hidden, d_out)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.hook_in = HookPoint()  # [batch, d_in]
        self.hook_hidden = HookPoint()  # [batch, d_hidden]
        self.hook_out = HookPoint()  # [batch, d_out]
        self.setup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_hidden(torch.relu(self.w1(self.hook_in(x))))
        return self.hook_out(self.w2(h))


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.hook_out = HookPoint()  # [batch, c_out, H, W]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_out(torch.relu(self.conv(x)))


class TinyConv(HookedRootModule):
    def __init__(self, c_in: int = 3, channels: int = 8, size: int = 5, n_out: int = 4) -> None:
        super().__init__()
        self.hook_obs = HookPoint()  # [batch, c_in, H, W]
        self.blocks = nn.ModuleList([_ConvBlock(c_in, channels), _ConvBlock(channels, channels)])
        self.head = nn.Linear(channels * size * size, n_out)
        self.hook_logits = HookPoint()  # [batch, n_out]
        self.setup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_obs(x)
        for block in self.blocks:
            x = block(x)
        return self.hook_logits(self.head(x.flatten(1)))


class CopyModel(HookedRootModule):
    """Answers at the last position with the token at position ``copy`` (a known mechanism): the
    answer's information flows through ``blocks.0.hook_out`` at that position only."""

    def __init__(self, copy: int = 0, vocab: int = 10) -> None:
        super().__init__()
        self.copy, self.vocab = copy, vocab
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.hook_out = HookPoint()  # [batch, pos, vocab]
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0].hook_out(nn.functional.one_hot(tokens, self.vocab).float())
        y = torch.zeros_like(x)
        y[:, -1] = 10 * x[:, self.copy]
        return self.blocks[1].hook_out(y)


def tiny_transformer(
    n_layers: int = 2, d_model: int = 32, n_ctx: int = 8, d_vocab: int = 20, seed: int = 0
):  # -> TransformerBridge
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    torch.manual_seed(seed)
    cfg = TransformerBridgeConfig(
        d_model=d_model,
        d_head=8,
        n_layers=n_layers,
        n_ctx=n_ctx,
        n_heads=d_model // 8,
        d_vocab=d_vocab,
        d_mlp=4 * d_model,
        act_fn="relu",
        normalization_type="LN",
        seed=seed,
    )
    return TransformerBridge.boot_native(cfg)


# Plain PyTorch models (no TransformerLens): mesa.probes names their hooks by module path.


class PlainMLP(nn.Module):
    """``x -> net.0 (Linear) -> net.1 (ReLU) -> net.2 (Linear)``."""

    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 4, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class PlainBlock(nn.Module):
    """A pre-norm transformer block; ``attn`` returns a tuple (``nn.MultiheadAttention``)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class PlainTransformer(nn.Module):
    """Tokens ``[batch, pos]`` -> logits ``[batch, pos, vocab]``, written in plain torch."""

    def __init__(
        self, vocab: int = 12, d_model: int = 16, n_ctx: int = 6, n_layers: int = 2, seed: int = 0
    ) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Embedding(vocab, d_model)
            self.pos_embed = nn.Embedding(n_ctx, d_model)
            self.blocks = nn.ModuleList([PlainBlock(d_model, 2) for _ in range(n_layers)])
            self.ln_final = nn.LayerNorm(d_model)
            self.unembed = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos_embed(torch.arange(tokens.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_final(x))  # type: ignore[no-any-return]


class PlainCopy(nn.Module):
    """:class:`CopyModel` in plain torch: the answer at the last position is the token at
    position ``copy``, read through module ``read`` (``[batch, pos, vocab]``)."""

    def __init__(self, copy: int = 0, vocab: int = 10) -> None:
        super().__init__()
        self.copy, self.vocab = copy, vocab
        self.read = nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.read(nn.functional.one_hot(tokens, self.vocab).float())
        y = torch.zeros_like(x)
        y[:, -1] = 10 * x[:, self.copy]
        return y
