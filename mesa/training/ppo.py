"""Proximal policy optimisation for the gridworld organisms.

The standard implementation details: GAE, clipped surrogate and value loss, advantage
normalisation per minibatch, entropy bonus, learning-rate annealing, global gradient-norm
clipping, orthogonal initialisation. One screen per phase below: rollout, advantages, update.

Runs are bit-identical for a seed on CPU: every random draw (environments, actions, minibatch
order) comes from seeded generators, and a checkpoint holds all of their states, so a run killed
and resumed ends with the same weights as one never interrupted.

On a GPU the policy, the environments, the rollout buffer and the generators all live there:
a rollout crosses to the host once, at its end, to log the episodes that finished (not once per
step), and the environments' observations never do.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mesa.config import at_least, check_fields, in_range
from mesa.errors import MesaError, MesaWarning
from mesa.evaluation.rollout import live_observations, training_eval
from mesa.tasks.base import RLTask, env_on
from mesa.training.common import (
    ACTING_SEED_OFFSET,
    EVAL_SEED,
    check_batch_memory,
    new_model,
    setup_run,
)


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. The defaults train every built-in gridworld to at least 95% success on
    fresh training layouts at each p of its default grid: stop at 99% training success over the
    last episodes, or after a million steps (the learning rate anneals over that horizon)."""

    total_timesteps: int = 1_000_000
    """Environment steps in all (upper bound when ``stop_at_success`` is set), in whole rollouts:
    rounded down to a multiple of ``num_envs * num_steps``, at least one (a warning says so when
    that is over 1% off)."""
    num_envs: int = 64
    """Environment copies stepped together."""
    num_steps: int = 64
    """Steps per copy per rollout; a batch is ``num_envs * num_steps``."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    update_epochs: int = 4
    """Passes over each batch."""
    learning_rate: float = 1e-3
    """Adam step size at the start (annealed linearly to 0 when ``anneal_lr``)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly over ``total_timesteps``."""
    gamma: float = 0.97
    """Discount (below 0.99: short gridworld episodes, and it favours shortest paths)."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    clip_coef: float = 0.2
    """Surrogate clipping range."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (skipped when they are all equal, e.g. all zero)."""
    stop_at_success: float | None = 0.99
    """Stop once the success rate over the last 500 training episodes reaches this (None: never)."""
    eval_every: int = 10
    """Updates between evaluations (in-distribution success and OOD rates) and checkpoints."""
    eval_episodes: int = 128
    """Episodes per evaluation split."""
    num_threads: int = 1
    """torch threads; results depend on it, so it is part of the run's settings."""

    def __post_init__(self) -> None:
        check_fields(self)
        at_least(self, 1, "total_timesteps", "num_envs", "num_steps", "num_minibatches")
        at_least(self, 1, "update_epochs", "eval_every", "eval_episodes", "num_threads")
        at_least(self, 0, "ent_coef", "vf_coef")
        in_range(self, "learning_rate", 0.0, 10.0, open_low=True)
        in_range(self, "gamma", 0.0, 1.0, open_low=True)
        in_range(self, "gae_lambda", 0.0, 1.0)
        in_range(self, "clip_coef", 0.0, math.inf, open_low=True)
        in_range(self, "max_grad_norm", 0.0, math.inf, open_low=True)
        in_range(self, "stop_at_success", 0.0, 1.0, open_low=True)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise MesaError("num_envs * num_steps must be divisible by num_minibatches")


#: Episodes over which the training success rate (the early-stop criterion) is averaged.
SUCCESS_WINDOW = 500


def whole_rollouts(cfg: PPOConfig) -> int:
    """Rollouts (updates) in ``total_timesteps``: rounded down, at least one; a warning says
    when that changes the number of steps asked for by more than 1% (the default million
    steps run 244 rollouts of 4096, 0.06% fewer, and say nothing)."""
    batch_size = cfg.num_envs * cfg.num_steps
    n = max(1, cfg.total_timesteps // batch_size)
    if abs(n * batch_size - cfg.total_timesteps) > 0.01 * cfg.total_timesteps:
        warnings.warn(
            f"total_timesteps {cfg.total_timesteps} is not a whole number of rollouts of "
            f"num_envs * num_steps = {batch_size}: training runs {n} rollout(s), "
            f"{n * batch_size} steps",
            MesaWarning,
            stacklevel=3,
        )
    return n


@dataclass
class Rollout:
    """One batch of experience, ``[num_steps, num_envs, ...]`` each, filled in place."""

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    rewards: Tensor
    dones: Tensor
    values: Tensor

    @classmethod
    def empty(
        cls,
        num_steps: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        device: torch.device | None = None,
    ) -> Rollout:
        zeros = lambda: torch.zeros(num_steps, num_envs, device=device)  # noqa: E731
        return cls(
            obs=torch.zeros(num_steps, num_envs, *obs_shape, device=device),
            actions=torch.zeros(num_steps, num_envs, dtype=torch.long, device=device),
            logprobs=zeros(),
            rewards=zeros(),
            dones=zeros(),
            values=zeros(),
        )


@dataclass
class Episodes:
    """What the finished episodes of one rollout say (``charts/`` metrics)."""

    returns: list[float]
    lengths: list[float]

    def charts(
        self, global_step: int, opt: torch.optim.Optimizer, success: float, sps: float
    ) -> dict[str, Any]:
        return {
            "global_step": global_step,
            "charts/learning_rate": opt.param_groups[0]["lr"],
            "charts/success_rate": success,
            "charts/episodic_return": sum(self.returns) / max(1, len(self.returns)),
            "charts/episodic_length": sum(self.lengths) / max(1, len(self.lengths)),
            "charts/sps": sps,
        }


#: What a rollout keeps of each step's ``info`` until it ends.
_EPISODE_KEYS = ("episode_success", "episode_return", "episode_length")


@torch.no_grad()
def collect_rollout(
    model: Any,
    env: Any,
    obs: Tensor,
    buf: Rollout,
    gen: torch.Generator,
    recent: deque[float],
) -> tuple[Tensor, Tensor, Episodes]:
    """Step every copy ``num_steps`` times with actions sampled from the policy; fill ``buf``,
    add finished episodes' success to ``recent``. Returns the next observations, their values
    (to bootstrap the advantages) and the finished episodes.

    The finished episodes' records stay where the environments are until the rollout ends, then
    cross to the host in one go, in the order they finished (step by step, copy by copy)."""
    finished: dict[str, Tensor] = {}
    for step in range(len(buf.obs)):
        logits, value = model.logits_and_value(obs)
        dist = torch.distributions.Categorical(logits=logits)
        action = torch.multinomial(dist.probs, 1, generator=gen).squeeze(1)
        buf.obs[step], buf.actions[step], buf.values[step] = obs, action, value
        buf.logprobs[step] = dist.log_prob(action)
        obs, reward, terminated, truncated, info = env.step(action)
        buf.rewards[step] = reward
        buf.dones[step] = (terminated | truncated).float()
        for key in _EPISODE_KEYS:  # copied: an environment may reuse its info tensors
            if step == 0:
                finished[key] = info[key].new_zeros((len(buf.obs), *info[key].shape))
            finished[key][step] = info[key]
    done = buf.dones.bool()
    recent.extend(finished["episode_success"][done].float().tolist())
    episodes = Episodes(
        finished["episode_return"][done].tolist(), finished["episode_length"][done].tolist()
    )
    return obs, model.logits_and_value(obs)[1], episodes


@torch.no_grad()
def advantages(buf: Rollout, next_value: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates ``[num_steps, num_envs]`` (GAE; a truncated episode is
    treated as terminated)."""
    adv = torch.zeros_like(buf.rewards)
    last = torch.zeros(buf.rewards.shape[1], device=buf.rewards.device)
    for t in reversed(range(len(buf.rewards))):
        nv = next_value if t == len(buf.rewards) - 1 else buf.values[t + 1]
        nonterminal = 1.0 - buf.dones[t]
        delta = buf.rewards[t] + gamma * nv * nonterminal - buf.values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv


def ppo_update(
    model: Any,
    opt: torch.optim.Optimizer,
    buf: Rollout,
    adv: Tensor,
    cfg: PPOConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """``update_epochs`` passes of clipped-surrogate minibatch steps over the batch; returns the
    last minibatch's ``losses/`` metrics."""
    batch_size = buf.rewards.numel()
    mb_size = batch_size // cfg.num_minibatches
    obs_shape = buf.obs.shape[2:]
    b_obs = buf.obs.reshape(batch_size, *obs_shape)
    b_act, b_logp = buf.actions.reshape(-1), buf.logprobs.reshape(-1)
    b_adv, b_val = adv.reshape(-1), buf.values.reshape(-1)
    b_ret = b_adv + b_val
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(batch_size, generator=gen, device=gen.device)
        for start in range(0, batch_size, mb_size):
            mb = perm[start : start + mb_size]
            logits, value = model.logits_and_value(b_obs[mb])
            dist = torch.distributions.Categorical(logits=logits)
            logratio = dist.log_prob(b_act[mb]) - b_logp[mb]
            ratio = logratio.exp()
            mb_adv = b_adv[mb]
            std = mb_adv.std()
            if cfg.norm_adv and std > 1e-8:  # an all-zero batch (no reward yet) stays zero
                mb_adv = (mb_adv - mb_adv.mean()) / (std + 1e-8)
            pg_loss = torch.max(
                -mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
            ).mean()
            v_clipped = b_val[mb] + (value - b_val[mb]).clamp(-cfg.clip_coef, cfg.clip_coef)
            v_loss = 0.5 * torch.max((value - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2).mean()
            entropy = dist.entropy().mean()
            loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            opt.step()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - logratio).mean()
    return {
        "losses/policy_loss": pg_loss.item(),
        "losses/value_loss": v_loss.item(),
        "losses/entropy": entropy.item(),
        "losses/approx_kl": float(approx_kl),
    }


def _start(
    run: Any, model: Any, opt: torch.optim.Optimizer, gen: torch.Generator, env: Any
) -> tuple[int, int, deque[float], Tensor]:
    """``(update, global step, recent successes, observations)`` to start from: a checkpoint's,
    or a fresh run's."""
    recent: deque[float] = deque(maxlen=SUCCESS_WINDOW)
    meta = run.resume(model, opt, {"policy": gen}, env, step_key="global_step")
    if not meta:
        return 0, 0, recent, env.reset()[0]
    recent.extend(meta["recent_success"])
    return meta["update"], meta["global_step"], recent, env.observe()


def _policy(task: RLTask, run: Any, seed: int) -> Any:
    """A fresh policy with a value head (``logits_and_value``) on the run's device, or a
    one-line refusal."""
    model = new_model(task, run.arch, seed, run.run_dir, run.device)
    if not callable(getattr(model, "logits_and_value", None)):
        raise MesaError(
            f"PPO needs a value head: {type(model).__name__} has no logits_and_value(obs) "
            "method; add one, or use trainer='bc'"
        )
    return model


def _reached(cfg: PPOConfig, recent: deque[float], success: float) -> bool:
    """Whether the success rate over a full window of episodes reached ``stop_at_success``."""
    stop = cfg.stop_at_success
    return stop is not None and len(recent) == recent.maxlen and success >= stop


def train_ppo(
    task: RLTask,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    device: Any = "cpu",
    deterministic: bool = False,
    **hparams: Any,
) -> Any:
    """Train a policy on ``task`` with PPO on ``device``; resume from ``out`` if it holds a
    checkpoint."""
    run = setup_run(task, seed, out, arch, PPOConfig, hparams, "PPO", device, deterministic)
    if run.finished:
        return run.load_finished()
    cfg: PPOConfig = run.cfg
    check_batch_memory(task, cfg.num_envs * (cfg.num_steps + 1) + 2 * cfg.eval_episodes, "PPO")
    env = live_observations(env_on(task, "train", cfg.num_envs, seed, run.device))
    model = _policy(task, run, seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)
    gen = run.generator(ACTING_SEED_OFFSET)  # actions, minibatch order
    batch_size = cfg.num_envs * cfg.num_steps
    num_updates = whole_rollouts(cfg)
    start_update, global_step, recent, obs = _start(run, model, opt, gen, env)
    buf = Rollout.empty(cfg.num_steps, cfg.num_envs, env.observation_shape, run.device)
    bar = run.progress_bar(
        num_updates * batch_size, start_update * batch_size, progress, "ppo", task, seed
    )
    stopped = False
    for update in range(start_update, num_updates):
        t0 = time.perf_counter()
        if cfg.anneal_lr:
            opt.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - update / num_updates)
        obs, next_value, episodes = collect_rollout(model, env, obs, buf, gen, recent)
        global_step += batch_size
        losses = ppo_update(
            model, opt, buf, advantages(buf, next_value, cfg.gamma, cfg.gae_lambda), cfg, gen
        )
        success = sum(recent) / len(recent) if recent else 0.0
        record = episodes.charts(global_step, opt, success, batch_size / (time.perf_counter() - t0))
        record |= losses
        bar.update(batch_size)
        bar.set_postfix(success=f"{success:.2f}")
        stopped = _reached(cfg, recent, success)
        if (update + 1) % cfg.eval_every == 0 or update + 1 == num_updates or stopped:
            record |= training_eval(model, task, cfg.eval_episodes, seed=EVAL_SEED + seed)
            model.train()
            meta = {
                "update": update + 1,
                "global_step": global_step,
                "recent_success": list(recent),
            }
            run.checkpoint(record, global_step, model, opt, {"policy": gen}, env, meta)
        elif run.log:
            run.log.append(record)
        if stopped:
            break
    bar.close()
    return run.finish(model, task, "ppo", global_step, stopped)
