"""``mesa report DIR``: a self-contained HTML report (figures embedded) and a Markdown twin.

``DIR`` is a zoo directory (it has ``zoo.json``), a directory of zoos (e.g. the demo's), or a
single run directory (it has ``config.json`` and ``model.safetensors``).

For each zoo the report shows the misgeneralization curve, the proxy-vs-true Goodhart curve over
training, decodability and causal effect by hook, per-hook maps of where each member represents
and uses each goal, the score against OOD behaviour with ρ and AUROC beside the baselines, a p = 0
member and the largest-p member side by side (gridworlds: vector fields on the same layouts;
sequence tasks: answer distributions on the same prompts), and a table of every model's verdict
and OOD outcome.

For a single run it shows the run's OOD rates and verdict as tables, the pictures of
``mesa show`` (:mod:`mesa.report.show`) one by one, its per-hook maps and its training curve.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesa.detection.verdict import read_verdict
from mesa.errors import MesaError
from mesa.io import (
    CONFIG,
    METRICS,
    MODEL,
    OOD,
    VERDICT,
    MetricsLog,
    atomic_write_bytes,
    nan_for_null,
    read_json,
    safe_name,
)
from mesa.tables import fmt, html_table, md_table
from mesa.zoo.agreement import agreement_table, calibration_line, within_p_table

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
    if v == "":
        return float("nan")
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def eval_curve(run_dir: Path) -> list[dict[str, Any]]:
    """The trainer's periodic evaluations in ``metrics.jsonl`` (empty if it logged none)."""
    return [
        {
            "global_step": x["global_step"],
            "in_dist_success": x[EVAL_IN_DIST],
            "ood_true_rate": x[EVAL_OOD_TRUE],
        }
        for x in MetricsLog(run_dir / METRICS).read()
        if EVAL_IN_DIST in x and EVAL_OOD_TRUE in x
    ]


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
            verdicts[r["member"]] = read_verdict(member / VERDICT)
        recs = eval_curve(member)
        if recs:
            curves[r["member"]] = recs
    return ZooData(
        path=path,
        family=family,
        rows=rows,
        agreement=nan_for_null(zoo.get("agreement", {})),  # numbers only: a null was a NaN
        failed=zoo.get("failed", {}),
        verdicts=verdicts,
        curves=curves,
    )


def find_zoos(root: Path) -> list[Path]:
    if (root / "zoo.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/zoo.json"))
    if not found:
        raise MesaError(
            f"{root} holds no zoo (no zoo.json in it or its subdirectories) and is not a run "
            f"(no {CONFIG} and {MODEL}); mesa report takes a run, a zoo or a directory of zoos"
        )
    return found


def members_table(zoo: ZooData) -> list[list[str]]:
    methods = sorted({k for r in zoo.rows for k in r if k.startswith("score_")})
    head = ["member", "p", "seed", "verdict", "score s", *(m[6:] for m in methods)]
    rows = [[*head, "OOD true", "OOD spurious", "OOD neither", "b", "in-dist success"]]
    for r in zoo.rows:
        rows.append(
            [
                r["member"],
                fmt(r["p"], 3),
                str(r["seed"]),
                r["verdict"],
                fmt(r["score"]),
                *(fmt(r.get(m, float("nan"))) for m in methods),
                fmt(r["true_rate"]),
                fmt(r["spurious_rate"]),
                fmt(r["neither_rate"]),
                fmt(r["b"]),
                fmt(r["in_dist_success"]),
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
    out += _evidence_figures(zoo)
    out.append(
        (
            "score_vs_behaviour",
            "Mechanistic score against OOD behaviour",
            F.score_vs_behaviour(zoo.rows, zoo.family, zoo.agreement),
        )
    )
    return out + _member_figures(zoo)


def _evidence_figures(zoo: ZooData) -> list[tuple[str, str, Any]]:
    """Decodability and causal effect by hook, averaged within each p."""
    from mesa.report import figures as F

    out = []
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
                    "Patching by hook: the turn of the decision towards a moved goal that "
                    "patching the goal's sites at the hook restores, in absolute terms (hooks "
                    "without the input's cells or positions, such as a policy's dense features, "
                    "are not patched)"
                ),
                F.evidence_by_hook(
                    zoo.verdicts,
                    zoo.rows,
                    zoo.family,
                    ("c_true", "c_spur"),
                    "directed shift restored",
                    "patching effect by hook",
                ),
            )
        )
    return out


HOOK_MAPS_CAPTION = (
    "Where each goal is represented and used, hook by hook. Represented: the probe's selectivity "
    "(D - chance) / (1 - chance), 0 at chance, 1 for a perfect probe. Used: the turn of the "
    "decision towards the goal that patching the goal's sites at the hook restores, in absolute "
    "terms (a goal the decision ignores is used nowhere), both goals on one colour scale up to "
    "the largest value shown. Hooks marked * hold no input sites and are not patched."
)


def _member_label(row: dict[str, Any]) -> str:
    return f"p = {fmt(float(row['p']), 3).rstrip('0').rstrip('.')}, seed {row['seed']}"


def _member_figures(zoo: ZooData) -> list[tuple[str, str, Any]]:
    """Per-member pictures: the hook maps, and a p = 0 member beside the largest-p member."""
    from mesa.report import figures as F

    out = []
    ordered = sorted(zoo.rows, key=lambda r: (float(r["p"]), r["seed"]))
    with_verdict = [r for r in ordered if r["member"] in zoo.verdicts]
    if with_verdict:
        maps = {_member_label(r): zoo.verdicts[r["member"]] for r in with_verdict}
        title = f"{zoo.family}: where each goal is represented and used"
        out.append(("hook_maps", HOOK_MAPS_CAPTION, F.hook_maps(maps, title)))
    if ordered and float(ordered[0]["p"]) != float(ordered[-1]["p"]):
        pair = [ordered[0], next(r for r in ordered if r["p"] == ordered[-1]["p"])]
        compared = _compare_members(zoo.path, pair)
        if compared is not None:
            out.append(compared)
    return out


def _compare_members(zoo_path: Path, pair: list[dict[str, Any]]) -> tuple[str, str, Any] | None:
    """Two members' pictures side by side (None where a member's model cannot be loaded: a zoo
    copied without its models still gets the rest of its report)."""
    from mesa.runs import load_run
    from mesa.tasks.base import RLTask

    try:
        runs = [load_run(zoo_path / "members" / r["member"]) for r in pair]
    except MesaError:
        return None
    models = {
        f"{_member_label(r)}: OOD b = {fmt(r['b'])}": run.model
        for r, run in zip(pair, runs, strict=True)
    }
    task = runs[0].task
    if isinstance(task, RLTask):
        from mesa.report.show import rl_pictures

        G, grid = rl_pictures(task)
        fig = G.compare_vector_fields(models, grid)
        return "vector_fields", G.COMPARE_CAPTION, fig
    from mesa.report import sequence as S

    fig = S.compare_answers(models, S.check_sequence_task(task))
    return "answers", S.COMPARE_CAPTION, fig


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}figure{margin:1em 0}
figcaption{font-size:13px;color:#555}.note{color:#555;font-size:14px}"""

INTRO = (
    "Each model's mechanistic score s comes from an intervention on its internals "
    "(interchanging a goal's linear-probe subspace between counterfactual inputs; in coin, "
    "at every step of episodes in training's own levels), never from OOD rollouts: "
    "s = U_true / (U_true + U_spur), U_v how far the decision's turn towards goal v follows "
    "the intervention (in coin, the share of episodes it sends to the moved coin first beyond "
    "the same episodes without it, against the share still reaching the level's end). Its OOD "
    "behaviour is b = true / (true + spurious): of "
    "the OOD episodes (or answers) that reach either goal, the share that reach the true goal "
    "first; Spearman ranks s against b, AUROC asks how well s separates b > 1/2 from b < 1/2. "
    "Agreement with OOD behaviour is shown beside baselines that do not look "
    "inside: the behavioural score (outputs on goal-separated inputs, a one-step OOD test), "
    "'predict from p', in-distribution success, probe decodability (what is represented, not "
    "used) and chance. Agreement within one p and the partial correlations given p and given "
    "the behavioural score are what speak to detection proper."
)


class _Page:
    """The report being written: HTML and Markdown side by side, figures saved as PNGs."""

    def __init__(self, root: Path, title: str, intro: str) -> None:
        self.root, self.fig_dir = root, root / "figures"
        self.fig_dir.mkdir(exist_ok=True)
        self.html = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>{html.escape(intro)}</p>"
        ]
        self.md = [f"# {title}", "", intro, ""]

    def heading(self, level: int, text: str) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md += ["#" * level + " " + text, ""]

    def note(self, text: str) -> None:
        self.html.append(f"<p class='note'>{html.escape(text)}</p>")
        self.md += [text, ""]

    def table(self, rows: list[list[str]]) -> None:
        self.html.append(html_table(rows))
        self.md += [md_table(rows), ""]

    def figure(self, name: str, caption: str, fig: Any) -> None:
        from mesa.report.grid_figures import DPI

        buf = io.BytesIO()
        # the sheets' resolution: a gridworld cell stays >= 24 px
        fig.savefig(buf, format="png", dpi=max(110, DPI))
        png = buf.getvalue()
        atomic_write_bytes(self.fig_dir / name, png)
        b64 = base64.b64encode(png).decode()
        self.html.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{b64}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md += [f"![{caption}](figures/{name})", ""]

    def write(self) -> tuple[Path, Path]:
        html_path, md_path = self.root / "report.html", self.root / "report.md"
        atomic_write_bytes(html_path, "\n".join([*self.html, "</body></html>"]).encode())
        atomic_write_bytes(md_path, "\n".join(self.md).encode())
        return html_path, md_path


def is_run(directory: Path) -> bool:
    """Whether ``directory`` is a run directory (a model and its config)."""
    return (directory / CONFIG).is_file() and (directory / MODEL).is_file()


def _zoo_section(page: _Page, zoo: ZooData) -> None:
    page.heading(2, zoo.family)
    if zoo.failed:
        page.note("Failed members: " + "; ".join(f"{k}: {v}" for k, v in zoo.failed.items()))
    page.heading(3, "Agreement with OOD behaviour")
    page.table(agreement_table(zoo.agreement))
    if calibration_line(zoo.agreement):
        page.note(calibration_line(zoo.agreement))
    page.heading(3, "Within each p")
    page.table(within_p_table(zoo.agreement))
    for key, caption, fig in _figures(zoo):
        page.figure(f"{zoo.family}_{key}.png", caption, fig)
    page.heading(3, "Every model")
    page.table(members_table(zoo))


def write_report(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``figures/*.png``) into ``directory``: a zoo, a
    directory of zoos, or a single run."""
    root = Path(directory)
    if not root.is_dir():
        raise MesaError(f"report directory {root} does not exist")
    if is_run(root):
        return write_run_report(root)
    zoos = [load_zoo(p) for p in find_zoos(root)]
    page = _Page(root, "mesa report", INTRO)
    for zoo in zoos:
        _zoo_section(page, zoo)
    return page.write()


RUN_INTRO = (
    "One trained model: its OOD behaviour, its mechanistic verdict (from interventions on its "
    "internals on probe observations and counterfactual pairs, and where a method or the "
    "family's rule asks it (coin's), in episodes of training's own levels; never OOD rollouts) "
    "and pictures of what it does."
)


def write_run_report(root: Path) -> tuple[Path, Path]:
    """The report of one run directory: its OOD rates and verdict as tables, the pictures of
    ``mesa show`` one by one, its per-hook maps and its training curve."""
    from mesa.detection.evidence import evidence_table, method_table, verdict_line
    from mesa.report import figures as F
    from mesa.report.show import run_figures
    from mesa.runs import load_run

    run = load_run(root)
    name = root.resolve().name
    page = _Page(root, f"mesa report: {name}", RUN_INTRO)
    train = run.config.get("train", {})
    page.note(
        f"task {run.task.name} ({run.task.description}); p = {run.task.p:g}; "
        f"arch {run.config['model']['arch']}; trainer {train.get('trainer', 'n/a')}; "
        f"seed {train.get('seed', 'n/a')}"
    )
    page.heading(2, "OOD behaviour")
    if (root / OOD).is_file():
        from mesa.evaluation.stats import OODResult

        ood = OODResult.from_dict(read_json(root / OOD))
        page.note(ood.caption())
        page.table(ood.table())
    else:
        page.note(f"not evaluated yet (mesa eval {root})")
    page.heading(2, "Mechanistic verdict")
    verdict = read_verdict(root / VERDICT) if (root / VERDICT).is_file() else None
    if verdict is not None:
        page.note(verdict_line(verdict))
        page.table(method_table(verdict))
        page.table(evidence_table(verdict))
    else:
        page.note(f"not detected yet (mesa detect {root})")
    page.heading(2, "Pictures")
    for key, caption, fig in run_figures(run.model, run.task):
        page.figure(f"{key}.png", caption, fig)
    if verdict is not None:
        title = f"{name}: where each goal is represented and used"
        page.figure("hook_maps.png", HOOK_MAPS_CAPTION, F.hook_maps({name: verdict}, title))
    curve = eval_curve(root)
    if len(curve) >= 2:  # one evaluation is a point, not a curve
        fig = F.goodhart_curves({name: curve}, run.task.name)
        page.figure("goodhart.png", "Proxy vs true goal over training", fig)
    return page.write()
