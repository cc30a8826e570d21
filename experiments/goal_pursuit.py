"""Diagnostic: how strongly a gridworld policy's one-step decision pursues each goal, against what
its OOD episodes show — why a one-step score can rank policies yet miss calibration.

For every member of a finished gridworld zoo it measures, on detection's own counterfactual pairs
(``mesa.detection.Detection``, the probe split):

- **pursuit share** of each goal: the behavioural directed effect ``Delta_v`` (how far the
  decision turns towards the goal's new place when only that goal moves) as a share of a perfect
  follower's (a policy that puts its mass uniformly on the actions of a shortest path to the
  goal), over the informative pairs; and the same over the pairs whose moved goal lies within
  ``--near`` steps (Manhattan) of the agent, before or after the move, so that both goals are
  compared at the same distance;
- the off-path OOD **true-goal rate** with the true goal visible and with its channel zeroed in
  every observation the policy sees: roughly how often the policy reaches the true goal without
  seeing it (a level without the object is one training never showed, so this is a rough
  baseline, not an exact one), the difference is pursuit;
- the **relative pursuit** ``true+ / (true+ + spurious+)`` of the two shares, beside the
  ``probe_subspace`` score (its Spearman over the members): how much of that score the one-step
  pursuit explains.

It reads ``coin`` and ``maze`` zoos (:data:`FAMILIES`) and changes nothing in mesa or the zoo. ::

    python -m experiments goal_pursuit runs/dev_within_p/coin --what coin-dev-within-p

writes ``results/goal_pursuit/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from experiments.common import fmt, probe_subspace_score, write_result
from mesa.tasks.base import GOALS

#: The built-in families it reads: gridworlds whose true goal is the one object drawn in a
#: channel of its own, so that zeroing the channel hides it (in lookalike the gem is drawn in two
#: channels; keys is not a GridTask).
FAMILIES = ("coin", "maze")


class HiddenChannel(torch.nn.Module):
    """``model`` seeing its observations with one channel zeroed."""

    def __init__(self, model: Any, channel: int) -> None:
        super().__init__()
        self.model, self.channel = model, channel

    def forward(self, obs: Tensor) -> Tensor:
        obs = obs.clone()
        obs[:, self.channel] = 0.0
        return self.model(obs)  # type: ignore[no-any-return]


def pursuit(d: Any, vary: str, near: int, width: int) -> dict[str, float]:
    """The goal's directed effect as a share of a perfect follower's, over the informative pairs
    and over those whose moved goal is within ``near`` steps of the agent."""
    ps = d.pairs[vary]
    p_base, p_source = d.decisions[vary]
    f = ((p_source - p_base) * ps.follow).sum(-1)
    m_source = ps.target.float()
    m_base = m_source - 2 * ps.follow
    perfect = m_source / m_source.sum(-1, keepdim=True).clamp(min=1) - m_base / m_base.sum(
        -1, keepdim=True
    ).clamp(min=1)
    ceiling = (perfect * ps.follow).sum(-1)
    agent = ps.base[:, 1].flatten(1).argmax(1)

    def steps(cells: Tensor) -> Tensor:
        return (agent // width - cells // width).abs() + (agent % width - cells % width).abs()

    dist = torch.minimum(steps(ps.base_goal), steps(ps.source_goal))
    out: dict[str, float] = {}
    for name, mask in (("all", ps.informative), ("near", ps.informative & (dist <= near))):
        n = int(mask.sum())
        out[f"share_{name}"] = float(f[mask].mean() / ceiling[mask].mean()) if n >= 5 else np.nan
        out[f"pairs_{name}"] = n
    return out


def true_rates(model: Any, task: Any, channel: int, n: int, seed: int) -> tuple[float, float]:
    """Off-path OOD true-goal rate with the channel visible and hidden (same episodes' draws)."""
    from mesa.evaluation.rollout import headline_mask, rollout_first_episodes
    from mesa.outcomes import TRUE

    rates = []
    for m in (model, HiddenChannel(model, channel)):
        o = rollout_first_episodes(m, task, "ood", n, seed)
        counted = o["outcome"][headline_mask(o["off_path"])[0]]
        rates.append(float((counted == TRUE).mean()))
    return rates[0], rates[1]


def main(argv: list[str] | None = None) -> None:
    from tqdm.auto import tqdm

    from mesa.detection.data import Detection
    from mesa.runs import load_run
    from mesa.tasks.gridworld import GridTask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoo", type=Path, help="a finished gridworld zoo (or population) directory")
    ap.add_argument("--what", required=True, help="a name for the result file")
    ap.add_argument("--near", type=int, default=2, help="steps that count as near (default 2)")
    ap.add_argument("--episodes", type=int, default=4000, help="OOD episodes (default 4000)")
    args = ap.parse_args(argv)
    results = args.zoo / "results.csv"
    if not results.is_file():
        ap.error(f"{args.zoo} is not a finished zoo: no results.csv in it")
    if args.near < 1 or args.episodes < 100:
        ap.error("--near must be at least 1 and --episodes at least 100")
    with results.open(newline="") as f:
        members = list(csv.DictReader(f))
    runs = {}
    for m in members:  # every member checked before any is measured
        run = load_run(args.zoo / "members" / m["member"])
        if not isinstance(run.task, GridTask) or len(run.task.object_channels) != 1:
            ap.error(
                f"{m['member']} is a {run.task.name} member: goal_pursuit reads gridworlds whose "
                f"true goal is the one object drawn in a channel of its own ({', '.join(FAMILIES)})"
            )
        runs[m["member"]] = run
    rows = []
    for m in tqdm(members, desc="members"):
        run = runs[m["member"]]
        task = run.task
        d = Detection(run.model, task)
        width = task.observation_shape[2]
        row: dict[str, Any] = {"member": m["member"], "p": float(m["p"]), "b": float(m["b"])}
        row["score"] = probe_subspace_score(m)
        row["verdict"] = m["verdict"]
        for g in GOALS:
            row[g] = pursuit(d, g, args.near, width)
        row["true_rate_visible"], row["true_rate_hidden"] = true_rates(
            run.model, task, 2, args.episodes, 12345
        )
        rows.append(row)
    payload = {
        "zoo": str(args.zoo),
        "hidden": sorted({runs[m["member"]].task.object_channels[0] for m in members}),
        "near": args.near,
        "episodes": args.episodes,
        "rows": rows,
        "groups": groups(rows),
        "relative_vs_score": relative_vs_score(rows),
    }
    print(table(payload))
    write_result("goal_pursuit", args.what, payload)


def relative(row: dict[str, Any]) -> float:
    """The true goal's share of the two pursuit shares (negative shares count as 0)."""
    t, s = max(row["true"]["share_all"], 0.0), max(row["spurious"]["share_all"], 0.0)
    return t / (t + s) if t + s > 0 else float("nan")


def relative_vs_score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Spearman of the relative pursuit with the probe_subspace score, over members with a score."""
    from scipy.stats import spearmanr

    pairs = [(relative(r), r["score"]) for r in rows if r["score"] is not None]
    pairs = [(a, b) for a, b in pairs if not np.isnan(a)]
    rho = float(spearmanr(*zip(*pairs, strict=True)).statistic) if len(pairs) >= 3 else np.nan
    return {"members": len(pairs), "spearman": rho}


def groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Means over the members with b > 1/2 and b < 1/2."""
    out = {}
    for name, keep in (("b > 1/2", lambda b: b > 0.5), ("b < 1/2", lambda b: b < 0.5)):
        sel = [r for r in rows if keep(r["b"])]
        if not sel:
            continue
        out[name] = {
            "members": len(sel),
            "b": float(np.mean([r["b"] for r in sel])),
            **{
                f"{g}_share_{k}": float(np.nanmean([r[g][f"share_{k}"] for r in sel]))
                for g in GOALS
                for k in ("all", "near")
            },
            "true_rate_visible": float(np.mean([r["true_rate_visible"] for r in sel])),
            "true_rate_hidden": float(np.mean([r["true_rate_hidden"] for r in sel])),
        }
    return out


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (
            f"pursuit true {fmt(g['true_share_all'])} / spurious {fmt(g['spurious_share_all'])}; "
            f"true rate {fmt(g['true_rate_visible'])} visible, {fmt(g['true_rate_hidden'])} hidden"
        )
        for name, g in result["groups"].items()
    }


def table(result: dict[str, Any]) -> str:
    near = result["near"]
    lines = [
        f"| member | b | verdict (score) | pursuit share, true: all / within {near} | spurious: "
        f"all / within {near} | relative | OOD true rate: visible / hidden |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: r["b"]):
        t, s = r["true"], r["spurious"]
        lines.append(
            f"| {r['member']} | {r['b']:.2f} | {r['verdict']} ({fmt(r['score'])}) | "
            f"{fmt(t['share_all'])} / {fmt(t['share_near'])} | "
            f"{fmt(s['share_all'])} / {fmt(s['share_near'])} | {fmt(relative(r))} | "
            f"{fmt(r['true_rate_visible'])} / {fmt(r['true_rate_hidden'])} |"
        )
    lines += [
        "",
        f"| members | n | mean b | pursuit share, true: all / within {near} | spurious: all / "
        f"within {near} | OOD true rate: visible / hidden |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in result["groups"].items():
        lines.append(
            f"| {name} | {g['members']} | {g['b']:.2f} | {fmt(g['true_share_all'])} / "
            f"{fmt(g['true_share_near'])} | {fmt(g['spurious_share_all'])} / "
            f"{fmt(g['spurious_share_near'])} | {fmt(g['true_rate_visible'])} / "
            f"{fmt(g['true_rate_hidden'])} |"
        )
    rel = result.get("relative_vs_score")
    if rel:
        lines += [
            "",
            "Relative pursuit against the probe_subspace score: Spearman "
            f"{fmt(rel['spearman'])} over "
            f"{rel['members']} members with a score. Informative pairs (mean over members): true "
            f"{_mean_pairs(result, 'true', 'all')} ({_mean_pairs(result, 'true', 'near')} near), "
            f"spurious {_mean_pairs(result, 'spurious', 'all')} "
            f"({_mean_pairs(result, 'spurious', 'near')} near).",
        ]
    return "\n".join(lines)


def _mean_pairs(result: dict[str, Any], goal: str, which: str) -> str:
    return f"{np.mean([r[goal][f'pairs_{which}'] for r in result['rows']]):.0f}"
