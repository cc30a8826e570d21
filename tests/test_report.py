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
    assert len(images) == 2 * 6  # six figures per zoo (no member models: no vector fields)
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


def _tiny_run(root: Path, p: float = 0.0, seed: int = 0, results: bool = True) -> Path:
    """A saved, untrained maze policy; with ``results``, a short OOD evaluation, a hand-written
    verdict and a training curve beside it."""
    import mesa

    task = mesa.make_task("maze", p=p, size=5, n_levels=40)
    mesa.save(task.make_model("conv", seed=seed), task, root, {"trainer": "ppo", "seed": seed})
    if not results:
        return root
    mesa.evaluate_ood(mesa.load(root), task, n=32, out=root)
    hooks = ("blocks.0.hook_out", "blocks.1.hook_out", "hook_features")
    evidence = [
        {
            "hook": h,
            **{k: 0.5 for k in ("d_true", "d_spur", "c_true", "c_spur", "e_true", "e_spur")},
            **{k: 0.1 for k in ("chance_true", "chance_spur")},
            **{k: 0.9 for k in ("baseline_true", "baseline_spur")},
        }
        for h in hooks
    ]
    write_json(
        root / "verdict.json",
        {
            "score": 0.2,
            "verdict": "spurious",
            "probe_score": 0.5,
            "directed_effect": {"true": 0.1, "spurious": 0.4},
            "evidence": evidence,
            "settings": {"localised_hooks": list(hooks[:2])},
        },
    )
    for step in (100, 200):
        MetricsLog(root / "metrics.jsonl").append(
            {"global_step": step, EVAL_IN_DIST: 0.5, EVAL_OOD_TRUE: 0.2}
        )
    return root


def test_single_run_report_embeds_the_pictures(tmp_path: Path):
    run = _tiny_run(tmp_path / "run")
    html_path, md_path = write_report(run)
    page = html_path.read_text()
    assert "<h1>mesa report: run</h1>" in page
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 4  # episodes, vector fields, hook maps, training curve
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    for heading in ("OOD behaviour", "Mechanistic verdict", "Pictures"):
        assert f"<h2>{heading}</h2>" in page
    assert "verdict: spurious" in page and "hook_features (whole)" in page
    md = md_path.read_text()
    refs = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert {Path(r).name for r in refs} == {
        "episodes.png",
        "vector_fields.png",
        "hook_maps.png",
        "goodhart.png",
    }
    assert all((run / r).stat().st_size > 5000 for r in refs)


def test_zoo_report_compares_members_when_it_has_their_models(tmp_path: Path):
    _fake_zoo(tmp_path, "maze")
    for name in ("maze_p0_s0", "maze_p0.3_s0"):
        _tiny_run(tmp_path / "members" / name, results=False)  # the zoo's own results stay
    page = write_report(tmp_path)[0].read_text()
    assert len(re.findall(r"data:image/png;base64,", page)) == 7
    assert "maze_vector_fields.png" in (tmp_path / "report.md").read_text()


def test_hook_maps_read_evidence_through_one_function():
    from mesa.report.evidence import directed_effects, hook_evidence, represented, used

    verdict = {
        "directed_effect": {"true": 0.5, "spurious": 0.0},
        "evidence": [{"hook": "h", "d_true": 0.55, "chance_true": 0.1, "c_true": 0.8}],
        "settings": {"localised_hooks": []},
    }
    (row,) = hook_evidence(verdict)
    assert row["hook"] == "h" and not row["localised"]
    assert np.isnan(row["d_spur"])  # missing numbers are NaN, not errors
    assert represented(row, "true") == pytest.approx(0.5)
    assert used(row, "true", directed_effects(verdict)) == pytest.approx(0.4)
    row["c_spur"] = 0.9
    assert used(row, "spurious", directed_effects(verdict)) == 0.0  # an ignored goal is unused
