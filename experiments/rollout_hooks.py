"""Exploratory, development seeds only: where ``rollout_subspace`` interchanges, and what it costs.

``rollout_subspace`` (coin's verdict) interchanges the moved goal's probe subspace (the true goal
in coin, maze and lookalike; keys' surplus key, :attr:`mesa.Task.moved_goal`) at one hook, the
one where the one-step ``probe_subspace`` interchange restores most. Its score reads below the
OOD preference ``b`` in coin, and below its behavioural twin ``rollout_shown`` (the same episodes
with the goal drawn in the input). Does interchanging at more hooks close the gap, and at what
cost to what makes the method mechanistic? Does another family's verdict gain from the
rollouts? Variants, on the same episodes and seeds:

- ``the verdict now``: the zoo's verdict score as its results hold it (the family's rule),
  its verdicts read by the family's bands (:attr:`mesa.Task.verdict_bands`);
- ``best hook``: the method as it is;
- ``narrow hooks``: every hook past the input where the probe's subspace spans under half the
  layer's units (in coin's conv policies, the three conv blocks: 53 of 880), all at once;
- ``all hooks``: every hook past the input at once, the last hidden layer included (there the
  subspace spans most of its 64 units: nearly a whole patch of it);

beside ``rollout_shown``. Each member's scores are compared with ``b`` (Spearman, AUROC, verdicts
by the rule's thresholds, mean minus b). It refuses seeds >= 100: variants are studied on
development seeds only. ::

    python -m experiments rollout_hooks runs/dev_zoo/coin runs/dev_within_p/coin --what coin-dev
    python -m experiments rollout_hooks runs/dev_zoo/keys --what keys-dev
    python -m experiments rollout_hooks runs/dev_within_p/maze --what maze-dev-within-p

writes ``results/rollout_hooks/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import fmt, write_result
from experiments.internal_ood import agreement_table, score_agreement

VARIANTS = ("the verdict now", "best hook", "narrow hooks", "all hooks", "rollout_shown")


def variant_scores(run: Any) -> dict[str, float | None]:
    """Each variant's score for one member (see the module docstring)."""
    from mesa.detection import Detection
    from mesa.detection.data import input_layer
    from mesa.detection.methods.rollout import RolloutShown, RolloutSubspace, rollout_effects
    from mesa.detection.methods.subspace import probe_basis
    from mesa.probes.subspace import subspace_hook

    d = Detection(run.model, run.task)
    method = RolloutSubspace()
    probes = {h: d.fitted_probe(run.task.moved_goal, h) for h in d.hooks if not input_layer(h)}
    bases = {h: probe_basis(p) for h, p in probes.items() if p is not None}

    def at(hooks: list[str]) -> float | None:
        def told(inputs: Any, moved: Any) -> Any:
            _, cache = d.hm.cache(d.on_device(moved), hooks)
            fwd = [(h, subspace_hook(cache[h], bases[h], position=d.position)) for h in hooks]
            return d.run(inputs, fwd)

        return rollout_effects(method, d, told, method.episodes).score

    narrow = [h for h, b in bases.items() if len(b) < 0.5 * b.shape[1]]
    return {
        "best hook": method.run(d).score,
        "narrow hooks": at(narrow) if narrow else None,
        "all hooks": at(list(bases)),
        "rollout_shown": RolloutShown().run(d).score,
    }


def main(argv: list[str] | None = None) -> None:
    from tqdm.auto import tqdm

    from mesa.runs import load_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", type=Path, nargs="+", help="finished zoos (development seeds)")
    ap.add_argument("--what", required=True, help="a name for the result file")
    args = ap.parse_args(argv)
    zoos = {}
    for zoo in args.zoos:  # every zoo checked before any work
        if not (zoo / "results.csv").is_file():
            ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
        with (zoo / "results.csv").open(newline="") as f:
            zoos[zoo] = list(csv.DictReader(f))
        for m in zoos[zoo]:
            if int(float(m["seed"])) >= 100:
                ap.error(f"{zoo} holds test seeds (>= 100): this is for development seeds only")
    out: dict[str, Any] = {"zoos": {}}
    for zoo, rows in zoos.items():
        members = []
        for m in tqdm(rows, desc=zoo.name):
            scores = variant_scores(load_run(zoo / "members" / m["member"]))
            now = float(m["score"]) if m["score"] not in ("", "nan", "None") else None
            members.append(
                {
                    "member": m["member"],
                    "family": m["family"],
                    "b": float(m["b"]),
                    "the verdict now": now,
                    **scores,
                }
            )
        out["zoos"][str(zoo)] = {"members": members, "agreement": agreement(members)}
    out["all"] = agreement([r for z in out["zoos"].values() for r in z["members"]])
    print(table(out))
    write_result("rollout_hooks", args.what, out)


def agreement(members: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each variant against b; ``the verdict now`` read by its family's bands, as the verdict
    reads it (:func:`mesa.detection.verdict.verdict_bands`), the others by the default."""
    from mesa.detection.verdict import verdict_bands
    from mesa.tasks import get_task_class

    b = np.array([r["b"] for r in members])
    families = {r.get("family") for r in members} - {None}
    own = verdict_bands(get_task_class(families.pop()), "probe") if len(families) == 1 else None
    return {
        v: score_agreement(
            np.array([np.nan if r[v] is None else r[v] for r in members], float),
            b,
            bands=own if v == "the verdict now" else None,
        )
        for v in VARIANTS
        if all(v in r for r in members)
    }


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        v: f"{a['verdicts']['match']} of {a['verdicts']['n']} matching, mean minus b "
        f"{fmt(a['mean_minus_b'])}"
        for v, a in result["all"].items()
    }


def table(result: dict[str, Any]) -> str:
    return "\n".join(agreement_table(result, bias=True))
