"""An environment of your own, made to serve a policy on another device.

A task's ``make_env`` that takes no ``device`` (one written before mesa had devices, or one that
only ever runs on the CPU) still trains and evaluates a policy on a GPU: :class:`MovedEnv` wraps
its environments, moving observations and ``info`` to the policy's device after each step and
actions back to the environment's. That costs a round trip through the host every step, which is
what an environment on the policy's device (``make_env(..., device=...)``, as every built-in
gridworld does) avoids.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _to(x: Any, device: torch.device) -> Any:
    return x.to(device) if isinstance(x, Tensor) else x


class MovedEnv:
    """``env`` seen from ``device``: the ``VecEnv`` interface with every tensor moved."""

    def __init__(self, env: Any, device: torch.device) -> None:
        self.env, self.device = env, device
        self.num_envs: int = env.num_envs
        self.observation_shape: tuple[int, ...] = tuple(env.observation_shape)
        self.n_actions: int = env.n_actions
        self.max_steps: int = env.max_steps

    @property
    def copy_obs(self) -> bool:
        return bool(getattr(self.env, "copy_obs", True))

    @copy_obs.setter
    def copy_obs(self, value: bool) -> None:
        # moving to another device copies anyway: the wrapped engine may lend its live buffer
        if hasattr(self.env, "copy_obs"):
            self.env.copy_obs = value

    def __getattr__(self, name: str) -> Any:
        # anything else a caller reads (a pool, a generator) is the wrapped environment's own
        return getattr(self.env, name)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {k: _to(v, self.device) for k, v in info.items()}

    def reset(self) -> tuple[Tensor, dict[str, Tensor]]:
        obs, info = self.env.reset()
        return obs.to(self.device), self._info(info)

    def observe(self) -> Tensor:
        return self.env.observe().to(self.device)  # type: ignore[no-any-return]

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        here = getattr(self.env, "device", torch.device("cpu"))
        obs, reward, terminated, truncated, info = self.env.step(torch.as_tensor(actions).to(here))
        moved = (_to(t, self.device) for t in (obs, reward, terminated, truncated))
        return (*moved, self._info(info))  # type: ignore[return-value]

    def optimal_action(self, target: str = "true") -> Tensor:
        return self.env.optimal_action(target).to(self.device)  # type: ignore[no-any-return]

    def state_dict(self) -> dict[str, Tensor]:
        return self.env.state_dict()  # type: ignore[no-any-return]

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.env.load_state_dict(state)
