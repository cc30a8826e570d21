"""Benchmark: populations that split within one p — the test set for detection's methods.

For each family, ``mesa zoo FAMILY --p auto`` (:func:`mesa.zoo.find_transition`) bisects for the
p where the OOD preference crosses 1/2, then trains a population of ``--population`` seeds there
(from ``--first-seed``; test seeds are >= 100), each trained, OOD-tested and detected by the
rules fixed before this was run, and checks that it splits (>= 4 members on each side of
b = 1/2). Records per family: the search (its probes and the compute it cost against the
population's), the chosen p, the split, every score's agreement with behaviour within that p
(AUROC for b > 1/2 and Spearman, with bootstrap intervals, beside chance, in-distribution success
and success with the goals together), the verdicts' calibration, and the wall time.

Families run side by side in ``--lanes`` (2 with the default two workers): each lane is a worker
process that takes the next family (costliest first) when its last one is done and trains its
members on ``--workers / --lanes`` workers, since a search's one-seed probes and a population's
last members would otherwise leave workers idle. Once no family is left to take, the lanes still
running share the idle lanes' workers (a population in training starts more workers: see
:func:`mesa.zoo.workers.growing`). Members do not depend on the lanes. See
``bench_within_p.md``. ::

    python -m experiments bench_within_p --first-seed 100 --out runs/within_p

writes ``results/bench_within_p/seeds100-115-<commit>.json``.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from experiments.common import fmt, parse_assignments, seeds_slug, write_result

FAMILIES = ("maze", "coin", "lookalike", "keys", "sycophancy")
#: In ``--out``: how many workers each lane may use now (written as families end, read by lanes).
SHARE = "lanes.json"


#: The default order families start in: the costliest first (lookalike's members train longest,
#: then maze's), so that side-by-side lanes end close together. Only the schedule depends on it.
FAMILIES_BY_COST = ("lookalike", "maze", "keys", "sycophancy", "coin")


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    options, hparams = parse_assignments(args.opt), parse_assignments(args.hp)
    search = {
        "out": args.out,
        "first_seed": args.first_seed,
        "population": args.population,
        "probes": args.probes,
        "seeds_per_probe": args.seeds_per_probe,
        "moves": args.moves,
        "min_each_side": args.min_each_side,
        "early_stop": args.early_stop,
        "workers": args.workers // args.lanes,
        "backend": args.backend,
        "options": options,
        "hparams": hparams,
    }
    _check(args.families, search)
    t_all = time.perf_counter()
    families = run_families(args.families, search, args.lanes)
    seeds = list(range(args.first_seed, args.first_seed + args.population))
    payload = {
        "seeds": seeds,
        "population": args.population,
        "probes": args.probes,
        "seeds_per_probe": args.seeds_per_probe,
        "min_each_side": args.min_each_side,
        "early_stop": args.early_stop,
        "workers": args.workers,
        "lanes": args.lanes,
        "total_wall_s": time.perf_counter() - t_all,
        "families": families,
        **{k: v for k, v in (("task_options", options), ("hparams", hparams)) if v},
    }
    what = seeds_slug(tuple(seeds))
    if sorted(args.families) != sorted(FAMILIES):
        what = "-".join(args.families) + "-" + what
    write_result("bench_within_p", what + ("-custom" if options or hparams else ""), payload)
    print(table(payload))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--families", nargs="+", default=list(FAMILIES_BY_COST), help="in this order")
    ap.add_argument("--first-seed", type=int, default=100, help="the populations' first seed")
    ap.add_argument("--population", type=int, default=16, help="seeds at the found p")
    ap.add_argument("--probes", type=int, default=3, help="bisection steps")
    ap.add_argument(
        "--seeds-per-probe",
        type=int,
        default=1,
        help="members per bisection step, trained side by side on the workers",
    )
    ap.add_argument("--moves", type=int, default=2, help="populations after the first (at most)")
    ap.add_argument(
        "--min-each-side", type=int, default=4, help="members on each side of b = 1/2 to split"
    )
    ap.add_argument(
        "--no-early-stop",
        dest="early_stop",
        action="store_false",
        help="train every population whole (default: one nearly all on one side of 1/2 after "
        "half its seeds stops there)",
    )
    ap.add_argument("--out", default="runs/within_p", help="parent directory of the searches")
    ap.add_argument("--workers", type=int, default=2, help="worker processes in all")
    ap.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="families searched side by side, each on workers / lanes of the workers (a "
        "search's one-seed probes would leave the other workers idle); default: the most "
        "lanes, up to one a family, that share the workers evenly (2 with 2 workers), and 1 "
        "with --backend ray. 1: one family at a time. Members are the same either way",
    )
    ap.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where members run (ray: one family at a time, each population over the cluster)",
    )
    ap.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options (every family)")
    ap.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters")
    args = ap.parse_args(argv)
    n, workers = len(args.families), args.workers
    if workers < 1:
        ap.error(f"--workers must be at least 1, got {workers}")
    if len(set(args.families)) < n:
        ap.error(f"a family is given twice: {' '.join(args.families)}")
    if args.lanes is None:
        fits = [k for k in range(1, min(workers, n) + 1) if workers % k == 0]
        args.lanes = 1 if args.backend == "ray" else max(fits)
    if args.backend == "ray" and args.lanes > 1:
        ap.error("--lanes runs families in local processes: with --backend ray use --lanes 1")
    if args.lanes < 1:
        ap.error(f"--lanes must be at least 1, got {args.lanes}")
    if args.lanes > min(workers, n):
        what = f"--workers ({workers})" if workers < n else f"the families given ({n})"
        ap.error(f"--lanes {args.lanes} is more than {what}")
    if workers % args.lanes:
        ap.error(f"--workers {workers} cannot be shared evenly among --lanes {args.lanes}")
    return args


def _check(names: list[str], search: dict[str, Any]) -> None:
    """Every family's settings, checked before anything runs: one line, then exit 2."""
    from mesa.errors import MesaError

    for name in names:
        try:
            config = _config(name, search).check()
            config.zoo.resolved()
        except MesaError as e:
            raise SystemExit(f"bench_within_p: error: {name}: {e}") from None


def run_families(names: list[str], search: dict[str, Any], lanes: int) -> dict[str, Any]:
    """Every family's search and population (:func:`run_family`), ``lanes`` at a time: each lane
    a worker process that takes the next family in ``names`` when its last one is done. The
    records come back in ``names``' order; a family that fails stops the benchmark with its
    message once the others are done (what they trained stays and is replayed on a rerun)."""
    from mesa.errors import MesaError
    from mesa.io import write_json
    from mesa.zoo.workers import run_in_workers

    if lanes == 1:
        return {name: run_family(name, search, progress=True) for name in names}
    done: dict[str, Any] = {}
    failed: dict[str, str] = {}
    share = Path(search["out"]) / SHARE
    share.parent.mkdir(parents=True, exist_ok=True)
    workers = search["workers"] * lanes

    def on_done(name: str, record: Any, error: str | None) -> None:
        busy = min(lanes, len(names) - len(done) - len(failed) - 1)
        if busy:  # the lanes still running share the machine's workers (rounded up: a lane
            # that ends leaves none idle; a run never loses the workers it has)
            write_json(share, {"workers_per_lane": -(-workers // busy)})
        if error is not None:
            failed[name] = error
            print(f"{name}: failed: {error}", flush=True)
            return
        done[name] = record
        split = record["split"]
        print(
            f"{name}: p = {record['p']:g}, {split['above']} : {split['below']} "
            f"({record['wall_s'] / 60:.1f} min); {len(done) + len(failed)} of {len(names)} done",
            flush=True,
        )

    print(f"{len(names)} families, {lanes} side by side: {', '.join(names)}", flush=True)
    write_json(share, {"workers_per_lane": search["workers"]})
    jobs = [(n, (n, {**search, "share": str(share)}, False)) for n in names]
    run_in_workers(run_family, jobs, lanes, on_done)
    if failed:
        raise MesaError("; ".join(f"{n}: {e}" for n, e in failed.items()))
    return {name: done[name] for name in names}


def _config(family: str, search: dict[str, Any]) -> Any:
    from mesa.zoo import TransitionConfig, ZooConfig

    zoo = ZooConfig(
        family,
        task_options=search["options"],
        hparams=search["hparams"],
        workers=search["workers"],
        backend=search.get("backend", "local"),
    )
    return TransitionConfig(
        zoo,
        first_seed=search["first_seed"],
        population=search["population"],
        probes=search["probes"],
        seeds_per_probe=search["seeds_per_probe"],
        moves=search["moves"],
        min_each_side=search["min_each_side"],
        early_stop=search.get("early_stop", True),
    )


def run_family(family: str, search: dict[str, Any], progress: bool) -> dict[str, Any]:
    """One family's transition search and population at ``search['out']/family``, and what the
    benchmark records of it."""
    from mesa.io import read_json
    from mesa.zoo import find_transition
    from mesa.zoo.transition import print_line
    from mesa.zoo.workers import growing

    t0 = time.perf_counter()
    config = _config(family, search)
    root = Path(search["out"]) / family

    def log(message: str) -> None:  # lanes print side by side: each line names its family
        print_line(f"{family}: {message}")

    share = search.get("share")
    with growing(lambda: read_json(Path(share))["workers_per_lane"]) if share else nullcontext():
        found = find_transition(config, root, progress=progress, log=None if progress else log)
    print_line(found.summary())
    population = root / f"p{found.p:g}"
    summary = read_json(population / "zoo.json")
    return {
        "wall_s": time.perf_counter() - t0,
        "probes": [{"p": pr.p, "seeds": pr.seeds, "b": pr.b} for pr in found.probes],
        "p": found.p,
        "populations": found.populations,
        "split": found.split,
        "cost": found.cost,
        "agreement": summary.get("agreement", {}),
        "in_dist": in_dist_range(population),
    }


#: A member counts as converged at this in-distribution success (the benchmark's bar for a
#: population whose split is about the goal learned, not about how far training got).
CONVERGED = 0.97


def in_dist_range(population: Path) -> dict[str, Any]:
    """The population's in-distribution success: lowest, highest, members at :data:`CONVERGED`."""
    import csv

    with (population / "results.csv").open() as fh:
        values = [float(r["in_dist_success"]) for r in csv.DictReader(fh)]
    return {
        "min": min(values),
        "max": max(values),
        "converged": sum(v >= CONVERGED for v in values),
        "n": len(values),
    }


def headline(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"total min": result["total_wall_s"] / 60}
    for name, f in result["families"].items():
        out[f"{name} p / split"] = f"{f['p']:g} / {f['split']['above']}:{f['split']['below']}"
    return out


def _within(f: dict[str, Any]) -> list[dict[str, Any]]:
    entry: Any = next(iter(f["agreement"].get("within_p", {}).values()), {})
    return entry.get("agreement", []) if isinstance(entry, dict) else []


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Within-p populations, {result['population']} seeds each ({result['seeds'][0]}-"
        f"{result['seeds'][-1]}), {result['probes']} bisection probes: "
        f"{result['total_wall_s'] / 60:.1f} min in all",
        "",
        "| family | p | b > 1/2 : b < 1/2 | splits | in-dist success (converged) "
        "| search / population compute | search and earlier populations / the last "
        "| wall (min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in result["families"].items():
        split, d = f["split"], f.get("in_dist")
        converged = (
            f"{d['min']:.1%}-{d['max']:.1%} ({d['converged']} of {d['n']} >= {CONVERGED:.0%})"
            if d
            else "n/a"
        )
        stopped = f" (stopped after {split['trained']})" if "stopped_early" in split else ""
        lines.append(
            f"| {name} | {f['p']:g} | {split['above']} : {split['below']}{stopped} | "
            f"{'yes' if split['splits'] else 'no'} | {converged} | "
            f"{fmt(f['cost'].get('search_share'))} | {fmt(f['cost'].get('overhead_share'))} | "
            f"{f['wall_s'] / 60:.1f} |"
        )
    lines += [
        "",
        "| family | score | AUROC (b > 1/2) [95% CI] | Spearman [95% CI] |",
        "|---|---|---|---|",
    ]
    for name, f in result["families"].items():
        rows = _within(f)
        if not rows:
            lines.append(f"| {name} | (the population did not split) | | |")
        for a in rows:
            lines.append(
                f"| {name} | {a['score']} | {fmt(a['auroc'])} [{fmt(a['auroc_ci'][0])}, "
                f"{fmt(a['auroc_ci'][1])}] | {fmt(a['spearman'])} [{fmt(a['spearman_ci'][0])}, "
                f"{fmt(a['spearman_ci'][1])}] |"
            )
    return "\n".join(lines)
