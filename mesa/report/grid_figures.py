"""What every gridworld picture shares: the grid's drawing primitives and the figures built on them.

:mod:`mesa.report.gridworld` (goals on one cell each) and :mod:`mesa.report.keys` (goals that
are sets of objects) differ in how a board is drawn, how the agent is placed on it and what an
outcome is called. Each fills in one :class:`GridFigures` with those parts; the episode sheets
and vector-field figures here are then the same for both, so :mod:`mesa.report.show` and the zoo
report can use either module through one interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, FigureBase
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from mesa.envs.levels import ACTIONS
from mesa.errors import MesaError
from mesa.outcomes import OUTCOMES
from mesa.report.figures import GREY, SPUR_COLOUR, TRUE_COLOUR

#: Saving resolution of the sheets, and the drawn size of one grid cell: 0.3 in at 100 dpi is
#: 30 px, so a cell stays above 24 px after the layout trims each panel for its title.
DPI, CELL_INCHES = 100, 0.3
WALL, ARROW = "#3b3b3b", "#1a1a2e"
PATH_CMAP = colormaps["Blues"]
PATH_END = PATH_CMAP(1.0)
OUTCOME_COLOUR = {"true": TRUE_COLOUR, "spurious": SPUR_COLOUR, "neither": GREY}

#: The pictures draw their layouts from the first ``VIEW_LEVELS`` layouts of the ``ood`` pool.
#: A pool's layouts are drawn in sequence from one seeded generator, so these are the same
#: layouts the full pool starts with; a pool this size builds (with its distance table) in
#: milliseconds, the full 5000 in seconds, most of a ``mesa show``'s work.
VIEW_LEVELS = 256


def check_kind(task: Any, kind: type[Any], what: str) -> Any:
    """``task`` if it is a ``kind``; else a one-line error naming the ``what`` pictures need."""
    if not isinstance(task, kind):
        raise MesaError(f"{what} pictures need a {what} task, not {type(task).__name__}")
    return task


def cut_to_view(task: Any) -> Any:
    """``task`` with its pools cut to their first :data:`VIEW_LEVELS` layouts."""
    if task.config.n_levels <= VIEW_LEVELS:
        return task
    return type(task)(replace(task.config, n_levels=VIEW_LEVELS))


def panel_inches(shape: tuple[int, int]) -> tuple[float, float]:
    """Width and height of one grid panel: :data:`CELL_INCHES` per cell plus room for a title."""
    h, w = shape
    return CELL_INCHES * w + 0.35, CELL_INCHES * h + 0.6


def draw_board(ax: Any, walls: np.ndarray) -> None:
    """Walls ([H, W] bool) and grid lines on ``ax``, one unit per cell, row 0 at the top."""
    h, w = walls.shape
    ax.imshow(
        walls,
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
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")


def draw_field(ax: Any, probs: np.ndarray, width: int, arrows: str = "net") -> None:
    """Arrows of an action field (``probs`` [H*W, 4], NaN where the agent is not placed) on a
    grid ``width`` cells wide: the expected move (``"net"``) or one arrow per action."""
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


@torch.no_grad()
def sampled_rollouts(
    model: Any, env: Any, obs: Any, n: int, seed: int
) -> list[tuple[int, list[int], str, bool]]:
    """Every copy of a freshly reset OOD ``env`` (first observation ``obs``) played to the end of
    its first episode with actions sampled from ``model`` (seeded): ``(copy, cells visited from
    the start, outcome, counted in the headline)`` for ``n`` of them, counted episodes first."""
    copies = len(env.pos)
    g = torch.Generator().manual_seed(seed)
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
    return [(i, paths[i], OUTCOMES[int(outcome[i])], bool(off[i])) for i in order]


@dataclass(frozen=True)
class GridFigures:
    """One family's parts of the gridworld pictures; its methods are the shared figures.

    ``draw_scene(ax, scene)`` draws a board, ``action_field(model, task, scene)`` gives the
    policy's action probabilities [H*W, 4] at every cell it can stand on,
    ``fixed_layouts(task, n, seed)`` and ``ood_episodes(model, task, n, seed)`` choose what to
    draw, and ``as_in_training(scene)`` is the same board as training shows it. The words name
    the rows, outcomes, counted episodes and titles."""

    draw_scene: Callable[[Any, Any], None]
    action_field: Callable[[Any, Any, Any], np.ndarray]
    fixed_layouts: Callable[..., list[Any]]
    ood_episodes: Callable[..., list[Any]]
    as_in_training: Callable[[Any], Any]
    rows: tuple[str, str]
    """Row labels of the vector fields: as in training, as OOD."""
    outcome_text: Mapping[str, str]
    counted: tuple[str, str]
    """How an episode's title says it is counted in the headline rates, and not."""
    fields_title: str
    episodes_title: str
    compare_title: str
    spur_marker: Mapping[str, Any] = field(default_factory=dict)
    """Extra style of the spurious goal's legend marker."""

    def legend_handles(self, task: Any, path: bool = False) -> list[Any]:
        """Legend entries naming the task's goals (and the agent's path)."""
        true = f"true: {task.true_goal}"
        spur = f"spurious: {task.spurious_goal}"
        handles = [
            Line2D([], [], ls="", marker="o", ms=9, color=TRUE_COLOUR, label=true),
            Line2D([], [], ls="", marker="s", color=SPUR_COLOUR, label=spur, **self.spur_marker),
        ]
        if path:
            handles.append(Line2D([], [], color=PATH_END, lw=2.5, label="agent's path"))
        return handles

    def draw_vector_fields(
        self, fig: FigureBase, model: Any, task: Any, scenes: list[Any], arrows: str = "net"
    ) -> None:
        """Into ``fig``: a row of the boards as in training, a row as OOD, a column per scene."""
        axes = fig.subplots(2, len(scenes), squeeze=False)
        w = scenes[0].walls.shape[1]
        for j, scene in enumerate(scenes):
            for i, s in enumerate((self.as_in_training(scene), scene)):
                self.draw_scene(axes[i, j], s)
                draw_field(axes[i, j], self.action_field(model, task, s), w, arrows)
        axes[0, 0].set_ylabel(self.rows[0], fontsize=9)
        axes[1, 0].set_ylabel(self.rows[1], fontsize=9)
        handles = self.legend_handles(task)
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
        fig.suptitle(self.fields_title, fontsize=10)

    def vector_fields(
        self,
        model: Any,
        task: Any,
        scenes: list[Any] | None = None,
        arrows: str = "net",
        seed: int = 0,
    ) -> Figure:
        """The policy's vector field on ``scenes`` (default: 3 fixed layouts), as in training
        and as OOD. ``arrows``: ``"net"`` (expected displacement) or ``"actions"`` (one per
        action)."""
        scenes = scenes or self.fixed_layouts(task, 3, seed)
        pw, ph = panel_inches(scenes[0].walls.shape)
        fig = Figure(figsize=(pw * len(scenes) + 0.4, 2 * ph + 0.8), layout="constrained")
        self.draw_vector_fields(fig, model.eval(), task, scenes, arrows)
        return fig

    def draw_episodes(self, fig: FigureBase, task: Any, episodes: list[Any], cols: int) -> None:
        """Into ``fig``: one panel per episode, ``cols`` to a row, the outcome in each title."""
        rows = -(-len(episodes) // cols)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, ep in zip(axes, episodes, strict=False):
            self.draw_scene(ax, ep.scene)
            draw_path(ax, ep.path, ep.scene.walls.shape[1])
            where = self.counted[0] if ep.off_path else self.counted[1]
            ax.set_title(
                f"{self.outcome_text[ep.outcome]}\n{where}, {len(ep.path) - 1} steps",
                fontsize=8,
                color=OUTCOME_COLOUR[ep.outcome],
            )
        for ax in axes[len(episodes) :]:
            ax.set_axis_off()
        handles = self.legend_handles(task, path=True)
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
        fig.suptitle(self.episodes_title, fontsize=10)

    def episodes_figure(
        self, model: Any, task: Any, n: int = 6, seed: int = 0, cols: int = 3
    ) -> Figure:
        """``n`` seeded OOD episodes of ``model`` on ``task``, counted ones first."""
        episodes = self.ood_episodes(model.eval(), task, n, seed)
        pw, ph = panel_inches(episodes[0].scene.walls.shape)
        fig = Figure(figsize=(pw * cols + 0.4, ph * -(-n // cols) + 0.8), layout="constrained")
        self.draw_episodes(fig, task, episodes, cols)
        return fig

    def compare_vector_fields(
        self, models: Mapping[str, Any], task: Any, scenes: list[Any] | None = None, seed: int = 0
    ) -> Figure:
        """Several policies' vector fields side by side (a column each, labelled by its key) on
        the same OOD boards: where they disagree is which goal each one follows."""
        scenes = scenes or self.fixed_layouts(task, 3, seed)
        pw, ph = panel_inches(scenes[0].walls.shape)
        size = (pw * len(models) + 0.6, ph * len(scenes) + 0.8)
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(len(scenes), len(models), squeeze=False)
        w = scenes[0].walls.shape[1]
        for j, (label, model) in enumerate(models.items()):
            model.eval()
            axes[0, j].set_title(label, fontsize=9)
            for i, scene in enumerate(scenes):
                self.draw_scene(axes[i, j], scene)
                draw_field(axes[i, j], self.action_field(model, task, scene), w)
        handles = self.legend_handles(task)
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
        fig.suptitle(self.compare_title, fontsize=10)
        return fig
