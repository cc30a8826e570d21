"""The multi-step behavioural baseline of coin's verdict, on finished zoos.

Coin's verdict is ``rollout_subspace``'s (since ``281a456``): episodes in training's levels with
the coin's probe subspace interchanged at every step from the same state with the coin drawn at
another cell. Its natural baseline is the same test without looking inside: ``rollout_shown``,
the same episodes (same levels, cells and sampling seeds) with the coin drawn at that cell in
the observation itself, scored the same way. Where the two agree with OOD behaviour ``b``
equally, the mechanistic method's gain over one-step tests is that of a multi-step test, not of
reading the model's internals. This re-detects every member of each zoo with ``rollout_shown``
only (nothing is written into the zoo) and reports, per zoo and over all, each score's Spearman
and AUROC (b > 1/2) and its verdicts against behaviour by the rule's thresholds, beside the
one-step behavioural score, in-distribution success, predict-from-p and chance (seeded). No rule
is chosen here. ::

    python -m experiments rollout_baseline runs/test_zoo_164/coin \\
        runs/within_p_168/coin/p0.04576 runs/within_p_184/coin/p0.04064 \\
        --what coin-test-seeds164-199

writes ``results/rollout_baseline/<what>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import fmt, write_result
from experiments.internal_ood import agreement_table, score_agreement

#: The scores compared, by their results.csv column (``rollout_shown`` is computed here).
COLUMNS = {
    "rollout_subspace (the verdict)": "score_rollout_subspace",
    "rollout_shown": None,
    "behaviour (one step)": "score_behaviour",
    "probe_subspace": "score_probe_subspace",
    "in-dist success": "in_dist_success",
    "predict from p": "p",
}
#: Scores on b's scale, whose verdicts by the rule's thresholds are counted.
ON_B_SCALE = (
    "rollout_subspace (the verdict)",
    "rollout_shown",
    "behaviour (one step)",
    "probe_subspace",
)


def _members(zoo: Path, ap: argparse.ArgumentParser) -> list[dict[str, str]]:
    results = zoo / "results.csv"
    if not results.is_file():
        ap.error(f"{zoo} is not a finished zoo: no results.csv in it")
    with results.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "score_rollout_subspace" not in rows[0]:
        ap.error(f"{zoo} was not detected with rollout_subspace (a coin zoo of 281a456 or later)")
    return rows


def main(argv: list[str] | None = None) -> None:
    from tqdm.auto import tqdm

    import mesa
    from mesa.io import read_json
    from mesa.runs import load_run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "zoos", type=Path, nargs="+", help="finished zoos detected with rollout_subspace"
    )
    ap.add_argument("--what", required=True, help="a name for the result file")
    ap.add_argument("--seed", type=int, default=0, help="chance's seed")
    args = ap.parse_args(argv)
    zoos = {str(z): _members(z, ap) for z in args.zoos}  # every zoo checked before any work
    out: dict[str, Any] = {"zoos": {}}
    for name, rows in zoos.items():
        members = []
        for m in tqdm(rows, desc=Path(name).name):
            run = load_run(Path(name) / "members" / m["member"])
            shown = mesa.detect(run.model, run.task, methods=["rollout_shown"]).methods
            verdict = read_json(Path(name) / "members" / m["member"] / "verdict.json")
            extra = verdict["methods"]["rollout_subspace"]["extra"]
            row = {"member": m["member"], "b": float(m["b"]), "verdict": verdict["verdict"]}
            row["hook"], row["subspace_dims"] = extra.get("hook"), extra.get("subspace_dims")
            for label, column in COLUMNS.items():
                value = shown["rollout_shown"].score if column is None else m.get(column, "")
                row[label] = float("nan") if value in ("", "nan", None) else float(value)
            members.append(row)
        out["zoos"][name] = {"members": members, "agreement": agreement(members, args.seed)}
    everyone = [r for z in out["zoos"].values() for r in z["members"]]
    out["all"] = agreement(everyone, args.seed)
    out["by_hook"] = by_hook(everyone)
    print(table(out))
    write_result("rollout_baseline", args.what, out)


def agreement(members: list[dict[str, Any]], seed: int) -> dict[str, dict[str, Any]]:
    """Per score: members, Spearman and AUROC with b, and verdicts matching (wrong)."""
    b = np.array([r["b"] for r in members])
    scores = {label: np.array([r[label] for r in members]) for label in COLUMNS}
    scores["chance"] = np.random.default_rng(seed).random(len(members))
    result = {}
    for label, s in scores.items():
        a = score_agreement(s, b, label in ON_B_SCALE or label == "chance")
        a.pop("mean_minus_b")  # this page shows no bias column
        result[label] = a
    return result


def by_hook(members: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The verdict's agreement by the hook ``rollout_subspace`` interchanged at: where the probe
    subspace spans most of a small layer (a policy's last hidden layer), the interchange is
    nearly a whole patch of it."""
    from mesa.zoo.agreement import calibration

    out: dict[str, dict[str, Any]] = {}
    for hook in sorted({str(r["hook"]) for r in members}):
        rows = [r for r in members if str(r["hook"]) == hook]
        c = calibration(rows)
        dims = sorted({r["subspace_dims"] for r in rows if r["subspace_dims"] is not None})
        out[hook] = {"n": c["n"], "match": c["match"], "wrong": c["wrong"], "dims": dims}
    return out


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {
        label: f"AUROC {fmt(a['auroc'])}"
        + (
            ""
            if a["verdicts"] is None
            else f", {a['verdicts']['match']} of {a['verdicts']['n']} matching"
        )
        for label, a in result["all"].items()
    }


def table(result: dict[str, Any]) -> str:
    lines = agreement_table(result, bias=False)
    if "by_hook" in result:
        lines += [
            "",
            "The verdict by the hook `rollout_subspace` interchanged at (all members):",
            "",
            "| hook | members | probe subspace dimensions | verdicts matching (wrong) |",
            "|---|---|---|---|",
        ]
        for hook, h in result["by_hook"].items():
            dims = (
                "n/a"
                if not h["dims"]
                else "-".join(str(d) for d in sorted({h["dims"][0], h["dims"][-1]}))
            )
            lines.append(f"| `{hook}` | {h['n']} | {dims} | {h['match']} ({h['wrong']}) |")
    return "\n".join(lines)
