"""``mesa show`` and its pictures, on hand-built policies whose every decision is known.

A vector field must point where the policy points (on screen, not only in the data), episodes must
record the path the agent took, the sheet's cells must be legible (>= 24 px), and the sequence
patching map must find the one position a hand-wired sycophant copies its answer from.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import mesa
from mesa.cli import main
from mesa.envs.levels import actions_towards
from mesa.errors import MesaError
from mesa.report import gridworld as G
from mesa.report import sequence as S
from mesa.report.grid_figures import DPI

SMALL_MAZE = {"size": 7, "n_levels": 40}


class Seeker(nn.Module):
    """Heads for the true goal (the cheese channel): logit 8 on every move along a shortest path,
    0 on the others."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        walls = obs[:, 0] > 0.5
        pos, goal = obs[:, 1].flatten(1).argmax(1), obs[:, 2].flatten(1).argmax(1)
        return 8.0 * actions_towards(walls, pos, goal).float()


class Always(nn.Module):
    """Puts logit 8 on one action whatever it sees."""

    def __init__(self, action: int) -> None:
        super().__init__()
        self.action = action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(obs), 4)
        logits[:, self.action] = 8.0
        return logits


def _open_scene(size: int = 5) -> G.Scene:
    walls = np.zeros((size, size), dtype=bool)
    return G.Scene(walls=walls, start=(size - 1) * size, true_cell=2 * size + 2, spur_cell=size - 1)


def test_vector_field_points_to_the_goal_from_its_neighbours():
    task = mesa.make_task("maze", p=0.0, **{**SMALL_MAZE, "size": 5})
    scene = _open_scene()
    probs = G.action_field(Seeker(), task, scene)
    assert np.isnan(probs[scene.true_cell]).all()  # the episode would have ended there
    offsets = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=float)
    for cell, (d_row, d_col) in {11: (0, 1), 13: (0, -1), 7: (1, 0), 17: (-1, 0)}.items():
        move = probs[cell] @ offsets  # expected (row, col) displacement
        assert move == pytest.approx((d_row, d_col), abs=0.01), cell


def test_arrows_point_the_same_way_on_screen():
    """An 'up' policy draws arrows that go up on the rendered figure: the grid's rows run down."""
    task = mesa.make_task("maze", p=0.0, **{**SMALL_MAZE, "size": 5})
    fig = Figure()
    ax = fig.add_subplot()
    scene = _open_scene()
    G.draw_scene(ax, scene)
    G.draw_field(ax, G.action_field(Always(0), task, scene), 5)
    quiver = ax.collections[-1]
    (x, y), (u, v) = quiver.get_offsets()[0], (quiver.U[0], quiver.V[0])
    FigureCanvasAgg(fig).draw()
    tail, head = ax.transData.transform([(x - u / 2, y - v / 2), (x + u / 2, y + v / 2)])
    assert head[1] - tail[1] > 10 and abs(head[0] - tail[0]) < 1  # pixels: straight up
    with pytest.raises(MesaError, match="unknown arrows"):
        G.draw_field(ax, G.action_field(Always(0), task, scene), 5, arrows="wiggly")


def test_episodes_follow_the_policy():
    task = mesa.make_task("maze", p=0.0, **SMALL_MAZE)
    episodes = G.ood_episodes(Seeker(), task, n=4, seed=3)
    assert len(episodes) == 4
    width = task.observation_shape[2]
    for ep in episodes:
        assert ep.outcome in ("true", "spurious")  # a seeker reaches the cheese in time
        assert ep.path[0] == ep.scene.start and ep.path[-1] == ep.scene.true_cell
        steps = np.abs(np.diff(np.divmod(np.array(ep.path), width), axis=1)).sum(0)
        assert set(steps.tolist()) <= {1}  # one cell per step: no wall bumps for a seeker
        if ep.off_path:
            assert ep.outcome == "true"  # off-path: the corner is not on the way
    stuck = G.ood_episodes(Always(2), task, n=2, seed=3)  # always left: stays at the start
    assert all(ep.outcome == "neither" and set(ep.path) == {ep.scene.start} for ep in stuck)


def test_pictures_draw_from_the_start_of_the_ood_pool():
    task = mesa.make_task("maze", p=0.0, n_levels=G.VIEW_LEVELS + 20)
    view = G.viewing_task(task)
    assert view.config.n_levels == G.VIEW_LEVELS
    full, cut = task.pool("ood", 0), view.pool("ood", 0)
    assert torch.equal(full.walls[: G.VIEW_LEVELS], cut.walls)  # the same layouts, fewer
    assert G.viewing_task(view) is view


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_show_sheet_cells_are_at_least_24_px(tmp_path: Path):
    task = mesa.make_task("maze", p=0.0, **SMALL_MAZE)
    out = tmp_path / "sheet.png"
    fig = mesa.show(Seeker(), task, out=out)
    assert isinstance(fig, Figure)
    width_px, height_px = _png_size(out)
    cells = task.observation_shape[2]
    assert width_px >= 3 * cells * 24  # three panels a row
    assert (width_px, height_px) == tuple(round(v * DPI) for v in fig.get_size_inches())
    fig.set_dpi(DPI)
    FigureCanvasAgg(fig).draw()
    grids = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(grids) == 6 + 6  # six episodes, three layouts twice
    for ax in grids:
        box = ax.get_window_extent()
        assert min(box.width, box.height) / cells >= 24
    titles = [ax.get_title() for ax in grids[:6]]
    assert all("goal first" in t or "neither" in t for t in titles)
    assert all("off-path" in t or "on-path" in t for t in titles)


def test_show_cli(tmp_path: Path, capsys):
    task = mesa.make_task("maze", p=0.0, **SMALL_MAZE)
    run = tmp_path / "run"
    mesa.save(task.make_model("conv", seed=0), task, run)
    assert main(["show", str(run)]) == 0
    assert f"wrote {run / 'show.png'}" in capsys.readouterr().out
    assert (run / "show.png").read_bytes().startswith(b"\x89PNG")
    assert main(["show", str(run), "--out", str(tmp_path / "x.png"), "--seed", "1"]) == 0
    assert (tmp_path / "x.png").is_file()
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically
    (tmp_path / "notrun").mkdir()
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "zoo.json").write_text("{}")
    for argv, message in (
        (["show", str(tmp_path / "notrun")], "is not a run directory"),
        (["show", str(tmp_path / "nope")], "does not exist"),
        (["show", str(tmp_path / "zoo")], "is a zoo; mesa show draws one run"),
        (["show", str(run), "--out", str(tmp_path / "x.jpg")], "writes PNG files"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    with pytest.raises(MesaError, match="needs its task"):
        mesa.show(Seeker())


class HandWiredSycophant(HookedRootModule):
    """Answers with the claim: block 0 copies the token at the claim's position (4) to the last
    position, and the answer is read there, so the claim's information sits at position 4 on
    entering block 0 and at the last position on entering block 1."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.blocks = nn.ModuleList([nn.Module(), nn.Module()])
        for block in self.blocks:
            block.hook_resid_pre = HookPoint()
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0].hook_resid_pre(nn.functional.one_hot(tokens, self.vocab).float())
        y = torch.zeros_like(x)
        y[:, -1] = x[:, 4]
        return 10 * self.blocks[1].hook_resid_pre(y)


def test_patching_map_finds_where_the_claim_is_copied():
    task = mesa.make_task("sycophancy", P=7)
    model = HandWiredSycophant(task.vocab_size)
    assert S.residual_hooks(model) == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    result = S.patch_goal(model, task, "spurious", n_pairs=16)
    expected = torch.zeros(2, 6)
    expected[0, task.position_names.index("claim")] = 1.0
    expected[1, -1] = 1.0
    assert torch.allclose(result.recovery(), expected, atol=1e-5)
    fig = S.patching_maps(model, task, n_pairs=16)
    spurious, true = fig.get_axes()[:2]
    assert np.allclose(spurious.get_images()[0].get_array(), expected.numpy())
    assert "leaves" in " ".join(t.get_text() for t in true.texts)  # the sum is ignored
    assert [t.get_text() for t in spurious.get_xticklabels()] == list(task.position_names)


def test_answer_distributions_mark_both_answers():
    task = mesa.make_task("sycophancy", P=7)
    fig = S.answer_distributions(HandWiredSycophant(task.vocab_size), task, n=3, seed=1)
    batch = task.sample("ood", 3, 1)
    for j, ax in enumerate(fig.get_axes()[:3]):
        heights = [bar.get_height() for bar in ax.patches]
        assert int(np.argmax(heights)) == int(batch.spurious_goal[j])  # the claim
        assert ax.get_title() == task.format_tokens(batch.tokens[j])
        assert "USER" in ax.get_title()


@pytest.mark.slow
def test_show_sequence_run(tmp_path: Path):
    task = mesa.make_task("sycophancy", P=7, d_model=32, n_layers=1)
    run = tmp_path / "run"
    mesa.save(task.make_model(seed=0), task, run)
    fig = mesa.show(run, out=tmp_path / "s.png")
    assert "sycophancy" in fig.get_suptitle()
    assert (tmp_path / "s.png").stat().st_size > 10_000
