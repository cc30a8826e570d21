"""``mesa report DIR``: a self-contained HTML report (figures embedded) and a Markdown twin.

``DIR`` is a zoo directory (it has ``zoo.json``) or a directory of zoos (e.g. the demo's). For each
zoo the report shows the misgeneralization curve, the proxy-vs-true Goodhart curve over training,
decodability and causal effect by hook, the score against OOD behaviour with ρ and AUROC beside
the baselines, and a table of every model's verdict and OOD outcome.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesa.errors import MesaError
from mesa.io import METRICS, VERDICT, MetricsLog, atomic_write_bytes, read_json, safe_name

#: metrics.jsonl keys of the periodic evaluation records written by the trainers.
EVAL_IN_DIST, EVAL_OOD_TRUE = "eval/in_dist_success", "eval/ood_true_rate"


@dataclass
class ZooData:
    path: Path
    family: str
    rows: list[dict[str, Any]]
    agreement: dict[str, Any]
    failed: dict[str, str]
    verdicts: dict[str, dict[str, Any]]
    curves: dict[str, list[dict[str, Any]]]


def _num(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def load_zoo(path: Path) -> ZooData:
    """A zoo's files. Names read from them (the family, each member) become file names here,
    so each must be a plain name: a crafted ``zoo.json`` or ``results.csv`` cannot make the
    report read or write outside the zoo."""
    zoo = read_json(path / "zoo.json")
    try:
        family = safe_name(zoo["settings"]["family"], f"family in {path / 'zoo.json'}")
    except (KeyError, TypeError):
        raise MesaError(f"{path / 'zoo.json'} is not a mesa zoo's summary") from None
    with (path / "results.csv").open() as f:
        rows = [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]
    verdicts, curves = {}, {}
    for r in rows:
        member = path / "members" / safe_name(r.get("member"), f"member in {path / 'results.csv'}")
        if (member / VERDICT).is_file():
            verdicts[r["member"]] = read_json(member / VERDICT)
        recs = [
            {
                "global_step": x["global_step"],
                "in_dist_success": x[EVAL_IN_DIST],
                "ood_true_rate": x[EVAL_OOD_TRUE],
            }
            for x in MetricsLog(member / METRICS).read()
            if EVAL_IN_DIST in x and EVAL_OOD_TRUE in x
        ]
        if recs:
            curves[r["member"]] = recs
    return ZooData(
        path=path,
        family=family,
        rows=rows,
        agreement=zoo.get("agreement", {}),
        failed=zoo.get("failed", {}),
        verdicts=verdicts,
        curves=curves,
    )


def find_zoos(root: Path) -> list[Path]:
    if (root / "zoo.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/zoo.json"))
    if not found:
        raise MesaError(f"{root} holds no zoo (no zoo.json in it or its subdirectories)")
    return found


def _fmt(x: Any, digits: int = 2) -> str:
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"
    if isinstance(x, list | tuple) and len(x) == 2:
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    return str(x)


def agreement_table(agreement: dict[str, Any]) -> list[list[str]]:
    head = [
        "score",
        "models",
        "Spearman ρ",
        "95% CI",
        "AUROC (b > 0.5)",
        "95% CI",
        "partial ρ given p",
    ]
    rows = [head]
    for a in agreement.get("overall", []):
        rows.append(
            [
                a["score"],
                str(a["n"]),
                _fmt(a["spearman"]),
                _fmt(a["spearman_ci"]),
                _fmt(a["auroc"]),
                _fmt(a["auroc_ci"]),
                _fmt(a["partial_spearman_given_p"]),
            ]
        )
    return rows


def within_p_table(agreement: dict[str, Any]) -> list[list[str]]:
    rows = [["p", "score", "models", "Spearman ρ", "AUROC"]]
    for p, items in agreement.get("within_p", {}).items():
        for a in items:
            rows.append([p, a["score"], str(a["n"]), _fmt(a["spearman"]), _fmt(a["auroc"])])
    return rows


def members_table(zoo: ZooData) -> list[list[str]]:
    rows = [
        [
            "member",
            "p",
            "seed",
            "verdict",
            "score s",
            "probe score",
            "OOD true",
            "OOD spurious",
            "OOD neither",
            "b",
            "in-dist success",
        ]
    ]
    for r in zoo.rows:
        rows.append(
            [
                r["member"],
                _fmt(r["p"], 3),
                str(r["seed"]),
                r["verdict"],
                _fmt(r["score"]),
                _fmt(r["probe_score"]),
                _fmt(r["true_rate"]),
                _fmt(r["spurious_rate"]),
                _fmt(r["neither_rate"]),
                _fmt(r["b"]),
                _fmt(r["in_dist_success"]),
            ]
        )
    return rows


def _figures(zoo: ZooData) -> list[tuple[str, str, Any]]:
    from mesa.report import figures as F

    out = [
        (
            "misgeneralization",
            "Misgeneralization curve",
            F.misgeneralization_curve(zoo.rows, zoo.family),
        )
    ]
    if zoo.curves:
        out.append(
            (
                "goodhart",
                "Proxy vs true goal over training",
                F.goodhart_curves(
                    zoo.curves, zoo.family, {r["member"]: float(r["p"]) for r in zoo.rows}
                ),
            )
        )
    if zoo.verdicts:
        out.append(
            (
                "decodability",
                "Decodability by hook (dashed: observation-only baseline)",
                F.evidence_by_hook(
                    zoo.verdicts,
                    zoo.rows,
                    zoo.family,
                    ("d_true", "d_spur"),
                    "held-out probe accuracy",
                    "decodability by hook",
                    baseline=("baseline_true", "baseline_spur"),
                ),
            )
        )
        out.append(
            (
                "causal",
                (
                    "Causal effect by hook: the share of the decision's turn towards a moved goal "
                    "that a localised interchange intervention restores (hooks without a cell or "
                    "position axis, such as a policy's dense features, are patched whole and "
                    "restore everything by construction)"
                ),
                F.evidence_by_hook(
                    zoo.verdicts,
                    zoo.rows,
                    zoo.family,
                    ("c_true", "c_spur"),
                    "share of directed effect restored",
                    "causal effect by hook",
                ),
            )
        )
    out.append(
        (
            "score_vs_behaviour",
            "Mechanistic score against OOD behaviour",
            F.score_vs_behaviour(zoo.rows, zoo.family, zoo.agreement),
        )
    )
    return out


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}figure{margin:1em 0}
figcaption{font-size:13px;color:#555}.note{color:#555;font-size:14px}"""

INTRO = (
    "Each model's mechanistic score s comes from forward passes on probe observations and "
    "counterfactual pairs only, never from OOD rollouts: s = Δ_true / (Δ_true + Δ_spur), "
    "where Δ_v is how far the decision turns towards goal v when only that goal moves. "
    "Agreement with OOD behaviour is shown beside baselines: 'predict from p' (recovering p is "
    "not detection), the probe-decodability score (what is represented rather than used), and "
    "a random score (chance). Within-p agreement and the partial correlation given p are what "
    "speak to detection proper."
)


def write_report(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``figures/*.png``) into ``directory``."""
    root = Path(directory)
    if not root.is_dir():
        raise MesaError(f"report directory {root} does not exist")
    zoos = [load_zoo(p) for p in find_zoos(root)]
    fig_dir = root / "figures"
    fig_dir.mkdir(exist_ok=True)
    h = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>mesa report</title>"
        f"<style>{CSS}</style></head><body><h1>mesa report</h1><p class='note'>{INTRO}</p>"
    ]
    md = ["# mesa report", "", INTRO, ""]
    for zoo in zoos:
        h.append(f"<h2>{html.escape(zoo.family)}</h2>")
        md += [f"## {zoo.family}", ""]
        if zoo.failed:
            msg = "; ".join(f"{k}: {v}" for k, v in zoo.failed.items())
            h.append(f"<p class='note'>Failed members: {html.escape(msg)}</p>")
            md += [f"Failed members: {msg}", ""]
        h += ["<h3>Agreement with OOD behaviour</h3>", _html_table(agreement_table(zoo.agreement))]
        md += [
            "### Agreement with OOD behaviour",
            "",
            _md_table(agreement_table(zoo.agreement)),
            "",
        ]
        h += ["<h3>Within each p</h3>", _html_table(within_p_table(zoo.agreement))]
        md += ["### Within each p", "", _md_table(within_p_table(zoo.agreement)), ""]
        for key, caption, fig in _figures(zoo):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            png = buf.getvalue()
            name = f"{zoo.family}_{key}.png"
            atomic_write_bytes(fig_dir / name, png)
            b64 = base64.b64encode(png).decode()
            h.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
            md += [f"![{caption}](figures/{name})", ""]
        h += ["<h3>Every model</h3>", _html_table(members_table(zoo))]
        md += ["### Every model", "", _md_table(members_table(zoo)), ""]
    h.append("</body></html>")
    html_path, md_path = root / "report.html", root / "report.md"
    atomic_write_bytes(html_path, "\n".join(h).encode())
    atomic_write_bytes(md_path, "\n".join(md).encode())
    return html_path, md_path
