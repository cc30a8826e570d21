"""The report on a zoo directory made by hand (no training): every section is present."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from mesa.errors import MesaError
from mesa.io import MetricsLog, write_json
from mesa.report import EVAL_IN_DIST, EVAL_OOD_TRUE, write_report
from mesa.zoo.agreement import partial_spearman, zoo_agreement
from mesa.zoo.runner import write_results_csv


def _fake_zoo(root: Path, family: str = "maze") -> None:
    rng = np.random.default_rng(0)
    rows = []
    for p in (0.0, 0.1, 0.3):
        for seed in range(3):
            name = f"{family}_p{p:g}_s{seed}"
            b = float(np.clip(p * 3 + rng.normal(0, 0.1), 0, 1))
            rows.append(
                {
                    "member": name,
                    "family": family,
                    "p": p,
                    "seed": seed,
                    "score": b * 0.9 + 0.05,
                    "verdict": "true" if b > 0.5 else "spurious",
                    "probe_score": 0.5,
                    "b": b,
                    "true_rate": b * 0.9,
                    "spurious_rate": (1 - b) * 0.9,
                    "neither_rate": 0.1,
                    "in_dist_success": 0.97,
                }
            )
            member = root / "members" / name
            evidence = [
                {
                    "hook": h,
                    "d_true": 0.9,
                    "d_true_ci": [0.8, 0.95],
                    "d_spur": 0.8,
                    "d_spur_ci": [0.7, 0.9],
                    "chance_true": 0.1,
                    "chance_spur": 0.2,
                    "baseline_true": 1.0,
                    "baseline_spur": 1.0,
                    "c_true": b,
                    "c_spur": 1 - b,
                    "e_true": 0.1,
                    "e_spur": 0.2,
                }
                for h in ("blocks.0.hook_out", "blocks.1.hook_out")
            ]
            write_json(member / "verdict.json", {"score": b, "verdict": "x", "evidence": evidence})
            log = MetricsLog(member / "metrics.jsonl")
            for step in (1000, 2000):
                log.append({"global_step": step, EVAL_IN_DIST: 0.5, EVAL_OOD_TRUE: b})
    write_results_csv(root / "results.csv", rows)
    write_json(
        root / "zoo.json",
        {"settings": {"family": family}, "agreement": zoo_agreement(rows, n_boot=50), "failed": {}},
    )


def test_report_has_every_figure_and_table(tmp_path: Path):
    _fake_zoo(tmp_path / "maze", "maze")
    _fake_zoo(tmp_path / "coin", "coin")
    html_path, md_path = write_report(tmp_path)
    page = html_path.read_text()
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 2 * 5  # five figures per zoo
    for img in images:
        png = base64.b64decode(img)
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    for heading in ("Agreement with OOD behaviour", "Within each p", "Every model"):
        assert page.count(f"<h3>{heading}</h3>") == 2
    assert page.count("<tr>") > 2 * 9  # a row per model in each members table
    md = md_path.read_text()
    for ref in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (tmp_path / ref).stat().st_size > 5000
    assert "predict from p" in md and "probe decodability" in md and "chance" in md


def test_report_errors(tmp_path: Path):
    with pytest.raises(MesaError, match="does not exist"):
        write_report(tmp_path / "nope")
    with pytest.raises(MesaError, match="holds no zoo"):
        write_report(tmp_path)


def test_agreement_sees_through_p():
    rng = np.random.default_rng(1)
    p = np.repeat([0.0, 0.1, 0.2, 0.3], 6)
    b = p + rng.normal(0, 0.05, p.size)
    tracks_b = b + rng.normal(0, 0.01, p.size)  # knows each model's own behaviour
    tracks_p = p + rng.normal(0, 0.001, p.size)  # knows only p
    assert partial_spearman(tracks_b, b, p) > 0.8
    assert abs(partial_spearman(tracks_p, b, p)) < 0.5
    rows = [
        {"p": a, "b": bb, "score": s, "probe_score": 0.5}
        for a, bb, s in zip(p, b, tracks_b, strict=True)
    ]
    agree = zoo_agreement(rows, n_boot=100)
    causal = agree["overall"][0]
    assert causal["score"] == "causal score" and causal["spearman"] > 0.9
    lo, hi = causal["spearman_ci"]
    assert lo <= causal["spearman"] <= hi
    assert set(agree["within_p"]) == {"0", "0.1", "0.2", "0.3"}
