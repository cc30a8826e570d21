"""The ``mesa`` command line.

Every subcommand imports what it needs when it runs, so ``mesa --help`` answers at once.
User mistakes print one line (``mesa: error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def _parse_assignments(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    from mesa.config import parse_assignments

    return parse_assignments(list(items or []), what)


def _task_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``--opt`` assignments; ``p`` has its own flag."""
    from mesa.errors import MesaError

    options = _parse_assignments(items, "--opt")
    if "p" in options:
        raise MesaError("p is not an --opt option: set it with --p")
    return options


def _print_fields(title: str, cls: type, skip: tuple[str, ...] = ()) -> None:
    from mesa.config import describe_fields

    print(f"  {title}")
    for name, tp, default, doc in describe_fields(cls):
        if name not in skip:
            print(f"    {name:<18} {tp:<12} {default:<10} {doc}")


def _cmd_tasks(args: argparse.Namespace) -> None:
    from mesa.tasks import get_task_class, list_tasks

    for name in list_tasks():
        cls = get_task_class(name)
        print(f"{name:<12} {cls.kind:<9} {cls.description}")
        print(f"{'':<22} true goal: {cls.true_goal}; spurious goal: {cls.spurious_goal}")
        if args.verbose:
            _print_fields(
                "options (--opt KEY=VALUE; p is --p):  name, type, default, meaning",
                cls.Config,
                skip=("p",),
            )
            print()
    if args.verbose:
        from mesa.training import TRAINERS, hyperparameters

        for trainer, (kind, *_) in TRAINERS.items():
            print(f"trainer {trainer} ({kind} tasks)")
            _print_fields("hyperparameters (--hp KEY=VALUE)", hyperparameters(trainer))
            print()


def _cmd_train(args: argparse.Namespace) -> None:
    import mesa
    from mesa.runtime import deterministic_algorithms, resolve_device

    task = mesa.make_task(args.task, p=args.p, **_task_options(args.opt))
    hparams = _parse_assignments(args.hp, "--hp")
    device = resolve_device(args.device)
    mesa.train(
        task,
        seed=args.seed,
        out=args.out,
        arch=args.arch,
        trainer=args.trainer,
        progress=True,
        device=device,
        deterministic=args.deterministic,
        **hparams,
    )
    print(
        f"trained {args.task} (p={args.p}, seed={args.seed}) on {device}; run directory: {args.out}"
    )
    if not args.no_eval:
        with deterministic_algorithms(args.deterministic):
            model = mesa.load(args.out, device=device)
            ood = mesa.evaluate_ood(model, task, out=args.out, seed=args.eval_seed)
        print(ood.summary())


def _cmd_check_task(args: argparse.Namespace) -> int:
    import mesa

    task = mesa.make_task(args.task, p=args.p, **_task_options(args.opt))
    report = mesa.check_task(task, archs=[args.arch] if args.arch else None)
    print(report)
    return 0 if report.ok else 1


def _cmd_eval(args: argparse.Namespace) -> None:
    import mesa
    from mesa.runs import load_run
    from mesa.runtime import deterministic_algorithms, set_threads

    set_threads(args.threads)
    run = load_run(args.run, device=args.device)
    with deterministic_algorithms(args.deterministic):
        ood = mesa.evaluate_ood(run.model, run.task, n=args.n, seed=args.seed, out=args.run)
    print(ood.summary())
    print(f"wrote {run.path / 'ood.json'}")


def _cmd_detect(args: argparse.Namespace) -> None:
    import mesa
    from mesa.runs import load_run
    from mesa.runtime import deterministic_algorithms, set_threads

    set_threads(args.threads)
    run = load_run(args.run, device=args.device)
    sizes = {
        k: v for k, v in (("n_probe", args.n_probe), ("n_pairs", args.n_pairs)) if v is not None
    }
    with deterministic_algorithms(args.deterministic):
        verdict = mesa.detect(
            run.model,
            run.task,
            out=args.run,
            seed=args.seed,
            methods=_methods(args.methods),
            inputs=args.inputs,
            **sizes,
        )
    print(verdict.summary())
    kept, replaced = verdict.settings.get("kept", []), verdict.settings.get("replaced", "")
    if kept:
        print(f"kept from the earlier verdict.json (same settings): {', '.join(kept)}")
    if replaced:
        print(replaced)
    print(f"wrote {run.path / 'verdict.json'}")


def _grid(values: list[str] | None) -> tuple[float, ...] | str:
    """``--p``: a grid of numbers, or ``auto`` (the transition search)."""
    from mesa.errors import MesaError

    if not values:
        return ()
    if values == ["auto"]:
        return "auto"
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise MesaError(f"--p takes numbers in [0, 1] or the word auto, got {values}") from None


#: ``mesa zoo``'s options of the transition search, with their defaults.
SEARCH_OPTIONS = {
    "population": 16,
    "probes": 3,
    "seeds_per_probe": 1,
    "moves": 2,
    "min_each_side": 4,
    "early_stop": True,
    "bracket": None,
}


def _cmd_zoo(args: argparse.Namespace) -> int:
    from mesa.errors import MesaError
    from mesa.zoo import ZooConfig, run_zoo

    grid = _grid(args.p)
    if grid != "auto":
        given = [k for k, v in SEARCH_OPTIONS.items() if getattr(args, k) != v]
        if given:
            flags = ", ".join(
                "--no-early-stop" if k == "early_stop" else "--" + k.replace("_", "-")
                for k in given
            )
            raise MesaError(f"{flags}: only with --p auto (the transition search)")
    config = ZooConfig(
        family=args.family,
        ps=() if grid == "auto" else grid,  # type: ignore[arg-type]
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        workers=args.workers,
        backend=args.backend,
        arch=args.arch,
        trainer=args.trainer,
        task_options=_task_options(args.opt),
        hparams=_parse_assignments(args.hp, "--hp"),
        methods=tuple(_methods(args.methods) or ()),
        inputs=args.inputs,
        device=args.device,
        deterministic=args.deterministic,
        gpus_per_member=args.gpus_per_member,
    )
    if grid == "auto":
        from mesa.zoo.transition import TransitionConfig, find_transition

        search = TransitionConfig(
            config,
            first_seed=args.first_seed,
            population=args.population,
            probes=args.probes,
            seeds_per_probe=args.seeds_per_probe,
            min_each_side=args.min_each_side,
            moves=args.moves,
            early_stop=args.early_stop,
            bracket=tuple(args.bracket) if args.bracket else None,  # type: ignore[arg-type]
        )
        found = find_transition(search, args.out)
        print(found.summary())
        return 0 if found.split.get("splits") else 1
    result = run_zoo(config, out=args.out)
    print(result.summary())
    return 1 if result.failed else 0


def _cmd_show(args: argparse.Namespace) -> None:
    from pathlib import Path

    from mesa.errors import MesaError
    from mesa.report.show import SHOW_PNG, save_png, show

    run = Path(args.run)
    if (run / "zoo.json").is_file():
        members = sorted(p.name for p in (run / "members").glob("*"))[:1]
        example = run / "members" / (members[0] if members else "NAME")
        raise MesaError(
            f"{run} is a zoo; mesa show draws one run (e.g. {example}); mesa report {run} draws "
            "the zoo"
        )
    if run.is_dir() and not (run / "model.safetensors").is_file():
        raise MesaError(f"{run} is not a run directory (no model.safetensors in it)")
    out = Path(args.out) if args.out else run / SHOW_PNG
    import torch

    # batches of a few dozen small inputs: waking a second thread costs more than it saves
    # (on 2 shared cores it doubled the CPU time of a show)
    torch.set_num_threads(1)
    fig = show(run, seed=args.seed)
    save_png(fig, out)
    print(f"wrote {out}")


def _cmd_report(args: argparse.Namespace) -> None:
    from mesa.report import write_report

    html, md = write_report(args.dir)
    print(f"wrote {html}\nwrote {md}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from mesa.demo import run_demo

    run_demo(out=args.out, quick=args.quick, device=args.device)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=None, help="model architecture (default: the task's first)")
    p.add_argument(
        "--trainer",
        default=None,
        help="ppo or bc for gridworlds (default ppo; bc for cell_transformer), supervised for "
        "sequence tasks",
    )
    p.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options, e.g. size=7")
    p.add_argument("--hp", nargs="*", metavar="KEY=VALUE", help="trainer hyperparameters")


def _methods(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        from mesa.detection import list_detectors
        from mesa.errors import MesaError

        raise MesaError(f"--methods names no method; valid: {', '.join(list_detectors())}")
    return names


def _add_detection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--methods",
        default=None,
        metavar="M1,M2",
        help="detection methods, comma-separated (default: behaviour, probe, patching, "
        "probe_subspace, erasure, and rollout_subspace where the family's verdict uses it "
        "(coin); training_sites with --inputs train; das, rollout_subspace and rollout_shown "
        "opt-in). Into a run whose verdict.json has the same settings (--seed, --n-probe, "
        "--n-pairs, --inputs), the results of methods not named are kept",
    )
    p.add_argument(
        "--inputs",
        choices=["probe", "train"],
        default="probe",
        help="probe: goal-separating probe inputs and counterfactual pairs; train: training "
        "inputs only (the goals together), goals separated by interventions on internals",
    )


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1; results can differ in the last digits with another count)",
    )


def _add_device(p: argparse.ArgumentParser, deterministic: bool = True) -> None:
    p.add_argument(
        "--device",
        default="auto",
        metavar="{cpu,cuda,auto}",
        help="where to compute: cpu, cuda (or cuda:N), or auto, the default: CUDA when present. "
        "Bit-identical for a seed on cpu; on cuda, runs differ from cpu (see the README)",
    )
    if deterministic:
        p.add_argument(
            "--deterministic",
            action="store_true",
            help="use torch's deterministic algorithms where they exist (matters on a GPU)",
        )


def _add_show_parser(sub: Any) -> None:
    p = sub.add_parser(
        "show",
        help="draw a run: OOD episodes and vector fields (gridworlds), or answer distributions "
        "and patching maps (sequence tasks); writes a PNG",
    )
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="PNG to write (default: RUN/show.png)")
    p.add_argument("--seed", type=int, default=0, help="picks the episodes, layouts and prompts")
    p.set_defaults(func=_cmd_show)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesa",
        description="Model organisms of goal misgeneralization, and mechanistic detection of "
        "the objective a model actually learned.",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable; the working directory is searched): a module "
        "that registers your own task families or architectures",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_task_parsers, _add_run_parsers, _add_zoo_parser, _add_output_parsers):
        add(sub)
    return parser


def _add_task_parsers(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list the registered task families")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also list each family's options and each trainer's hyperparameters",
    )
    p.set_defaults(func=_cmd_tasks)

    p = sub.add_parser(
        "train",
        help="train a model on a task (PPO, BC or supervised)",
        epilog="`mesa tasks --verbose` lists every --opt and --hp key with its type, default "
        "and meaning.",
    )
    p.add_argument("task", help="task family, e.g. maze (see `mesa tasks`)")
    p.add_argument("--p", type=float, default=0.0, help="decorrelation rate in [0, 1]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory (resumed if it has a checkpoint)")
    _add_model_options(p)
    p.add_argument("--no-eval", action="store_true", help="skip the OOD evaluation at the end")
    p.add_argument("--eval-seed", type=int, default=12345)
    _add_device(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "check-task",
        help="check a task family against the contract every command relies on, before training",
    )
    p.add_argument("task", help="task family (yours: mesa --import MODULE check-task NAME)")
    p.add_argument("--p", type=float, default=0.1, help="decorrelation rate to check at")
    p.add_argument("--arch", default=None, help="architecture to build (default: the task's first)")
    p.add_argument("--opt", nargs="*", metavar="KEY=VALUE", help="task options")
    p.set_defaults(func=_cmd_check_task)


def _add_run_parsers(sub: Any) -> None:
    p = sub.add_parser("eval", help="OOD-evaluate a run directory; writes ood.json")
    p.add_argument("run", help="run directory")
    p.add_argument("--n", type=int, default=None, help="episodes/samples per split")
    p.add_argument("--seed", type=int, default=12345)
    _add_threads(p)
    _add_device(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser(
        "detect", help="mechanistic verdict for a run directory; writes verdict.json"
    )
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the probe inputs, pairs, probe fits and rollouts (default 0); with another "
        "seed the run's earlier verdict.json is kept as verdict.replaced.N.json",
    )
    p.add_argument(
        "--n-probe",
        type=int,
        help="probe-split examples the probes and erasers are fit on, a quarter held out "
        "(default 2000; fewer is faster and widens the decodability intervals; probe_subspace "
        "and rollout_subspace read their subspaces off these probes, so the verdict can move "
        "too)",
    )
    p.add_argument("--n-pairs", type=int, help="counterfactual pairs per goal (default 512)")
    _add_detection_options(p)
    _add_threads(p)
    _add_device(p)
    p.set_defaults(func=_cmd_detect)


def _add_search_options(p: argparse.ArgumentParser) -> None:
    """``mesa zoo``'s options of the transition search (``--p auto``)."""
    auto = p.add_argument_group("--p auto (transition search)")
    auto.add_argument(
        "--population",
        type=int,
        default=SEARCH_OPTIONS["population"],
        help="seeds at the found p (default 16)",
    )
    auto.add_argument(
        "--probes", type=int, default=SEARCH_OPTIONS["probes"], help="bisection steps (default 3)"
    )
    auto.add_argument(
        "--seeds-per-probe",
        type=int,
        default=SEARCH_OPTIONS["seeds_per_probe"],
        help="members per bisection step, trained side by side on the workers (default 1; with 2 "
        "workers, 2 seeds a probe cost the wall time of 1)",
    )
    auto.add_argument(
        "--moves",
        type=int,
        default=SEARCH_OPTIONS["moves"],
        help="populations tried after the first when one does not split (default 2; more resumes "
        "a search)",
    )
    auto.add_argument(
        "--min-each-side",
        type=int,
        default=SEARCH_OPTIONS["min_each_side"],
        help="members the population needs on each side of b = 1/2 to count as split (default 4)",
    )
    auto.add_argument(
        "--no-early-stop",
        dest="early_stop",
        action="store_false",
        help="train every population whole (default: after half its seeds, a population nearly "
        "all on one side of 1/2, under a 10%% chance to split, is stopped and the search moves "
        "on)",
    )
    auto.add_argument(
        "--bracket",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="p values below and above the transition (default: the family's transition_bracket)",
    )


def _add_zoo_parser(sub: Any) -> None:
    p = sub.add_parser("zoo", help="train, evaluate and detect a population over p and seeds")
    p.add_argument("family", help="task family")
    p.add_argument("--out", required=True, help="zoo directory (resumed if it exists)")
    p.add_argument(
        "--p",
        nargs="+",
        help="grid of p values, or auto: find the p where the OOD true-goal preference crosses "
        "1/2 by bisection, then train a population there (see --population)",
    )
    p.add_argument("--seeds", type=int, default=4, help="seeds per p")
    _add_search_options(p)
    p.add_argument("--first-seed", type=int, default=0, help="seeds run first-seed, +1, ...")
    p.add_argument("--workers", type=int, default=2, help="parallel local processes")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    _add_device(p)
    p.add_argument(
        "--gpus-per-member",
        type=float,
        default=0.0,
        metavar="F",
        help="with --backend ray: GPUs reserved for each member (0.25: four members share a "
        "GPU); members then run on cuda",
    )
    _add_model_options(p)
    _add_detection_options(p)
    p.set_defaults(func=_cmd_zoo)


def _add_output_parsers(sub: Any) -> None:
    _add_show_parser(sub)
    p = sub.add_parser(
        "report", help="write report.html and report.md for a run, a zoo or a demo directory"
    )
    p.add_argument("dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "demo", help="the main job: small zoos on maze and sycophancy, then a report"
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="a smaller, faster demo (for smoke tests)")
    _add_device(p, deterministic=False)
    p.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from mesa.errors import MesaError, print_warnings_on_one_line

    print_warnings_on_one_line()
    try:
        if args.imports:
            from mesa.plugins import import_modules

            import_modules(args.imports)
        return int(args.func(args) or 0)
    except MesaError as e:
        print(f"mesa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mesa: interrupted (finished work is kept; rerun to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
