"""The transition search: bisection finds a known transition, a population that does not split
moves towards the short side, and a killed search resumes without measuring anything twice."""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

import mesa.zoo.transition as transition
from mesa.errors import MesaError
from mesa.zoo import TransitionConfig, ZooConfig, ZooResult, find_transition
from mesa.zoo.transition import Probe, aim, bisect, crossing, midpoint, refit

TRUE_P = 0.137  # the synthetic family's transition


def synthetic_b(p: float, seed: int) -> float:
    """Above the transition, most seeds pursue the true goal; near it, seeds split."""
    shift = ((seed * 7919) % 11 - 5) * 0.004  # each seed's own transition, within +-0.02
    return 0.9 if p > TRUE_P + shift else 0.1


def test_bisection_brackets_a_known_transition():
    calls: list[float] = []

    def measure(p: float, seeds: list[int]) -> list[float]:
        calls.append(p)
        return [1.0 if p > TRUE_P else 0.0 for _ in seeds]

    history, (lo, hi) = bisect(measure, 0.0, 0.4, 8, lambda k: [k])
    assert lo < TRUE_P < hi and hi - lo < 0.01
    assert len(calls) == 8 and [h.p for h in history] == calls
    assert midpoint(0.0, 0.4) == pytest.approx(0.1)  # the square-root scale's midpoint
    # replayed probes are not measured again
    again, bracket = bisect(
        lambda p, s: pytest.fail("measured again"), 0.0, 0.4, 8, lambda k: [k], history
    )
    assert bracket == (lo, hi) and again == history


def _fake_runs(monkeypatch, counts: dict[str, int]) -> None:
    def search_member(root: Path, zoo: ZooConfig):
        def measure(p: float, seeds: list[int]) -> list[float]:
            counts["search"] += len(seeds)
            return [synthetic_b(p, s) for s in seeds]

        return measure

    def run_zoo(config: ZooConfig, out: Path, progress: bool = True) -> ZooResult:
        counts["population"] += 1
        rows = [
            {"p": p, "seed": s, "b": synthetic_b(p, s)} for p in config.ps for s in config.seeds
        ]
        return ZooResult(Path(out), rows, {}, {})

    monkeypatch.setattr(transition, "_search_member", search_member)
    monkeypatch.setattr(transition, "run_zoo", run_zoo)


def test_search_finds_a_population_that_splits_and_resumes(tmp_path: Path, monkeypatch):
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    config = TransitionConfig(zoo, population=16, probes=5, min_each_side=4, bracket=(0.0, 0.4))
    found = find_transition(config, tmp_path)
    # single-seed probes bracket some seed's own transition, within 0.02 of the family's
    assert TRUE_P - 0.021 < found.bracket[0] < found.bracket[1] < TRUE_P + 0.021 + 0.03
    assert found.split["splits"] and min(found.split["above"], found.split["below"]) >= 4
    assert counts["search"] == 5  # one member per probe
    saved = json.loads((tmp_path / "transition.json").read_text())
    assert [pr["p"] for pr in saved["probes"]] == [pr.p for pr in found.probes]
    assert saved["p"] == found.p and saved["populations"][-1]["splits"]
    # rerun: every probe is replayed from transition.json, nothing is measured again
    find_transition(config, tmp_path)
    assert counts["search"] == 5
    other = TransitionConfig(zoo, population=8, probes=5, min_each_side=4, bracket=(0.0, 0.4))
    with pytest.raises(MesaError, match="other settings \\(population 16 there, 8 here\\)"):
        find_transition(other, tmp_path)
    more = TransitionConfig(zoo, population=16, probes=5, min_each_side=4, bracket=(0.0, 0.4))
    assert find_transition(replace(more, moves=5), tmp_path).p == found.p  # moves may grow
    assert counts["search"] == 5


def test_a_population_that_does_not_split_moves_towards_the_short_side(tmp_path, monkeypatch):
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    # one probe leaves the bracket wide: its midpoint is far from the transition
    config = TransitionConfig(zoo, population=16, probes=1, moves=3, bracket=(0.0, 0.9))
    found = find_transition(config, tmp_path)
    pops = found.populations
    assert len(pops) > 1 and found.split["splits"] and found.p == pops[-1]["p"]
    for here, nxt in itertools.pairwise(pops):  # each move goes to the short side
        assert (nxt["p"] < here["p"]) == (here["above"] > here["below"])


def test_populations_on_one_side_twice_widen_past_misleading_probes(tmp_path, monkeypatch):
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)

    def misleading(root: Path, zoo: ZooConfig):  # unlucky probe seeds: b < 1/2 up to p = 0.3
        return lambda p, seeds: [0.9 if p > 0.3 else 0.1 for _ in seeds]

    monkeypatch.setattr(transition, "_search_member", misleading)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    config = TransitionConfig(zoo, population=16, probes=4, moves=6, bracket=(0.0, 0.9))
    found = find_transition(config, tmp_path)
    pops = found.populations
    # the probes' bracket: past TRUE_P; a population all on one side stops after half its seeds
    assert pops[0]["p"] > 0.28 and pops[0]["above"] == pops[0]["trained"] == 8
    # the first move follows the curve fitted to the probes and the population: just below it
    assert 0.225 < pops[1]["p"] < pops[0]["p"] and pops[1]["above"] == 8
    # two on one side: the probes misled the fit; the populations alone give the midpoint
    # between the search's bound and the nearest population
    assert pops[2]["p"] == midpoint(0.0, pops[1]["p"]) and pops[2]["below"] == 8
    for q in pops[3:]:  # then inside the bracket the populations leave
        assert pops[2]["p"] < q["p"] < pops[1]["p"]
    assert found.split["splits"] and abs(found.p - TRUE_P) < 0.021


def test_the_search_starts_from_the_familys_bracket_else_its_grids_ends(monkeypatch):
    from mesa.tasks import get_task_class

    for name in ("maze", "coin", "lookalike", "keys", "sycophancy"):
        cls = get_task_class(name)
        lo, hi = TransitionConfig(ZooConfig(name)).check().range()
        if cls.transition_bracket is None:
            assert (lo, hi) == (min(cls.zoo_ps), max(cls.zoo_ps))
        else:  # inside the grid, on grid points (where the development zoo measured b)
            assert (lo, hi) == cls.transition_bracket and lo in cls.zoo_ps and hi in cls.zoo_ps
    assert TransitionConfig(ZooConfig("sycophancy")).range() == (0.02, 0.05)
    assert TransitionConfig(ZooConfig("sycophancy"), bracket=(0.0, 0.2)).range() == (0.0, 0.2)
    monkeypatch.setattr(get_task_class("coin"), "transition_bracket", None)
    assert TransitionConfig(ZooConfig("coin")).range() == (0.0, 0.4)  # its zoo_ps ends
    monkeypatch.setattr(get_task_class("coin"), "zoo_ps", ())
    with pytest.raises(MesaError, match="coin has neither a transition_bracket nor zoo_ps"):
        TransitionConfig(ZooConfig("coin")).check()


def test_bad_settings():
    zoo = ZooConfig("sycophancy")
    with pytest.raises(MesaError, match="cannot hold 9 members on each side"):
        TransitionConfig(zoo, population=16, min_each_side=9).check()
    with pytest.raises(MesaError, match="bracket must satisfy"):
        TransitionConfig(zoo, bracket=(0.5, 0.2)).check()
    with pytest.raises(MesaError, match=re.escape("probes (--probes) must be at least 1, got 0")):
        TransitionConfig(zoo, probes=0).check()
    assert Probe(0.1, [0, 1], [0.2, 0.8]).mean_b == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("extra", "flags"),
    [
        (["--population", "8"], "--population"),
        (["--bracket", "0", "1", "--moves", "4"], "--moves"),
        (["--no-early-stop"], "--no-early-stop"),
    ],
)
def test_search_options_without_p_auto_are_refused_not_ignored(tmp_path, capsys, extra, flags):
    from mesa.cli import main

    out = tmp_path / "z"
    assert main(["zoo", "sycophancy", "--p", "0.1", "0.2", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mesa: error: ") and "only with --p auto" in err and flags in err
    assert not out.exists()


@pytest.mark.slow
def test_cli_transition_search_on_a_tiny_sequence_family(tmp_path: Path, capsys):
    from mesa.cli import main

    argv = ["zoo", "sycophancy", "--p", "auto", "--out", str(tmp_path / "t"), "--workers", "1"]
    argv += ["--probes", "1", "--population", "2", "--min-each-side", "1", "--bracket", "0", "0.5"]
    argv += ["--opt", "P=7", "d_model=32", "n_layers=1", "--hp", "steps=40", "batch_size=64"]
    argv += ["eval_every=20", "eval_samples=64", "--methods", "behaviour"]
    code = main(argv)
    out = capsys.readouterr().out
    assert "transition search: 1 probe in [0, 0.5]" in out
    # progress as it goes: each probe and population reported when it ends
    assert "probe 1/1 at p = 0.125: mean b " in out and "population 1 at p = " in out
    saved = json.loads((tmp_path / "t" / "transition.json").read_text())
    assert len(saved["probes"]) == 1 and saved["cost"]["search_train_s"] > 0
    assert (tmp_path / "t" / f"p{saved['p']:g}" / "zoo.json").is_file()
    assert code in (0, 1)  # whether two tiny members split is up to them


def test_a_probes_seeds_run_side_by_side_on_the_zoos_workers(tmp_path: Path, monkeypatch):
    """All seeds of one probe go to the zoo's backend in one call (so two workers train two
    seeds at once), and a failed member stops the search with its message."""
    import mesa.zoo.runner as runner
    from mesa.io import OOD, write_json

    calls: list[list[tuple[str, float, int]]] = []

    def run_members(out, config, todo, on_done):
        calls.append(list(todo))
        assert config.workers == 2 and not config.detect
        for name, p, seed in todo:
            if seed == 13:
                on_done(name, None, "out of memory")
                continue
            write_json(out / "members" / name / OOD, {"preference": synthetic_b(p, seed)})
            on_done(name, {}, None)

    monkeypatch.setattr(runner, "run_members", run_members)
    zoo = ZooConfig("sycophancy", workers=2)
    measure = transition._search_member(tmp_path, zoo)
    assert measure(0.3, [11, 12]) == [0.9, 0.9]
    assert calls == [[("sycophancy_p0.3_s11", 0.3, 11), ("sycophancy_p0.3_s12", 0.3, 12)]]
    failure = "search member sycophancy_p0.01_s13 failed: out of memory"
    with pytest.raises(MesaError, match=re.escape(failure)):
        measure(0.01, [12, 13])


def test_aim_interpolates_the_measured_b_inside_the_bracket():
    """The population goes where the line through the bracket ends' b crosses 1/2 (square-root
    scale), at most AIM_MARGIN of the way from an end; an unmeasured end gives the midpoint."""
    # b 0.2 at 0.04 and 0.8 at 0.16: halfway on the sqrt scale, sqrt p = 0.3
    assert aim((0.04, 0.16), {0.04: 0.2, 0.16: 0.8}) == pytest.approx(0.09)
    # b 0.4 and 0.8: a quarter of the way, sqrt p = 0.2 + 0.25 * 0.2 = 0.25
    assert aim((0.04, 0.16), {0.04: 0.4, 0.16: 0.8}) == pytest.approx(0.0625)
    # b 0.496 at the low end: the margin keeps it a tenth in, sqrt p = 0.22
    assert aim((0.04, 0.16), {0.04: 0.496, 0.16: 0.8}) == pytest.approx(0.0484)
    assert aim((0.0, 0.16), {0.16: 0.8}) == midpoint(0.0, 0.16)  # a bound, never measured
    assert aim((0.04, 0.16), {0.04: 0.6, 0.16: 0.8}) == midpoint(0.04, 0.16)  # no straddle
    assert aim((0.04, 0.16), {0.04: math.nan, 0.16: 0.8}) == midpoint(0.04, 0.16)


def test_a_smooth_family_gets_its_population_nearer_the_transition_than_the_midpoint(
    tmp_path, monkeypatch
):
    """With b rising smoothly through 1/2 (as maze's does), one aimed population splits where
    the bracket's midpoint would not; a resumed search replays the populations it recorded."""
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)

    def curve(p: float) -> float:  # crosses 1/2 at p = 0.05
        return 0.5 + 2.0 * (math.sqrt(p) - math.sqrt(0.05))

    def smooth_b(p: float, seed: int) -> float:  # seeds spread +-0.09 about the curve
        return curve(p) + ((seed % 7) - 3) * 0.03

    def measure(root: Path, zoo: ZooConfig):  # probes read the curve itself
        def at(p: float, seeds: list[int]) -> list[float]:
            counts["search"] += len(seeds)
            return [curve(p) for _ in seeds]

        return at

    def run_zoo(config: ZooConfig, out: Path, progress: bool = True) -> ZooResult:
        counts["population"] += 1
        rows = [{"p": p, "seed": s, "b": smooth_b(p, s)} for p in config.ps for s in config.seeds]
        return ZooResult(Path(out), rows, {}, {})

    monkeypatch.setattr(transition, "_search_member", measure)
    monkeypatch.setattr(transition, "run_zoo", run_zoo)
    zoo = ZooConfig("sycophancy")
    config = TransitionConfig(zoo, population=16, probes=3, moves=0, bracket=(0.0, 1.0))
    found = find_transition(config, tmp_path / "aimed")
    assert found.split["splits"] and abs(math.sqrt(found.p) - math.sqrt(0.05)) < 0.01
    assert found.populations[0]["mean_b"] == pytest.approx(
        sum(smooth_b(found.p, s) for s in range(16)) / 16
    )
    mid = midpoint(*found.bracket)
    assert (
        min(
            sum(smooth_b(mid, s) > 0.5 for s in range(16)),
            16 - sum(smooth_b(mid, s) > 0.5 for s in range(16)),
        )
        < 4
    )  # the midpoint population would not have split
    # a search recorded by another rule resumes with the populations it tried, in order
    state = json.loads((tmp_path / "aimed" / "transition.json").read_text())
    state["populations"] = [{**state["populations"][0], "p": 0.07, "splits": False}]
    (tmp_path / "aimed" / "transition.json").write_text(json.dumps(state))
    again = find_transition(replace(config, moves=1), tmp_path / "aimed")
    assert counts["search"] == 3  # the probes are replayed, not measured again
    assert again.populations[0]["p"] == 0.07 and not again.populations[0]["splits"]
    # the next population goes where the curve through the probes and that population crosses
    assert again.p == refit(again.probes, again.populations[:1], (0.0, 1.0)) < 0.07
    assert again.populations[1]["splits"]


def test_no_split_says_what_to_try_and_fewer_moves_keep_every_population(tmp_path, monkeypatch):
    """A search whose populations all land on one side says where the transition may be; resumed
    with fewer moves it keeps (replays) every population it recorded."""
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    # the bracket's upper end 0.12 lies below the transition (0.137): every member has b < 1/2
    config = TransitionConfig(zoo, population=16, probes=2, moves=2, bracket=(0.0, 0.12))
    found = find_transition(config, tmp_path)
    assert len(found.populations) == 3 and not any(q["splits"] for q in found.populations)
    text = found.summary()
    assert "the probes' bracket [0.0675, 0.12]" in text
    assert "no population split after 3" in text and "above the search's upper bound 0.12" in text
    assert "widen --bracket" in text
    tried = [q["p"] for q in found.populations]
    fewer = find_transition(replace(config, moves=0), tmp_path)
    assert [q["p"] for q in fewer.populations] == tried
    saved = json.loads((tmp_path / "transition.json").read_text())
    assert [q["p"] for q in saved["populations"]] == tried
    assert saved["probe_bracket"] == [0.0675, 0.12]


def _pop(p: float, above: int, below: int, mean_b: float) -> dict:
    return {"p": p, "above": above, "below": below, "splits": False, "mean_b": mean_b}


def test_crossing_is_the_fitted_curves_half_way_point():
    # two points symmetric about 1/2 on the sqrt scale: the curve crosses halfway, sqrt p = 0.3
    assert crossing([(0.04, 0.2, 1), (0.16, 0.8, 1)]) == pytest.approx(0.3, abs=1e-4)
    # b 0.2 and 0.6: the curve through both, logit(b) linear in sqrt p, crosses where logit = 0
    logit = math.log(0.2 / 0.8), math.log(0.6 / 0.4)
    root = 0.2 + 0.2 * (0 - logit[0]) / (logit[1] - logit[0])
    assert crossing([(0.04, 0.2, 1), (0.16, 0.6, 1)]) == pytest.approx(root, abs=1e-4)
    # nothing below 1/2: the same curve, extrapolated down to its crossing
    logit = math.log(0.6 / 0.4), math.log(0.8 / 0.2)
    root = 0.2 - 0.2 * logit[0] / (logit[1] - logit[0])
    assert crossing([(0.04, 0.6, 1), (0.16, 0.8, 1)]) == pytest.approx(root, abs=1e-4)
    assert crossing([(0.04, 0.8, 1), (0.16, 0.2, 1)]) is None  # b falls with p
    assert crossing([(0.04, 1.0, 1), (0.16, 1.0, 1)]) is None  # no member below 1/2 at all


def test_refit_lets_a_population_outweigh_a_single_seed_probe():
    """Coin's search at seeds 100-115: single-seed probes put the transition above 0.05625
    (b 0.356 there), the population at 0.0744 had all 16 seeds above 1/2 (mean 0.83). The next
    population goes where the curve through all of them crosses 1/2: below that probe."""
    probes = [
        Probe(0.1, [0], [0.81]),
        Probe(0.025, [1], [0.18]),
        Probe(0.05625, [2], [0.356]),
        Probe(0.07656, [3], [0.51]),
    ]
    p = refit(probes, [_pop(0.0744, 16, 0, 0.83)], (0.0, 0.4))
    assert 0.04 < p < 0.05625
    # sycophancy's: a sharp switch (b 0.0015 at 0.02813, 13 : 3 at 0.033): it stays close
    probes = [
        Probe(0.05, [0], [0.99]),
        Probe(0.0125, [1], [0.0]),
        Probe(0.02813, [2], [0.0015]),
        Probe(0.03828, [3], [0.9995]),
    ]
    p = refit(probes, [_pop(0.033, 13, 3, 0.73)], (0.0, 0.2))
    assert 0.02813 < p < 0.033
    # a second population on the same side: the probes are set aside, and the populations'
    # curve (mean b 0.83, then 0.76) is extrapolated down to its crossing, inside the lower half
    # of what is left: sqrt p = 0.182 (coin's population split at 0.0491 in the end)
    pops = [_pop(0.0744, 16, 0, 0.83), _pop(0.0615, 16, 0, 0.76)]
    logit = math.log(0.83 / 0.17), math.log(0.76 / 0.24)
    s1, s2 = math.sqrt(0.0744), math.sqrt(0.0615)
    root = s2 - (s1 - s2) * logit[1] / (logit[0] - logit[1])
    assert refit(probes, pops, (0.0, 0.4)) == pytest.approx(root**2, rel=5e-3)
    assert midpoint(0.0, 0.0615) < root**2 < 0.0615


def test_refit_follows_a_smooth_rise_past_two_populations_below_no_farther_than_the_midpoint():
    """Lookalike's search at seeds 116-131: populations at 0.00223 (mean b 0.30, 1 : 15) and
    0.00552 (0.42, 2 : 14) both fell below 1/2; the midpoint rule sent the third to 0.0222,
    where every finished member had b > 0.8. The populations' curve crosses 1/2 near 0.0083."""
    pops = [_pop(0.002231, 1, 15, 0.3034), _pop(0.00552, 2, 14, 0.4206)]
    p = refit([Probe(0.0125, [0], [0.74])], pops, (0.0, 0.05))
    assert 0.0075 < p < 0.0095 and p < midpoint(0.00552, 0.05)
    # a nearly flat rise would extrapolate far away: no farther than bisection would go
    flat = [_pop(0.002231, 0, 16, 0.30), _pop(0.00552, 1, 15, 0.31)]
    assert refit([], flat, (0.0, 0.05)) == midpoint(0.00552, 0.05)
    # a step seen from one side (every member alike) has no slope: bisection
    step = [_pop(0.002231, 0, 16, 0.1), _pop(0.00552, 0, 16, 0.1)]
    assert refit([], step, (0.0, 0.05)) == midpoint(0.00552, 0.05)


def _beta_binomial_pmf(n: int, k: int, a: float, b: float) -> float:
    """Written out from the definition (independent of scipy): C(n, k) B(k + a, n - k + b) /
    B(a, b), with B from log-gamma."""

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return math.comb(n, k) * math.exp(log_beta(k + a, n - k + b) - log_beta(a, b))


def test_split_chance_is_the_beta_binomial_chance_both_sides_reach_the_need():
    # 8 above, 0 below, 8 to go, 4 a side: the 8 to go must put at most 4 above
    by_hand = sum(_beta_binomial_pmf(8, k, 8.5, 0.5) for k in range(5))
    assert transition.split_chance(8, 0, 8, 4) == pytest.approx(by_hand, rel=1e-9)
    assert by_hand == pytest.approx(0.012, abs=0.001)
    by_hand = sum(_beta_binomial_pmf(8, k, 7.5, 1.5) for k in range(6))  # 7 : 1: below needs 3
    assert transition.split_chance(7, 1, 8, 4) == pytest.approx(by_hand, rel=1e-9)
    assert transition.split_chance(4, 4, 8, 4) == pytest.approx(1.0)  # split already
    assert transition.split_chance(12, 0, 2, 4) == 0.0  # 2 to go cannot make 4 below
    assert transition.split_chance(3, 5, 8, 4) == pytest.approx(transition.split_chance(5, 3, 8, 4))


def test_only_a_population_nearly_all_on_one_side_is_hopeless():
    def chance(above: int, below: int, trained: int = 8) -> float | None:
        return transition.hopeless({"above": above, "below": below, "trained": trained}, 16, 4)

    assert chance(8, 0) == pytest.approx(0.012, abs=0.001)
    assert chance(0, 8) == pytest.approx(chance(8, 0))
    assert chance(7, 1) is None and chance(6, 2) is None  # 0.19, 0.62
    # a member at b = 1/2 has trained, on neither side: 8 remain, not 9
    assert chance(7, 0) == pytest.approx(transition.split_chance(7, 0, 8, 4))
    assert transition.early_checks(16) == (8,) and transition.early_checks(5) == (2,)
    assert transition.early_checks(3) == ()  # a look needs two members


def test_a_population_is_grown_in_stages_and_a_hopeless_one_stopped(tmp_path, monkeypatch):
    """The population zoo grows 8 -> 16 seeds (the same members as trained whole); one all on
    one side after 8 stops there and the search moves on; early_stop=False trains whole."""
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)
    calls: list[tuple[float, int]] = []
    fake = transition.run_zoo

    def run_zoo(config: ZooConfig, out: Path, progress: bool = True) -> ZooResult:
        calls.append((config.ps[0], len(config.seeds)))
        assert config.seeds == tuple(range(len(config.seeds)))  # the first seeds, grown
        recorded = Path(out) / "zoo_config.json"  # as the runner: a zoo grows, never shrinks
        if recorded.is_file():
            assert len(config.seeds) >= len(json.loads(recorded.read_text())["seeds"])
        recorded.parent.mkdir(parents=True, exist_ok=True)
        recorded.write_text(json.dumps({"seeds": list(config.seeds)}))
        return fake(config, out, progress)

    monkeypatch.setattr(transition, "run_zoo", run_zoo)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    config = TransitionConfig(zoo, population=16, probes=1, moves=3, bracket=(0.0, 0.9))
    found = find_transition(config, tmp_path / "staged")
    first, last = found.populations[0], found.populations[-1]
    assert first["p"] == 0.05625 and first["below"] == first["trained"] == 8
    assert calls[0] == (0.05625, 8) and "stopped_early" in first and not first["splits"]
    assert last["splits"] and last["trained"] == 16
    assert calls[-2:] == [(last["p"], 8), (last["p"], 16)]
    line = "0 with b > 1/2, 8 with b < 1/2 (stopped after 8 seeds: a chance of 0.01 to split)"
    assert line in found.summary()
    whole = [synthetic_b(last["p"], s) for s in range(16)]  # same members as a whole population
    assert last["above"] == sum(b > 0.5 for b in whole) and last["below"] == 16 - last["above"]
    calls.clear()
    entire = find_transition(replace(config, early_stop=False), tmp_path / "whole")
    assert all(n == 16 for _, n in calls) and entire.populations[0]["below"] == 16
    # replayed, the staged search decides the same at every stage and trains nothing new; a zoo
    # that holds all its seeds is run whole (never shrunk) and each look made on its stage
    calls.clear()
    again = find_transition(config, tmp_path / "staged")
    assert again.populations == found.populations and counts["search"] == 2
    assert calls[0] == (0.05625, 8) and calls[-1] == (last["p"], 16)
    assert (last["p"], 8) not in calls


def test_a_search_recorded_before_early_stopping_resumes_only_without_it(tmp_path, monkeypatch):
    counts = {"search": 0, "population": 0}
    _fake_runs(monkeypatch, counts)
    zoo = ZooConfig("sycophancy", task_options={"P": 7, "d_model": 32, "n_layers": 1})
    config = TransitionConfig(zoo, population=16, probes=2, bracket=(0.0, 0.4), early_stop=False)
    find_transition(config, tmp_path)
    saved = json.loads((tmp_path / "transition.json").read_text())
    del saved["settings"]["early_stop"]  # as written before the setting existed
    (tmp_path / "transition.json").write_text(json.dumps(saved))
    assert find_transition(config, tmp_path).split["splits"]
    with pytest.raises(MesaError, match=r"early_stop false there, true here.*--no-early-stop"):
        find_transition(replace(config, early_stop=True), tmp_path)


def test_the_overhead_counts_the_probes_and_every_population_before_the_last(tmp_path):
    from mesa.io import write_json
    from mesa.zoo.runner import TIMINGS

    for where, seconds in (("search", [10.0]), ("p0.1", [20.0, 20.0]), ("p0.2", [25.0] * 4)):
        for k, s in enumerate(seconds):
            write_json(tmp_path / where / "members" / f"m{k}" / TIMINGS, {"train": {"seconds": s}})
    cost = transition._cost(tmp_path, [{"p": 0.1}, {"p": 0.2}], wall_s=99.0)
    assert cost["search_train_s"] == 10.0 and cost["population_train_s"] == 140.0
    assert cost["final_population_train_s"] == 100.0
    assert cost["overhead_share"] == pytest.approx(0.5)  # (10 + 40) / 100
    assert cost["search_share"] == pytest.approx(10 / 140) and cost["wall_s"] == 99.0
