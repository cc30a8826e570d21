"""gymnasium front-ends for the gridworld organisms, so other RL libraries can use them.

- :class:`GridGymEnv`: one copy as a ``gymnasium.Env`` (passes
  ``gymnasium.utils.env_checker.check_env``);
- :class:`GridVectorEnv`: the whole batch as a ``gymnasium.vector.VectorEnv`` with same-step
  autoreset (the last observation of a finished episode is in ``info["final_obs"]``, masked by
  ``info["_final_obs"]``, as gymnasium's own vector environments do).

Observations are numpy float32 arrays ``(C, H, W)`` in [0, 1]; actions are 0..3 (up, down,
left, right).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from mesa.envs.grid import GridEnv


def _spaces(env: GridEnv) -> tuple[spaces.Box, spaces.Discrete]:
    obs = spaces.Box(0.0, 1.0, shape=env.observation_shape, dtype=np.float32)
    return obs, spaces.Discrete(env.n_actions)


class GridGymEnv(gym.Env):
    """One copy of a gridworld task as a gymnasium ``Env``."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(self, task: Any, split: str = "train", seed: int = 0) -> None:
        self.task, self.split, self._seed = task, split, seed
        self._env = self._make(seed)
        self.observation_space, self.action_space = _spaces(self._env)

    def _make(self, seed: int) -> GridEnv:
        env = self.task.make_env(self.split, 1, seed)
        env.record_final_obs = True
        return env

    def _info(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {k: v[0].item() for k, v in info.items() if v.ndim == 1}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._env = self._make(seed)
        obs, info = self._env.reset()
        return obs[0].numpy(), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(torch.tensor([int(action)]))
        done = bool(terminated[0] or truncated[0])
        out = (info["final_obs"] if done else obs)[0].numpy()
        return out, float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)


class GridVectorEnv(VectorEnv):
    """A batch of gridworld copies as a gymnasium ``VectorEnv`` (same-step autoreset)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}  # noqa: RUF012

    def __init__(self, task: Any, num_envs: int, split: str = "train", seed: int = 0) -> None:
        self.task, self.split = task, split
        self._env = task.make_env(split, num_envs, seed)
        self._env.record_final_obs = True
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self._env)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._env = self.task.make_env(self.split, self.num_envs, seed)
            self._env.record_final_obs = True
        obs, info = self._env.reset()
        return obs.numpy(), {k: v.numpy() for k, v in info.items()}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(torch.as_tensor(actions))
        done = (terminated | truncated).numpy()
        infos: dict[str, Any] = {k: v.numpy() for k, v in info.items() if k != "final_obs"}
        infos["final_obs"] = info["final_obs"].numpy()
        infos["_final_obs"] = done
        return obs.numpy(), reward.numpy(), terminated.numpy(), truncated.numpy(), infos
