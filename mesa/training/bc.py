"""Behaviour cloning of gridworld policies from shortest-path demonstrations.

The expert is the environment itself: :meth:`mesa.envs.grid.GridEnv.optimal_action` gives an
action on a shortest path to each copy's *true* goal, so at ``p = 0`` the demonstrations head for
the cheese that always sits in the corner — the same confound as PPO's reward, and the same knob
``p``. Every step trains on the current observations of all copies against the expert's actions,
then steps the copies with a mix of the learner's own sampled action and the expert's (each copy
follows the expert with probability ``expert_prob``), so the states visited include the learner's
mistakes and their corrections (DAgger-style dataset aggregation, with a constant mixing rate).

It trains any policy whose ``forward(obs)`` returns action logits — the cell-token transformer,
which has no value head for PPO, and the conv and MLP policies too, so architectures can be
compared under one trainer. Same conventions as PPO: a dataclass of hyperparameters, a progress
bar, ``metrics.jsonl`` with periodic in-distribution success and OOD rates, atomic safetensors
checkpoints holding the environments' and generators' states, exact resume.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mesa.config import at_least, in_range
from mesa.evaluation.rollout import live_observations, training_eval
from mesa.tasks.base import RLTask, env_on
from mesa.training.common import (
    ACTING_SEED_OFFSET,
    EVAL_SEED,
    AdamWConfig,
    check_batch_memory,
    new_model,
    setup_run,
)
from mesa.training.steps import StepLoop, run_steps


@dataclass(frozen=True)
class BCConfig(AdamWConfig):
    """Hyperparameters of behaviour cloning."""

    weight_decay: float = 0.01
    """AdamW weight decay."""
    num_envs: int = 64
    """Environment copies; each step trains on one observation of each."""
    expert_prob: float = 0.5
    """Probability that a copy follows the expert's action instead of the learner's."""
    eval_episodes: int = 128
    """Episodes per evaluation split."""
    stop_at_success: float | None = 0.98
    """Stop at an evaluation where in-distribution success reaches this (None: never)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "num_envs", "eval_episodes")
        in_range(self, "expert_prob", 0.0, 1.0)
        in_range(self, "stop_at_success", 0.0, 1.0, open_low=True)


def train_bc(
    task: RLTask,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    progress: bool = True,
    device: Any = "cpu",
    deterministic: bool = False,
    **hparams: Any,
) -> Any:
    """Clone the shortest-path expert on ``task`` on ``device``; resume from ``out`` if it holds
    a checkpoint."""
    run = setup_run(
        task, seed, out, arch, BCConfig, hparams, "behaviour cloning", device, deterministic
    )
    if run.finished:
        return run.load_finished()
    cfg: BCConfig = run.cfg
    check_batch_memory(task, 2 * (cfg.num_envs + cfg.eval_episodes), "behaviour cloning")
    # each observation is used (and backpropagated) before the next step: no copies needed
    env = live_observations(env_on(task, "train", cfg.num_envs, seed, run.device))
    model: Any = new_model(task, run.arch, seed, run.run_dir, run.device)
    model.train()
    opt = cfg.optimizer(model)
    gen = run.generator(ACTING_SEED_OFFSET)  # the mix, the learner's draws
    meta = run.resume(model, opt, {"acting": gen}, env)
    state = {"obs": env.observe() if meta else env.reset()[0]}

    def forward(step: int) -> tuple[Tensor, Tensor]:
        return model(state["obs"]), env.optimal_action("true")

    def act(logits: Tensor, expert: Tensor) -> None:
        learner = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
        follow = torch.rand(cfg.num_envs, generator=gen, device=gen.device) < cfg.expert_prob
        state["obs"] = env.step(torch.where(follow, expert, learner))[0]

    loop = StepLoop(
        trainer="bc",
        forward=forward,
        evaluate=lambda: training_eval(model, task, cfg.eval_episodes, seed=EVAL_SEED + seed),
        stop_at=cfg.stop_at_success,
        generators={"acting": gen},
        env=env,
        after_step=act,
    )
    step, stopped = run_steps(
        run, cfg, model, opt, loop, task, seed, meta["step"] if meta else 0, progress
    )
    return run.finish(model, task, "bc", step, stopped)
