"""mesa's experiments: one script per table or figure, run through one entry point.

    python -m experiments                    # every experiment, its purpose and its page
    python -m experiments NAME [args]        # run one (NAME --help: its options)
    python -m experiments index              # rewrite results/INDEX.md and the pages' tables

Each experiment is a module ``experiments/NAME.py`` with ``main(argv)``; it writes its results
with :func:`experiments.common.write_result` (named ``results/NAME/<what>-<commit>.json``). A
module may also define ``headline(result) -> dict`` (the numbers the index shows) and
``table(result) -> str`` (the Markdown table its page shows), both computed from the JSON alone,
and ``load(path) -> dict`` when an archived result is not one JSON file.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Experiment:
    name: str
    """The module's name, and the folder of its results."""
    purpose: str
    """What it measures, in one line."""
    page: str
    """Its page (what it reproduces, the command, the results table), relative to experiments/."""

    def module(self) -> ModuleType:
        return importlib.import_module(f"experiments.{self.name}")


EXPERIMENTS = (
    Experiment(
        "bench_ppo_phases",
        "where a PPO training run's time goes per gridworld family: rollout, update, evaluation",
        "bench_ppo_phases.md",
    ),
    Experiment(
        "detection_rules",
        "candidate verdict rules scored on development zoos' verdicts (how the rule was chosen)",
        "detection_rules.md",
    ),
    Experiment(
        "detect_training_inputs",
        "finished zoos re-detected with training inputs only: agreement with OOD behaviour",
        "detect_training_inputs.md",
    ),
    Experiment(
        "bench_within_p",
        "populations that split within one p (transition search): agreement within p, cost",
        "bench_within_p.md",
    ),
    Experiment(
        "pooled_within_p",
        "agreement within p pooled over many populations: internals against behaviour, with CIs",
        "pooled_within_p.md",
    ),
    Experiment(
        "fault_injection",
        "bad input, concurrent writers, kills and corrupt files: every case and its outcome",
        "fault_injection.md",
    ),
    Experiment(
        "bench_env",
        "steps/s of the vectorized gridworld engine against MiniGrid-Empty-8x8-v0",
        "bench_env.md",
    ),
    Experiment(
        "bench_device",
        "engine steps/s and PPO time to 95% success on the CPU and, when present, a GPU",
        "bench_device.md",
    ),
    Experiment(
        "bench_patching",
        "layer x position patching sweep: mesa.probes against transformer_lens.patching",
        "bench_patching.md",
    ),
    Experiment(
        "bench_training",
        "wall time to train maze (conv, cell transformer) and sycophancy; detect per model",
        "bench_training.md",
    ),
    Experiment(
        "bench_zoo",
        "the four-family zoo: wall time, detect's share of training, every agreement table",
        "bench_zoo.md",
    ),
    Experiment(
        "bench_member",
        "one zoo member (train, OOD, detect) under this checkout and another, side by side",
        "bench_member.md",
    ),
    Experiment(
        "bench_probe_fit",
        "LinearProbe against scikit-learn: fit time, iterations, accuracy, objective reached",
        "bench_probe_fit.md",
    ),
    Experiment(
        "bench_erasure",
        "LEACE erasers at a coin policy's hooks: fit_erasers against LeaceFitter",
        "bench_erasure.md",
    ),
    Experiment(
        "misgeneralization",
        "OOD true-goal rate against p over a zoo (with detection and agreement), any family",
        "misgeneralization.md",
    ),
    Experiment(
        "maze_long_budget",
        "maze policies trained for 1.5 M steps: OOD cheese / corner rates and in-dist success",
        "maze_long_budget.md",
    ),
    Experiment(
        "compute_floor",
        "diagnostic: a finished run's member compute by family and phase; least wall on N workers",
        "compute_floor.md",
    ),
    Experiment(
        "detect_cost",
        "diagnostic: a finished zoo re-detected at several n_probe (time, evidence, agreement)",
        "detect_cost.md",
    ),
    Experiment(
        "probe_tolerance",
        "diagnostic: LinearProbe's tol against fit time and accuracy on zoo members' probes",
        "probe_tolerance.md",
    ),
    Experiment(
        "internal_ood",
        "exploratory, dev seeds: an OOD test inside the model, in training levels",
        "internal_ood.md",
    ),
    Experiment(
        "rollout_baseline",
        "coin's rollout verdict against its multi-step behavioural twin (rollout_shown)",
        "rollout_baseline.md",
    ),
    Experiment(
        "noise_ceiling",
        "how well a perfect detector could rank a population by b, given b's sampling noise",
        "noise_ceiling.md",
    ),
    Experiment(
        "rollout_hooks",
        "exploratory, dev seeds: rollout_subspace at its best, narrow and all hooks; keys too",
        "rollout_hooks.md",
    ),
    Experiment(
        "das_cost",
        "DAS (opt-in) on dev zoos: its cost beside the default methods, its agreement with b",
        "das_cost.md",
    ),
    Experiment(
        "verdict_bands",
        "a family's verdict bands: where its score crosses b = 1/3, 2/3 on development seeds",
        "verdict_bands.md",
    ),
    Experiment(
        "goal_pursuit",
        "diagnostic: each goal's one-step pursuit share and the OOD true rate with it hidden",
        "goal_pursuit.md",
    ),
    Experiment(
        "probe_states_onpath",
        "exploratory: a gridworld zoo re-detected with the probe agent on shortest paths",
        "probe_states_onpath.md",
    ),
    Experiment(
        "screenshot_report",
        "a report directory's report.html rendered by headless Chromium to a PNG",
        "screenshot_report.md",
    ),
)

#: Modules of the package that are not experiments.
HELPERS = ("__init__", "__main__", "common", "index")


def get(name: str) -> Experiment:
    for e in EXPERIMENTS:
        if e.name == name:
            return e
    raise KeyError(name)


def listing() -> str:
    """What ``python -m experiments`` prints without a name."""
    width = max(len(e.name) for e in EXPERIMENTS)
    lines = [
        "usage: python -m experiments [--results DIR] NAME [args]   (NAME --help: its options)",
        "",
        "experiments:",
    ]
    lines += [f"  {e.name:<{width}}  {e.purpose}  [{e.page}]" for e in EXPERIMENTS]
    lines += ["", f"  {'index':<{width}}  rewrite results/INDEX.md and the pages' results tables"]
    return "\n".join(lines)


def run(name: str, argv: Sequence[str], results: Path | None = None) -> None:
    """Run experiment ``name`` with ``argv``, its results stamped with this command, then
    rewrite the index."""
    from experiments import common, index

    experiment = get(name)
    argv = list(argv)
    prefix = ["python", "-m", "experiments"] + (["--results", str(results)] if results else [])
    common.COMMAND = shlex.join([*prefix, name, *argv])
    if results is not None:
        common.RESULTS = results.resolve()
    sys.argv[0] = f"python -m experiments {name}"  # what the script's --help calls itself
    experiment.module().main(argv)
    if any(a in ("-h", "--help") for a in argv):
        return
    try:
        index.write_index(common.RESULTS)
    except (FileNotFoundError, ValueError) as e:  # the result is written; a page is not ready
        print(f"results/INDEX.md not rewritten: {e}", file=sys.stderr)
