"""Where does a family's learned goal flip, and a population that splits there.

The hard question for a detector is not "does it rank p = 0 below p = 1" (p alone does that)
but "among models trained identically, which ones will misgeneralize?". That needs a population
of models trained at one ``p`` that split between the goals by seed alone, so it needs the ``p``
where the OOD true-goal preference ``b`` crosses 1/2 — the family's transition.

:func:`find_transition` locates it by bisection: starting from a bracket ``[lo, hi]`` (by
default the family's ``transition_bracket``, else the ends of its ``zoo_ps``, documented to lie
on either side of the transition), it trains ``seeds_per_probe`` members at the midpoint (on a
square-root scale: transitions sit at small ``p``; a probe's seeds train side by side on the
zoo's workers),
measures their mean ``b`` out of distribution, and keeps the half that still brackets 1/2.
After ``probes`` rounds it trains the ``population`` (``N`` seeds, default 16) inside the
bracket, where the line through the two ends' measured ``b`` crosses 1/2 (:func:`aim`), as an
ordinary zoo (trained, OOD-tested and detected), and checks the split: at least
``min_each_side`` members on each side of ``b = 1/2``. Where seeds alone do not split it, it
says so and tries another ``p`` towards the side that is short (up to ``moves`` times): where a
logistic curve fitted to everything measured so far crosses 1/2 (:func:`refit`), inside the
bracket that the populations leave. A population trains in two stages (half its seeds, then
all): one that is unlikely to split by the end is stopped after the first and the search moves
on (:func:`hopeless`; ``early_stop=False`` trains every population whole), so a lopsided
population costs half of one. Members do not depend on the stages: a population that
splits is the same 16 members either way. A population of many seeds outweighs a single-seed probe
there, whose ``b`` is one seed's (in coin, one seed's ``b`` ranged 0.51-0.95 at one ``p``); when
two populations in a row land on the same side the probes evidently misled the fit, and it is
made from the populations alone, extrapolated along their rise in mean ``b`` (no farther than
the bracket's midpoint).

Everything is resumable: search members are run directories under ``DIR/search``, each
population a zoo under ``DIR/p<value>``, and ``DIR/transition.json`` records every probe (its
``p``, seeds and ``b`` values), the chosen ``p``, each population's split and the compute spent
(training seconds of the search against the populations', and of the search with every
population before the last against the last one's: the search is an overhead).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mesa.errors import MesaError
from mesa.io import as_read_back, locked, nan_for_null, read_json, write_json
from mesa.zoo.runner import HOW_IT_RUNS, ZooConfig, member_name, run_zoo

TRANSITION = "transition.json"
#: Search members use seeds from here on (population seeds start at ``first_seed``).
SEARCH_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class TransitionConfig:
    """Settings of a transition search and its population."""

    zoo: ZooConfig
    """The family, its options and trainer settings, workers (``ps`` and ``seeds`` unused)."""
    first_seed: int = 0
    """The population's seeds are ``first_seed .. first_seed + population - 1``."""
    population: int = 16
    probes: int = 3
    seeds_per_probe: int = 1
    min_each_side: int = 4
    moves: int = 2
    early_stop: bool = True
    """Check a population's split when half its seeds have trained, and move on from one
    unlikely to split (:func:`hopeless`) instead of training the rest."""
    bracket: tuple[float, float] | None = None
    """``(lo, hi)``: p values known to lie below and above the transition (default: the family's
    ``transition_bracket``, else the ends of its ``zoo_ps``)."""

    def check(self) -> TransitionConfig:
        for name in ("population", "probes", "seeds_per_probe", "min_each_side"):
            if getattr(self, name) < 1:
                raise MesaError(f"{_named(name)} must be at least 1, got {getattr(self, name)}")
        if self.moves < 0:
            raise MesaError(f"{_named('moves')} must be at least 0, got {self.moves}")
        if 2 * self.min_each_side > self.population:
            raise MesaError(
                f"a population of {self.population} cannot hold {self.min_each_side} members on "
                "each side of b = 1/2"
            )
        lo, hi = self.range()
        if not 0 <= lo < hi <= 1:
            raise MesaError(f"the bracket must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
        return self

    def range(self) -> tuple[float, float]:
        if self.bracket is not None:
            return float(self.bracket[0]), float(self.bracket[1])
        from mesa.tasks import get_task_class

        cls = get_task_class(self.zoo.family)
        if cls.transition_bracket is not None:
            return float(cls.transition_bracket[0]), float(cls.transition_bracket[1])
        if not cls.zoo_ps:
            raise MesaError(
                f"{self.zoo.family} has neither a transition_bracket nor zoo_ps to start the "
                "search from: give --bracket LO HI"
            )
        return float(min(cls.zoo_ps)), float(max(cls.zoo_ps))


def _named(setting: str) -> str:
    """A setting as the API and the command line both call it."""
    return f"{setting} (--{setting.replace('_', '-')})"


@dataclass
class Probe:
    p: float
    seeds: list[int]
    b: list[float]

    @property
    def mean_b(self) -> float:
        values = [x for x in self.b if not math.isnan(x)]
        return sum(values) / len(values) if values else math.nan


def p_at(root: float) -> float:
    """The p at ``root`` on the square-root scale, rounded to 4 significant digits (so that
    member names, which keep 6, never collide): every p the search trains at comes from here."""
    return float(f"{root**2:.4g}")


def midpoint(lo: float, hi: float) -> float:
    """The midpoint of ``[lo, hi]`` on a square-root scale (rounded by :func:`p_at`)."""
    return p_at((math.sqrt(lo) + math.sqrt(hi)) / 2)


def bisect(
    measure: Callable[[float, list[int]], list[float]],
    lo: float,
    hi: float,
    probes: int,
    seeds_for: Callable[[int], list[int]],
    done: list[Probe] | None = None,
    on_probe: Callable[[list[Probe], tuple[float, float]], None] | None = None,
) -> tuple[list[Probe], tuple[float, float]]:
    """Bisect ``[lo, hi]`` for the p where the mean of ``measure(p, seeds)`` crosses 1/2;
    ``done`` are probes already measured (a resumed search replays them without measuring)."""
    history: list[Probe] = []
    for k in range(probes):
        p = midpoint(lo, hi)
        if done and k < len(done) and done[k].p == p:
            probe = done[k]
        else:
            seeds = seeds_for(k)
            probe = Probe(p, seeds, measure(p, seeds))
        history.append(probe)
        if math.isnan(probe.mean_b):
            raise MesaError(f"no OOD preference could be measured at p = {p:g}")
        lo, hi = (lo, p) if probe.mean_b > 0.5 else (p, hi)
        if on_probe is not None:
            on_probe(history, (lo, hi))
    return history, (lo, hi)


@dataclass
class TransitionResult:
    path: Path
    probes: list[Probe]
    bracket: tuple[float, float]
    p: float
    """The p of the population that split (or the last tried)."""
    split: dict[str, Any] = field(default_factory=dict)
    populations: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, float] = field(default_factory=dict)
    probe_bracket: tuple[float, float] | None = None
    """The bracket the probes left (``bracket`` is where the last move put it)."""
    bounds: tuple[float, float] | None = None
    """The search's own bracket (``TransitionConfig.bracket`` or the family's default)."""

    def summary(self) -> str:
        lines = [f"transition search {self.path}: {len(self.probes)} probes"]
        for pr in self.probes:
            lines.append(f"  p = {pr.p:<8g} seeds {pr.seeds}: mean b {pr.mean_b:.2f}")
        lo, hi = self.probe_bracket or self.bracket
        lines.append(f"  the probes' bracket [{lo:g}, {hi:g}]")
        lines += [f"  {_split_line(pop, k + 1)}" for k, pop in enumerate(self.populations)]
        if self.split.get("splits"):
            lines.append(f"  -> p = {self.p:g}: a population that splits")
        else:
            lines.append(f"  -> no population split after {len(self.populations)}: {self.hint()}")
        if self.cost:
            lines.append(
                f"  search compute: {self.cost['search_train_s']:.0f} s of training, "
                f"{self.cost['search_share']:.0%} of the {len(self.populations)} population(s)' "
                f"{self.cost['population_train_s']:.0f} s"
            )
            if len(self.populations) > 1 and "overhead_share" in self.cost:
                lines.append(
                    f"  with the populations before the last: "
                    f"{self.cost['overhead_share']:.0%} of the last one's training"
                )
        return "\n".join(lines)

    def hint(self) -> str:
        """What to try when no population split."""
        sides = {pop["above"] > pop["below"] for pop in self.populations}
        if len(sides) == 2:
            return (
                "populations fell on both sides of 1/2 but none straddled it: this family's "
                "seeds rarely split at one p (try --moves, or a larger --population)"
            )
        lo, hi = self.bounds or self.bracket
        if sides == {True}:
            where = f"below the search's lower bound {lo:g} or close above it"
        else:
            where = f"above the search's upper bound {hi:g} or close below it"
        return (
            f"every population fell on one side of 1/2: the transition may lie {where} "
            "(widen --bracket, in a new --out, or rerun with more --moves)"
        )


def _search_member(root: Path, zoo: ZooConfig) -> Callable[[float, list[int]], list[float]]:
    """Measure b at p for seeds: train and OOD-evaluate search members (no detection), a probe's
    seeds side by side on the zoo's workers (two seeds a probe on two workers cost the wall
    time of one)."""
    from mesa.io import OOD
    from mesa.zoo.runner import run_members

    cfg = replace(zoo, detect=False)

    def measure(p: float, seeds: list[int]) -> list[float]:
        failed: dict[str, str] = {}

        def on_done(name: str, row: Any, error: str | None) -> None:
            if error is not None:
                failed[name] = error

        todo = [(member_name(zoo.family, p, seed), p, seed) for seed in seeds]
        run_members(root, cfg, todo, on_done)
        if failed:
            name, error = next(iter(failed.items()))
            raise MesaError(f"search member {name} failed: {error}")
        oods = [read_json(root / "members" / n / OOD) for n, _, _ in todo]
        return [float(nan_for_null(ood["preference"])) for ood in oods]

    return measure


def _train_seconds(members: Path) -> float:
    from mesa.zoo.runner import TIMINGS

    total = 0.0
    for d in members.glob("*"):
        if (d / TIMINGS).is_file():
            total += float(read_json(d / TIMINGS).get("train", {}).get("seconds", 0.0))
    return total


def _split(rows: list[dict[str, Any]], p: float, need: int) -> dict[str, Any]:
    above = sum(1 for r in rows if r["b"] > 0.5)
    below = sum(1 for r in rows if r["b"] < 0.5)
    values = [float(r["b"]) for r in rows if not math.isnan(float(r["b"]))]
    return {
        "p": p,
        "above": above,
        "below": below,
        "splits": min(above, below) >= need,
        "mean_b": sum(values) / len(values) if values else math.nan,
    }


def split_chance(above: int, below: int, remaining: int, need: int) -> float:
    """The chance that ``remaining`` more members bring both sides of b = 1/2 to ``need``, given
    ``above`` and ``below`` so far: each new member falls above with an unknown probability,
    whose belief is the Jeffreys prior updated by the members so far, so the number above among
    the rest is beta-binomial."""
    low, high = max(0, need - above), remaining - max(0, need - below)
    if low > high:
        return 0.0
    from scipy.stats import betabinom

    rest = betabinom(remaining, above + 0.5, below + 0.5)
    return float(rest.cdf(high) - rest.cdf(low - 1))


def early_checks(population: int) -> tuple[int, ...]:
    """How many seeds have trained when a population's split is looked at early: half of it
    (one look: each waits for the stage's last member, which can leave a worker idle; a look
    needs two members, since a zoo of one has no agreement to measure)."""
    half = population // 2
    return (half,) if 2 <= half < population else ()


#: A partly trained population whose chance to split is below this is stopped early.
STOP_BELOW = 0.1


def hopeless(split: dict[str, Any], population: int, need: int) -> float | None:
    """The chance a partly trained population still splits (:func:`split_chance`) when it is
    below :data:`STOP_BELOW`, else None. Only a population nearly all on one side stops: a
    population stopped that would have split costs a new one (16 seeds, which may themselves
    miss), one trained to the end that does not split only its remaining seeds. At 16 seeds and 4
    a side that stops 8 : 0 after 8 seeds (chance 0.01); 7 : 1 (0.19) goes on. ``split`` holds
    ``above``, ``below`` and ``trained`` (members so far, on either side or on neither)."""
    remaining = population - split["trained"]  # a member on neither side (b = 1/2) has trained
    chance = split_chance(split["above"], split["below"], remaining, need)
    return chance if chance < STOP_BELOW else None


#: How far towards a bracket's end the interpolated p may go (a share of the bracket on the
#: square-root scale): a single seed's b is noisy, so no end is trusted to lie on the transition.
AIM_MARGIN = 0.1


def aim(bracket: tuple[float, float], measured: dict[float, float]) -> float:
    """The p inside ``bracket`` to train a population at: where the straight line through the
    mean ``b`` measured at its two ends (``measured``: p -> mean b) crosses 1/2, on the
    square-root scale, kept :data:`AIM_MARGIN` away from either end; the midpoint where an end
    was never measured (a bound of the search) or the two do not straddle 1/2. Bisection alone
    would ignore how close a probe came: a probe at b = 0.49 says the transition is at its side
    of the bracket, not in the middle. Rounded by :func:`p_at`."""
    lo, hi = bracket
    b_lo, b_hi = measured.get(lo, math.nan), measured.get(hi, math.nan)
    if not b_lo <= 0.5 < b_hi:  # also False when either is NaN
        return midpoint(lo, hi)
    t = min(max((0.5 - b_lo) / (b_hi - b_lo), AIM_MARGIN), 1 - AIM_MARGIN)
    root = math.sqrt(lo) + t * (math.sqrt(hi) - math.sqrt(lo))
    return p_at(root)


def _measured(history: list[Probe]) -> dict[float, float]:
    """The probes' mean b by p."""
    return {pr.p: pr.mean_b for pr in history if not math.isnan(pr.mean_b)}


#: How near to a tried population's p the next may go, as a share of the bracket (square-root
#: scale): near enough to follow a sharp transition (sycophancy's populations split 13 : 3 at
#: p = 0.033 and 10 : 6 at 0.0314), never onto a p already tried.
MOVE_MARGIN = 0.02


def population_bracket(
    populations: list[dict[str, Any]], lo: float, hi: float
) -> tuple[float, float]:
    """Between the highest p whose population fell mostly below 1/2 (else the search's bound
    ``lo``) and the lowest whose population fell mostly above (else ``hi``)."""
    below = max((q["p"] for q in populations if not _lopsided_above(q)), default=lo)
    above = min((q["p"] for q in populations if _lopsided_above(q)), default=hi)
    return min(below, above), max(below, above)  # seeds' noise can cross them: keep the order


def crossing(points: list[tuple[float, float, int]]) -> float | None:
    """Where a logistic curve in ``sqrt(p)`` fitted to ``(p, mean b, seeds)`` crosses 1/2, as
    ``sqrt(p)``: each point counts as ``seeds * b`` members pursuing the true goal and
    ``seeds * (1 - b)`` not, so a population of 16 outweighs a single-seed probe sixteen times.
    Where every mean b lies on one side of 1/2 the crossing is an extrapolation (:func:`refit`
    bounds how far it may go). ``None`` when the points hold no member on one of the two sides
    (every b 0, or every b 1) or the curve does not rise with p."""
    if not (any(b < 1 for _, b, _ in points) and any(b > 0 for _, b, _ in points)):
        return None
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y, w = [], [], []
    for p, b, n in points:
        for label, weight in ((1, n * b), (0, n * (1 - b))):
            if weight > 0:
                x.append([math.sqrt(p)])
                y.append(label)
                w.append(weight)
    with warnings.catch_warnings():  # near-separable points: the slope stops growing at C
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = LogisticRegression(C=1e6, tol=1e-10, max_iter=10_000).fit(x, y, sample_weight=w)
    slope = float(fit.coef_[0, 0])
    return -float(fit.intercept_[0]) / slope if slope > 0 else None


def refit(
    history: list[Probe], populations: list[dict[str, Any]], bounds: tuple[float, float]
) -> float:
    """The p for the next population after one that did not split: where :func:`crossing`
    puts the transition, fitted to the probes and populations (the populations alone when the
    last two fell on the same side: the probes misled it), kept inside
    :func:`population_bracket` at least :data:`MOVE_MARGIN` from its ends; the bracket's
    midpoint where no curve rises through the points.

    Where every point lies on one side of 1/2 the curve is extrapolated, and the move goes no
    farther than the bracket's midpoint: a family whose ``b`` rises smoothly with p (lookalike's
    populations: mean b 0.30, then 0.42, with the transition a little above) is followed up its
    slope, while a nearly flat fit (a step, seen from one side) falls back on bisection.
    Rounded by :func:`p_at`."""
    lo, hi = population_bracket(populations, *bounds)
    sides = [_lopsided_above(q) for q in populations[-2:]]
    misled = len(sides) == 2 and sides[0] == sides[1]
    points = [] if misled else [(pr.p, pr.mean_b, len(pr.b)) for pr in history]
    points += [(q["p"], q["mean_b"], q["above"] + q["below"]) for q in populations]
    points = [pt for pt in points if not math.isnan(pt[1])]
    root = crossing(points)
    if root is None:
        return midpoint(lo, hi)
    s_lo, s_hi = math.sqrt(lo), math.sqrt(hi)
    margin = MOVE_MARGIN * (s_hi - s_lo)
    low, high = s_lo + margin, s_hi - margin
    if all(b < 0.5 for _, b, _ in points):  # extrapolated upwards
        high = min(high, (s_lo + s_hi) / 2)
    elif all(b > 0.5 for _, b, _ in points):  # extrapolated downwards
        low = max(low, (s_lo + s_hi) / 2)
    return p_at(min(max(root, low), high))


def find_transition(
    config: TransitionConfig,
    out: str | os.PathLike[str],
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TransitionResult:
    """Bisect for the transition, then train a population there (see the module docstring).
    Each probe and population is reported as it ends through ``log`` (default: printed when
    ``progress``, which also shows the populations' progress bars)."""
    config.check()
    zoo = config.zoo.resolved()
    say = log if log is not None else (print_line if progress else _quiet)
    with locked(out, "transition directory") as root:
        state = read_json(root / TRANSITION) if (root / TRANSITION).is_file() else {}
        if state:
            _check_same_search(root, state.get("settings", {}), _settings(config))
        t0 = time.perf_counter()

        def save(history: list[Probe], bracket: tuple[float, float], **more: Any) -> None:
            record = {"settings": _settings(config), "probes": [asdict(h) for h in history]}
            write_json(root / TRANSITION, {**record, "bracket": list(bracket), **more})

        history, bracket = _probe(config, zoo, root, state, save, say)
        probe_bracket = bracket
        searched = {"probe_bracket": list(probe_bracket)}
        seeds = tuple(range(config.first_seed, config.first_seed + config.population))
        populations: list[dict[str, Any]] = []
        tried = [q["p"] for q in state.get("populations", [])]  # a resumed search replays them

        def next_p(k: int) -> float:
            if k < len(tried):
                return tried[k]
            if populations:
                return refit(history, populations, config.range())
            return aim(bracket, _measured(history))

        p = next_p(0)
        # a search resumed with fewer moves still replays (and keeps) every population it tried
        for k in range(max(config.moves + 1, len(tried))):
            again = " (recorded: resumed)" if k < len(tried) else ""
            say(f"population {k + 1} at p = {p:g}: {len(seeds)} seeds{again}")
            split = _population(config, zoo, root, p, seeds, progress)
            populations.append(split)
            save(history, bracket, **searched, p=p, populations=populations)
            say(_split_line(split, k + 1))
            if split["splits"]:
                break
            bracket = population_bracket(populations, *config.range())
            p = next_p(k + 1)
        p = populations[-1]["p"]  # the one that split, or the last tried
        wall_s = state.get("cost", {}).get("wall_s", 0.0) + time.perf_counter() - t0
        cost = _cost(root, populations, wall_s)
        save(history, bracket, **searched, p=p, populations=populations, cost=cost)
        found = (p, populations[-1], populations, cost, probe_bracket, config.range())
        return TransitionResult(root, history, bracket, *found)


def _population(
    config: TransitionConfig,
    zoo: ZooConfig,
    root: Path,
    p: float,
    seeds: tuple[int, ...],
    progress: bool,
) -> dict[str, Any]:
    """Train the population at ``p`` as one zoo, grown from its first half of seeds to all
    (:func:`early_checks`) when ``config.early_stop``; its split, with ``trained`` (its members
    so far) and, where it was stopped early, ``stopped_early`` (the chance it had to split).
    Each look is made on its stage's seeds alone, so a resumed search whose zoo already holds
    more (recorded, or killed in a later stage) decides as it did; a zoo never shrinks."""
    out = root / f"p{p:g}"
    held = (
        len(read_json(out / "zoo_config.json")["seeds"])
        if (out / "zoo_config.json").is_file()
        else 0
    )
    rows: list[dict[str, Any]] = []
    grown = 0
    for n in (*(early_checks(len(seeds)) if config.early_stop else ()), len(seeds)):
        if n > grown:
            grown = max(n, held)
            rows = run_zoo(replace(zoo, ps=(p,), seeds=seeds[:grown]), out, progress).rows
        stage = [r for r in rows if int(r["seed"]) in seeds[:n]]
        split = {**_split(stage, p, config.min_each_side), "trained": n}
        if n < len(seeds):
            chance = hopeless(split, len(seeds), config.min_each_side)
            if chance is not None:
                return {**split, "stopped_early": chance}
    return split


def print_line(message: str) -> None:
    """Print ``message`` in one write, so that searches printing side by side in other
    processes do not mix their lines."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _quiet(message: str) -> None:
    pass


def _probe(
    config: TransitionConfig,
    zoo: ZooConfig,
    root: Path,
    state: dict[str, Any],
    save: Callable[..., None],
    say: Callable[[str], None],
) -> tuple[list[Probe], tuple[float, float]]:
    """The bisection's probes (those in ``state`` replayed), saved and reported as each ends."""
    lo, hi = config.range()
    n = config.probes
    say(f"transition search: {n} probe{'s' * (n != 1)} in [{lo:g}, {hi:g}]")

    def seeds_for(k: int) -> list[int]:
        base = config.first_seed + SEARCH_SEED_OFFSET + k * config.seeds_per_probe
        return list(range(base, base + config.seeds_per_probe))

    done = [Probe(**nan_for_null(pr)) for pr in state.get("probes", [])]

    def on_probe(history: list[Probe], bracket: tuple[float, float]) -> None:
        save(history, bracket)
        k, pr = len(history), history[-1]
        again = " (recorded)" if k <= len(done) and done[k - 1] == pr else ""
        say(
            f"probe {k}/{config.probes} at p = {pr.p:g}: mean b {pr.mean_b:.2f} "
            f"-> bracket [{bracket[0]:g}, {bracket[1]:g}]{again}"
        )

    measure = _search_member(root / "search", zoo)
    return bisect(measure, lo, hi, config.probes, seeds_for, done, on_probe)


def _split_line(split: dict[str, Any], number: int) -> str:
    verdict = "splits" if split["splits"] else "does not split"
    if "stopped_early" in split:
        verdict = (
            f"stopped after {split['trained']} seeds: a chance of "
            f"{split['stopped_early']:.2f} to split"
        )
    return (
        f"population {number} at p = {split['p']:g}: {split['above']} with b > 1/2, "
        f"{split['below']} with b < 1/2 ({verdict})"
    )


def _cost(root: Path, populations: list[dict[str, Any]], wall_s: float) -> dict[str, float]:
    """Training seconds of the search's probes against the populations', the overhead (the
    probes and every population before the last) against the last population's, and the wall
    time (summed over every call that worked on the search: a resume adds its own seconds)."""
    search_s = _train_seconds(root / "search" / "members")
    each = [_train_seconds(root / f"p{pop['p']:g}" / "members") for pop in populations]
    pop_s, final_s = sum(each), (each[-1] if each else 0.0)
    return {
        "search_train_s": search_s,
        "population_train_s": pop_s,
        "search_share": search_s / pop_s if pop_s else math.nan,
        "final_population_train_s": final_s,
        "overhead_share": (search_s + pop_s - final_s) / final_s if final_s else math.nan,
        "wall_s": wall_s,
    }


def _lopsided_above(split: dict[str, Any]) -> bool:
    return split["above"] > split["below"]


def _check_same_search(root: Path, saved: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse to resume a saved search that is not this one, naming the settings that differ:
    all must be equal but ``moves``, which only says how far the search may go (a search resumed
    with more moves goes on from its last population)."""

    def flat(d: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in d.items() if k not in ("zoo", "moves")}, **d.get("zoo", {})}

    # searches recorded before early stopping trained every population whole
    old, new = flat({"early_stop": False, **saved}), flat(settings)
    differ = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if differ:
        what = "; ".join(
            f"{k} {json.dumps(old.get(k))} there, {json.dumps(new.get(k))} here" for k in differ
        )
        hint = " (a search recorded before early stopping resumes with --no-early-stop)"
        raise MesaError(
            f"{root} holds a transition search made with other settings ({what}); use another "
            f"--out{hint if differ == ['early_stop'] else ''}"
        )


def _settings(config: TransitionConfig) -> dict[str, Any]:
    d = asdict(config)
    zoo = d.pop("zoo")
    for k in (*HOW_IT_RUNS, "ps", "seeds"):
        zoo.pop(k, None)
    d["zoo"] = zoo
    d["bracket"] = list(config.range())
    return as_read_back(d)  # type: ignore[no-any-return]
