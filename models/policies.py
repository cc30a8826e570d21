"""Hooked actor-critic policies for the gridworld organisms.

Both are ``transformer_lens.HookedRootModule``s with a named ``HookPoint`` after every block, so
``run_with_cache`` / ``run_with_hooks`` see the network as a map: ``hook_obs`` →
``blocks.{i}.hook_out`` → ``hook_features`` → ``hook_logits`` (and ``hook_value``). The conv
policy keeps the grid's resolution through every block (padding 1, no pooling), so probes and
patching can address single cells. ``forward(obs)`` returns action logits; PPO also calls
:meth:`logits_and_value`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from mesa.config import at_least, check_fields
from mesa.errors import MesaError


def _check_obs_shape(obs_shape: tuple[int, int, int]) -> None:
    if min(obs_shape) < 1:
        raise MesaError(f"obs_shape must be positive (channels, height, width), got {obs_shape}")


def _layer_init(layer: nn.Module, std: float = 2**0.5) -> nn.Module:
    # orthogonal init: PPO is sensitive to the scale of the heads
    nn.init.orthogonal_(layer.weight, std)  # type: ignore[arg-type]
    nn.init.zeros_(layer.bias)  # type: ignore[arg-type]
    return layer


class _Block(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.hook_out = HookPoint()  # [batch, channels, H, W] or [batch, d_hidden]

    def forward(self, x: Tensor) -> Tensor:
        return self.hook_out(torch.relu(self.layer(x)))


class _ActorCritic(HookedRootModule):
    hook_obs: HookPoint
    blocks: nn.ModuleList

    def _heads(self, d_features: int, n_actions: int) -> None:
        self.actor = _layer_init(nn.Linear(d_features, n_actions), 0.01)
        self.critic = _layer_init(nn.Linear(d_features, 1), 1.0)
        self.hook_features = HookPoint()  # [batch, d_features]
        self.hook_logits = HookPoint()  # [batch, n_actions]
        self.hook_value = HookPoint()  # [batch]

    def _trunk(self, obs: Tensor) -> Tensor:
        x = self.hook_obs(obs)
        for block in self.blocks:
            x = block(x)
        return self.hook_features(x.flatten(1))

    def forward(self, obs: Tensor) -> Tensor:
        """Action logits [batch, n_actions]."""
        return self.hook_logits(self.actor(self._trunk(obs)))

    def logits_and_value(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self._trunk(obs)
        return self.hook_logits(self.actor(h)), self.hook_value(self.critic(h).squeeze(-1))


@dataclass(frozen=True)
class ConvPolicyConfig:
    obs_shape: tuple[int, int, int]
    """Observation shape (channels, height, width)."""
    n_actions: int = 4
    """Number of discrete actions."""
    channels: int = 16
    """Channels of every conv block."""
    n_blocks: int = 3
    """Conv blocks (3x3, padding 1, ReLU), each followed by a hook point."""
    d_hidden: int = 64
    """Width of the dense layer between the last conv block and the heads."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "n_actions", "channels", "n_blocks", "d_hidden")
        _check_obs_shape(self.obs_shape)

    def build(self) -> ConvPolicy:
        return ConvPolicy(self)


class ConvPolicy(_ActorCritic):
    """3x3 conv blocks at full resolution, a dense block, then actor and critic heads."""

    def __init__(self, config: ConvPolicyConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.obs_shape
        self.hook_obs = HookPoint()  # [batch, C, H, W]
        layers: list[nn.Module] = [
            _layer_init(nn.Conv2d(c if i == 0 else config.channels, config.channels, 3, padding=1))
            for i in range(config.n_blocks)
        ]
        self.blocks = nn.ModuleList([_Block(layer) for layer in layers])
        self.dense = _Block(_layer_init(nn.Linear(config.channels * h * w, config.d_hidden)))
        self._heads(config.d_hidden, config.n_actions)
        self.setup()

    def _trunk(self, obs: Tensor) -> Tensor:
        x = self.hook_obs(obs)
        for block in self.blocks:
            x = block(x)
        return self.hook_features(self.dense(x.flatten(1)))


@dataclass(frozen=True)
class MLPPolicyConfig:
    obs_shape: tuple[int, int, int]
    """Observation shape (channels, height, width); flattened at the input."""
    n_actions: int = 4
    """Number of discrete actions."""
    d_hidden: int = 128
    """Width of every hidden block."""
    n_blocks: int = 2
    """Dense blocks (ReLU), each followed by a hook point."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "n_actions", "d_hidden", "n_blocks")
        _check_obs_shape(self.obs_shape)

    def build(self) -> MLPPolicy:
        return MLPPolicy(self)


class MLPPolicy(_ActorCritic):
    """Dense blocks over the flattened observation, then actor and critic heads."""

    def __init__(self, config: MLPPolicyConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.obs_shape
        self.hook_obs = HookPoint()  # [batch, C, H, W]
        dims = [c * h * w] + [config.d_hidden] * config.n_blocks
        self.blocks = nn.ModuleList(
            [_Block(_layer_init(nn.Linear(a, b))) for a, b in itertools.pairwise(dims)]
        )
        self._heads(config.d_hidden, config.n_actions)
        self.setup()

    def _trunk(self, obs: Tensor) -> Tensor:
        x = self.hook_obs(obs).flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.hook_features(x)


def make_policy(arch: str, obs_shape: tuple[int, ...], n_actions: int, seed: int) -> nn.Module:
    """A freshly initialised policy of ``arch`` ('conv' or 'mlp'), deterministic for ``seed``."""
    from mesa.models import build_model

    return build_model(arch, {"obs_shape": list(obs_shape), "n_actions": n_actions}, seed=seed)  # type: ignore[no-any-return]
