"""The vectorized gridworld engine and the three RL organisms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import mesa
from mesa.envs.grid import GridEnv
from mesa.envs.levels import build_pool
from mesa.errors import MesaError
from mesa.outcomes import NEITHER, SPURIOUS

FAMILIES = ("maze", "coin", "lookalike")


def _corridor_env(true_cell: int, spur_cell: int) -> GridEnv:
    """A 1 x 5 corridor (start at cell 0) with a wall at cell 4... plus a hand-placed wall."""
    walls = np.zeros((1, 5), dtype=bool)
    walls[0, 4] = True
    pool = build_pool([(walls, 0, spur_cell)], 1, 5)

    def place(pool, level, g):
        return torch.full_like(level, true_cell), torch.full_like(level, spur_cell)

    def render(objects, true, spur):
        objects[torch.arange(len(true)), 0, true] = 1.0

    return GridEnv(pool, 2, 0, place, render, ("goal",), max_steps=6)


RIGHT, LEFT = 3, 2


def test_walls_block_and_outcome_is_the_first_goal_reached():
    env = _corridor_env(true_cell=3, spur_cell=1)
    env.reset()
    obs, r, term, trunc, info = env.step(torch.tensor([LEFT, RIGHT]))  # left edge blocks
    assert env.pos.tolist() == [0, 1] and not term.any()
    env.step(torch.tensor([RIGHT, RIGHT]))
    obs, r, term, trunc, info = env.step(torch.tensor([RIGHT, RIGHT]))
    assert term.tolist() == [False, True] and r.tolist() == [0.0, 1.0]
    assert info["episode_outcome"].tolist() == [-1, SPURIOUS]  # passed the spurious goal first
    assert info["episode_off_path"].tolist() == [False, False]  # cell 1 is on the way to 3
    assert env.pos.tolist() == [2, 0]  # the finished copy was reset to the start
    env2 = _corridor_env(true_cell=3, spur_cell=1)
    env2.reset()
    for _ in range(6):  # walk into the wall at cell 4 and stay there: never reaches cell 4
        _obs, r, term, trunc, info = env2.step(torch.tensor([LEFT, LEFT]))
    assert trunc.all() and info["episode_outcome"].tolist() == [NEITHER, NEITHER]


def test_off_path_flag_on_hand_made_layout():
    # in a corridor one goal is always on the way to the other, whichever it is
    for true_cell, spur_cell in ((1, 3), (3, 1)):
        env = _corridor_env(true_cell=true_cell, spur_cell=spur_cell)
        env.reset()
        assert not env.off_path().any()
    # a T: start at the bottom of the stem (cell 7); the arms' ends (0 and 2) are off each
    # other's paths, while the stem's top (1) is on the way to both
    walls = np.array([[0, 0, 0], [1, 0, 1], [1, 0, 1]], dtype=bool)
    pool = build_pool([(walls, 7, 2)], 3, 3)
    for true_cell, off in ((0, True), (1, False)):

        def place(pool, level, g, true_cell=true_cell):
            return torch.full_like(level, true_cell), torch.full_like(level, 2)

        env = GridEnv(pool, 1, 0, place, lambda o, t, s: None, (), max_steps=6)
        env.reset()
        assert env.off_path().tolist() == [off]


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_episodes_and_state_round_trip(family):
    task = mesa.make_task(family, p=0.3, n_levels=50)
    runs = []
    for _ in range(2):
        env = task.make_env("train", 16, seed=5)
        obs, info = env.reset()
        g = torch.Generator().manual_seed(0)
        trace = [obs]
        for _ in range(30):
            obs, _r, _te, _tr, _info = env.step(torch.randint(0, 4, (16,), generator=g))
            trace.append(obs)
        runs.append(torch.stack(trace))
    assert torch.equal(runs[0], runs[1])
    env = task.make_env("train", 16, seed=5)
    env.reset()
    state = env.state_dict()
    actions = torch.randint(0, 4, (20, 16), generator=torch.Generator().manual_seed(1))
    first = [env.step(a)[0] for a in actions]
    env.load_state_dict(state)
    again = [env.step(a)[0] for a in actions]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_splits_separate_goals_as_documented(family):
    n = 2000
    for p, lo, hi in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.3, 0.3 - 0.045, 0.3 + 0.045)):
        # 0.045 is over 4 binomial standard deviations at n = 2000
        _, info = mesa.make_task(family, p=p, n_levels=200).make_env("train", n, 0).reset()
        separated = (info["true_goal"] != info["spurious_goal"]).float().mean().item()
        assert lo <= separated <= hi, (p, separated)
    _, info = mesa.make_task(family, p=0.0, n_levels=200).make_env("ood", n, 0).reset()
    assert (info["true_goal"] != info["spurious_goal"]).all()
    batch = mesa.make_task(family, n_levels=200).probe_batch(n, 0)
    t, s = batch["true_goal"], batch["spurious_goal"]
    assert len(t.unique()) > 5 and len(s.unique()) >= 3
    # the true goal is not tied to the spurious one: rarely equal, and free given its value
    # (a maze's cheese still has to lie inside that maze, so full independence is impossible)
    assert (t == s).float().mean() < 0.2
    common = s.mode().values
    assert len(t[s == common].unique()) > 5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("vary", ["true", "spurious"])
def test_counterfactual_pairs_differ_in_one_goal(family, vary):
    pairs = mesa.make_task(family, n_levels=200).counterfactual_pairs(200, 0, vary)
    changed_true = pairs["base_true_goal"] != pairs["source_true_goal"]
    changed_spur = pairs["base_spurious_goal"] != pairs["source_spurious_goal"]
    assert (changed_true if vary == "true" else changed_spur).all()
    assert not (changed_spur if vary == "true" else changed_true).any()
    agent = 1
    assert torch.equal(pairs["base"][:, agent], pairs["source"][:, agent])


@pytest.mark.parametrize("family", FAMILIES)
def test_optimal_action_walks_a_shortest_path(family):
    task = mesa.make_task(family, p=1.0, n_levels=100)
    env = task.make_env("train", 64, 3)
    env.reset()
    level, start, goal = env.level.clone(), env.pos.clone(), env.true_cell.clone()
    dist = env.pool.dist[level, start, goal].long()
    steps = torch.zeros(64, dtype=torch.long)
    done = torch.zeros(64, dtype=torch.bool)
    for t in range(1, env.max_steps + 1):
        _, _, term, trunc, _ = env.step(env.optimal_action("true"))
        steps[term & ~done] = t
        done |= term | trunc
    assert torch.equal(steps[dist < env.max_steps], dist[dist < env.max_steps])


@pytest.mark.parametrize("family", FAMILIES)
def test_gymnasium_env_checker(family):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports problems as warnings
        check_env(mesa.make_task(family, n_levels=20).gym_env("train", 0), skip_render_check=True)


def test_bad_input():
    with pytest.raises(MesaError, match="unknown split 'test'; valid: ood, probe, train"):
        mesa.make_task("maze").make_env("test", 4, 0)
    with pytest.raises(MesaError, match=r"p must be in \[0, 1\]"):
        mesa.make_task("coin", p=-0.5)
    with pytest.raises(MesaError, match="maze size must be an odd integer"):
        mesa.make_task("maze", size=4)
    with pytest.raises(MesaError, match="coin width must be"):
        mesa.make_task("coin", width=100)
    with pytest.raises(MesaError, match="unknown maze option 'colour'"):
        mesa.make_task("maze", colour="red")
    env = mesa.make_task("maze", n_levels=10).make_env("train", 4, 0)
    env.reset()
    with pytest.raises(MesaError, match=r"actions must have shape \(4,\)"):
        env.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(MesaError, match=r"actions must be integers in 0\.\.3"):
        env.step(torch.tensor([0, 1, 2, 7]))
    with pytest.raises(MesaError, match="unknown goal 'both'"):
        mesa.make_task("maze", n_levels=10).counterfactual_pairs(4, 0, "both")


@pytest.mark.parametrize("family", FAMILIES)
def test_goal_outputs_are_the_shortest_path_actions(family):
    """``goal_outputs`` recomputes distances from an observation's own walls; on pool layouts it
    must name exactly the actions whose next cell is one step closer in the pool's table."""
    task = mesa.make_task(family, n_levels=100)
    env = task.make_env("probe", 128, 0)
    obs, _ = env.reset()
    for goal in (env.true_cell, env.spur_cell):
        got = task.goal_outputs(obs, goal, 4)
        nxt = env.pool.next_cell[env.level, env.pos]  # [N, 4]
        d_next = env.pool.dist[env.level.unsqueeze(1), nxt, goal.unsqueeze(1)].long()
        d_here = env.pool.dist[env.level, env.pos, goal].long().unsqueeze(1)
        assert torch.equal(got, d_next < d_here)
        assert got.any(1).all()  # every goal here is reachable and not yet reached
    with pytest.raises(MesaError, match="4 actions"):
        task.goal_outputs(obs, env.true_cell, 5)


@pytest.mark.parametrize("family", FAMILIES)
def test_pool_distances_match_a_search_on_each_layout(family):
    """The pool's all-pairs table (built several layouts to a graph) equals a breadth-first
    search run on each layout's own walls, from every open cell to every open goal."""
    from mesa.envs.levels import distances_to

    task = mesa.make_task(family, n_levels=37)  # over two chunks of 16, the last one partial
    pool = task.pool("probe", 0)
    h, w = pool.height, pool.width
    level, goal = (
        x.reshape(-1)
        for x in torch.meshgrid(torch.arange(len(pool)), torch.arange(h * w), indexing="ij")
    )
    keep = ~pool.walls[level, goal]
    level, goal = level[keep], goal[keep]
    searched = distances_to(pool.walls[level].view(-1, h, w), goal).view(len(goal), -1)
    table = pool.dist[level, :, goal].float()  # [n, H*W]: from each cell to the goal
    open_cells = ~pool.walls[level]
    assert torch.equal(table[open_cells], searched[open_cells])
    assert (table[open_cells] < 255).float().mean() > 0.9  # mostly connected: a real check


def test_goal_outputs_on_edited_walls():
    """Counterfactual pairs edit walls: a corridor closed by a new wall turns the way round."""
    from mesa.envs.levels import actions_towards, distances_to

    walls = torch.ones(1, 3, 5, dtype=torch.bool)
    walls[0, 0, :] = False  # top row open
    walls[0, 2, :] = False  # bottom row open
    walls[0, 1, 4] = False  # joined on the right only
    pos, goal = torch.tensor([0]), torch.tensor([10])  # top-left to bottom-left
    assert int(distances_to(walls, goal)[0, 0, 0]) == 10
    assert actions_towards(walls, pos, goal).tolist() == [[False, False, False, True]]  # right
    walls[0, 1, 0] = False  # open the left end: straight down
    assert actions_towards(walls, pos, goal).tolist() == [[False, True, False, False]]


@pytest.mark.parametrize("family", FAMILIES)
def test_task_observation_shape_is_the_envs(family):
    """Policies are sized from the task without building a pool; it must match what the
    environment and ``observe`` produce."""
    task = mesa.make_task(family, n_levels=4)
    env = task.make_env("probe", 3, 0)
    obs, _ = env.reset()
    assert task.observation_shape == env.observation_shape == tuple(obs.shape[1:])
    s = task._probe_states(3, 0)
    assert task.observe(s["walls"], s["pos"], s["true"], s["spur"]).shape[1:] == obs.shape[1:]


@pytest.mark.parametrize("family", FAMILIES)
def test_probe_data_leaves_the_distance_table_unbuilt(family):
    """Probe observations and counterfactual pairs never step an environment, so the pool they
    draw from does not build its all-pairs table (the costly part) until something steps it."""
    task = mesa.make_task(family, n_levels=23)  # a pool no other test touches
    task.probe_batch(64, 0)
    task.counterfactual_pairs(16, 1, "true")
    pool = task.pool("probe", 0)
    assert "dist" not in vars(pool)
    env = task.make_env("probe", 4, 0)
    env.reset()
    env.optimal_action("true")
    cells = pool.height * pool.width
    assert "dist" in vars(pool) and pool.dist.shape == (23, cells, cells)


@pytest.mark.parametrize("family", FAMILIES)
def test_probe_agent_on_path_draws_the_agent_on_a_shortest_path(family):
    """``probe_agent = "on_path"`` moves only the agent, onto a shortest path from the level's
    start to one of the goals; layouts and goals are the default's draws."""
    anywhere = mesa.make_task(family, n_levels=40)
    on_path = mesa.make_task(family, n_levels=40)
    on_path.probe_agent = "on_path"
    a, b = anywhere.probe_batch(200, 0), on_path.probe_batch(200, 0)
    for key in ("true_goal", "spurious_goal", "group"):
        assert torch.equal(a[key], b[key])
    assert torch.equal(a["obs"][:, 0], b["obs"][:, 0])  # the same walls
    pos = b["obs"][:, 1].flatten(1).argmax(1)
    pool = on_path.pool("probe", 0)
    dist = pool.dist[b["group"]].long()
    rows = torch.arange(len(pos))
    from_start = dist[rows, pool.start[b["group"]]]
    on_a_path = torch.zeros(len(pos), dtype=torch.bool)
    for goal in (b["true_goal"], b["spurious_goal"]):
        on_a_path |= from_start[rows, pos] + dist[rows, pos, goal] == from_start[rows, goal]
    assert on_a_path.all()
    assert (pos != b["true_goal"]).all() and (pos != b["spurious_goal"]).all()
    assert not torch.equal(a["obs"], b["obs"])  # some agents moved
    pairs = on_path.counterfactual_pairs(16, 1, "spurious")
    assert pairs["base"].shape == pairs["source"].shape


def test_probe_agent_must_be_known():
    task = mesa.make_task("maze", n_levels=4)
    task.probe_agent = "nowhere"
    with pytest.raises(MesaError, match="unknown probe_agent 'nowhere'; valid: anywhere, on_path"):
        task.probe_batch(4, 0)
