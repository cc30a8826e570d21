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
  torn between moves), as in the vector fields of maze-policy interpretability work (Turner et
  al. 2023, "Understanding and controlling a maze-solving policy network").
  ``arrows="actions"`` draws one arrow per action instead, its length the action's probability.
  Each layout is drawn twice: goals on one cell, as in training, and apart, as out of
  distribution. A corner-seeker's arrows keep flowing to the corner when the cheese moves away;
  a cheese-seeker's turn to follow the cheese.

Each figure function returns a :class:`matplotlib.figure.Figure` (no pyplot state), so a user
can restyle it; the ``draw_*`` functions draw into a figure or subfigure the caller made, which
is how :func:`mesa.report.show.show` puts them on one sheet. Colours follow the report: the
true goal in :data:`~mesa.report.figures.TRUE_COLOUR`, the spurious one in
:data:`~mesa.report.figures.SPUR_COLOUR`. A cell is :data:`CELL_INCHES` wide, so at the
:data:`DPI` the sheets are saved at a cell is at least 24 pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle

from mesa.envs.levels import ACTIONS
from mesa.errors import MesaError
from mesa.outcomes import OUTCOMES
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR
from mesa.tasks.gridworld import GridTask

#: Saving resolution of the sheets, and the drawn size of one grid cell: 0.3 in at 100 dpi is
#: 30 px, so a cell stays above 24 px after the layout trims each panel for its title.
DPI, CELL_INCHES = 100, 0.3
WALL, ARROW = "#3b3b3b", "#1a1a2e"
PATH_CMAP = colormaps["Blues"]
PATH_END = PATH_CMAP(1.0)
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
OUTCOME_COLOUR = {"true": TRUE_COLOUR, "spurious": SPUR_COLOUR, "neither": GREY}


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


#: The pictures draw their layouts from the first ``VIEW_LEVELS`` layouts of the ``ood`` pool.
#: A pool's layouts are drawn in sequence from one seeded generator, so these are the same
#: layouts the full pool starts with; a pool this size builds (with its distance table) in
#: milliseconds, the full 5000 in seconds, most of a ``mesa show``'s work.
VIEW_LEVELS = 256


def check_grid_task(task: Any) -> GridTask:
    if not isinstance(task, GridTask):
        raise MesaError(f"gridworld pictures need a gridworld task, not {type(task).__name__}")
    return task


def viewing_task(task: GridTask) -> GridTask:
    """``task`` with its pools cut to their first :data:`VIEW_LEVELS` layouts."""
    task = check_grid_task(task)
    if task.config.n_levels <= VIEW_LEVELS:
        return task
    return type(task)(replace(task.config, n_levels=VIEW_LEVELS))


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
    g = torch.Generator().manual_seed(seed)
    obs, _ = env.reset()
    level, true, spur = env.level.clone(), env.true_cell.clone(), env.spur_cell.clone()
    paths = [[int(c)] for c in env.pos]
    done = torch.zeros(copies, dtype=torch.bool)
    outcome = torch.zeros(copies, dtype=torch.long)
    off = torch.zeros(copies, dtype=torch.bool)
    for _ in range(env.max_steps):
        actions = torch.multinomial(torch.softmax(model(obs), -1), 1, generator=g).squeeze(1)
        # where each copy moves, read before the step: a finished copy resets at once
        moved = env.pool.next_cell[env.level, env.pos, actions]
        obs, _, terminated, truncated, info = env.step(actions)
        for i in (~done).nonzero().squeeze(1).tolist():
            paths[i].append(int(moved[i]))
        new = (terminated | truncated) & ~done
        outcome[new] = info["episode_outcome"][new]
        off[new] = info["episode_off_path"][new]
        done |= new
        if bool(done.all()):
            break
    order = sorted(range(copies), key=lambda i: (not bool(off[i]), i))[:n]
    h, w = env.pool.height, env.pool.width
    return [
        Episode(
            scene=Scene(
                walls=env.pool.walls[int(level[i])].view(h, w).numpy().copy(),
                start=paths[i][0],
                true_cell=int(true[i]),
                spur_cell=int(spur[i]),
            ),
            path=paths[i],
            outcome=OUTCOMES[int(outcome[i])],
            off_path=bool(off[i]),
        )
        for i in order
    ]


def panel_inches(shape: tuple[int, int]) -> tuple[float, float]:
    """Width and height of one grid panel: :data:`CELL_INCHES` per cell plus room for a title."""
    h, w = shape
    return CELL_INCHES * w + 0.35, CELL_INCHES * h + 0.6


def draw_scene(ax: Any, scene: Scene) -> None:
    """Walls, grid lines, the spurious goal (a square), the true goal (a disc) and the start."""
    h, w = scene.walls.shape
    ax.imshow(
        scene.walls,
        cmap=ListedColormap(["white", WALL]),
        vmin=0,
        vmax=1,
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="nearest",
    )
    # grid lines as two collections: as minor ticks they were a third of the time to save a sheet
    ax.hlines(np.arange(0.5, h - 1), -0.5, w - 0.5, color="#d0d0d0", lw=0.5)
    ax.vlines(np.arange(0.5, w - 1), -0.5, h - 0.5, color="#d0d0d0", lw=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    sr, sc = divmod(scene.spur_cell, w)
    ax.add_patch(Rectangle((sc - 0.45, sr - 0.45), 0.9, 0.9, color=SPUR_COLOUR, alpha=0.45, lw=0))
    tr, tc = divmod(scene.true_cell, w)
    ax.add_patch(Circle((tc, tr), 0.3, color=TRUE_COLOUR, alpha=0.9, lw=0))
    r0, c0 = divmod(scene.start, w)
    # in the cell's corner: the centre is where paths and arrows go
    ax.text(c0 - 0.42, r0 - 0.4, "S", ha="left", va="top", fontsize=7, color=GREY, weight="bold")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")


def draw_field(ax: Any, probs: np.ndarray, width: int, arrows: str = "net") -> None:
    """Arrows of an :func:`action_field` (``probs`` [H*W, 4]) on a grid ``width`` cells wide."""
    if arrows not in ("net", "actions"):
        raise MesaError(f"unknown arrows {arrows!r}; valid: actions, net")
    cells = np.flatnonzero(~np.isnan(probs[:, 0]))
    rows, cols = np.divmod(cells, width)
    p = probs[cells]
    style = {"angles": "xy", "scale_units": "xy", "scale": 1, "units": "xy", "color": ARROW}
    offsets = np.array(ACTIONS, dtype=float)  # (d_row, d_col) per action
    if arrows == "net":
        d_row, d_col = p @ offsets[:, 0], p @ offsets[:, 1]
        # 0.85 of a cell at most, centred on the cell: arrows never reach into a neighbour
        ax.quiver(cols, rows, 0.85 * d_col, 0.85 * d_row, pivot="middle", width=0.07, **style)
        return
    for a, (dr, dc) in enumerate(offsets):
        ax.quiver(cols, rows, 0.45 * dc * p[:, a], 0.45 * dr * p[:, a], width=0.05, **style)


def draw_path(ax: Any, path: list[int], width: int) -> None:
    """The agent's path through cell centres, light to dark over time, ending in a dot."""
    rows, cols = np.divmod(np.asarray(path), width)
    points = np.column_stack([cols, rows]).astype(float)
    if len(points) > 1:
        segments = np.stack([points[:-1], points[1:]], axis=1)
        shades = np.linspace(0.35, 1.0, len(segments))
        lines = LineCollection(list(segments), colors=PATH_CMAP(shades), lw=2.5)
        lines.set_capstyle("round")
        ax.add_collection(lines)
    ax.add_patch(Circle((points[-1, 0], points[-1, 1]), 0.16, color=PATH_END, zorder=3))


def legend_handles(task: GridTask, path: bool = False) -> list[Any]:
    """Legend entries naming the task's goals (and the agent's path)."""
    handles = [
        Line2D([], [], ls="", marker="o", ms=9, color=TRUE_COLOUR, label=f"true: {task.true_goal}"),
        Line2D(
            [],
            [],
            ls="",
            marker="s",
            ms=10,
            color=SPUR_COLOUR,
            alpha=0.5,
            label=f"spurious: {task.spurious_goal}",
        ),
    ]
    if path:
        handles.append(Line2D([], [], color=PATH_END, lw=2.5, label="agent's path"))
    return handles


def draw_vector_fields(
    fig: FigureBase, model: Any, task: GridTask, scenes: list[Scene], arrows: str = "net"
) -> None:
    """Into ``fig``: a row with the goals together and a row with them apart, a column per
    scene."""
    axes = fig.subplots(2, len(scenes), squeeze=False)
    w = scenes[0].walls.shape[1]
    for j, scene in enumerate(scenes):
        for i, s in enumerate((scene.together(), scene)):
            draw_scene(axes[i, j], s)
            draw_field(axes[i, j], action_field(model, task, s), w, arrows)
    axes[0, 0].set_ylabel("goals together\n(as in training)", fontsize=9)
    axes[1, 0].set_ylabel("goals apart\n(as OOD)", fontsize=9)
    fig.legend(handles=legend_handles(task), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Vector fields: the policy's mean move from every cell", fontsize=10)


def vector_fields(
    model: Any,
    task: GridTask,
    scenes: list[Scene] | None = None,
    arrows: str = "net",
    seed: int = 0,
) -> Figure:
    """The policy's vector field on ``scenes`` (default: 3 :func:`fixed_layouts`), goals together
    and apart. ``arrows``: ``"net"`` (expected displacement) or ``"actions"`` (one per action)."""
    scenes = scenes or fixed_layouts(task, 3, seed)
    pw, ph = panel_inches(scenes[0].walls.shape)
    fig = Figure(figsize=(pw * len(scenes) + 0.4, 2 * ph + 0.8), layout="constrained")
    draw_vector_fields(fig, model.eval(), task, scenes, arrows)
    return fig


def draw_episodes(fig: FigureBase, task: GridTask, episodes: list[Episode], cols: int) -> None:
    """Into ``fig``: one panel per episode, ``cols`` to a row, the outcome in each title."""
    rows = -(-len(episodes) // cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, ep in zip(axes, episodes, strict=False):
        draw_scene(ax, ep.scene)
        draw_path(ax, ep.path, ep.scene.walls.shape[1])
        where = "off-path" if ep.off_path else "on-path"
        ax.set_title(
            f"{OUTCOME_TEXT[ep.outcome]}\n{where}, {len(ep.path) - 1} steps",
            fontsize=8,
            color=OUTCOME_COLOUR[ep.outcome],
        )
    for ax in axes[len(episodes) :]:
        ax.set_axis_off()
    handles = legend_handles(task, path=True)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("OOD episodes (sampled actions; off-path episodes first)", fontsize=10)


def episodes_figure(model: Any, task: GridTask, n: int = 6, seed: int = 0, cols: int = 3) -> Figure:
    """``n`` seeded OOD episodes of ``model`` on ``task`` (:func:`ood_episodes`)."""
    episodes = ood_episodes(model.eval(), task, n, seed)
    pw, ph = panel_inches(episodes[0].scene.walls.shape)
    rows = -(-n // cols)
    fig = Figure(figsize=(pw * cols + 0.4, ph * rows + 0.8), layout="constrained")
    draw_episodes(fig, task, episodes, cols)
    return fig


def compare_vector_fields(
    models: Mapping[str, Any], task: GridTask, scenes: list[Scene] | None = None, seed: int = 0
) -> Figure:
    """Several policies' vector fields side by side (a column each, labelled by its key) on the
    same layouts, goals apart: where they disagree is which goal each one follows."""
    scenes = scenes or fixed_layouts(task, 3, seed)
    pw, ph = panel_inches(scenes[0].walls.shape)
    fig = Figure(figsize=(pw * len(models) + 0.6, ph * len(scenes) + 0.8), layout="constrained")
    axes = fig.subplots(len(scenes), len(models), squeeze=False)
    w = scenes[0].walls.shape[1]
    for j, (label, model) in enumerate(models.items()):
        model.eval()
        axes[0, j].set_title(label, fontsize=9)
        for i, scene in enumerate(scenes):
            draw_scene(axes[i, j], scene)
            draw_field(axes[i, j], action_field(model, task, scene), w)
    fig.legend(handles=legend_handles(task), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Vector fields on the same OOD layouts (goals apart)", fontsize=10)
    return fig
