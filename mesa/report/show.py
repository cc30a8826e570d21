"""``mesa show DIR`` and ``mesa.show(...)``: one run as pictures, on one sheet.

For a gridworld run the sheet holds OOD episodes (walls, both goals, the agent's path, the
outcome) and the policy's vector fields on fixed layouts, goals together and apart
(:mod:`mesa.report.gridworld`; for ``keys``, :mod:`mesa.report.keys`). For a sequence run it
holds the answer distribution on OOD prompts and layer x position patching maps
(:mod:`mesa.report.sequence`). Nothing is trained or detected: the pictures come from forward
passes and seeded rollouts of the saved model, in seconds.

``mesa.show`` returns the :class:`matplotlib.figure.Figure`, so a notebook shows it and a user can
restyle it; with ``out`` it also writes the PNG, atomically. :func:`run_figures` gives the same
pictures one by one, as the report embeds them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from mesa.errors import MesaError
from mesa.io import atomic_write_bytes
from mesa.tasks.base import Task

#: File ``mesa show DIR`` writes into the run directory unless told otherwise.
SHOW_PNG = "show.png"


def resolve(run: Any, task: str | Task | None = None) -> tuple[Any, Task, str]:
    """``(model, task, title)`` from a run directory or from a model and its task."""
    if isinstance(run, str | os.PathLike):
        from mesa.runs import load_run

        loaded = load_run(run, task)
        name = Path(run).resolve().name
        return loaded.model, loaded.task, f"{name}: {loaded.task.name}, p = {loaded.task.p:g}"
    if task is None:
        raise MesaError("mesa.show of a model needs its task: mesa.show(model, task)")
    if isinstance(task, str):
        from mesa.tasks import make_task

        task = make_task(task)
    return run, task, f"{task.name}, p = {task.p:g}"


def _two_rows(fig: Figure, ratios: tuple[float, float] = (1.0, 1.0)) -> tuple[Any, Any]:
    rows: Any = fig.subfigures(2, 1, height_ratios=ratios, hspace=0.02)
    return rows[0], rows[1]


def rl_pictures(task: Any) -> tuple[Any, Any]:
    """``(pictures module, task)`` for an RL task: :mod:`mesa.report.keys` for ``keys``, whose
    goals are sets of objects, :mod:`mesa.report.gridworld` for the one-cell-goal gridworlds
    (refusing any other task). Both modules offer the same functions."""
    from mesa.tasks.keys import KeysTask

    if isinstance(task, KeysTask):
        from mesa.report import keys

        return keys, task
    from mesa.report import gridworld

    return gridworld, gridworld.check_grid_task(task)


def _grid_sheet(fig: Figure, model: Any, task: Any, seed: int) -> None:
    from mesa.report.grid_figures import panel_inches

    G, task = rl_pictures(task)
    episodes = G.ood_episodes(model, task, 6, seed)
    scenes = G.fixed_layouts(task, 3, seed)
    pw, ph = panel_inches(scenes[0].walls.shape)
    fig.set_size_inches(3 * pw + 0.6, 4 * ph + 2.2)
    top, bottom = _two_rows(fig)
    G.draw_episodes(top, task, episodes, cols=3)
    G.draw_vector_fields(bottom, model, task, scenes)


def _sequence_sheet(fig: Figure, model: Any, task: Any, seed: int) -> None:
    from mesa.report import sequence as S

    fig.set_size_inches(11.0, 6.8)
    top, bottom = _two_rows(fig, (1.0, 1.15))
    S.draw_answers(top, {"": model}, task, 4, seed)
    S.draw_patching(bottom, model, task, seed=seed)


def show(
    run: str | os.PathLike[str] | Any,
    task: str | Task | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> Figure:
    """One sheet of pictures of a run: ``run`` is a run directory, or a model with its ``task``
    (a Task, or a registered name for its default options). With ``out``, also writes the sheet
    as a PNG there (atomically). ``seed`` picks the episodes, layouts and prompts."""
    from mesa.runtime import model_device, to_device
    from mesa.tasks.base import RLTask, SequenceTask

    model, task, title = resolve(run, task)
    model.eval()
    fig = Figure(layout="constrained")
    # pictures are drawn on the CPU (a few dozen small inputs); a model on a GPU visits it
    where = model_device(model)
    to_device(model, torch.device("cpu"))
    try:
        if isinstance(task, RLTask):
            _grid_sheet(fig, model, task, seed)
        elif isinstance(task, SequenceTask):
            _sequence_sheet(fig, model, task, seed)
        else:
            raise MesaError(f"cannot show a {type(task).__name__}: not an RLTask or SequenceTask")
    finally:
        to_device(model, where)
    fig.suptitle(title, fontsize=12, weight="bold")
    if out is not None:
        save_png(fig, out)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes at the sheets' resolution (cells stay >= 24 px)."""
    from mesa.report.grid_figures import DPI

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise MesaError(f"mesa show writes PNG files; {path} does not end in .png")
    atomic_write_bytes(path, png_bytes(fig))
    return path


def run_figures(model: Any, task: Task, seed: int = 0) -> list[tuple[str, str, Figure]]:
    """The sheet's pictures one by one, as ``(key, caption, Figure)``: what the single-run report
    embeds."""
    from mesa.tasks.base import RLTask, SequenceTask

    model.eval()
    if isinstance(task, RLTask):
        G, grid = rl_pictures(task)
        return [
            ("episodes", G.EPISODES_CAPTION, G.episodes_figure(model, grid, seed=seed)),
            ("vector_fields", G.FIELDS_CAPTION, G.vector_fields(model, grid, seed=seed)),
        ]
    if isinstance(task, SequenceTask):
        from mesa.report import sequence as S

        return [
            ("answers", S.ANSWERS_CAPTION, S.answer_distributions(model, task, seed=seed)),
            ("patching", S.PATCHING_CAPTION, S.patching_maps(model, task, seed=seed)),
        ]
    raise MesaError(f"cannot show a {type(task).__name__}: not an RLTask or SequenceTask")
