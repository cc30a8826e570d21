"""The report on a zoo directory made by hand (no training): every section is present."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mesa.detection.registry import MethodResult
from mesa.detection.verdict import Verdict
from mesa.errors import MesaError
from mesa.io import MetricsLog, write_json
from mesa.report import EVAL_IN_DIST, EVAL_OOD_TRUE, write_report
from mesa.zoo.agreement import partial_spearman, zoo_agreement
from mesa.zoo.runner import write_results_csv


def fake_verdict(
    hooks: list[str], score: float, patched: dict[str, float], accuracy: float = 0.9
) -> dict:
    """A verdict.json as detection writes it, with hand-set numbers."""
    both = {"true": 0.5, "spurious": 0.5}
    dec = {"chance": 0.1, "baseline": 1.0, "hooks": {h: {"accuracy": accuracy} for h in hooks}}
    methods = {
        "behaviour": MethodResult("behaviour", "behavioural", score, patched),
        "probe": MethodResult(
            "probe",
            "representational",
            0.5,
            both,
            {h: both for h in hooks},
            extra={"decodability": {"true": dec, "spurious": dec}},
        ),
        "patching": MethodResult(
            "patching", "mechanistic", score, patched, {h: dict(patched) for h in hooks[:2]}
        ),
    }
    verdict = "true" if score > 0.5 else "spurious"
    return Verdict(score, verdict, "hand-written", methods, {}, {}, {"hooks": hooks}).to_dict()


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
                    "score_probe": 0.5,
                    "b": b,
                    "true_rate": b * 0.9,
                    "spurious_rate": (1 - b) * 0.9,
                    "neither_rate": 0.1,
                    "in_dist_success": 0.97,
                }
            )
            member = root / "members" / name
            hooks = ["blocks.0.hook_out", "blocks.1.hook_out"]
            verdict = fake_verdict(hooks, b, {"true": b, "spurious": 1 - b})
            write_json(member / "verdict.json", verdict)
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
        {"p": a, "b": bb, "score": s, "score_behaviour": t, "in_dist_success": 0.9}
        for a, bb, s, t in zip(p, b, tracks_b, tracks_p, strict=True)
    ]
    agree = zoo_agreement(rows, n_boot=200)
    by_name = {a["score"]: a for a in agree["overall"]}
    mech = by_name["mechanistic score"]
    assert mech["spearman"] > 0.9 and mech["partial_spearman_given_p"] > 0.8
    # a behavioural score that only knows p leaves the mechanistic score all it knows
    assert mech["partial_given_behaviour"] > 0.8
    lo, hi = mech["partial_given_p_ci"]
    assert 0.0 < lo < hi <= 1.0  # the interval excludes no partial correlation
    assert abs(by_name["behaviour"]["partial_spearman_given_p"]) < 0.5
    assert set(agree["within_p"]) == {"0", "0.1", "0.2", "0.3"}
    # rows come back from a zoo's workers in the order they finished: the chance score and the
    # intervals must not depend on it
    for i, r in enumerate(rows):
        r["seed"] = i
    shuffled = [rows[i] for i in np.random.default_rng(7).permutation(len(rows))]
    same = [json.dumps(zoo_agreement(r, n_boot=200), sort_keys=True) for r in (shuffled, rows)]
    assert same[0] == same[1]  # as JSON: NaN (a partial rho of a constant) equals itself there


def test_within_p_statistics_equal_hand_computed_values():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    b = [0.1, 0.3, 0.45, 0.55, 0.7, 0.9, 0.2, 0.8]
    s = [0.2, 0.1, 0.6, 0.5, 0.9, 0.8, 0.3, 0.3]
    rows = [
        {"p": 0.1, "b": bb, "score": ss, "in_dist_success": 1.0}
        for bb, ss in zip(b, s, strict=True)
    ]
    rows += [{"p": 0.4, "b": bb, "score": 0.5, "in_dist_success": 1.0} for bb in (0.9, 0.8, 0.2)]
    agree = zoo_agreement(rows, n_boot=50)
    split = agree["within_p"]["0.1"]
    assert (split["n"], split["above"], split["below"]) == (8, 4, 4)
    mech = next(a for a in split["agreement"] if a["score"] == "mechanistic score")
    assert mech["auroc"] == pytest.approx(roc_auc_score([x > 0.5 for x in b], s))
    assert mech["spearman"] == pytest.approx(spearmanr(s, b).statistic)
    # predict-from-p is constant within one p: not among the within-p scores
    assert all(a["score"] != "predict from p" for a in split["agreement"])
    # two members on one side: too few to measure agreement
    assert "agreement" not in agree["within_p"]["0.4"]


def _population(family: str, seeds: range, rng: np.random.Generator, mech_noise: float):
    """Rows of one population at one p: b spread over [0, 1], the behavioural score b plus
    noise 0.1, the mechanistic score b plus ``mech_noise``."""
    b = rng.uniform(0.05, 0.95, len(seeds))
    return [
        {"family": family, "p": 0.1, "seed": s, "b": bb, "in_dist_success": 0.97,
         "score": bb + rng.normal(0, mech_noise), "score_behaviour": bb + rng.normal(0, 0.1),
         "score_probe": 0.5}
        for s, bb in zip(seeds, b, strict=True)
    ]  # fmt: skip


def test_pooled_within_p_means_population_statistics_with_intervals():
    from mesa.zoo.agreement import _population_stats, pooled_within_p

    rng = np.random.default_rng(3)
    pops = [_population("coin", range(i * 16, i * 16 + 16), rng, 0.02) for i in range(3)]
    pops += [_population("maze", range(i * 16, i * 16 + 16), rng, 0.6) for i in range(3)]
    out = pooled_within_p(pops, n_boot=200)
    assert out["pooled"]["coin"]["populations"] == 3 and out["pooled"]["all"]["populations"] == 6
    # the pooled value is the mean of the populations' own statistics
    per = [p["stats"]["mechanistic score"]["auroc"] for p in out["populations"][:3]]
    coin = out["pooled"]["coin"]["scores"]["mechanistic score"]
    assert coin["auroc"] == pytest.approx(np.mean(per))
    # a population's statistics equal the within-p agreement's (AUROC, Spearman, partial rho)
    rows = sorted(pops[0], key=lambda r: r["seed"])
    agree = zoo_agreement(rows, n_boot=20)["within_p"]["0.1"]["agreement"]
    ref = next(a for a in agree if a["score"] == "mechanistic score")
    stats = out["populations"][0]["stats"]["mechanistic score"]
    assert stats["auroc"] == pytest.approx(ref["auroc"])
    assert stats["spearman"] == pytest.approx(ref["spearman"])
    assert stats["partial_given_behaviour"] == pytest.approx(ref["partial_given_behaviour"])
    # a mechanistic score that knows b better than behaviour: it adds to behaviour, and ranks
    # better; one that is mostly noise ranks worse, its interval below 0
    assert coin["partial_given_behaviour_ci"][0] > 0.3
    assert coin["spearman_minus_behaviour"] > 0
    maze = out["pooled"]["maze"]["scores"]["mechanistic score"]
    assert maze["spearman_minus_behaviour_ci"][1] < 0
    lo, hi = out["pooled"]["all"]["scores"]["chance"]["auroc_ci"]
    assert lo < 0.5 < hi
    # the closed-form partial correlation is partial_spearman's
    for _ in range(50):
        s, b, z = rng.integers(0, 5, 12).astype(float), rng.random(12), rng.random(12)
        got = _population_stats({"x": s}, b, z)["x"]["partial_given_behaviour"]
        assert got == pytest.approx(partial_spearman(s, b, z))
    with pytest.raises(ValueError, match="no populations"):
        pooled_within_p([])
    # behaviour that ranks b perfectly leaves nothing for a partial correlation: that population
    # is left out of the partial's mean (and named), not averaged in as noise
    perfect = _population("keys", range(16), rng, 0.3)
    for r in perfect:
        r["score_behaviour"] = r["b"]
    out = pooled_within_p([*pops[:3], perfect], n_boot=100)
    assert "mechanistic score partial_given_behaviour" in out["populations"][3]["left_out"]
    keys = out["pooled"]["keys"]["scores"]["mechanistic score"]
    assert keys["partial_given_behaviour_n"] == 0 and np.isnan(keys["partial_given_behaviour"])
    assert keys["auroc_n"] == 1  # its AUROC is defined and pooled
    pooled = out["pooled"]["all"]["scores"]["mechanistic score"]
    assert pooled["partial_given_behaviour_n"] == 3 and pooled["auroc_n"] == 4
    assert pooled["partial_given_behaviour"] == pytest.approx(coin["partial_given_behaviour"])
    # a constant score has no AUROC, as it has no Spearman
    assert np.isnan(out["populations"][0]["stats"]["probe"]["auroc"])


def test_calibration_counts_verdicts_against_behaviour():
    from mesa.zoo.agreement import calibration

    cases = [
        ("true", 0.9),  # match
        ("spurious", 0.1),  # match
        ("mixed", 0.5),  # match: in between
        ("true", 0.6),  # match: b's side of 1/2
        ("spurious", 0.6),  # wrong
        ("true", 0.4),  # wrong
        ("mixed", 0.9),  # neither wrong nor a match
        ("inconclusive", 0.9),
    ]
    counts = calibration([{"verdict": v, "b": b} for v, b in cases])
    assert (counts["match"], counts["wrong"], counts["mixed_or_other"]) == (4, 2, 1)
    assert counts["inconclusive"] == 1 and counts["n"] == 8


def _tiny_run(root: Path, p: float = 0.0, seed: int = 0, results: bool = True) -> Path:
    """A saved, untrained maze policy; with ``results``, a short OOD evaluation, a hand-written
    verdict and a training curve beside it."""
    import mesa

    task = mesa.make_task("maze", p=p, size=5, n_levels=40)
    mesa.save(task.make_model("conv", seed=seed), task, root, {"trainer": "ppo", "seed": seed})
    if not results:
        return root
    mesa.evaluate_ood(mesa.load(root), task, n=32, out=root)
    hooks = ["blocks.0.hook_out", "blocks.1.hook_out", "hook_features"]
    verdict = fake_verdict(hooks, 0.2, {"true": 0.1, "spurious": 0.4}, accuracy=0.5)
    write_json(root / "verdict.json", verdict)
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
    assert "verdict: spurious" in page and "hook_features (no sites)" in page
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
    from mesa.detection.evidence import directed_effects, hook_evidence, represented, used

    dec = {"chance": 0.1, "hooks": {"h": {"accuracy": 0.55}}}
    verdict = {
        "methods": {
            "behaviour": {"effect": {"true": 0.5, "spurious": 0.0}},
            "probe": {"extra": {"decodability": {"true": dec}}},
            "patching": {"per_hook": {"h": {"true": 0.4, "spurious": 0.0}}},
        },
        "settings": {"hooks": ["h", "g"], "input_layer": ["g"]},
    }
    row, other = hook_evidence(verdict)
    assert row["hook"] == "h" and row["localised"] and not row["input_layer"]
    assert not other["localised"] and other["input_layer"]
    assert np.isnan(row["d_spur"])  # missing numbers are NaN, not errors
    assert represented(row, "true") == pytest.approx(0.5)
    assert used(row, "true") == pytest.approx(0.4)  # the absolute patching effect
    assert used(row, "spurious") == 0.0  # an ignored goal is unused
    assert directed_effects(verdict) == {"true": 0.5, "spurious": 0.0}
