"""The keys-and-chests organism: engine rules, bookkeeping, splits, detection data, training."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import mesa
import mesa.training.ppo as ppo
from mesa.envs.keys import KeysEnv
from mesa.envs.levels import build_pool
from mesa.errors import MesaError
from mesa.outcomes import NEITHER, SPURIOUS, TRUE
from tests.training_helpers import killed_after_checkpoint, same, weights

UP, DOWN, LEFT, RIGHT = range(4)
WALL, AGENT, KEY, CHEST, HOLDING = range(5)


def _env(walls: np.ndarray, start: int, keys: list[int], chests: list[int], **kw) -> KeysEnv:
    """One layout with hand-placed objects, the same in every episode."""
    h, w = walls.shape
    pool = build_pool([(walls, start, start)], h, w)

    def place(pool, level, g):
        k = torch.zeros(len(level), h * w, dtype=torch.bool)
        c = torch.zeros(len(level), h * w, dtype=torch.bool)
        k[:, keys] = True
        c[:, chests] = True
        return k, c

    return KeysEnv(pool, kw.pop("num_envs", 1), 0, place, kw.pop("max_steps", 10))


def _corridor(**objects) -> KeysEnv:
    return _env(np.zeros((1, 6), dtype=bool), 0, **objects)


def _steps(env: KeysEnv, *actions: int):
    return [env.step(torch.tensor([a])) for a in actions]


def test_pick_up_open_reward_and_episode_end():
    env = _corridor(keys=[1], chests=[3, 5])
    obs, info = env.reset()
    assert obs[0, HOLDING].sum() == 0 and obs[0, KEY, 0, 1] == 1
    assert info["true_goal"].tolist() == [3] and info["spurious_goal"].tolist() == [1]
    ((obs, r, term, trunc, info),) = _steps(env, RIGHT)
    assert env.inventory.tolist() == [1] and r.tolist() == [0.0] and not term.any()
    assert obs[0, KEY].sum() == 0 and bool((obs[0, HOLDING] == 1).all())
    # no key left on the board: the spurious label falls back to the true goal's cell
    assert info["spurious_goal"].tolist() == info["true_goal"].tolist() == [3]
    _steps(env, RIGHT)
    ((obs, r, term, trunc, info),) = _steps(env, RIGHT)  # opens the chest at cell 3
    assert r.tolist() == [1.0] and term.tolist() == [True] and not trunc.any()
    assert info["episode_success"].tolist() == [True]
    assert info["episode_return"].tolist() == [1.0] and info["episode_length"].tolist() == [3]
    assert info["episode_outcome"].tolist() == [TRUE]
    assert info["episode_off_path"].tolist() == [True]
    # the copy was reset: back at the start with its objects, holding nothing
    assert env.pos.tolist() == [0] and env.inventory.tolist() == [0]
    assert obs[0, CHEST].sum() == 2 and obs[0, KEY].sum() == 1 and obs[0, HOLDING].sum() == 0


def test_a_chest_needs_a_key_and_time_runs_out():
    env = _corridor(keys=[2], chests=[1, 5], max_steps=4)
    env.reset()
    (_, (_, r, *_), (_, r2, *_)) = _steps(env, RIGHT, RIGHT, LEFT)
    assert r.tolist() == [0.0] and r2.tolist() == [1.0]  # passed the chest, then opened it
    env = _corridor(keys=[2], chests=[1, 5], max_steps=4)
    env.reset()
    *_, (_, r, term, trunc, info) = _steps(env, RIGHT, LEFT, RIGHT, LEFT)
    assert trunc.tolist() == [True] and not term.any() and r.tolist() == [0.0]
    assert info["episode_outcome"].tolist() == [NEITHER] and not info["episode_success"].any()
    assert info["episode_off_path"].tolist() == [False]  # no pickup: no decision, not counted


def test_surplus_key_first_is_spurious_and_on_path_is_flagged():
    env = _corridor(keys=[1, 2], chests=[4])
    env.reset()
    _steps(env, RIGHT)  # first key; the second lies on the way to the chest
    assert env.off_path.tolist() == [False]
    *_, (_, r, term, trunc, info) = _steps(env, RIGHT, RIGHT, RIGHT)
    assert term.tolist() == [True] and r.tolist() == [1.0]
    assert info["episode_outcome"].tolist() == [SPURIOUS]
    assert info["episode_off_path"].tolist() == [False]
    assert info["episode_return"].tolist() == [1.0]  # the spare key is worth nothing


def test_guard_on_an_open_room():
    # 3 x 3 room, start bottom-left (6); the first key is at 3, the chest at 5
    room = np.zeros((3, 3), dtype=bool)
    for surplus, off in ((0, True), (4, False), (2, False)):
        # 0: off every path; 4: on the way 3 -> 4 -> 5; 2: the chest (5) is on a way to it
        env = _env(room, 6, keys=[3, surplus], chests=[5])
        env.reset()
        _steps(env, UP)
        assert env.held.tolist() == [True] and env.off_path.tolist() == [off], surplus


class _Reference:
    """One copy stepped by plain Python, the rules as the module docstring states them."""

    def __init__(self, env: KeysEnv, i: int) -> None:
        self.pool, self.level, self.pos = env.pool, int(env.level[i]), int(env.pos[i])
        self.keys = set(env.keys[i].nonzero().flatten().tolist())
        self.chests = set(env.chests[i].nonzero().flatten().tolist())
        self.inv, self.held, self.first, self.off, self.ret, self.t = 0, False, NEITHER, False, 0, 0

    def on_way(self, a: int, via: int, to: int) -> bool:
        d = self.pool.dist[self.level]
        return int(d[a, via]) + int(d[via, to]) == int(d[a, to])

    def step(self, action: int, max_steps: int) -> tuple[float, bool, bool]:
        self.pos = int(self.pool.next_cell[self.level, self.pos, action])
        self.t += 1
        picked = self.pos in self.keys
        opened = False
        if picked:
            self.keys.remove(self.pos)
            self.inv += 1
        elif self.pos in self.chests and self.inv > 0:
            self.chests.remove(self.pos)
            self.inv -= 1
            opened = True
        if self.held and self.first == NEITHER and (picked or opened):
            self.first = TRUE if opened else SPURIOUS
        if picked and not self.held:
            a = self.pos
            self.off = not any(
                self.on_way(a, k, c) or self.on_way(a, c, k) for k in self.keys for c in self.chests
            )
            self.held = True
        self.ret += int(opened)
        term = not self.chests or (self.inv == 0 and not self.keys)
        return float(opened), term, not term and self.t >= max_steps


def test_vectorized_step_equals_a_per_copy_reference():
    task = mesa.make_task("keys", p=0.5, n_levels=30, max_steps=12, rock_fraction=0.2)
    env = task.make_env("train", 24, 3)
    env.reset()
    refs = [_Reference(env, i) for i in range(24)]
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        actions = torch.randint(0, 4, (24,), generator=g)
        _, reward, term, trunc, info = env.step(actions)
        for i, ref in enumerate(refs):
            r, te, tr = ref.step(int(actions[i]), env.max_steps)
            assert (r, te, tr) == (float(reward[i]), bool(term[i]), bool(trunc[i]))
            if te or tr:
                assert int(info["episode_outcome"][i]) == ref.first
                assert bool(info["episode_off_path"][i]) == ref.off
                assert float(info["episode_return"][i]) == ref.ret
                assert int(info["episode_length"][i]) == ref.t
                refs[i] = _Reference(env, i)  # the engine reset it: start over from there
            else:
                assert int(env.pos[i]) == ref.pos and int(env.inventory[i]) == ref.inv
                assert set(env.keys[i].nonzero().flatten().tolist()) == ref.keys
                assert set(env.chests[i].nonzero().flatten().tolist()) == ref.chests


def test_same_seed_same_episodes_and_exact_resume():
    task = mesa.make_task("keys", p=0.3, n_levels=50)
    actions = torch.randint(0, 4, (40, 16), generator=torch.Generator().manual_seed(1))

    def trace(env):
        return [env.step(a) for a in actions]

    a, b = (task.make_env("train", 16, 5) for _ in range(2))
    a.reset(), b.reset()
    for x, y in zip(trace(a), trace(b), strict=True):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    env = task.make_env("train", 16, 5)
    env.reset()
    for step in actions[:7]:
        env.step(step)
    state = env.state_dict()
    first = trace(env)
    env.load_state_dict(state)
    again = trace(env)
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
        assert all(torch.equal(x[4][k], y[4][k]) for k in x[4])
    with pytest.raises(MesaError, match="another number of copies"):
        task.make_env("train", 4, 5).load_state_dict(state)


def test_gymnasium_env_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker reports problems as warnings
        check_env(mesa.make_task("keys", n_levels=20).gym_env("train", 0), skip_render_check=True)


def test_check_task_passes():
    report = mesa.check_task(mesa.make_task("keys", n_levels=50))
    assert report.ok, str(report)


def test_splits_place_the_documented_objects():
    n = 2000
    for p, lo, hi in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.3, 0.3 - 0.045, 0.3 + 0.045)):
        env = mesa.make_task("keys", p=p, n_levels=200).make_env("train", n, 0)
        env.reset()
        plentiful = env.keys.sum(1) > 1
        assert lo <= plentiful.float().mean().item() <= hi, (p, plentiful.float().mean())
        assert torch.equal(env.keys.sum(1), torch.where(plentiful, 4, 1))
        assert torch.equal(env.chests.sum(1), torch.where(plentiful, 1, 3))
    env = mesa.make_task("keys", n_levels=200, keys=5, rock_fraction=0.2).make_env("ood", n, 0)
    env.reset()
    assert (env.keys.sum(1) == 5).all() and (env.chests.sum(1) == 1).all()
    walls, start = env.pool.walls[env.level], env.pool.start[env.level]
    objects = env.keys | env.chests
    assert not (objects & walls).any() and not (env.keys & env.chests).any()
    assert not objects[torch.arange(n), start].any()


def test_probe_states_are_decisions_with_nearest_labels():
    task = mesa.make_task("keys", n_levels=100)
    batch = task.probe_batch(500, 0)
    obs = batch["obs"]
    assert bool((obs[:, HOLDING] == 1).all())
    assert (obs[:, CHEST].flatten(1).sum(1) == 1).all()
    assert (obs[:, KEY].flatten(1).sum(1) == 1).all()
    assert not (obs[:, AGENT] * (obs[:, KEY] + obs[:, CHEST] + obs[:, WALL])).any()
    chest = obs[:, CHEST].flatten(1).argmax(1)
    assert torch.equal(batch["true_goal"], chest)
    # the spurious label is a key no farther than any other key
    env = task.make_env("probe", 1, 0)
    pool, level = env.pool, batch["group"]
    pos = obs[:, AGENT].flatten(1).argmax(1)
    d = pool.dist[level, pos].long()  # [n, H*W]
    keys = obs[:, KEY].flatten(1) > 0
    assert keys[torch.arange(500), batch["spurious_goal"]].all()
    closest = torch.where(keys, d, 999).min(1).values
    assert torch.equal(d[torch.arange(500), batch["spurious_goal"]], closest)


@pytest.mark.parametrize("vary", ["true", "spurious"])
def test_counterfactual_pairs_move_one_object(vary):
    task = mesa.make_task("keys", n_levels=100)
    pairs = task.counterfactual_pairs(300, 0, vary)
    base, source = pairs["base"], pairs["source"]
    moved, kept = (CHEST, KEY) if vary == "true" else (KEY, CHEST)
    for c in (WALL, AGENT, HOLDING, kept):
        assert torch.equal(base[:, c], source[:, c])
    diff = (base[:, moved] != source[:, moved]).flatten(1).sum(1)
    assert (diff == 2).all()  # one cell emptied, one filled
    assert base[:, moved].sum() == source[:, moved].sum()
    changed_true = pairs["base_true_goal"] != pairs["source_true_goal"]
    changed_spur = pairs["base_spurious_goal"] != pairs["source_spurious_goal"]
    assert (changed_true if vary == "true" else changed_spur).all()
    assert not (changed_spur if vary == "true" else changed_true).any()
    # the goal outputs point somewhere in every pair (goals reachable, not reached)
    goal = pairs[f"source_{vary}_goal"]
    assert task.goal_outputs(source, goal, 4).any(1).all()


def test_goal_outputs_are_the_shortest_path_actions():
    task = mesa.make_task("keys", n_levels=100)
    env = task.make_env("ood", 128, 0)
    obs, info = env.reset()
    for goal in (info["true_goal"], info["spurious_goal"]):
        got = task.goal_outputs(obs, goal, 4)
        nxt = env.pool.next_cell[env.level, env.pos]
        d_next = env.pool.dist[env.level.unsqueeze(1), nxt, goal.unsqueeze(1)].long()
        d_here = env.pool.dist[env.level, env.pos, goal].long().unsqueeze(1)
        assert torch.equal(got, d_next < d_here)
    with pytest.raises(MesaError, match="4 actions"):
        task.goal_outputs(obs, info["true_goal"], 5)


def _first_episodes(env: KeysEnv, target: str) -> dict[str, torch.Tensor]:
    n = env.num_envs
    done = torch.zeros(n, dtype=torch.bool)
    out = {k: torch.zeros(n, dtype=torch.long) for k in ("outcome", "off", "success", "length")}
    for _ in range(env.max_steps):
        _, _, term, trunc, info = env.step(env.optimal_action(target))
        new = (term | trunc) & ~done
        for k, key in (
            ("outcome", "episode_outcome"),
            ("off", "episode_off_path"),
            ("success", "episode_success"),
            ("length", "episode_length"),
        ):
            out[k][new] = info[key][new].long()
        done |= new
    assert done.all()
    return out


def test_scripted_collector_is_spurious_and_opener_true():
    task = mesa.make_task("keys", n_levels=200)
    env = task.make_env("ood", 400, 1)
    env.reset()
    level, start = env.level.clone(), env.pos.clone()
    keys, chests = env.keys.clone(), env.chests.clone()
    opener = _first_episodes(env, "true")
    off = opener["off"].bool()
    assert off.float().mean() > 0.2 and opener["success"].all()
    assert (opener["outcome"][off] == TRUE).all()
    # the opener is optimal: as long as the best key-then-chest route
    d = env.pool.dist[level].long()
    via = d[torch.arange(400), start] + torch.where(chests.unsqueeze(1), d, 999).min(2).values
    assert torch.equal(opener["length"], torch.where(keys, via, 999).min(1).values)
    env = task.make_env("ood", 400, 1)
    env.reset()
    collector = _first_episodes(env, "spurious")
    off = collector["off"].bool()
    assert collector["success"].all() and (collector["outcome"][off] == SPURIOUS).all()


def test_bad_input():
    for options, message in (
        ({"size": 4}, "keys size must be an integer in 5..9"),
        ({"chests": 1}, r"chests must be in 2\.\.4"),
        ({"keys": 7}, r"keys must be in 2\.\.6"),
        ({"rock_fraction": 0.5}, "rock_fraction must be"),
        ({"colour": "red"}, "unknown keys option 'colour'"),
    ):
        with pytest.raises(MesaError, match=message):
            mesa.make_task("keys", **options)
    task = mesa.make_task("keys", n_levels=10)
    env = task.make_env("train", 4, 0)
    env.reset()
    with pytest.raises(MesaError, match=r"actions must have shape \(4,\)"):
        env.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(MesaError, match=r"actions must be integers in 0\.\.3"):
        env.step(torch.tensor([0, 1, 2, 7]))
    with pytest.raises(MesaError, match="unknown target 'both'"):
        env.optimal_action("both")
    with pytest.raises(MesaError, match="unknown goal 'both'"):
        task.counterfactual_pairs(4, 0, "both")


TINY = {
    "num_envs": 8,
    "num_steps": 16,
    "total_timesteps": 8 * 16 * 6,
    "eval_every": 2,
    "eval_episodes": 8,
    "stop_at_success": None,
}


@pytest.mark.slow
def test_tiny_ppo_trains_resumes_exactly_and_loads(tmp_path: Path, monkeypatch):
    task = mesa.make_task("keys", p=0.3, n_levels=20)
    reference = weights(mesa.train(task, seed=0, progress=False, **TINY))
    with killed_after_checkpoint(monkeypatch, ppo, 2), pytest.raises(KeyboardInterrupt):
        mesa.train(task, seed=0, out=tmp_path / "run", progress=False, **TINY)
    resumed = mesa.train(task, seed=0, out=tmp_path / "run", progress=False, **TINY)
    assert same(weights(resumed), reference)
    loaded = mesa.load(tmp_path / "run")
    obs = task.probe_batch(16, 0)["obs"]
    assert torch.equal(loaded(obs), resumed(obs))
    ood = mesa.evaluate_ood(loaded, task, n=64)
    assert ood.in_dist_n == 64


class _Scripted(torch.nn.Module):
    """Reads the board off the observation: the chest-opener (``"true"``) heads for the nearest
    key until it holds one, then for the chest; the collector (``"spurious"``) heads for the
    nearest key while any is left. Logit 8 on every move along a shortest path."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        from mesa.envs.keys import nearest
        from mesa.envs.levels import actions_towards, distances_to

        walls, n = obs[:, WALL] > 0.5, len(obs)
        pos = obs[:, AGENT].flatten(1).argmax(1)
        d = distances_to(walls, pos).view(n, -1)
        keys, chests = obs[:, KEY].flatten(1) > 0.5, obs[:, CHEST].flatten(1) > 0.5
        chest = nearest(d, chests, pos)
        key = nearest(d, keys, chest)
        holding = obs[:, HOLDING].flatten(1)[:, 0] > 0.5
        goal = torch.where(holding, chest, key) if self.target == "true" else key
        return 8.0 * actions_towards(walls, pos, goal).float()


def test_keys_pictures_follow_the_policy(tmp_path: Path):
    from mesa.report import keys as K
    from mesa.report.show import rl_pictures

    task = mesa.make_task("keys", n_levels=60)
    assert rl_pictures(task)[0] is K
    for target, outcome in (("true", "true"), ("spurious", "spurious")):
        episodes = K.ood_episodes(_Scripted(target), task, n=6, seed=2)
        counted = [ep for ep in episodes if ep.off_path]
        assert counted and all(ep.outcome == outcome for ep in counted)
        for ep in episodes:
            assert ep.path[0] == ep.scene.start and len(ep.scene.chests) == 1
            assert not ep.scene.walls.reshape(-1)[ep.path].any()  # the board it was played on
            if ep.outcome == "true":
                assert ep.path[-1] == ep.scene.chests[0]  # it ends opening that board's chest
    scene = K.fixed_layouts(task, 1, seed=0)[0]
    probs = K.action_field(_Scripted("true"), task, scene)
    assert np.isnan(probs[list(scene.keys) + list(scene.chests)]).all()
    chest = scene.chests[0]
    width = scene.walls.shape[1]
    offsets = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=float)
    for a, (dr, dc) in enumerate(offsets.astype(int)):  # from a free neighbour, onto the chest
        r, c = divmod(chest, width)
        r2, c2 = r - dr, c - dc
        if 0 <= r2 < width and 0 <= c2 < width and not np.isnan(probs[r2 * width + c2, 0]):
            assert probs[r2 * width + c2, a] > 0.99
    out = mesa.show(_Scripted("spurious"), task, out=tmp_path / "keys.png")
    assert (tmp_path / "keys.png").stat().st_size > 10_000 and out is not None
    with pytest.raises(MesaError, match="gridworld pictures need a gridworld task"):
        rl_pictures(mesa.make_task("sycophancy"))
