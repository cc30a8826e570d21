"""mesa's results render as tables in Jupyter (``_repr_html_``), every cell escaped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mesa.detection.verdict import HookEvidence, Verdict
from mesa.evaluation.stats import OODResult, OutcomeRates
from mesa.report.tables import fmt, html_table, md_table
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


def test_ood_result_renders_as_a_table():
    outcomes = np.array([1] * 6 + [2] * 3 + [0])  # 60% true, 30% spurious, 10% neither
    rates = OutcomeRates.from_outcomes(outcomes)
    result = OODResult.build(rates, rates, in_dist_successes=9, in_dist_n=10, subset="off-path")
    page = result._repr_html_()
    assert page.startswith("<table") and "preference b = 0.67" in page
    cells = _cells(page)
    assert cells[:2] == ["true", "0.600"] and cells[4:6] == ["spurious", "0.300"]
    assert OODResult.from_dict(result.to_dict()) == result


def test_verdict_renders_as_a_table():
    row = HookEvidence(
        hook="blocks.0.hook_out",
        d_true=0.9,
        d_true_ci=(0.8, 0.95),
        d_spur=0.7,
        d_spur_ci=(0.6, 0.8),
        chance_true=0.1,
        chance_spur=0.2,
        baseline_true=1.0,
        baseline_spur=1.0,
        c_true=0.5,
        c_spur=0.25,
        e_true=0.125,
        e_spur=0.0,
    )
    verdict = Verdict(
        score=0.8,
        verdict="true",
        probe_score=0.5,
        total_effect={"true": 0.3, "spurious": 0.1},
        directed_effect={"true": 0.4, "spurious": 0.1},
        represented_at={"true": [], "spurious": []},
        used_at={"true": [], "spurious": []},
        evidence=[row],
        settings={"localised_hooks": ["blocks.0.hook_out"]},
    )
    page = verdict._repr_html_()
    assert "verdict: true (score s = 0.80" in page
    expected = ["blocks.0.hook_out", "0.90", "0.70", "0.10 / 0.20", "0.50", "0.25", "0.12", "0.00"]
    assert _cells(page) == expected


def test_zoo_result_renders_its_agreement():
    rows = [
        {"p": p, "b": b, "score": b, "probe_score": 0.5}
        for p, b in zip([0, 0, 0.1, 0.1, 0.3, 0.3], [0.1, 0.2, 0.4, 0.6, 0.8, 0.9], strict=True)
    ]
    result = ZooResult(Path("z"), rows, {}, zoo_agreement(rows, n_boot=20))
    page = result._repr_html_()
    assert page.count("<table") == 2 and "causal score" in page and "predict from p" in page
    assert "6 members, 0 failed" in page
