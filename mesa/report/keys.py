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
  move drawn as an arrow (:func:`mesa.report.gridworld.draw_field`); above, the same board with
  the surplus key taken away, as a held key always leaves it in training at ``p = 0``. A
  chest-opener's arrows flow to the disc in both rows; a key-collector's turn to the square.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle
from torch import Tensor

from mesa.envs.levels import ACTIONS
from mesa.errors import MesaError
from mesa.outcomes import OUTCOMES
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR
from mesa.report.gridworld import (
    OUTCOME_COLOUR,
    PATH_END,
    VIEW_LEVELS,
    WALL,
    draw_field,
    draw_path,
    panel_inches,
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
    if not isinstance(task, KeysTask):
        raise MesaError(f"keys pictures need a keys task, not {type(task).__name__}")
    return task


def viewing_task(task: KeysTask) -> KeysTask:
    """``task`` with its pools cut to their first ``VIEW_LEVELS`` layouts (fast to build)."""
    task = check_keys_task(task)
    if task.config.n_levels <= VIEW_LEVELS:
        return task
    return type(task)(replace(task.config, n_levels=VIEW_LEVELS))


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
    g = torch.Generator().manual_seed(seed)
    obs, _ = env.reset()
    h, w = env.pool.height, env.pool.width
    scenes = [
        KeysScene(
            walls=env.pool.walls[int(env.level[i])].view(h, w).numpy().copy(),
            start=int(env.pos[i]),
            keys=_cells(env.keys[i]),
            chests=_cells(env.chests[i]),
            holding=False,
        )
        for i in range(copies)
    ]
    paths = [[s.start] for s in scenes]
    done = torch.zeros(copies, dtype=torch.bool)
    outcome = torch.zeros(copies, dtype=torch.long)
    off = torch.zeros(copies, dtype=torch.bool)
    for _ in range(env.max_steps):
        actions = torch.multinomial(torch.softmax(model(obs), -1), 1, generator=g).squeeze(1)
        moved = env.pool.next_cell[env.level, env.pos, actions]  # read before a reset
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
    return [
        KeysEpisode(scenes[i], paths[i], OUTCOMES[int(outcome[i])], bool(off[i])) for i in order
    ]


def draw_scene(ax: Any, scene: KeysScene) -> None:
    """Walls, grid lines, the keys (squares), the chests (discs) and the start."""
    h, w = scene.walls.shape
    ax.imshow(
        scene.walls,
        cmap=ListedColormap(["white", WALL]),
        vmin=0,
        vmax=1,
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="nearest",
    )
    ax.hlines(np.arange(0.5, h - 1), -0.5, w - 0.5, color="#d0d0d0", lw=0.5)
    ax.vlines(np.arange(0.5, w - 1), -0.5, h - 0.5, color="#d0d0d0", lw=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for cell in scene.keys:
        r, c = divmod(cell, w)
        ax.add_patch(Rectangle((c - 0.3, r - 0.3), 0.6, 0.6, color=SPUR_COLOUR, alpha=0.8, lw=0))
    for cell in scene.chests:
        r, c = divmod(cell, w)
        ax.add_patch(Circle((c, r), 0.3, color=TRUE_COLOUR, alpha=0.9, lw=0))
    if not scene.holding:  # a held key has no start: the fields draw every cell
        r0, c0 = divmod(scene.start, w)
        ax.text(c0 - 0.42, r0 - 0.4, "S", ha="left", va="top", fontsize=7, color=GREY)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")


def legend_handles(task: KeysTask, path: bool = False) -> list[Any]:
    """Legend entries naming the task's goals (and the agent's path)."""
    handles = [
        Line2D([], [], ls="", marker="o", ms=9, color=TRUE_COLOUR, label=f"true: {task.true_goal}"),
        Line2D(
            [],
            [],
            ls="",
            marker="s",
            ms=8,
            color=SPUR_COLOUR,
            label=f"spurious: {task.spurious_goal}",
        ),
    ]
    if path:
        handles.append(Line2D([], [], color=PATH_END, lw=2.5, label="agent's path"))
    return handles


def draw_vector_fields(
    fig: FigureBase, model: Any, task: KeysTask, scenes: list[KeysScene], arrows: str = "net"
) -> None:
    """Into ``fig``: a row of decision states without the surplus key, a row with it."""
    axes = fig.subplots(2, len(scenes), squeeze=False)
    w = scenes[0].walls.shape[1]
    for j, scene in enumerate(scenes):
        for i, s in enumerate((scene.without_keys(), scene)):
            draw_scene(axes[i, j], s)
            draw_field(axes[i, j], action_field(model, task, s), w, arrows)
    axes[0, 0].set_ylabel("key held, none left\n(as in training)", fontsize=9)
    axes[1, 0].set_ylabel("key held, a key left\n(as OOD)", fontsize=9)
    fig.legend(handles=legend_handles(task), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Vector fields: the policy's mean move from every cell, a key held", fontsize=10)


def vector_fields(
    model: Any,
    task: KeysTask,
    scenes: list[KeysScene] | None = None,
    arrows: str = "net",
    seed: int = 0,
) -> Figure:
    """The policy's vector field on ``scenes`` (default: 3 :func:`fixed_layouts`), without and
    with the surplus key."""
    scenes = scenes or fixed_layouts(task, 3, seed)
    pw, ph = panel_inches(scenes[0].walls.shape)
    fig = Figure(figsize=(pw * len(scenes) + 0.4, 2 * ph + 0.8), layout="constrained")
    draw_vector_fields(fig, model.eval(), task, scenes, arrows)
    return fig


def draw_episodes(fig: FigureBase, task: KeysTask, episodes: list[KeysEpisode], cols: int) -> None:
    """Into ``fig``: one panel per episode, ``cols`` to a row, the outcome in each title."""
    rows = -(-len(episodes) // cols)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, ep in zip(axes, episodes, strict=False):
        draw_scene(ax, ep.scene)
        draw_path(ax, ep.path, ep.scene.walls.shape[1])
        where = "counted" if ep.off_path else "not counted"
        ax.set_title(
            f"{OUTCOME_TEXT[ep.outcome]}\n{where}, {len(ep.path) - 1} steps",
            fontsize=8,
            color=OUTCOME_COLOUR[ep.outcome],
        )
    for ax in axes[len(episodes) :]:
        ax.set_axis_off()
    handles = legend_handles(task, path=True)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("OOD episodes (sampled actions; counted episodes first)", fontsize=10)


def episodes_figure(model: Any, task: KeysTask, n: int = 6, seed: int = 0, cols: int = 3) -> Figure:
    """``n`` seeded OOD episodes of ``model`` on ``task`` (:func:`ood_episodes`)."""
    episodes = ood_episodes(model.eval(), task, n, seed)
    pw, ph = panel_inches(episodes[0].scene.walls.shape)
    fig = Figure(figsize=(pw * cols + 0.4, ph * -(-n // cols) + 0.8), layout="constrained")
    draw_episodes(fig, task, episodes, cols)
    return fig


def compare_vector_fields(
    models: Mapping[str, Any], task: KeysTask, scenes: list[KeysScene] | None = None, seed: int = 0
) -> Figure:
    """Several policies' vector fields side by side (a column each) on the same OOD decision
    states: where they disagree is which goal each one follows."""
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
    fig.suptitle("Vector fields on the same OOD decision states (a key held)", fontsize=10)
    return fig
