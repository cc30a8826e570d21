"""mesa's results render as tables in Jupyter (``_repr_html_``), every cell escaped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mesa.detection.registry import MethodResult
from mesa.detection.verdict import Verdict
from mesa.evaluation.stats import OODResult, OutcomeRates
from mesa.tables import fmt, html_table, md_table
from mesa.zoo.agreement import zoo_agreement
from mesa.zoo.runner import ZooResult


def _cells(page: str) -> list[str]:
    return re.findall(r"<td>([^<]*)</td>", page)


def test_tables_escape_and_format():
    rows = [["a", "b"], ["<x>", fmt(float("nan"))], [fmt((0.1234, 0.5)), fmt(3)]]
    page = html_table(rows, caption="c & d", inline=True)
    assert "&lt;x&gt;" in page and "<x>" not in page and "c &amp; d" in page
    assert _cells(page) == ["&lt;x&gt;", "n/a", "[0.12, 0.50]", "3"]
    assert md_table(rows).splitlines()[1] == "|---|---|"
    # a "|" inside a cell stays in its cell: every line has the header's number of cells
    lines = md_table([["score", "partial ρ | p"], ["x", "0.5"]]).splitlines()
    assert lines[0] == "| score | partial ρ \\| p |"
    assert {ln.replace("\\|", "").count("|") for ln in lines} == {3}


def test_ood_result_renders_as_a_table():
    outcomes = np.array([1] * 6 + [2] * 3 + [0])  # 60% true, 30% spurious, 10% neither
    rates = OutcomeRates.from_outcomes(outcomes)
    result = OODResult.build(rates, rates, in_dist_successes=9, in_dist_n=10, subset="off-path")
    page = result._repr_html_()
    assert page.startswith("<table") and "preference b = 0.67" in page
    assert "warning" not in result.summary()  # 90% in-distribution: learned
    weak = OODResult.build(rates, rates, in_dist_successes=3, in_dist_n=10, subset="off-path")
    assert (
        weak.summary().splitlines()[-1].startswith("warning: in-distribution success is below 90%")
    )
    cells = _cells(page)
    assert cells[:2] == ["true", "0.600"] and cells[4:6] == ["spurious", "0.300"]
    assert OODResult.from_dict(result.to_dict()) == result


def test_verdict_renders_as_a_table():
    def method(name: str, evidence: str, score: float, t: float, s: float) -> MethodResult:
        per_hook = {"blocks.0.hook_out": {"true": t, "spurious": s}}
        return MethodResult(name, evidence, score, {"true": t, "spurious": s}, per_hook)

    verdict = Verdict(
        score=0.8,
        verdict="true",
        reason="mean effect of patching: true 0.400, spurious 0.100",
        methods={
            "behaviour": method("behaviour", "behavioural", 0.75, 0.3, 0.1),
            "patching": method("patching", "mechanistic", 0.8, 0.4, 0.1),
        },
        represented_at={"true": [], "spurious": []},
        used_at={"true": [], "spurious": []},
        settings={"hooks": ["blocks.0.hook_out"]},
    )
    page = verdict._repr_html_()
    assert "verdict: true (mechanistic score 0.80" in page
    assert "behavioural score 0.75" in page
    expected = ["behaviour", "behavioural", "0.75", "0.300", "0.100", ""]
    assert _cells(page)[:6] == expected
    assert _cells(page)[6:11] == ["patching", "mechanistic", "0.80", "0.400", "0.100"]
    again = Verdict.from_dict(verdict.to_dict())
    assert again.to_dict() == verdict.to_dict()


def test_zoo_result_renders_its_agreement():
    rows = [
        {"p": p, "b": b, "score": b, "score_probe": 0.5, "in_dist_success": 0.9}
        for p, b in zip([0, 0, 0.1, 0.1, 0.3, 0.3], [0.1, 0.2, 0.4, 0.6, 0.8, 0.9], strict=True)
    ]
    result = ZooResult(Path("z"), rows, {}, zoo_agreement(rows, n_boot=20))
    page = result._repr_html_()
    assert page.count("<table") == 2 and "mechanistic score" in page and "predict from p" in page
    assert "6 members, 0 failed" in page


def test_files_are_strict_json_and_read_back_with_their_nans(tmp_path: Path):
    import json
    import math

    from mesa.detection.verdict import read_verdict
    from mesa.io import read_json, write_json

    nan = float("nan")
    unmeasured = MethodResult("das", "mechanistic", None, {"true": nan, "spurious": nan})
    verdict = Verdict(
        score=None,
        verdict="inconclusive",
        reason="no mechanistic method of the rule could be computed",
        methods={"das": unmeasured},
        represented_at={"true": [], "spurious": []},
        used_at={"true": [], "spurious": []},
    )
    write_json(tmp_path / "verdict.json", verdict.to_dict())
    text = (tmp_path / "verdict.json").read_text()
    assert "NaN" not in text  # a parser outside Python (jq, a browser) rejects NaN
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    back = Verdict.from_dict(read_json(tmp_path / "verdict.json"))
    assert back.score is None and math.isnan(back.methods["das"].effect["true"])
    assert math.isnan(read_verdict(tmp_path / "verdict.json")["methods"]["das"]["effect"]["true"])
    # an OOD result where no episode was decided: its preference is NaN, and stays NaN
    empty = OutcomeRates.from_outcomes(np.array([0, 0]))
    ood = OODResult.build(empty, empty, in_dist_successes=0, in_dist_n=0, subset="off-path")
    write_json(tmp_path / "ood.json", ood.to_dict())
    assert "NaN" not in (tmp_path / "ood.json").read_text()
    assert math.isnan(OODResult.from_dict(read_json(tmp_path / "ood.json")).preference)
