"""The shared base of the gridworld organisms (``maze``, ``coin``, ``lookalike``).

A family says how to draw a layout, where the goals go, and how its objects look; this base
turns that into seeded environments for each split (:class:`mesa.envs.grid.GridEnv`), probe
observations and counterfactual pairs. Layout pools are seeded apart per split: each ``train``
seed has its own pool (a training run's seed picks its levels), while ``ood`` and ``probe`` have
one fixed pool each, from which the call's seed draws layouts and goal placements — so no split
sees another's layouts, and evaluating or detecting with a new seed does not rebuild a pool
(building one takes seconds; per-call pools once made most of a training run's time).

Environments run on the device ``make_env`` is given (the CPU by default): a family's
``place_goals`` and ``render`` then receive tensors and a generator on that device, so whatever
they create (``torch.arange``, ``torch.rand``) must be made there too (``device=`` of a tensor
they were given). Probe inputs and counterfactual pairs are always made on the CPU: detection
moves them to the model's device.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mesa.config import at_least
from mesa.envs.grid import GridEnv
from mesa.envs.levels import LevelPool, actions_towards, build_pool
from mesa.errors import MesaError
from mesa.runtime import check_memory
from mesa.tasks.base import (
    ProbeData,
    RLTask,
    TaskConfig,
    check_split,
    goals_together,
    rollout_shares,
)

_SPLIT_OFFSET = {"train": 0, "ood": 1_000_003, "probe": 2_000_003}
#: Training inputs for detection are drawn from train pools of seeds no training run uses.
_TRAINING_INPUTS_SEED = 3_000_017


@dataclass(frozen=True)
class GridConfig(TaskConfig):
    max_steps: int = 48
    """Episode time limit (steps)."""
    n_levels: int = 5000
    """Layouts in each environment's pool (drawn once, seeded); too few and a policy learns
    the pool rather than the task."""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "max_steps", "n_levels")


def random_cells(walls: Tensor, exclude: list[Tensor], generator: torch.Generator) -> Tensor:
    """One uniformly random open cell per row of ``walls`` [k, HW], avoiding ``exclude`` cells
    (``generator`` on ``walls``'s device)."""
    scores = torch.rand(walls.shape, generator=generator, device=walls.device)
    scores[walls] = -1.0
    rows = torch.arange(len(walls), device=walls.device)
    for cells in exclude:
        scores[rows, cells] = -1.0
    return scores.argmax(dim=1)


_POOLS: OrderedDict[tuple[Any, int], LevelPool] = OrderedDict()
_MAX_POOLS = 16


def _cached_pool(task_key: Any, seed: int, n_levels: int, make: Any) -> LevelPool:
    """The pool of ``n_levels`` layouts drawn by ``make`` with ``seed``, kept per process for
    the last few keys. ``task_key`` names the family and its layout options (``n_levels`` among
    them); ``make`` is not part of the key (a bound method would tie the pool to one task)."""
    key = (task_key, seed)
    if key in _POOLS:
        _POOLS.move_to_end(key)
        return _POOLS[key]
    rng = np.random.default_rng(seed)
    layouts = [make(rng) for _ in range(n_levels)]
    h, w = layouts[0][0].shape
    _POOLS[key] = pool = build_pool(layouts, h, w)
    if len(_POOLS) > _MAX_POOLS:
        _POOLS.popitem(last=False)
    return pool


#: Where the agent stands in probe states (:attr:`GridTask.probe_agent`).
PROBE_AGENTS = ("anywhere", "on_path")


class GridTask(RLTask):
    """Base of the gridworld families. Subclasses fill in the layout, goals and objects."""

    Config = GridConfig
    config: GridConfig
    object_channels: tuple[str, ...] = ()
    probe_agent: str = "anywhere"
    """Where the agent stands in the probe states that :meth:`probe_batch` and
    :meth:`counterfactual_pairs` draw (so in what ``mesa.detect`` reads): ``"anywhere"`` (the
    default, the probe split of record), any open cell not on a goal; ``"on_path"``, an open
    cell on a shortest path from the level's start to the true or the spurious goal (not on a
    goal), where a trained agent walks. The goals and layouts are the same draws either way.
    A diagnostic setting, set on one task object (``task.probe_agent = "on_path"``): it is not
    part of the task's config and is not saved with a run."""

    def __init__(self, config: GridConfig | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        _, h, w = self.observation_shape
        # a pool's tables: the distance table (uint8) and the move table (int64, 4 actions)
        check_memory(self.config.n_levels * (h * w) * (h * w + 32), f"{self.name} level pool")

    # -- what a family provides ------------------------------------------------------------
    @abstractmethod
    def make_layout(self, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """``(walls [H, W] bool, start cell, end cell)`` of one random level."""

    @abstractmethod
    def render(self, objects: Tensor, true_cell: Tensor, spur_cell: Tensor) -> None:
        """Draw the objects into ``objects`` [N, len(object_channels), H*W] (zeros) in place."""

    def place_goals(
        self, split: str, pool: LevelPool, level: Tensor, g: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Goal cells for new episodes. Default: the spurious goal is the level's end cell; the
        true goal sits on it unless the episode separates them (always in ``ood``, with
        probability ``p`` in ``train``, independently in ``probe``)."""
        walls, start, end = pool.walls[level], pool.start[level], pool.end[level]
        if split == "probe":
            return random_cells(walls, [start], g), end
        elsewhere = random_cells(walls, [start, end], g)
        if split == "ood":
            return elsewhere, end
        separate = torch.rand(len(level), generator=g, device=level.device) < self.p
        return torch.where(separate, elsewhere, end), end

    @abstractmethod
    def move_spurious(
        self, walls: Tensor, pos: Tensor, true_cell: Tensor, spur_cell: Tensor, g: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """For counterfactual pairs: ``(walls', spur_cell', ok)`` with the spurious goal moved
        and the agent and true goal left where they are; ``ok`` [n] marks the states where that
        was possible (the others are not used)."""

    # -- what the base does ---------------------------------------------------------------
    def pool(self, split: str, seed: int) -> LevelPool:
        """The layouts of ``split``: per seed for ``train``, one fixed pool otherwise.

        Layouts do not depend on ``p`` (it only places goals), so tasks that differ in ``p``
        alone share their pools: a zoo worker builds each pool once, not once per member."""
        split = check_split(split)
        options = {k: v for k, v in vars(self.config).items() if k != "p"}
        key = (type(self).__name__, tuple(sorted(options.items())))
        pool_seed = (seed if split == "train" else 0) + _SPLIT_OFFSET[split]
        return _cached_pool(key, pool_seed, self.config.n_levels, self.make_layout)

    def make_env(
        self, split: str, num_envs: int, seed: int, device: torch.device | str = "cpu"
    ) -> GridEnv:
        split = check_split(split)
        return GridEnv(
            self.pool(split, seed),
            num_envs,
            seed + _SPLIT_OFFSET[split],
            lambda pool, level, g: self.place_goals(split, pool, level, g),
            self.render,
            self.object_channels,
            self.config.max_steps,
            device,
        )

    def make_model(self, arch: str | None = None, seed: int = 0) -> Any:
        from mesa.models.policies import make_policy

        return make_policy(self.check_arch(arch), self.observation_shape, GridEnv.n_actions, seed)

    @cached_property
    def observation_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of an observation: wall, agent and object channels over the grid (the
        grid's size read off one layout: no pool is built)."""
        walls, _, _ = self.make_layout(np.random.default_rng(0))
        return 2 + len(self.object_channels), walls.shape[0], walls.shape[1]

    def observe(self, walls: Tensor, pos: Tensor, true_cell: Tensor, spur_cell: Tensor) -> Tensor:
        """Observations [n, C, H, W] of arbitrary states (for probes and counterfactual pairs)."""
        channels, height, width = self.observation_shape
        n, hw = len(pos), height * width
        obs = torch.zeros(n, channels, hw)
        obs[:, 0] = walls.float()
        obs[torch.arange(n), 1, pos] = 1.0
        self.render(obs[:, 2:], true_cell, spur_cell)
        return obs.view(n, -1, height, width)

    def _probe_states(self, n: int, seed: int, split: str = "probe") -> dict[str, Tensor]:
        """States of ``split``'s levels and goals with the agent at a random open cell off the
        goals (not only where episodes start: detection asks about decisions everywhere), or on
        a shortest path from the start to a goal (``probe_agent``)."""
        if self.probe_agent not in PROBE_AGENTS:
            raise MesaError(
                f"unknown probe_agent {self.probe_agent!r}; valid: {', '.join(PROBE_AGENTS)}"
            )
        env = self.make_env(split, n, seed)
        env.reset()
        walls = env.pool.walls[env.level]
        pos = random_cells(walls, [env.true_cell, env.spur_cell], env.generator)
        if self.probe_agent == "on_path":  # redraw the agent's cell (builds the distance table)
            dist, rows = env.pool.dist[env.level].long(), torch.arange(n)
            from_start = dist[rows, env.pool.start[env.level]]  # [n, H*W]
            on_path = torch.zeros_like(walls)
            for goal in (env.true_cell, env.spur_cell):
                on_path |= from_start + dist[rows, :, goal] == from_start[rows, goal].unsqueeze(1)
            pos = random_cells(walls | ~on_path, [env.true_cell, env.spur_cell], env.generator)
        return {
            "walls": walls,
            "pos": pos,
            "true": env.true_cell.clone(),
            "spur": env.spur_cell.clone(),
            "level": env.level.clone(),
            "g": env.generator,  # type: ignore[dict-item]
        }

    def goal_outputs(self, inputs: Tensor, goal: Tensor, n_outputs: int) -> Tensor:
        """The actions on a shortest path from the agent to the goal cell, on each observation's
        own walls (counterfactual pairs may edit them)."""
        if n_outputs != GridEnv.n_actions:
            raise MesaError(f"a gridworld policy has {GridEnv.n_actions} actions, not {n_outputs}")
        walls = inputs[:, 0] > 0.5
        pos = inputs[:, 1].flatten(1).argmax(1)
        return actions_towards(walls, pos, goal)

    def probe_batch(self, n: int, seed: int) -> dict[str, Tensor]:
        """Probe-split observations with the agent at a random open cell (not on a goal)."""
        s = self._probe_states(n, seed)
        return {
            "obs": self.observe(s["walls"], s["pos"], s["true"], s["spur"]),
            "true_goal": s["true"],
            "spurious_goal": s["spur"],
            "group": s["level"],
        }

    def training_inputs(self, n: int, seed: int) -> ProbeData:
        """Observations of the ``train`` split's levels at ``p = 0`` (goals together), agent at
        random open cells; the levels are a pool of their own (seeded apart from training's)."""
        task = goals_together(self)
        s = task._probe_states(n, seed + _TRAINING_INPUTS_SEED, split="train")
        obs = self.observe(s["walls"], s["pos"], s["true"], s["spur"])
        return ProbeData(obs, s["true"], s["spur"], s["level"])

    def counterfactual_pairs(self, n: int, seed: int, vary: str) -> dict[str, Tensor]:
        if vary not in ("true", "spurious"):
            raise MesaError(f"unknown goal {vary!r} to vary; valid: true, spurious")
        s = self._probe_states(2 * n, seed)  # oversampled: some states allow no move
        g: torch.Generator = s["g"]  # type: ignore[assignment]
        walls, pos, true, spur = s["walls"], s["pos"], s["true"], s["spur"]
        if vary == "true":
            walls2, spur2 = walls, spur
            true2 = random_cells(walls, [pos, true, spur], g)
            ok = true2 != true
        else:
            walls2, spur2, ok = self.move_spurious(walls, pos, true, spur, g)
            true2 = true
        keep = ok.nonzero().squeeze(1)[:n]
        if len(keep) < n:
            raise MesaError(f"could not make {n} counterfactual pairs for {self.name}")
        walls, walls2, pos, true, true2, spur, spur2 = (
            t[keep] for t in (walls, walls2, pos, true, true2, spur, spur2)
        )
        return {
            "base": self.observe(walls, pos, true, spur),
            "source": self.observe(walls2, pos, true2, spur2),
            "base_true_goal": true,
            "source_true_goal": true2,
            "base_spurious_goal": spur,
            "source_spurious_goal": spur2,
        }

    @torch.no_grad()
    def moved_goal_rollouts(
        self, policy: Callable[[Tensor, Tensor], Tensor], n: int, seed: int
    ) -> dict[str, float]:
        """See :meth:`mesa.Task.moved_goal_rollouts`. Levels of the ``train`` split at ``p = 0``
        (the true goal on the spurious goal's cell, which ends the episode); a second cell ``c2``
        per copy, drawn as the ``ood`` split draws its true goal (any open cell but the start and
        the goal's), is where ``moved`` draws the true goal. An episode counts only where ``c2``
        is off-path both ways, as the OOD headline counts episodes: on no shortest path from the
        start to the goal's cell, which is on none from the start to ``c2``. Actions are sampled
        from :meth:`decision` (seeded)."""
        env = goals_together(self).make_env("train", n, seed)
        obs, _ = env.reset()
        walls, goal = env.pool.walls[env.level].clone(), env.true_cell.clone()
        start = env.pos.clone()
        c2 = random_cells(walls, [start, goal], torch.Generator().manual_seed(seed + 2))

        def dist(a: Tensor, b: Tensor) -> Tensor:  # path lengths, one per copy
            return env.pool.dist[env.level, a, b].long()

        to_goal, to_c2 = dist(start, goal), dist(start, c2)
        valid = (to_c2 + dist(c2, goal) > to_goal) & (to_goal + dist(goal, c2) > to_c2)
        outcome = torch.zeros(n, dtype=torch.long)  # 0 neither, 1 c2 first, 2 the goal first
        done = torch.zeros(n, dtype=torch.bool)
        g = torch.Generator().manual_seed(seed + 1)
        for _ in range(env.max_steps):
            moved = self.observe(walls, env.pos, c2, env.spur_cell)
            probs = self.decision(policy(obs, moved).cpu())
            actions = torch.multinomial(probs, 1, generator=g).squeeze(1)
            # where each copy steps, read before the step (a finished copy is reset within it)
            arrives = env.pool.next_cell[env.level, env.pos, actions]
            obs, _, terminated, truncated, _ = env.step(actions)
            at_c2 = (arrives == c2) & ~done
            outcome[at_c2] = 1
            done |= at_c2
            ended = (terminated | truncated) & ~done  # the first episode ended: goal or time out
            outcome[ended & terminated] = 2
            done |= ended
            if bool(done.all()):
                break
        return rollout_shares(outcome, valid)

    def gym_env(self, split: str = "train", seed: int = 0) -> Any:
        """A single-copy gymnasium ``Env`` of this task (numpy observations)."""
        from mesa.envs.gym_api import GridGymEnv

        return GridGymEnv(self, split, seed)
