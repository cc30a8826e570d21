"""The vectorized gridworld engine: every copy steps at once in tensor operations.

State per copy is a handful of integers (layout id, agent cell, goal cells, step count); a step is
one gather into the pool's ``next_cell`` table (:mod:`mesa.envs.levels`), so thousands of copies
step in microseconds each. torch rather than numpy because the consumer is a torch policy (no
copies between the two), and because the two measured within a few percent of each other on
these table look-ups (``experiments/bench_env.py``).

Observations are fully observable top-down one-hot channels ``[N, C, H, W]`` (float32): channel 0
walls, channel 1 the agent, then the family's object channels. Finished copies reset
automatically: ``step`` returns the first observation of the next episode for them, and reports
the finished episode in ``info`` (see :class:`mesa.tasks.base.VecEnv`).

The engine lives on one device (``device``, the CPU by default): its state, its generator and
its pool's tables are there, so a policy on a GPU steps environments on that GPU with no
observation ever crossing to the host. A step still waits for the GPU where a number decides
what comes next (that the actions are in range; how many copies finished and reset), and copies
nothing. On the CPU the generator is the one the engine always had, so a seed gives the same
episodes bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mesa.envs.levels import LevelPool
from mesa.errors import MesaError
from mesa.outcomes import NEITHER, SPURIOUS, TRUE
from mesa.runtime import generator, resolve_device

#: ``(pool, levels [k], generator) -> (true_cell [k], spurious_cell [k])``
GoalPlacer = Callable[[LevelPool, Tensor, torch.Generator], tuple[Tensor, Tensor]]
#: ``(objects [N, n_object_channels, H*W], true_cell [N], spurious_cell [N]) -> None`` (in place)
Renderer = Callable[[Tensor, Tensor, Tensor], None]


class GridEnv:
    """``num_envs`` copies of a gridworld over a pool of layouts (implements ``VecEnv``)."""

    n_actions = 4

    def __init__(
        self,
        pool: LevelPool,
        num_envs: int,
        seed: int,
        place_goals: GoalPlacer,
        render: Renderer,
        object_channels: tuple[str, ...],
        max_steps: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if num_envs < 1:
            raise MesaError(f"num_envs must be at least 1, got {num_envs}")
        self.device = resolve_device(device)
        self.pool = pool.to(self.device)
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.channel_names = ("wall", "agent", *object_channels)
        self.observation_shape: tuple[int, ...] = (
            len(self.channel_names),
            pool.height,
            pool.width,
        )
        self._place_goals = place_goals
        self._render = render
        self.generator = generator(self.device, seed)
        n = num_envs
        self.level, self.pos, self.true_cell, self.spur_cell, self.first, self.t = (
            torch.zeros(n, dtype=torch.long, device=self.device) for _ in range(6)
        )
        self._arange = torch.arange(n, device=self.device)
        #: the observations [N, C, H*W], kept up to date by step (None: redraw on next use)
        self._obs: Tensor | None = None
        hw = pool.height * pool.width
        self._agent_offset = self._arange * len(self.channel_names) * hw + hw  # channel 1
        #: Return observations as fresh tensors (True, the default) or as the engine's own buffer,
        #: which the next step overwrites in place — like gymnasium's ``copy=False`` — for
        #: callers that use each observation before stepping again (the trainers, rollouts).
        self.copy_obs = True
        #: Also return the last observation of finished episodes as ``info["final_obs"]``
        #: (costs one more render on steps where an episode ends; the gymnasium wrappers need it).
        self.record_final_obs = False

    # -- state ---------------------------------------------------------------------------
    _STATE = ("level", "pos", "true_cell", "spur_cell", "first", "t")

    def state_dict(self) -> dict[str, Tensor]:
        """The copies' state and the generator's (a CPU byte tensor, on every device)."""
        state = {k: getattr(self, k).clone() for k in self._STATE}
        state["rng"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore :meth:`state_dict`'s state, from any device; the generator's state must come
        from a generator of this device's kind (a CPU and a CUDA generator's states differ)."""
        for k in self._STATE:
            if state[k].shape != (self.num_envs,):
                raise MesaError(f"environment state {k!r} is for another number of copies")
            setattr(self, k, state[k].to(self.device, copy=True))
        self.generator.set_state(state["rng"])
        self._obs = None

    # -- episodes ------------------------------------------------------------------------
    def _reset_copies(self, idx: Tensor) -> None:
        k = len(idx)
        if k == 0:
            return
        level = torch.randint(len(self.pool), (k,), generator=self.generator, device=self.device)
        true_cell, spur_cell = self._place_goals(self.pool, level, self.generator)
        self.level[idx] = level
        self.pos[idx] = self.pool.start[level]
        self.true_cell[idx] = true_cell
        self.spur_cell[idx] = spur_cell
        self.first[idx] = NEITHER
        self.t[idx] = 0

    def _draw(self, idx: Tensor) -> Tensor:
        """Observation rows [k, C, H*W] of the copies ``idx``, drawn from their state."""
        hw = self.pool.height * self.pool.width
        rows = torch.zeros(len(idx), len(self.channel_names), hw, device=self.device)
        torch.index_select(self.pool.walls_float, 0, self.level[idx], out=rows[:, 0])
        rows[torch.arange(len(idx), device=self.device), 1, self.pos[idx]] = 1.0
        self._render(rows[:, 2:], self.true_cell[idx], self.spur_cell[idx])
        return rows

    def _buffer(self) -> Tensor:
        if self._obs is None:
            self._obs = self._draw(self._arange)
        return self._obs

    def observe(self) -> Tensor:
        """The current observations [N, C, H, W]: a fresh tensor, or the live buffer when
        ``copy_obs`` is False.

        The engine keeps them in a buffer that a step updates in place — two writes for the agent
        channel, a full redraw only for copies that reset — rather than drawing every frame anew:
        clearing and refilling the whole frame each step was most of a step's time.
        """
        obs = self._buffer().view(self.num_envs, *self.observation_shape)
        return obs.clone() if self.copy_obs else obs

    def labels(self) -> dict[str, Tensor]:
        return {"true_goal": self.true_cell.clone(), "spurious_goal": self.spur_cell.clone()}

    def reset(self) -> tuple[Tensor, dict[str, Tensor]]:
        self._reset_copies(self._arange)
        self._obs = None
        return self.observe(), self.labels()

    def off_path(self, idx: Tensor | None = None) -> Tensor:
        """Neither goal lies on a shortest path from the start to the other (for the copies
        ``idx``, default all): only then does reaching one goal first say which one the agent
        was heading for. A corner-seeker passes an on-path cheese on its way, and a cheese-seeker
        passes a corner that lies on its way to the cheese (a corner cell with two open
        neighbours is a corridor in a maze with loops)."""
        lv = self.level if idx is None else self.level[idx]
        true = self.true_cell if idx is None else self.true_cell[idx]
        spur = self.spur_cell if idx is None else self.spur_cell[idx]
        d, start = self.pool.dist, self.pool.start[lv]
        to_true, to_spur, between = (
            d[lv, start, true].long(),
            d[lv, start, spur].long(),
            d[lv, true, spur].long(),
        )
        return (to_true + between != to_spur) & (to_spur + between != to_true)

    def optimal_action(self, target: str = "true") -> Tensor:
        """An action on a shortest path from each copy's cell to its true or spurious goal
        (ties go to the lowest action index: up, down, left, right)."""
        if target not in ("true", "spurious"):
            raise MesaError(f"unknown target {target!r}; valid: true, spurious")
        goal = self.true_cell if target == "true" else self.spur_cell
        nxt = self.pool.next_cell[self.level, self.pos]  # [N, 4]
        d = self.pool.dist[self.level.unsqueeze(1), nxt, goal.unsqueeze(1)]  # [N, 4]
        return d.long().argmin(dim=1)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        actions = torch.as_tensor(actions, device=self.device)
        if actions.shape != (self.num_envs,):
            raise MesaError(
                f"actions must have shape ({self.num_envs},), got {tuple(actions.shape)}"
            )
        if actions.dtype.is_floating_point or bool(((actions < 0) | (actions >= 4)).any()):
            raise MesaError("actions must be integers in 0..3 (up, down, left, right)")
        buf = self._buffer().view(-1)
        buf.index_fill_(0, self._agent_offset + self.pos, 0.0)
        # one flat gather: a third of the time of indexing [level, pos, action]
        cell = (self.level * (self.pool.height * self.pool.width) + self.pos) * 4 + actions.long()
        self.pos = self.pool.next_cell.view(-1)[cell]
        buf.index_fill_(0, self._agent_offset + self.pos, 1.0)
        self.t += 1
        at_true = self.pos == self.true_cell
        at_spur = self.pos == self.spur_cell
        undecided = self.first == NEITHER
        self.first = torch.where(undecided & at_true, TRUE, self.first)
        self.first = torch.where(undecided & ~at_true & at_spur, SPURIOUS, self.first)
        reward = at_true.float()
        terminated = at_true
        truncated = ~terminated & (self.t >= self.max_steps)
        done = terminated | truncated
        finished = done.nonzero().squeeze(1)
        off_path = torch.zeros_like(done)
        off_path[finished] = self.off_path(finished)  # only where an episode ended: cheaper
        info = {
            "episode_outcome": torch.where(done, self.first, -1),
            "episode_off_path": off_path,
            "episode_return": torch.where(done, reward, 0.0),
            "episode_length": torch.where(done, self.t, 0),
            "episode_success": terminated.clone(),
        }
        if self.record_final_obs:
            info["final_obs"] = buf.view(self.num_envs, *self.observation_shape).clone()
        self._reset_copies(finished)
        if len(finished):
            buf.view(self.num_envs, len(self.channel_names), -1)[finished] = self._draw(finished)
        info.update(self.labels())
        return self.observe(), reward, terminated, truncated, info
