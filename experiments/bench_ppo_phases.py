"""Benchmark: where a PPO training run's time goes, per gridworld family, on this machine's CPU.

For each family, one policy is trained with the default PPO settings for ``--updates`` updates
(at ``--p``, seed ``--seed``; one torch thread, as in a zoo member) through the trainer's own
phases — :func:`mesa.training.ppo.collect_rollout` (acting and stepping the environments),
:func:`~mesa.training.ppo.advantages`, :func:`~mesa.training.ppo.ppo_update` (forward, backward
and optimizer steps over the minibatches) — and every ``eval_every`` updates the per-checkpoint
evaluation (:func:`mesa.evaluation.rollout.training_eval`), each timed on its own. The level
pools are built before the clock starts (a one-off per member). Records per family the median
seconds of each phase per update (evaluation: per evaluation, and spread over the updates it
covers) and each phase's share of the total, so a budget change can be priced: what is cheap
to make faster, and what only less training makes faster. Then one minibatch step (forward,
backward, Adam) on a fresh policy, timed side by side in the default memory format and in
channels-last (and, with ``--compiled``, with the policy's forward pass through
``torch.compile``), and the convolutions' share of its CPU time (torch's profiler). See
``bench_ppo_phases.md``. ::

    python -m experiments bench_ppo_phases --updates 30

writes ``results/bench_ppo_phases/<families>-updates<N>-<commit>.json`` (``-custom`` appended
when ``--hp`` or ``--opt`` change what is measured).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from typing import Any

import torch

from experiments.common import fmt, parse_assignments, write_result

FAMILIES = ("maze", "coin", "lookalike", "keys")
PHASES = ("rollout", "advantages", "update", "eval")


def phases(family: str, p: float, seed: int, updates: int, hp: dict, opt: dict) -> dict[str, Any]:
    """Seconds of each phase per update over ``updates`` PPO updates of one fresh policy."""
    from mesa.evaluation.rollout import live_observations, training_eval
    from mesa.runtime import generator
    from mesa.tasks import make_task
    from mesa.tasks.base import env_on
    from mesa.training.ppo import PPOConfig, Rollout, advantages, collect_rollout, ppo_update

    cfg = PPOConfig(**hp)
    torch.set_num_threads(cfg.num_threads)
    task: Any = make_task(family, p=p, **opt)
    env = live_observations(env_on(task, "train", cfg.num_envs, seed, torch.device("cpu")))
    model = task.make_model(seed=seed)
    adam = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)
    gen = generator(torch.device("cpu"), seed)
    training_eval(model, task, cfg.eval_episodes, seed=seed)  # builds the evaluation pools
    model.train()
    obs = env.reset()[0]
    buf = Rollout.empty(cfg.num_steps, cfg.num_envs, env.observation_shape)
    recent: deque[float] = deque(maxlen=500)
    times: dict[str, list[float]] = {k: [] for k in PHASES}
    for update in range(updates):
        t0 = time.perf_counter()
        obs, next_value, _ = collect_rollout(model, env, obs, buf, gen, recent)
        t1 = time.perf_counter()
        adv = advantages(buf, next_value, cfg.gamma, cfg.gae_lambda)
        t2 = time.perf_counter()
        ppo_update(model, adam, buf, adv, cfg, gen)
        t3 = time.perf_counter()
        times["rollout"].append(t1 - t0)
        times["advantages"].append(t2 - t1)
        times["update"].append(t3 - t2)
        if (update + 1) % cfg.eval_every == 0:
            t4 = time.perf_counter()
            training_eval(model, task, cfg.eval_episodes, seed=seed)
            times["eval"].append(time.perf_counter() - t4)
            model.train()
    per_update = {k: statistics.median(v) for k, v in times.items() if k != "eval" and v}
    per_eval = statistics.median(times["eval"]) if times["eval"] else float("nan")
    per_update["eval"] = per_eval / cfg.eval_every if times["eval"] else 0.0
    total = sum(per_update.values())
    return {
        "family": family,
        "p": p,
        "seed": seed,
        "updates": updates,
        "steps_per_update": cfg.num_envs * cfg.num_steps,
        "per_update_s": per_update,
        "per_eval_s": per_eval,
        "evals": len(times["eval"]),
        "share": {k: v / total for k, v in per_update.items()},
    }


def minibatch_step(
    family: str, seed: int, hp: dict, opt: dict, steps: int, compiled: bool = False
) -> dict[str, Any]:
    """One PPO minibatch step's forward, backward and Adam step on a fresh policy: the median
    milliseconds in the default memory format, in channels-last and (``compiled``) with the
    forward pass compiled by ``torch.compile`` (side by side, alternating; the first call, which
    compiles, is timed apart as ``compile_s``: less where inductor's on-disk cache is warm), and
    the convolutions' share of the default step's CPU time (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from mesa.tasks import make_task
    from mesa.training.ppo import PPOConfig

    cfg = PPOConfig(**hp)
    torch.set_num_threads(cfg.num_threads)
    task: Any = make_task(family, p=0.0, **opt)
    mb = cfg.num_envs * cfg.num_steps // cfg.num_minibatches
    g = torch.Generator().manual_seed(seed)
    obs = (torch.rand(mb, *task.observation_shape, generator=g) < 0.2).float()
    actions = torch.randint(0, 4, (mb,), generator=g)

    def stepper(variant: str) -> Any:
        model: Any = task.make_model(seed=seed)
        x = obs
        if variant == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = obs.contiguous(memory_format=torch.channels_last)
        forward = model.logits_and_value
        if variant == "compiled":
            forward = torch.compile(forward, dynamic=False)
        adam = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-5)

        def step() -> None:
            logits, value = forward(x)
            dist = torch.distributions.Categorical(logits=logits)
            loss = -dist.log_prob(actions).mean() + value.pow(2).mean() - dist.entropy().mean()
            adam.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            adam.step()

        return step

    variants = ("default", "channels_last") + (("compiled",) if compiled else ())
    steppers = {name: stepper(name) for name in variants}
    compile_s = None
    if compiled:
        t0 = time.perf_counter()
        steppers["compiled"]()  # the first call compiles
        compile_s = time.perf_counter() - t0
    ms: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):
        for fn in steppers.values():
            fn()  # warm-up
    for _ in range(steps):
        for name, fn in steppers.items():
            t0 = time.perf_counter()
            fn()
            ms[name].append(1000 * (time.perf_counter() - t0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            steppers["default"]()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key)
    return {
        "minibatch": mb,
        **{f"ms_{name}": statistics.median(v) for name, v in ms.items()},
        **({"compile_s": compile_s} if compiled else {}),
        "conv_share": conv / total if total else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--updates", type=int, default=30, help="PPO updates timed per family")
    ap.add_argument("--minibatch-steps", type=int, default=20, help="timed, per memory format")
    ap.add_argument("--compiled", action="store_true", help="also time the step with torch.compile")
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options (every family)")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="PPO hyperparameters")
    args = ap.parse_args(argv)
    hp, opt = parse_assignments(args.hp), parse_assignments(args.opt)
    rows = []
    for family in args.families:
        row = phases(family, args.p, args.seed, args.updates, hp, opt)
        row["minibatch_step"] = minibatch_step(
            family, args.seed, hp, opt, args.minibatch_steps, args.compiled
        )
        rows.append(row)
        print(table({"rows": rows[-1:]}), flush=True)
    what = "-".join(args.families) + f"-updates{args.updates}" + ("-custom" if hp or opt else "")
    what += "-compiled" if args.compiled else ""
    payload = {"p": args.p, "seed": args.seed, "updates": args.updates, "rows": rows}
    write_result("bench_ppo_phases", what, {**payload, **({"hparams": hp} if hp else {})})


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {f"{r['family']} update share": r["share"]["update"] for r in result["rows"]}


def table(result: dict[str, Any]) -> str:
    compiled = any("ms_compiled" in r.get("minibatch_step", {}) for r in result["rows"])
    variants = "default / channels-last" + (" / compiled" if compiled else "")
    lines = [
        "| family | s per update: rollout / advantages / update / eval (spread) | share of the "
        f"update step | s per evaluation | steps/s | minibatch step ms: {variants} "
        "| convolutions' share of it |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        t = r["per_update_s"]
        total = sum(t.values())
        m = r.get("minibatch_step")
        mb = "n/a | n/a"
        if m:
            mb = f"{fmt(m['ms_default'], 1)} / {fmt(m['ms_channels_last'], 1)}"
            if "ms_compiled" in m:
                mb += f" / {fmt(m['ms_compiled'], 1)}"
            mb += f" | {m['conv_share']:.0%}"
        lines.append(
            f"| {r['family']} | {' / '.join(fmt(t[k], 3) for k in PHASES)} | "
            f"{r['share']['update']:.0%} | {fmt(r['per_eval_s'], 2)} | "
            f"{r['steps_per_update'] / total:,.0f} | {mb} |"
        )
    return "\n".join(lines)
