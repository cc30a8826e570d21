"""``mesa.detect``: which objective does a model pursue, decided from its internals.

Detection never rolls a model out of distribution. It runs registered *methods*
(:mod:`mesa.detection.methods`) on one shared :class:`~mesa.detection.data.Detection` — the
task's probe inputs and counterfactual pairs, or training inputs alone — and decides by one rule
(:mod:`mesa.detection.verdict`) from the *mechanistic* methods: interventions on the model's
internals (patching a goal's sites, interchanging its probe subspace, erasing it). The
behavioural directed effect (outputs on goal-separated inputs) and probe decodability (what is
represented) are reported beside the verdict as baselines, never as its grounds.

A method of your own is a :class:`Detector` subclass registered with ``@register_detector``;
``mesa.detect(..., methods=[...])`` and ``mesa detect --methods`` run it with the others.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from mesa.detection.data import MODES, Detection, detection_hooks, input_layer
from mesa.detection.registry import (
    Detector,
    MethodResult,
    default_detectors,
    get_detector,
    list_detectors,
    register_detector,
)
from mesa.detection.verdict import EFFECT_FLOOR, USED_SHARE, Verdict, rule, rule_methods
from mesa.errors import MesaError
from mesa.io import VERDICT, VERDICT_REPLACED, locked, read_json, write_json
from mesa.tasks.base import GOALS, Task

__all__ = [
    "MODES",
    "Detection",
    "Detector",
    "MethodResult",
    "Verdict",
    "detect",
    "detection_hooks",
    "list_detectors",
    "register_detector",
]


def detect(
    model: Any,
    task: Task,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    n_probe: int = 2000,
    n_pairs: int = 512,
    hooks: list[str] | None = None,
    methods: list[str] | None = None,
    inputs: str = "probe",
    device: Any = None,
) -> Verdict:
    """Verdict, score and per-method, per-hook evidence of which goal ``model`` pursues.

    ``inputs``: ``"probe"`` (goal-separating probe inputs and counterfactual pairs) or
    ``"train"`` (training inputs only, the goals together; see :mod:`mesa.detection.data`).
    ``methods``: names of registered methods (default: those marked default that run in the
    mode, plus those ``task``'s verdict is made of: :attr:`mesa.Task.rule_methods`). With
    ``out``, writes ``out/verdict.json`` (holding the directory's lock throughout); where one is
    there already, made with the same settings (seed, ``n_probe``, ``n_pairs``, inputs, hooks),
    the results of its methods not run now are kept and the verdict is made from all of them
    (``settings["kept"]`` names those), so running one more method adds it rather than dropping
    the rest. One made with other settings, or unreadable, is moved aside to
    ``verdict.replaced.json`` (``settings["replaced"]`` says why), never lost.

    It runs where the model is; ``device`` moves the model there first (in place, as
    ``nn.Module.to`` does). Inputs are made on the CPU and moved to the model's device; every
    number in the verdict is computed back on the CPU.
    """
    if device is not None:
        from mesa.runtime import resolve_device, to_device

        to_device(model, resolve_device(device))
    names = check_methods(methods, inputs, task)
    with locked(out) if out is not None else contextlib.nullcontext():
        d = Detection(model, task, hooks, seed, n_probe, n_pairs, inputs)
        kept, replaced = _earlier_results(Path(out), d, names) if out is not None else ({}, "")
        results = {**kept, **{name: get_detector(name)().run(d) for name in names}}
        verdict = _verdict(d, results, list(results), list(kept))
        verdict.settings["replaced"] = replaced
        if out is not None:
            if replaced:  # set aside, never lost: the one before is replaced in turn
                os.replace(Path(out) / VERDICT, Path(out) / VERDICT_REPLACED)
            write_json(Path(out) / VERDICT, verdict.to_dict())
    return verdict


def check_methods(methods: list[str] | None, inputs: str, task: Task | None = None) -> list[str]:
    """The methods to run, each checked to run in ``inputs``. When None: the default set for
    ``inputs``, plus the methods ``task``'s verdict is made of (:attr:`Task.rule_methods`)."""
    if inputs not in MODES:
        raise MesaError(f"unknown inputs {inputs!r}; valid: {', '.join(MODES)}")
    names = list(methods) if methods else default_detectors(inputs)
    if not methods and task is not None:
        names += [m for m in rule_methods(task, inputs) if m not in names]
    for name in names:
        cls = get_detector(name)
        if inputs not in cls.inputs:
            runnable = [n for n in list_detectors() if inputs in get_detector(n).inputs]
            raise MesaError(
                f"method {name!r} does not run on {inputs} inputs; valid there: "
                + ", ".join(runnable)
            )
    return names


def _settings(d: Detection) -> dict[str, Any]:
    """What makes two detections of one model comparable, method by method."""
    return {
        "seed": d.seed,
        "n_probe": d.n_probe,
        "n_pairs": d.n_pairs,
        "inputs": d.inputs,
        "hooks": d.hooks,
    }


def _earlier_results(
    out: Path, d: Detection, names: list[str]
) -> tuple[dict[str, MethodResult], str]:
    """``(kept, replaced)``: the method results of ``out/verdict.json`` made with ``d``'s
    settings by methods other than ``names``, and why the file is to be set aside instead
    (unreadable, or made with other settings; "" when it is not)."""
    if not (out / VERDICT).is_file():
        return {}, ""
    try:
        earlier = Verdict.from_dict(read_json(out / VERDICT))
    except (MesaError, KeyError, TypeError):
        return {}, "it could not be read"
    now = _settings(d)
    differ = [k for k, v in now.items() if earlier.settings.get(k) != v]
    if differ:
        shown = [
            k if k == "hooks" else f"{k} {earlier.settings.get(k)} -> {now[k]}" for k in differ
        ]
        return {}, f"it was made with other settings ({', '.join(shown)})"
    return {n: m for n, m in earlier.methods.items() if n not in names}, ""


def _verdict(
    d: Detection, results: dict[str, MethodResult], names: list[str], kept: list[str]
) -> Verdict:
    score, verdict, reason = rule(results, rule_methods(d.task, d.inputs))
    patching = results.get("patching")
    used_at: dict[str, list[str]] = {g: [] for g in GOALS}
    if patching is not None and patching.score is not None:
        for g in GOALS:
            best = max(v[g] for v in patching.per_hook.values())
            floor = max(EFFECT_FLOOR, USED_SHARE * best)
            used_at[g] = [h for h, v in patching.per_hook.items() if v[g] >= floor]
    probe = results.get("probe")
    represented = probe.extra.get("represented_at", {}) if probe is not None else {}
    return Verdict(
        score=score,
        verdict=verdict,
        reason=reason,
        methods=results,
        used_at=used_at,
        represented_at={g: represented.get(g, []) for g in GOALS},
        settings={
            **_settings(d),
            "methods": names,
            "kept": kept,
            "rule_methods": list(rule_methods(d.task, d.inputs)),
            "input_layer": [h for h in d.hooks if input_layer(h)],
        },
    )
