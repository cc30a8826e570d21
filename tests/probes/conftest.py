from __future__ import annotations

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

VOCAB = 10


class CopyFirst(HookedRootModule):
    """Answers at the last position with the token at position 0 (a known mechanism): the
    information flows through ``blocks.0.hook_out`` at position 0 only."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.hook_out = HookPoint()  # [batch, pos, vocab]
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0].hook_out(nn.functional.one_hot(tokens, VOCAB).float())
        y = torch.zeros_like(x)
        y[:, -1] = 5 * x[:, 0]
        return self.blocks[1].hook_out(y)
