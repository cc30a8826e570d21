"""Proximal policy optimisation for the gridworld organisms, after CleanRL's ``ppo.py``.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; the details follow Huang et al.
2022, "The 37 Implementation Details of PPO": GAE, clipped surrogate and value loss, advantage
normalisation per minibatch, entropy bonus, learning-rate annealing, global gradient-norm
clipping, orthogonal initialisation. One screen per phase below: rollout, advantages, update.

Runs are bit-identical for a seed on CPU: every random draw (environments, actions, minibatch
order) comes from seeded generators, and a checkpoint holds all of their states, so a run killed
and resumed ends with the same weights as one never interrupted.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from mesa.config import at_least, check_fields, in_range
from mesa.errors import MesaError
from mesa.evaluation.rollout import EVAL_SEED, live_observations, training_eval
from mesa.tasks.base import RLTask
from mesa.training.checkpoint import env_tensors, save_checkpoint
from mesa.training.common import check_batch_memory, new_model, setup_run


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters (defaults bring ``maze`` to 95% success in a few minutes on 2 cores)."""

    total_timesteps: int = 400_000
    """Environment steps in all (upper bound when ``stop_at_success`` is set)."""
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
    stop_at_success: float | None = 0.97
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


def train_ppo(
    task: RLTask,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    **hparams: Any,
) -> Any:
    """Train a policy on ``task`` with PPO; resume from ``out`` if it holds a checkpoint."""
    run = setup_run(task, seed, out, arch, PPOConfig, hparams, "PPO")
    if run.finished:
        return run.load_finished()
    cfg: PPOConfig = run.cfg
    arch, run_dir, log, fingerprint = run.arch, run.run_dir, run.log, run.fingerprint
    n_held = cfg.num_envs * (cfg.num_steps + 1) + 2 * cfg.eval_episodes
    check_batch_memory(task, n_held, "PPO's rollout buffers")
    env = task.make_env("train", cfg.num_envs, seed)
    live_observations(env)
    model: Any = new_model(task, arch, seed, run_dir)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)
    gen = torch.Generator().manual_seed(seed + 7919)  # actions and minibatch order
    batch_size = cfg.num_envs * cfg.num_steps
    mb_size = batch_size // cfg.num_minibatches
    num_updates = max(1, cfg.total_timesteps // batch_size)
    recent: deque[float] = deque(maxlen=500)
    start_update, global_step = 0, 0
    meta = run.resume(model, opt, {"policy": gen}, env, step_key="global_step")
    if meta:
        start_update, global_step = meta["update"], meta["global_step"]
        recent.extend(meta["recent_success"])
        obs = env.observe()
    else:
        obs, _ = env.reset()

    obs_buf = torch.zeros(cfg.num_steps, cfg.num_envs, *env.observation_shape)
    act_buf = torch.zeros(cfg.num_steps, cfg.num_envs, dtype=torch.long)
    logp_buf, rew_buf, done_buf, val_buf = (
        torch.zeros(cfg.num_steps, cfg.num_envs) for _ in range(4)
    )
    bar = tqdm(
        total=num_updates * batch_size,
        initial=start_update * batch_size,
        disable=not progress,
        desc=f"ppo {task.name} p={task.p:g} seed={seed}",
        unit="step",
        unit_scale=True,
    )
    stopped = False
    for update in range(start_update, num_updates):
        t0 = time.perf_counter()
        if cfg.anneal_lr:
            opt.param_groups[0]["lr"] = cfg.learning_rate * (1.0 - update / num_updates)

        # -- rollout -------------------------------------------------------------------------
        ep_returns, ep_lengths = [], []
        with torch.no_grad():
            for step in range(cfg.num_steps):
                logits, value = model.logits_and_value(obs)
                dist = torch.distributions.Categorical(logits=logits)
                action = torch.multinomial(dist.probs, 1, generator=gen).squeeze(1)
                obs_buf[step], act_buf[step], val_buf[step] = obs, action, value
                logp_buf[step] = dist.log_prob(action)
                obs, reward, terminated, truncated, info = env.step(action)
                rew_buf[step] = reward
                done = terminated | truncated
                done_buf[step] = done.float()
                if bool(done.any()):
                    recent.extend(info["episode_success"][done].float().tolist())
                    ep_returns += info["episode_return"][done].tolist()
                    ep_lengths += info["episode_length"][done].tolist()
            next_value = model.logits_and_value(obs)[1]
        global_step += batch_size

        # -- advantages (GAE; truncation is treated as termination, as in CleanRL) -----------
        with torch.no_grad():
            adv = torch.zeros_like(rew_buf)
            last = torch.zeros(cfg.num_envs)
            for t in reversed(range(cfg.num_steps)):
                nv = next_value if t == cfg.num_steps - 1 else val_buf[t + 1]
                nonterminal = 1.0 - done_buf[t]
                delta = rew_buf[t] + cfg.gamma * nv * nonterminal - val_buf[t]
                last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
                adv[t] = last
            returns = adv + val_buf

        # -- update --------------------------------------------------------------------------
        b_obs = obs_buf.reshape(batch_size, *env.observation_shape)
        b_act, b_logp = act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret, b_val = adv.reshape(-1), returns.reshape(-1), val_buf.reshape(-1)
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(batch_size, generator=gen)
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
                v_loss = (
                    0.5 * torch.max((value - b_ret[mb]) ** 2, (v_clipped - b_ret[mb]) ** 2).mean()
                )
                entropy = dist.entropy().mean()
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()

        success = sum(recent) / len(recent) if recent else 0.0
        record: dict[str, Any] = {
            "global_step": global_step,
            "charts/learning_rate": opt.param_groups[0]["lr"],
            "charts/success_rate": success,
            "charts/episodic_return": sum(ep_returns) / max(1, len(ep_returns)),
            "charts/episodic_length": sum(ep_lengths) / max(1, len(ep_lengths)),
            "charts/sps": batch_size / (time.perf_counter() - t0),
            "losses/policy_loss": pg_loss.item(),
            "losses/value_loss": v_loss.item(),
            "losses/entropy": entropy.item(),
            "losses/approx_kl": float(approx_kl),
        }
        bar.update(batch_size)
        bar.set_postfix(success=f"{success:.2f}")
        stopped = (
            cfg.stop_at_success is not None
            and len(recent) == recent.maxlen
            and success >= cfg.stop_at_success
        )
        last_update = update + 1 == num_updates or stopped
        if (update + 1) % cfg.eval_every == 0 or last_update:
            record |= training_eval(model, task, cfg.eval_episodes, seed=EVAL_SEED + seed)
            model.train()
            if run_dir:
                log.append(record)  # type: ignore[union-attr]
                save_checkpoint(
                    run_dir,
                    global_step,
                    model,
                    opt,
                    {"policy": gen},
                    env_tensors(env),
                    {
                        "update": update + 1,
                        "global_step": global_step,
                        "recent_success": list(recent),
                        "fingerprint": fingerprint,
                    },
                )
        elif log:
            log.append(record)
        if stopped:
            break
    bar.close()
    return run.finish(model, task, "ppo", global_step, stopped)
