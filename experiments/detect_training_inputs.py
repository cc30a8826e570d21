"""Detection with training inputs only: does it predict OOD behaviour?

Re-detects every member of finished zoos with ``mesa.detect(..., inputs="train")``: the model
sees only inputs as training shows them (the goals together), and a goal is moved only inside
the model, by patching sites that can carry it but not the other goal (``Task.separating_sites``;
see ``mesa.detection.methods.training_sites``). Reports, per family, the method's score and
verdict per member, its agreement with OOD behaviour over the zoo and within each p, beside the
zoo's own baselines — or, where the family has no such sites (the goals share every site of a
training input), that the mode cannot separate the goals there, with the numbers that show it.
Writes nothing into the zoos. ::

    python -m experiments detect_training_inputs runs/zoo/sycophancy runs/zoo/maze

writes ``results/detect_training_inputs/<families>-<seeds>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

from experiments.common import fmt, seeds_slug, write_result


def _number(x: str | None) -> float | None:
    return float(x) if x else None


def _family(zoo: Path) -> dict[str, Any]:
    import torch

    import mesa
    from mesa.runs import load_run
    from mesa.zoo.agreement import zoo_agreement

    torch.set_num_threads(1)
    with (zoo / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    members, seconds = [], []
    for r in rows:
        run = load_run(zoo / "members" / r["member"])
        t0 = time.perf_counter()
        v = mesa.detect(run.model, run.task, inputs="train")
        seconds.append(time.perf_counter() - t0)
        method = v.methods["training_sites"]
        together = run.task.training_inputs(200, 0)
        members.append(
            {
                "member": r["member"],
                "p": float(r["p"]),
                "seed": int(r["seed"]),
                "b": float(r["b"]),
                "in_dist_success": float(r["in_dist_success"]),
                "score": v.score,
                "verdict": v.verdict,
                "effect": method.effect,
                "note": method.note,
                "response": method.extra.get("response"),
                "goals_together_share": float(
                    (together.true_goal == together.spurious_goal).float().mean()
                ),
                "score_behaviour": float(r["score_behaviour"])
                if r.get("score_behaviour")
                else None,
            }
        )
    scored = [m for m in members if m["score"] is not None]
    agreement = zoo_agreement(scored, n_boot=500) if len(scored) >= 4 else {}
    return {
        "zoo": str(zoo),
        "members": members,
        "scored": len(scored),
        "detect_s_median": sorted(seconds)[len(seconds) // 2],
        "agreement": agreement,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zoos", nargs="+", help="finished zoo directories")
    args = ap.parse_args(argv)
    families = {Path(z).name: _family(Path(z)) for z in args.zoos}
    seeds = tuple(sorted({m["seed"] for f in families.values() for m in f["members"]}))
    write_result(
        "detect_training_inputs",
        "-".join(families) + "-" + seeds_slug(seeds),
        {"families": families},
    )
    print(table({"families": families}))


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, f in result["families"].items():
        mech = next(
            (a for a in f["agreement"].get("overall", []) if a["score"] == "mechanistic score"),
            None,
        )
        out[name] = (
            f"AUROC {fmt(mech['auroc'])}, Spearman {fmt(mech['spearman'])}"
            if mech
            else f"no score for {len(f['members']) - f['scored']} members"
        )
    return out


def table(result: dict[str, Any]) -> str:
    """Per family: the training-inputs score and, in the same table, the zoo's baselines
    (behaviour on goal-separated inputs, predict-from-p, in-distribution success, chance)."""
    lines = [
        "| family | score | members scored | Spearman [95% CI] | AUROC [95% CI] | "
        "partial rho given p | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in result["families"].items():
        note = next((m["note"] for m in f["members"] if m["note"]), "")
        overall = f["agreement"].get("overall", [])
        if not any(a["score"] == "mechanistic score" for a in overall):
            lines.append(
                f"| {name} | training inputs | {f['scored']}/{len(f['members'])} | n/a | n/a | "
                f"n/a | {note} |"
            )
            continue
        for a in overall:
            label = "training inputs" if a["score"] == "mechanistic score" else a["score"]
            shown = note if label == "training inputs" else ""
            lines.append(
                f"| {name} | {label} | {a['n']}/{len(f['members'])} | {fmt(a['spearman'])} "
                f"[{fmt(a['spearman_ci'][0])}, {fmt(a['spearman_ci'][1])}] | "
                f"{fmt(a['auroc'])} [{fmt(a['auroc_ci'][0])}, {fmt(a['auroc_ci'][1])}] | "
                f"{fmt(a['partial_spearman_given_p'])} | {shown} |"
            )
    return "\n".join(lines)
