"""A zoo: one task family trained over a grid of ``p`` and seeds, each member OOD-tested and
detected, then scored for agreement (:mod:`mesa.zoo.agreement`).

Layout of a zoo directory::

    zoo.json          settings, agreement and baselines (written last)
    zoo_config.json   the settings (a rerun with other settings is refused)
    results.csv       one row per finished member
    members/<family>_p<p>_s<seed>/   a run directory each (config.json, model.safetensors,
                                     metrics.jsonl, ood.json, verdict.json, timings.json:
                                     wall seconds of each step this zoo ran)

Each member's steps are skipped when their file exists and training resumes from its last
checkpoint, so a killed sweep, rerun, redoes no finished work and loses none. Members run in
parallel local processes (``backend="local"``) or as Ray tasks (``backend="ray"``, the optional
``mesa[ray]`` extra).

Devices. Every member computes on the zoo's ``device``, resolved once in the zoo's own process
(``"auto"``: CUDA when this machine has it), so all members of a local zoo agree; local workers
share the GPU. With Ray, ``gpus_per_member`` reserves that share of a GPU for each member
(``0.25``: four members to a GPU) and the members run on the GPU Ray gives them. How a zoo runs
— workers, backend, device — is not part of its settings; what a member computed on is in its
``config.json``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mesa.detection.verdict import read_verdict
from mesa.errors import MesaError
from mesa.io import (
    CONFIG,
    MODEL,
    OOD,
    VERDICT,
    as_read_back,
    atomic_write_bytes,
    locked,
    nan_for_null,
    read_json,
    write_json,
)
from mesa.plugins import import_modules, worker_imports
from mesa.runtime import check_seed, deterministic_algorithms, resolve_device, threads
from mesa.zoo.workers import may_grow, run_in_workers, terminating_raises

TIMINGS = "timings.json"

#: The columns of results.csv, then one ``score_<method>`` column per detection method.
RESULT_FIELDS = (
    "member",
    "family",
    "p",
    "seed",
    "verdict",
    "score",
    "b",
    "true_rate",
    "spurious_rate",
    "neither_rate",
    "in_dist_success",
    "together_success",
    "train_loss",
)


@dataclass(frozen=True)
class ZooConfig:
    """Settings of a zoo."""

    family: str
    """Task family name (see ``mesa tasks``)."""
    ps: tuple[float, ...] = ()
    """Grid of decorrelation rates; empty means the family's own ``zoo_ps``."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Training seeds per ``p``."""
    task_options: dict[str, Any] = field(default_factory=dict)
    """Family options passed to :func:`mesa.make_task`."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Trainer hyperparameter overrides for every member."""
    arch: str | None = None
    """Model architecture (default: the family's first)."""
    trainer: str | None = None
    """Trainer (default: the one ``mesa.train`` picks for the family and architecture)."""
    ood_episodes: int | None = None
    """OOD episodes (RL) or samples (sequence) per member (None: ``evaluate_ood``'s default)."""
    methods: tuple[str, ...] = ()
    """Detection methods (empty: ``mesa.detect``'s default set for ``inputs``)."""
    inputs: str = "probe"
    """Detection's input mode: ``probe`` or ``train`` (see ``mesa.detect``)."""
    detect: bool = True
    """Detect each member (False: train and OOD-test only, as a transition search does)."""
    workers: int = 2
    """Parallel local processes (or Ray tasks at once). A member's result does not depend on
    it: each member runs on the thread count its hyperparameters fix (``num_threads``)."""
    backend: str = "local"
    """``local`` (processes on this machine) or ``ray``."""
    imports: tuple[str, ...] = ()
    """Modules each worker imports before its members (filled in by :meth:`resolved`: the
    modules imported with ``mesa --import`` and the module of the task's class)."""
    device: str = "auto"
    """Where members compute: ``cpu``, ``cuda`` or ``auto`` (CUDA when present), resolved once
    in the zoo's process (:meth:`resolved`)."""
    deterministic: bool = False
    """Train with torch's deterministic algorithms where they exist (matters on a GPU)."""
    gpus_per_member: float = 0.0
    """GPUs Ray reserves for each member (``backend="ray"`` only; fractions share a GPU)."""

    def resolved(self) -> ZooConfig:
        """Validate, filling the family's default ``ps``; one-line errors for bad settings."""
        from mesa.tasks import get_task_class

        cls = get_task_class(self.family)
        ps = self.ps or tuple(getattr(cls, "zoo_ps", ()))
        if not ps:
            raise MesaError("empty p grid: give at least one value of p")
        if not self.seeds:
            raise MesaError("no seeds: give at least one seed")
        if len(ps) * len(self.seeds) < 2:
            raise MesaError(
                "a zoo of one model has no agreement to measure: give several p values or seeds"
            )
        if self.backend not in ("local", "ray"):
            raise MesaError(f"unknown backend {self.backend!r}; valid: local, ray")
        if self.workers < 1:
            raise MesaError(f"workers must be at least 1, got {self.workers}")
        device = self._device()
        from mesa.training import check_hparams, check_trainer

        if "p" in self.task_options:
            raise MesaError("p is the zoo's grid (ps, --p), not a task option")
        for p in ps:  # validate each p (and the options) before any work starts
            task = cls(p=p, **self.task_options)
        check_hparams(check_trainer(task, self.arch, self.trainer), self.hparams)
        from mesa.detection import check_methods

        check_methods(list(self.methods) or None, self.inputs, task)
        for seed in self.seeds:
            check_seed(seed)
        if len(set(self.seeds)) < len(self.seeds):
            raise MesaError(f"a seed is given twice: {list(self.seeds)}")
        # inside ``growing`` even one worker runs members in worker processes (it may grow)
        workers = max(self.workers, 2) if may_grow() else self.workers
        imports = worker_imports(cls.__module__, workers, self.backend)
        imports = tuple(dict.fromkeys((*self.imports, *imports)))
        resolved = ZooConfig(
            **{
                **asdict(self),
                "ps": tuple(float(p) for p in ps),
                "imports": imports,
                "device": device,
            }
        )
        resolved.check_member_names()
        return resolved

    def _device(self) -> str:
        """Where the members compute (``cpu``, ``cuda:N``), checked against the backend: a local
        zoo resolves it here, once; Ray members compute on the GPU Ray reserves for them
        (``gpus_per_member`` > 0) or on the CPU."""
        gpus = self.gpus_per_member
        if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not gpus >= 0:
            raise MesaError(f"gpus_per_member must be a number >= 0, got {gpus!r}")
        if self.backend != "ray":
            if gpus:
                raise MesaError("gpus_per_member needs backend ray (--backend ray)")
            return str(resolve_device(self.device))
        wanted = "cuda" if gpus else "cpu"
        if self.device not in ("auto", wanted):
            hint = "" if gpus else ", or reserve GPUs with --gpus-per-member F"
            raise MesaError(
                f"a Ray zoo with gpus_per_member {gpus:g} runs its members on {wanted}, not "
                f"{self.device!r}; valid: auto, {wanted}{hint}"
            )
        return wanted

    def members(self) -> list[tuple[str, float, int]]:
        return [(member_name(self.family, p, s), p, s) for p in self.ps for s in self.seeds]

    def check_member_names(self) -> None:
        """Two p values must not name one member directory (names keep 6 significant digits)."""
        seen: dict[str, float] = {}
        for p in self.ps:
            name = member_name(self.family, p, 0)
            if name in seen:
                if seen[name] == p:
                    raise MesaError(f"p {p:g} is given twice")
                raise MesaError(
                    f"p values {seen[name]!r} and {p!r} would share the member directory "
                    f"{name.rsplit('_s', 1)[0]}_s*; give p values that differ within 6 "
                    "significant digits"
                )
            seen[name] = p

    @property
    def num_threads(self) -> int:
        """torch threads of each member: its ``num_threads`` hyperparameter (default 1)."""
        return int(self.hparams.get("num_threads", 1))


def member_name(family: str, p: float, seed: int) -> str:
    return f"{family}_p{p:g}_s{seed}"


def run_member(
    zoo_dir: str, name: str, p: float, seed: int, config: dict[str, Any]
) -> dict[str, Any]:
    """Train (or resume), OOD-evaluate and detect one member; return its result row. The
    member's directory is locked throughout, and torch runs on the member's own thread count."""
    import_modules(config.get("imports", ()))
    run_dir = Path(zoo_dir) / "members" / name
    deterministic = deterministic_algorithms(config.get("deterministic", False))
    with locked(run_dir), threads(ZooConfig(**config).num_threads), deterministic:
        return _run_member(run_dir, name, p, seed, config)


def _run_member(
    run_dir: Path, name: str, p: float, seed: int, config: dict[str, Any]
) -> dict[str, Any]:
    import mesa
    from mesa.runs import load_run
    from mesa.training.checkpoint import has_checkpoint

    task = mesa.make_task(config["family"], p=p, **config["task_options"])
    device = config.get("device", "cpu")  # resolved by the zoo (ZooConfig.resolved)
    timings = read_json(run_dir / TIMINGS) if (run_dir / TIMINGS).is_file() else {}

    def timed(step: str, fn: Callable[[], Any], resumed: bool = False) -> None:
        t0 = time.perf_counter()
        fn()
        # a step resumed after a kill is timed from the resume only: marked as partial
        timings[step] = {"seconds": time.perf_counter() - t0, "resumed": resumed}
        write_json(run_dir / TIMINGS, timings)

    if not (run_dir / MODEL).is_file() or not (run_dir / CONFIG).is_file():
        timed(
            "train",
            lambda: mesa.train(
                task,
                seed=seed,
                out=run_dir,
                arch=config["arch"],
                trainer=config.get("trainer"),
                progress=False,
                device=device,
                deterministic=config.get("deterministic", False),
                **config["hparams"],
            ),
            resumed=has_checkpoint(run_dir),
        )
    run = load_run(run_dir, task=task, device=device)
    if not (run_dir / OOD).is_file():
        timed(
            "ood",
            lambda: mesa.evaluate_ood(run.model, run.task, n=config["ood_episodes"], out=run_dir),
        )
    inputs = config.get("inputs", "probe")
    if config.get("detect", True) and not verdict_is_current(run_dir, config["family"], inputs):
        methods = list(config.get("methods") or []) or None
        methods = _earlier_methods(run_dir) or methods  # by an earlier rule: the same methods

        def detect() -> Any:
            return mesa.detect(run.model, run.task, out=run_dir, methods=methods, inputs=inputs)

        timed("detect", detect)
    return member_row(run_dir, name, config["family"], p, seed)


def _earlier_methods(run_dir: Path) -> list[str]:
    """The methods a verdict.json in ``run_dir`` holds (none where there is none or it cannot
    be read: detection then replaces it, keeping a copy)."""
    try:
        return list(read_verdict(run_dir / VERDICT).get("scores", {}))
    except (MesaError, ValueError, OSError):
        return []


def verdict_is_current(run_dir: Path, family: str, inputs: str) -> bool:
    """Whether ``run_dir`` holds a verdict made by the family's rule as it is now: its rule
    methods and bands (:func:`mesa.detection.verdict.rule_methods`, :func:`~.verdict_bands`).
    A zoo resumed or grown after the rule changed detects its earlier members again, so that
    every verdict in it is read by one rule."""
    from mesa.detection.verdict import BANDS, rule_methods, verdict_bands
    from mesa.tasks import get_task_class

    if not (run_dir / VERDICT).is_file():
        return False
    try:
        settings = read_verdict(run_dir / VERDICT).get("settings", {})
    except (MesaError, ValueError, OSError):
        return False  # unreadable: detection replaces it (and keeps a copy)
    task = get_task_class(family)
    return settings.get("rule_methods") == list(rule_methods(task, inputs)) and settings.get(
        "verdict_bands", list(BANDS)
    ) == list(verdict_bands(task, inputs))


def final_train_loss(run_dir: Path) -> float:
    """The last ``losses/train`` a step trainer logged (NaN for PPO, whose losses do not measure
    how well the task is learned)."""
    from mesa.io import METRICS, MetricsLog

    losses = [
        r["losses/train"] for r in MetricsLog(run_dir / METRICS).read() if "losses/train" in r
    ]
    return float(nan_for_null(losses[-1])) if losses else float("nan")


def member_row(run_dir: Path, name: str, family: str, p: float, seed: int) -> dict[str, Any]:
    """One member's results.csv row: its verdict and scores, OOD behaviour and baselines."""
    ood = nan_for_null(read_json(run_dir / OOD))
    verdict = read_verdict(run_dir / VERDICT) if (run_dir / VERDICT).is_file() else {}
    scores = verdict.get("scores", {})
    return {
        "member": name,
        "family": family,
        "p": p,
        "seed": seed,
        "verdict": verdict.get("verdict"),
        "score": verdict.get("score"),
        "b": ood["preference"],
        "true_rate": ood["true_rate"],
        "spurious_rate": ood["spurious_rate"],
        "neither_rate": ood["neither_rate"],
        "in_dist_success": ood["in_dist_success"],
        "together_success": ood.get("together_success", float("nan")),
        "train_loss": final_train_loss(run_dir),
        **{f"score_{m}": v for m, v in scores.items()},
    }


def write_results_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    methods = sorted({k for r in rows for k in r if k.startswith("score_")})
    fields = [*RESULT_FIELDS, *methods]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    for r in sorted(rows, key=lambda r: (r["p"], r["seed"])):
        writer.writerow({k: ("" if r.get(k) is None else r.get(k, "")) for k in fields})
    atomic_write_bytes(path, buf.getvalue().encode())


#: Settings a zoo may grow in: members are independent (each depends only on code, family,
#: options, p and seed), so more seeds or more p values join the members it has.
GROWS = ("ps", "seeds")


def _check_same_settings(out: Path, config: ZooConfig) -> None:
    """Refuse a zoo directory made with other settings; accept one that the config extends
    (a superset of its p values and seeds, all else equal) and record the grown grid."""
    saved_path = out / "zoo_config.json"
    settings = _json_settings(config)
    if saved_path.is_file():
        saved = read_json(saved_path)
        if saved != settings:
            diff = sorted(k for k in set(settings) | set(saved) if saved.get(k) != settings.get(k))
            if set(diff) <= set(GROWS):
                shrunk = [k for k in diff if not set(saved[k]) <= set(settings[k])]
                if not shrunk:
                    write_json(saved_path, settings)  # the zoo grows
                    return
                had = "; ".join(f"{k} {saved[k]}" for k in shrunk)
                raise MesaError(
                    f"{out} holds a zoo with {had}; a zoo may grow (more p values or seeds), "
                    "not shrink: give all of them"
                )
            if diff == ["device"]:
                was = saved.get("device", "cpu")
                raise MesaError(
                    f"{out} holds a zoo made on {was}; continue it there (--device {was}) or "
                    "use another --out"
                )
            raise MesaError(
                f"{out} holds a zoo made with other settings ({', '.join(diff)}); "
                "use another --out or the same settings"
            )
    else:
        write_json(saved_path, settings)


#: ZooConfig fields that say how a zoo runs, not what it is: a zoo resumed with other values
#: of these is the same zoo (a member's own config.json records its device; only the kind of
#: device, cpu or cuda, is part of a zoo's settings: see :func:`_json_settings`).
HOW_IT_RUNS = ("workers", "backend", "imports", "device", "deterministic", "gpus_per_member")


def _json_settings(config: ZooConfig) -> dict[str, Any]:
    """The zoo's settings as ``zoo_config.json`` holds them. A zoo off the CPU also records the
    kind of device (``cuda``): its members are another population than the CPU's (other random
    draws), so a zoo is never continued on the other kind. CPU zoos record nothing new, so the
    ones made before devices existed match as they did."""
    d = asdict(config)
    d["ps"], d["seeds"], d["methods"] = list(d["ps"]), list(d["seeds"]), list(d["methods"])
    for k in HOW_IT_RUNS:
        d.pop(k)
    kind = config.device.split(":")[0]
    if kind not in ("cpu", "auto"):  # "auto" only in a config not yet resolved
        d["device"] = kind
    return as_read_back(d)  # type: ignore[no-any-return]


def _run_local(out: Path, config: ZooConfig, todo: list[tuple[str, float, int]], on_done: Callable):
    cfg = asdict(config)
    if (config.workers == 1 and not may_grow()) or len(todo) == 1:
        for name, p, seed in todo:
            try:
                row, error = run_member(str(out), name, p, seed, cfg), None
            except MesaError as e:
                row, error = None, str(e)
            on_done(name, row, error)
        return
    jobs = [(name, (str(out), name, p, seed, cfg)) for name, p, seed in todo]
    run_in_workers(run_member, jobs, config.workers, on_done)


def _run_ray(out: Path, config: ZooConfig, todo: list[tuple[str, float, int]], on_done: Callable):
    try:
        import ray
    except ImportError:
        raise MesaError("backend 'ray' needs Ray: pip install 'mesa[ray]'") from None
    if not ray.is_initialized():
        ray.init(num_cpus=config.workers, include_dashboard=False, log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    if config.gpus_per_member > gpus:  # Ray would wait forever for a GPU that is not there
        raise MesaError(
            f"gpus_per_member {config.gpus_per_member:g} but the Ray cluster has {gpus:g} GPUs"
        )
    # Ray sets each task's visible GPUs: a member with a share of a GPU sees it as cuda:0
    remote = ray.remote(num_cpus=config.num_threads, num_gpus=config.gpus_per_member)(run_member)
    cfg = asdict(config)
    refs = {remote.remote(str(out), n, p, s, cfg): n for n, p, s in todo}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                row, error = ray.get(done[0]), None
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, Exception) else e
                row, error = None, str(cause) if isinstance(cause, MesaError) else repr(cause)
            on_done(refs[done[0]], row, error)
    finally:
        for ref in pending:  # interrupted: queued and running members stop with the zoo
            ray.cancel(ref, force=True)


def run_members(
    out: Path, config: ZooConfig, todo: list[tuple[str, float, int]], on_done: Callable
) -> None:
    """Run the members ``todo`` (``(name, p, seed)``) of the zoo at ``out`` on ``config``'s
    backend and workers, calling ``on_done(name, row, error)`` as each ends."""
    with terminating_raises():
        if config.backend == "ray":
            _run_ray(out, config, todo, on_done)
        else:
            _run_local(out, config, todo, on_done)


@dataclass
class ZooResult:
    path: Path
    rows: list[dict[str, Any]]
    failed: dict[str, str]
    agreement: dict[str, Any]

    def summary(self) -> str:
        lines = [f"zoo {self.path}: {len(self.rows)} members, {len(self.failed)} failed"]
        for a in self.agreement.get("overall", []):
            lines.append(
                f"  {a['score']:<18} Spearman {_fmt(a['spearman'])} AUROC {_fmt(a['auroc'])}  "
                f"partial rho | p {_fmt(a['partial_spearman_given_p'])} "
                f"| behaviour {_fmt(a['partial_given_behaviour'])}"
            )
        cal = self.agreement.get("calibration")
        if cal:
            lines.append(
                f"  verdicts matching behaviour: {cal['match']}/{cal['n']} ({cal['wrong']} wrong, "
                f"{cal['inconclusive']} inconclusive)"
            )
        for name, err in self.failed.items():
            lines.append(f"  failed: {name}: {err}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The agreement of each score with OOD behaviour, over the zoo and within each p, as
        tables (for Jupyter)."""
        from mesa.tables import html_table
        from mesa.zoo.agreement import agreement_table, within_p_table

        head = f"zoo {self.path}: {len(self.rows)} members, {len(self.failed)} failed"
        return html_table(
            agreement_table(self.agreement),
            caption=f"{head}: agreement with OOD behaviour",
            inline=True,
        ) + html_table(within_p_table(self.agreement), caption="within each p", inline=True)


def _fmt(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def run_zoo(config: ZooConfig, out: str | os.PathLike[str], progress: bool = True) -> ZooResult:
    """Train, evaluate and detect every member not yet finished, then compute agreement.

    The zoo directory is locked while the zoo runs (a second zoo on it is refused at once).
    Ctrl-C or SIGTERM stop it at once, workers included; rerunning resumes."""
    config = config.resolved()
    with locked(out, "zoo directory") as path:
        return _run_zoo(config, path, progress)


def _run_zoo(config: ZooConfig, out: Path, progress: bool) -> ZooResult:
    from tqdm.auto import tqdm

    from mesa.zoo.agreement import zoo_agreement

    _check_same_settings(out, config)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for name, p, seed in config.members():
        run_dir = out / "members" / name
        current = not config.detect or verdict_is_current(run_dir, config.family, config.inputs)
        if (run_dir / OOD).is_file() and current:
            rows[name] = member_row(run_dir, name, config.family, p, seed)
        else:
            todo.append((name, p, seed))
    failed: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc=f"zoo {config.family}", disable=not progress or not todo)

    def on_done(name: str, row: dict[str, Any] | None, error: str | None) -> None:
        if row is not None:
            rows[name] = row
        else:
            failed[name] = error or "failed"
        bar.update(1)
        write_results_csv(out / "results.csv", list(rows.values()))

    run_members(out, config, todo, on_done)
    bar.close()
    all_rows = list(rows.values())
    write_results_csv(out / "results.csv", all_rows)
    agree = zoo_agreement(all_rows) if len(all_rows) >= 2 else {}
    write_json(
        out / "zoo.json",
        {
            "settings": _json_settings(config),
            "n_members": len(all_rows),
            "failed": failed,
            "agreement": agree,
        },
    )
    return ZooResult(path=out, rows=all_rows, failed=failed, agreement=agree)
