"""Pictures of a gridworld policy: where it goes, and which way it points from every cell.

Two pictures answer the first question one asks of a maze policy, which goal does it head for:

- **episodes** (:func:`episodes_figure`): the policy rolled out on the ``ood`` split (on the
  first :data:`VIEW_LEVELS` layouts of its pool), actions sampled with a seeded generator as
  :mod:`mesa.evaluation.rollout` does, one panel per
  episode: walls, both goals, the agent's path (light to dark over time) and, in the title, the
  outcome (which goal it reached first) and whether the episode is *off-path* (neither goal on a
  shortest path from the start to the other: only those say which goal the agent was after).
- **vector fields** (:func:`vector_fields`): on a few fixed layouts, the agent is placed at
  every open cell in turn (:meth:`mesa.tasks.gridworld.GridTask.observe` builds the observation)
  and the policy's action distribution there is drawn as an arrow, the expected displacement
  ``sum_a p_a * offset_a`` (a sure move is an arrow one cell long; a short arrow is a policy
  torn between moves).
  ``arrows="actions"`` draws one arrow per action instead, its length the action's probability.
  Each layout is drawn twice: goals on one cell, as in training, and apart, as out of
  distribution. A corner-seeker's arrows keep flowing to the corner when the cheese moves away;
  a cheese-seeker's turn to follow the cheese.

Each figure function returns a :class:`matplotlib.figure.Figure` (no pyplot state), so a user
can restyle it; the ``draw_*`` functions draw into a figure or subfigure the caller made, which
is how :func:`mesa.report.show.show` puts them on one sheet. Colours follow the report: the
true goal in :data:`~mesa.report.figures.TRUE_COLOUR`, the spurious one in
:data:`~mesa.report.figures.SPUR_COLOUR`. A cell is
:data:`~mesa.report.grid_figures.CELL_INCHES` wide, so at the
:data:`~mesa.report.grid_figures.DPI` the sheets are saved at a cell is at least 24 pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from matplotlib.patches import Circle, Rectangle

from mesa.envs.levels import ACTIONS
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR
from mesa.report.grid_figures import (
    VIEW_LEVELS,
    GridFigures,
    check_kind,
    cut_to_view,
    draw_board,
    draw_field,
    draw_path,
    panel_inches,
    sampled_rollouts,
)
from mesa.tasks.gridworld import GridTask

EPISODES_CAPTION = (
    "OOD episodes (actions sampled from the policy, seeded; off-path episodes first): walls, the "
    "true goal (disc), the spurious goal (square), the start (S) and the agent's path, light to "
    "dark over time. The title says which goal the agent reached first and whether the episode "
    "is off-path (neither goal on a shortest path from the start to the other), the episodes "
    "the headline OOD rates count."
)
FIELDS_CAPTION = (
    "Vector fields: with the agent at each open cell, the policy's expected move "
    "(sum over actions of probability x direction; a sure move is one cell long, a dot is a "
    "policy torn between opposite moves), on fixed OOD layouts with the goals on one cell (as in "
    "training) and apart (as out of distribution)."
)
COMPARE_CAPTION = (
    "Vector fields of a p = 0 member and the largest-p member on the same OOD layouts, goals "
    "apart: arrows flowing to the square follow the spurious goal, to the disc the true one."
)
OUTCOME_TEXT = {"true": "true goal first", "spurious": "spurious goal first", "neither": "neither"}


@dataclass(frozen=True)
class Scene:
    """One gridworld state to draw: the layout and flat cell indices (``row * width + col``)."""

    walls: np.ndarray
    """[H, W] bool."""
    start: int
    true_cell: int
    spur_cell: int

    def together(self) -> Scene:
        """The same layout with the true goal on the spurious goal's cell, as in training."""
        return replace(self, true_cell=self.spur_cell)


@dataclass(frozen=True)
class Episode:
    """One OOD episode: its scene, the cells the agent visited (start first) and its outcome."""

    scene: Scene
    path: list[int]
    outcome: str
    off_path: bool


def check_grid_task(task: Any) -> GridTask:
    return check_kind(task, GridTask, "gridworld")


def viewing_task(task: GridTask) -> GridTask:
    """``task`` with its pools cut to their first :data:`VIEW_LEVELS` layouts."""
    return cut_to_view(check_grid_task(task))


def fixed_layouts(task: GridTask, n: int = 3, seed: int = 0) -> list[Scene]:
    """``n`` layouts of the ``ood`` split with their OOD goal placement, the same for every
    model (seeded): off-path ones with the most open cells first, so the arrows have room."""
    env = viewing_task(task).make_env("ood", 64, seed)
    env.reset()
    walls = env.pool.walls[env.level]
    off = env.off_path().numpy()
    open_cells = (~walls).sum(1).numpy()
    order = np.lexsort((np.arange(len(off)), -open_cells, ~off))  # off-path, then roomiest
    scenes, seen = [], set()
    for i in order.tolist():
        level = int(env.level[i])
        if level in seen:
            continue
        seen.add(level)
        scenes.append(
            Scene(
                walls=walls[i].view(env.pool.height, env.pool.width).numpy().copy(),
                start=int(env.pool.start[level]),
                true_cell=int(env.true_cell[i]),
                spur_cell=int(env.spur_cell[i]),
            )
        )
        if len(scenes) == n:
            break
    return scenes


@torch.no_grad()
def action_field(model: Any, task: GridTask, scene: Scene) -> np.ndarray:
    """The policy's action probabilities [H*W, 4] with the agent at each open cell of ``scene``
    (NaN at walls and at the true goal, where an episode would have ended)."""
    h, w = scene.walls.shape
    walls = torch.from_numpy(scene.walls.reshape(-1))
    cells = (~walls).nonzero().squeeze(1)
    cells = cells[cells != scene.true_cell]
    k = len(cells)
    obs = check_grid_task(task).observe(
        walls.expand(k, -1),
        cells,
        torch.full((k,), scene.true_cell),
        torch.full((k,), scene.spur_cell),
    )
    probs = torch.softmax(model(obs).float(), dim=-1)
    out = np.full((h * w, len(ACTIONS)), np.nan)
    out[cells.numpy()] = probs.numpy()
    return out


@torch.no_grad()
def ood_episodes(
    model: Any, task: GridTask, n: int = 6, seed: int = 0, copies: int = 64
) -> list[Episode]:
    """``n`` first episodes of ``copies`` seeded OOD rollouts (sampled actions), off-path
    episodes first: they are the ones the headline rates count."""
    env = viewing_task(task).make_env("ood", copies, seed)
    obs, _ = env.reset()
    level, true, spur = env.level.clone(), env.true_cell.clone(), env.spur_cell.clone()
    h, w = env.pool.height, env.pool.width
    return [
        Episode(
            scene=Scene(
                walls=env.pool.walls[int(level[i])].view(h, w).numpy().copy(),
                start=path[0],
                true_cell=int(true[i]),
                spur_cell=int(spur[i]),
            ),
            path=path,
            outcome=outcome,
            off_path=off,
        )
        for i, path, outcome, off in sampled_rollouts(model, env, obs, n, seed)
    ]


def draw_scene(ax: Any, scene: Scene) -> None:
    """Walls, grid lines, the spurious goal (a square), the true goal (a disc) and the start."""
    draw_board(ax, scene.walls)
    w = scene.walls.shape[1]
    sr, sc = divmod(scene.spur_cell, w)
    ax.add_patch(Rectangle((sc - 0.45, sr - 0.45), 0.9, 0.9, color=SPUR_COLOUR, alpha=0.45, lw=0))
    tr, tc = divmod(scene.true_cell, w)
    ax.add_patch(Circle((tc, tr), 0.3, color=TRUE_COLOUR, alpha=0.9, lw=0))
    r0, c0 = divmod(scene.start, w)
    # in the cell's corner: the centre is where paths and arrows go
    ax.text(c0 - 0.42, r0 - 0.4, "S", ha="left", va="top", fontsize=7, color=GREY, weight="bold")


FIGURES = GridFigures(
    draw_scene=draw_scene,
    action_field=action_field,
    fixed_layouts=fixed_layouts,
    ood_episodes=ood_episodes,
    as_in_training=Scene.together,
    rows=("goals together\n(as in training)", "goals apart\n(as OOD)"),
    outcome_text=OUTCOME_TEXT,
    counted=("off-path", "on-path"),
    fields_title="Vector fields: the policy's mean move from every cell",
    episodes_title="OOD episodes (sampled actions; off-path episodes first)",
    compare_title="Vector fields on the same OOD layouts (goals apart)",
    spur_marker={"ms": 10, "alpha": 0.5},
)
legend_handles = FIGURES.legend_handles
draw_vector_fields = FIGURES.draw_vector_fields
vector_fields = FIGURES.vector_fields
draw_episodes = FIGURES.draw_episodes
episodes_figure = FIGURES.episodes_figure
compare_vector_fields = FIGURES.compare_vector_fields

__all__ = [
    "VIEW_LEVELS",
    "Episode",
    "Scene",
    "action_field",
    "compare_vector_fields",
    "draw_episodes",
    "draw_field",
    "draw_path",
    "draw_scene",
    "draw_vector_fields",
    "episodes_figure",
    "fixed_layouts",
    "legend_handles",
    "ood_episodes",
    "panel_inches",
    "vector_fields",
    "viewing_task",
]
