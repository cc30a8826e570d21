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
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from mesa import __version__
from mesa.detection.data import MODES, Detection, detection_hooks, input_layer
from mesa.detection.registry import (
    Detector,
    MethodResult,
    default_detectors,
    get_detector,
    list_detectors,
    register_detector,
)
from mesa.detection.verdict import (
    EFFECT_FLOOR,
    USED_SHARE,
    Verdict,
    rule,
    rule_methods,
    verdict_bands,
)
from mesa.errors import MesaError
from mesa.io import (
    VERDICT,
    VERDICT_REPLACED,
    as_read_back,
    atomic_write_bytes,
    json_bytes,
    locked,
    read_json,
)
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
    the rest. "Same settings" includes the model's weights (a digest), the task's options and
    mesa's version. One made otherwise, or unreadable, is copied to the first free
    ``verdict.replaced.N.json`` first (``settings["replaced"]`` says where and why): never lost.

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
        settings = _settings(d)
        kept: dict[str, MethodResult] = {}
        replaced = ""
        if out is not None:
            kept, replaced = _earlier_results(Path(out), settings, names)
        results = {**kept, **{name: get_detector(name)().run(d) for name in names}}
        verdict = _verdict(d, settings, results, list(kept))
        if out is not None:
            _write(Path(out), verdict, replaced)
    return verdict


def _write(out: Path, verdict: Verdict, replaced: str) -> None:
    """Write ``out/verdict.json``; an earlier one that is ``replaced`` (why, or "") is first
    copied to the first free ``verdict.replaced.N.json``. The new file is made ready before
    anything is written, and each write is atomic: a valid verdict.json is there throughout."""
    if replaced:
        n = 1
        while (out / VERDICT_REPLACED.format(n=n)).exists():
            n += 1
        aside = VERDICT_REPLACED.format(n=n)
        replaced = f"the earlier verdict.json is kept as {aside}: {replaced}"
    verdict.settings["replaced"] = replaced
    data = json_bytes(verdict.to_dict())  # fails here, if at all, before any file changes
    if replaced:
        atomic_write_bytes(out / aside, (out / VERDICT).read_bytes())
    atomic_write_bytes(out / VERDICT, data)


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
        "task": as_read_back(d.task.spec()),
        "model": weights_digest(d.model),
        "mesa": __version__,
    }


def weights_digest(model: Any) -> str:
    """A digest of ``model``'s parameters and buffers (names, shapes, dtypes and values): two
    detections of one model share it, and results of a model with other weights are never
    kept. (A hand-built model whose behaviour lives in plain attributes, not weights, cannot be
    told apart from another of its kind this way.)"""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name} {tuple(t.shape)} {t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _earlier_results(
    out: Path, now: dict[str, Any], names: list[str]
) -> tuple[dict[str, MethodResult], str]:
    """``(kept, replaced)``: the method results of ``out/verdict.json`` made with the settings
    ``now`` (:func:`_settings`) by methods other than ``names``, and why the file is to be set
    aside instead (unreadable, or made with other settings; "" when it is not)."""
    if not (out / VERDICT).is_file():
        return {}, ""
    try:
        earlier = Verdict.from_dict(read_json(out / VERDICT))
    except (MesaError, KeyError, TypeError, AttributeError, ValueError):
        return {}, "it could not be read"
    if not isinstance(earlier.settings, dict):
        return {}, "it could not be read"
    differ = [k for k, v in now.items() if earlier.settings.get(k) != v]
    if differ:
        shown = [
            k if k in ("hooks", "task", "model") else f"{k} {earlier.settings.get(k)} -> {now[k]}"
            for k in differ
        ]
        return {}, f"it was made with other settings ({', '.join(shown)})"
    return {n: m for n, m in earlier.methods.items() if n not in names}, ""


def _verdict(
    d: Detection, settings: dict[str, Any], results: dict[str, MethodResult], kept: list[str]
) -> Verdict:
    bands = verdict_bands(d.task, d.inputs)
    score, verdict, reason = rule(results, rule_methods(d.task, d.inputs), bands)
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
            **settings,
            "methods": list(results),
            "kept": kept,
            "rule_methods": list(rule_methods(d.task, d.inputs)),
            "verdict_bands": list(bands),
            "input_layer": [h for h in d.hooks if input_layer(h)],
        },
    )
