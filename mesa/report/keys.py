"""Pictures of a keys-and-chests policy: what it takes first once it holds a key.

The same two pictures as :mod:`mesa.report.gridworld`, and the same function names, so
:mod:`mesa.report.show` and the zoo report pick whichever module fits the task
(:func:`mesa.report.show.rl_pictures`); the goals here are sets of objects, not one cell each:

- **episodes** (:func:`episodes_figure`): seeded OOD rollouts (sampled actions), one panel per
  episode: walls, the keys (squares, the spurious goal's colour), the chest (a disc, the true
  goal's), the start (S) and the agent's path; the title gives the outcome (what came first once
  a key was held) and whether the episode counts in the headline (:mod:`mesa.envs.keys`).
- **vector fields** (:func:`vector_fields`): on a few probe decision states (a key held, one
  chest and a surplus key on the board) the agent is placed at every free cell and its expected
  move drawn as an arrow (:func:`mesa.report.grid_figures.draw_field`); above, the same board with
  the surplus key taken away, as a held key always leaves it in training at ``p = 0``. A
  chest-opener's arrows flow to the disc in both rows; a key-collector's turn to the square.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Circle, Rectangle
from torch import Tensor

from mesa.envs.levels import ACTIONS
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR
from mesa.report.grid_figures import (
    GridFigures,
    check_kind,
    cut_to_view,
    draw_board,
    sampled_rollouts,
)
from mesa.tasks.keys import KeysTask

EPISODES_CAPTION = (
    "OOD episodes (actions sampled from the policy, seeded; counted episodes first): walls, the "
    "keys (squares), the chest (disc), the start (S) and the agent's path, light to dark over "
    "time. The title says what came first once the agent held a key, the chest or a surplus key, "
    "and whether the episode counts in the headline rates (it reached that point with no key on "
    "a shortest path to the chest and the chest on none to a key)."
)
FIELDS_CAPTION = (
    "Vector fields: with the agent at each free cell, holding a key, the policy's expected move "
    "(sum over actions of probability x direction), on fixed OOD decision states with a surplus "
    "key on the board, and on the same boards without it (as in training)."
)
COMPARE_CAPTION = (
    "Vector fields of a p = 0 member and the largest-p member on the same OOD decision states "
    "(a key held): arrows flowing to the square follow the key, to the disc the chest."
)
OUTCOME_TEXT = {"true": "chest first", "spurious": "surplus key first", "neither": "neither"}


@dataclass(frozen=True)
class KeysScene:
    """One board to draw: the layout and flat cell indices (``row * width + col``)."""

    walls: np.ndarray
    """[H, W] bool."""
    start: int
    keys: tuple[int, ...]
    chests: tuple[int, ...]
    holding: bool

    def without_keys(self) -> KeysScene:
        """The same board with the keys taken away, as a held key leaves it in training."""
        return replace(self, keys=())


@dataclass(frozen=True)
class KeysEpisode:
    """One OOD episode: its board at the start, the cells visited (start first), the outcome."""

    scene: KeysScene
    path: list[int]
    outcome: str
    off_path: bool


def check_keys_task(task: Any) -> KeysTask:
    return check_kind(task, KeysTask, "keys")


def viewing_task(task: KeysTask) -> KeysTask:
    """``task`` with its pools cut to their first ``VIEW_LEVELS`` layouts (fast to build)."""
    return cut_to_view(check_keys_task(task))


def _cells(mask: Tensor) -> tuple[int, ...]:
    return tuple(mask.nonzero().flatten().tolist())


def fixed_layouts(task: KeysTask, n: int = 3, seed: int = 0) -> list[KeysScene]:
    """``n`` OOD decision states of the probe split (seeded), the same for every model."""
    s = viewing_task(task).states(n, seed)
    size = task.config.size
    return [
        KeysScene(
            walls=s["walls"][i].view(size, size).numpy().copy(),
            start=int(s["pos"][i]),
            keys=_cells(s["keys"][i]),
            chests=_cells(s["chests"][i]),
            holding=True,
        )
        for i in range(n)
    ]


@torch.no_grad()
def action_field(model: Any, task: KeysTask, scene: KeysScene) -> np.ndarray:
    """The policy's action probabilities [H*W, 4] with the agent at each free cell of ``scene``
    (NaN at walls and objects, where an agent never stands)."""
    h, w = scene.walls.shape
    walls = torch.from_numpy(scene.walls.reshape(-1))
    keys, chests = torch.zeros(h * w, dtype=torch.bool), torch.zeros(h * w, dtype=torch.bool)
    keys[list(scene.keys)] = True
    chests[list(scene.chests)] = True
    cells = (~(walls | keys | chests)).nonzero().squeeze(1)
    k = len(cells)
    state = {
        "walls": walls.expand(k, -1),
        "pos": cells,
        "keys": keys.expand(k, -1),
        "chests": chests.expand(k, -1),
        "holding": torch.full((k,), scene.holding),
    }
    probs = torch.softmax(model(check_keys_task(task).observe(state)).float(), dim=-1)
    out = np.full((h * w, len(ACTIONS)), np.nan)
    out[cells.numpy()] = probs.numpy()
    return out


@torch.no_grad()
def ood_episodes(
    model: Any, task: KeysTask, n: int = 6, seed: int = 0, copies: int = 64
) -> list[KeysEpisode]:
    """``n`` first episodes of ``copies`` seeded OOD rollouts (sampled actions), counted
    episodes first: they are the ones the headline rates count."""
    env = viewing_task(task).make_env("ood", copies, seed)
    obs, _ = env.reset()
    h, w = env.pool.height, env.pool.width
    scenes = [  # the boards as the episodes start: a finished copy resets to another
        KeysScene(
            walls=env.pool.walls[int(env.level[i])].view(h, w).numpy().copy(),
            start=int(env.pos[i]),
            keys=_cells(env.keys[i]),
            chests=_cells(env.chests[i]),
            holding=False,
        )
        for i in range(copies)
    ]
    return [
        KeysEpisode(scenes[i], path, outcome, off)
        for i, path, outcome, off in sampled_rollouts(model, env, obs, n, seed)
    ]


def draw_scene(ax: Any, scene: KeysScene) -> None:
    """Walls, grid lines, the keys (squares), the chests (discs) and the start."""
    draw_board(ax, scene.walls)
    w = scene.walls.shape[1]
    for cell in scene.keys:
        r, c = divmod(cell, w)
        ax.add_patch(Rectangle((c - 0.3, r - 0.3), 0.6, 0.6, color=SPUR_COLOUR, alpha=0.8, lw=0))
    for cell in scene.chests:
        r, c = divmod(cell, w)
        ax.add_patch(Circle((c, r), 0.3, color=TRUE_COLOUR, alpha=0.9, lw=0))
    if not scene.holding:  # a held key has no start: the fields draw every cell
        r0, c0 = divmod(scene.start, w)
        ax.text(c0 - 0.42, r0 - 0.4, "S", ha="left", va="top", fontsize=7, color=GREY)


FIGURES = GridFigures(
    draw_scene=draw_scene,
    action_field=action_field,
    fixed_layouts=fixed_layouts,
    ood_episodes=ood_episodes,
    as_in_training=KeysScene.without_keys,
    rows=("key held, none left\n(as in training)", "key held, a key left\n(as OOD)"),
    outcome_text=OUTCOME_TEXT,
    counted=("counted", "not counted"),
    fields_title="Vector fields: the policy's mean move from every cell, a key held",
    episodes_title="OOD episodes (sampled actions; counted episodes first)",
    compare_title="Vector fields on the same OOD decision states (a key held)",
    spur_marker={"ms": 8},
)
legend_handles = FIGURES.legend_handles
draw_vector_fields = FIGURES.draw_vector_fields
vector_fields = FIGURES.vector_fields
draw_episodes = FIGURES.draw_episodes
episodes_figure = FIGURES.episodes_figure
compare_vector_fields = FIGURES.compare_vector_fields
