"""What every detection method reads, built once per model: inputs, pairs, activations, outputs.

A :class:`Detection` holds one model and one task and measures, lazily and at most once, what
the methods of :mod:`mesa.detection.methods` share — through the task's declared interface only
(:class:`mesa.Task`: probe data, counterfactual pairs, goal outputs, the decision, intervention
sites) and through :mod:`mesa.probes` (one activation collector, one patching operation, one
subspace interchange, one eraser). Nothing here knows a task family or a model kind.

The central measurement is the **directed shift** of a pair set that moves goal ``v``: with ``P``
the decision (a distribution over actions or answers) and ``m`` the outputs that pursue ``v`` in
each input (``Task.goal_outputs``), ``f(P) = P . (m_source - m_base) / 2`` reads how far a
decision points the source's way. Over the *informative* pairs (where the move changes ``m``):

- ``Delta_v = mean f(P_source) - f(P_base)``: the behavioural effect (outputs only);
- ``restored(v, hook, intervention) = mean f(P_base, intervened at hook) - f(P_base)``: how much
  of the source's pull an intervention on the base run's internals brings about, in absolute
  terms (an interchange of the goal's sites or subspace: about ``Delta_v`` where the goal's
  information flows, about 0 elsewhere);
- ``erased(v, hook, eraser)``: ``Delta_v`` with the goal erased at the hook in both runs.

Two input modes. ``"probe"``: the ``probe`` split and counterfactual pairs that move one goal
(the goals vary apart, as OOD). ``"train"``: only inputs as training shows them, the goals
together (``Task.training_inputs``): an auditor who could build goal-separating inputs could run
the OOD test instead. There, pairs are two training inputs, and a goal is moved only inside the
model, by patching the sites that can carry it but not the other goal
(``Task.separating_sites``).

Devices. The task makes every input on the CPU, and every number above is computed on the CPU;
the model runs where its weights are. The crossing happens in one place, :meth:`Detection.run`:
inputs go to the model's device, decisions come back. Source activations stay on the model's
device, where the interventions put them back into a forward pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mesa.errors import MesaError
from mesa.probes.activations import collect_activations
from mesa.probes.hooks import hooked
from mesa.runtime import model_device
from mesa.tasks.base import GOALS, Task

#: The modes of :class:`Detection`.
MODES = ("probe", "train")
#: Hooks whose activation is the input itself or its embedding: no method counts an effect
#: there as the model's use of a goal (any input-level edit moves the output by construction).
INPUT_LAYER = re.compile(r"hook_obs|hook_embed|hook_pos_embed|blocks\.0\.hook_resid_pre")
_HOOK_PATTERNS = (r"blocks\.\d+\.hook_out", r"blocks\.\d+\.hook_resid_pre", r"hook_features")

HookFn = Callable[..., Tensor]
#: ``(source activations of a batch, the batch's pair indices) -> a hook function``
Intervention = Callable[[Tensor, Tensor], HookFn]


def detection_hooks(model: Any) -> list[str]:
    """The block-level hooks detection reads: each block's output (policies) or residual stream
    (transformers, plus the final residual), in forward order."""
    names = list(getattr(model, "hook_dict", {}))
    hooks = [n for n in names if any(re.fullmatch(p, n) for p in _HOOK_PATTERNS)]
    last_resid = [n for n in names if re.fullmatch(r"blocks\.\d+\.hook_resid_post", n)]
    if last_resid and any("resid_pre" in h for h in hooks):
        # a transformer: its blocks' hook_out aliases are the next block's resid_pre
        hooks = [h for h in hooks if not h.endswith(".hook_out")] + [last_resid[-1]]
    if not hooks:
        raise MesaError(f"{type(model).__name__} has no block hooks to detect on")
    return hooks


def input_layer(hook: str) -> bool:
    return INPUT_LAYER.fullmatch(hook) is not None


@dataclass
class PairSet:
    """Pairs for one goal ``vary``: base and source inputs and what pursuing the goal means."""

    vary: str
    base: Tensor
    source: Tensor
    follow: Tensor
    """``[n, K]``: ``(m_source - m_base) / 2``, the goal-directed outputs' change."""
    informative: Tensor
    """``[n]`` bool: pairs where the move changes the goal-directed outputs."""
    sites: Tensor | None
    """``[n, S]`` bool: where an interchange patches (None: no sites for this goal)."""
    source_goal: Tensor
    """``[n]``: the goal's label in the source."""
    base_goal: Tensor
    """``[n]``: the goal's label in the base."""
    target: Tensor
    """``[n, K]`` bool: the outputs that pursue the source's value of the goal."""


class Detection:
    """One model and task, with every shared measurement computed on first use (see the module
    docstring)."""

    def __init__(
        self,
        model: Any,
        task: Task,
        hooks: list[str] | None = None,
        seed: int = 0,
        n_probe: int = 2000,
        n_pairs: int = 512,
        inputs: str = "probe",
        batch_size: int = 512,
    ) -> None:
        if inputs not in MODES:
            raise MesaError(f"unknown inputs {inputs!r}; valid: {', '.join(MODES)}")
        if n_probe < 50 or n_pairs < 10:
            raise MesaError(f"n_probe must be >= 50 and n_pairs >= 10, got {n_probe}, {n_pairs}")
        self.model, self.task, self.seed = model, task, seed
        self.n_probe, self.n_pairs, self.inputs, self.batch_size = (
            n_probe,
            n_pairs,
            inputs,
            batch_size,
        )
        model.eval()
        self.device = model_device(model)
        self.hooks = hooks or detection_hooks(model)
        self.hm = hooked(model)
        self.hm.check(self.hooks)
        self.position = task.readout_position
        self._probe_fits: dict[tuple[str, str], Any] = {}
        self._measured: dict[tuple[Any, ...], Any] = {}

    # -- the one place where inputs cross to the model's device ---------------------------
    def on_device(self, inputs: Tensor) -> Tensor:
        """``inputs`` (made on the CPU by the task) on the model's device."""
        return inputs.to(self.device)

    def run(self, inputs: Tensor, fwd_hooks: list[tuple[str, HookFn]] | None = None) -> Tensor:
        """The model's output on ``inputs`` (moved to its device), with hook functions."""
        return self.hm.run(self.on_device(inputs), fwd_hooks or [])  # type: ignore[no-any-return]

    # -- inputs ---------------------------------------------------------------------------
    @cached_property
    def probe(self) -> Any:
        """The inputs probes and erasers are fit on: the probe split, or training inputs."""
        if self.inputs == "train":
            return self.task.training_inputs(self.n_probe, self.seed)
        return self.task.probe_data(self.n_probe, self.seed)

    @cached_property
    def acts(self) -> dict[str, Tensor]:
        """``{hook: [n_probe, d]}``: activations at the read-out (see ``Task.readout_position``)."""
        with torch.no_grad():
            acts = collect_activations(
                self.model, self.on_device(self.probe.inputs), self.hooks, position=self.position
            )
        return {h: a.float() for h, a in acts.items()}

    @cached_property
    def n_outputs(self) -> int:
        with torch.no_grad():
            return int(self.task.decision(self.run(self.probe.inputs[:1])).shape[-1])

    @cached_property
    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """Train and test indices of the probe inputs (by group, so layouts never leak)."""
        from mesa.probes.sweep import split_indices

        groups = None if self.probe.groups is None else self.probe.groups.numpy()
        return split_indices(len(self.probe.inputs), groups, 0.25, self.seed)

    def once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """``compute()``, made at most once per ``key`` for this model: a measurement two
        methods share (a probe subspace's turn at a hook, a control rollout)."""
        if key not in self._measured:
            self._measured[key] = compute()
        return self._measured[key]

    def labels(self, goal: str) -> Tensor:
        return self.probe.true_goal if goal == "true" else self.probe.spurious_goal

    def fitted_probe(self, goal: str, hook: str) -> Any:
        """A :class:`~mesa.probes.LinearProbe` for ``goal`` at ``hook``, fit on the probe
        inputs' train split (None where that split holds one value of the goal); fit once."""
        key = (goal, hook)
        if key not in self._probe_fits:
            from mesa.probes.linear import LinearProbe

            train, _ = self.split
            y = self.labels(goal).numpy()
            x = self.acts[hook].numpy()
            ok = len(np.unique(y[train])) >= 2
            self._probe_fits[key] = LinearProbe().fit(x[train], y[train]) if ok else None
        return self._probe_fits[key]

    # -- pairs ----------------------------------------------------------------------------
    @cached_property
    def pairs(self) -> dict[str, PairSet]:
        return {v: self._pairs(v, i) for i, v in enumerate(GOALS)}

    def _pairs(self, vary: str, i: int) -> PairSet:
        seed = self.seed + 1 + i
        if self.inputs == "probe":
            p = self.task.counterfactual_pairs(self.n_pairs, seed, vary)
            base, source = p["base"], p["source"]
            base_goal, source_goal = p[f"base_{vary}_goal"], p[f"source_{vary}_goal"]
            sites: Tensor | None = self.task.intervention_sites(base, source)
            m_base = self.task.goal_outputs(base, base_goal, self.n_outputs)
            m_source = self.task.goal_outputs(source, source_goal, self.n_outputs)
        else:  # two training inputs; the goal moves only inside the model (in base's context)
            a = self.task.training_inputs(self.n_pairs, seed + 101)
            b = self.task.training_inputs(self.n_pairs, seed + 202)
            base, source = a.inputs, b.inputs
            base_goal = a.true_goal if vary == "true" else a.spurious_goal
            source_goal = b.true_goal if vary == "true" else b.spurious_goal
            separating = self.task.separating_sites(vary)
            sites = None if separating is None else separating.expand(len(base), -1).clone()
            m_base = self.task.goal_outputs(base, base_goal, self.n_outputs)
            m_source = self.task.goal_outputs(base, source_goal, self.n_outputs)
        follow = 0.5 * (m_source.float() - m_base.float())
        informative = follow.abs().sum(-1) > 0
        return PairSet(
            vary, base, source, follow, informative, sites, source_goal, base_goal, m_source.bool()
        )

    # -- outputs and interventions --------------------------------------------------------
    def _batches(self, n: int) -> list[slice]:
        return [slice(i, i + self.batch_size) for i in range(0, n, self.batch_size)]

    @torch.no_grad()
    def decide(self, inputs: Tensor, fwd_hooks: list[tuple[str, HookFn]] | None = None) -> Tensor:
        """The decision ``[n, K]`` on ``inputs`` (one batch), with hook functions if given, on the
        CPU."""
        return self.task.decision(self.run(inputs, fwd_hooks)).cpu()

    @cached_property
    def decisions(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{goal: (P_base, P_source)}``: the decisions on each pair's inputs, ``[n, K]``."""
        out = {}
        for v, ps in self.pairs.items():
            p_base = [self.decide(ps.base[b]) for b in self._batches(len(ps.base))]
            p_source = [self.decide(ps.source[b]) for b in self._batches(len(ps.base))]
            out[v] = (torch.cat(p_base), torch.cat(p_source))
        return out

    @cached_property
    def _outputs(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{goal: (f(P_base), f(P_source))}`` per pair."""
        out = {}
        for v, ps in self.pairs.items():
            p_base, p_source = self.decisions[v]
            out[v] = ((p_base * ps.follow).sum(-1), (p_source * ps.follow).sum(-1))
        return out

    def directed(self, vary: str) -> float:
        """``Delta_v``: the behavioural directed effect. In the training-inputs mode the source
        moves both goals together, so this is the decision's response to the goals as training
        shows them (the same for either ``vary``), which cannot tell them apart."""
        ps = self.pairs[vary]
        f_base, f_source = self._outputs[vary]
        keep = ps.informative
        return float((f_source - f_base)[keep].mean()) if bool(keep.any()) else 0.0

    @cached_property
    def total(self) -> dict[str, float]:
        """Mean total-variation distance between the decisions on base and source."""
        out = {}
        for v in self.pairs:
            p_base, p_source = self.decisions[v]
            out[v] = float((0.5 * (p_base - p_source).abs().sum(-1)).mean())
        return out

    @cached_property
    def source_acts(self) -> dict[str, dict[str, Tensor]]:
        """``{goal: {hook: activations of the source inputs}}`` (whole activations)."""
        out: dict[str, dict[str, Tensor]] = {}
        for v, ps in self.pairs.items():
            parts: dict[str, list[Tensor]] = {h: [] for h in self.hooks}
            for b in self._batches(len(ps.source)):
                _, cache = self.hm.cache(self.on_device(ps.source[b]), self.hooks)
                for h in self.hooks:
                    parts[h].append(cache[h])
            out[v] = {h: torch.cat(p) for h, p in parts.items()}
        return out

    @torch.no_grad()
    def restored(
        self, vary: str, hook: str, intervention: Intervention, rows: Tensor | None = None
    ) -> float:
        """Mean ``f(P_base intervened at hook) - f(P_base)`` over the informative pairs (or over
        the pair indices ``rows``): the shift an intervention brings about, in absolute terms."""
        ps = self.pairs[vary]
        idx = ps.informative.nonzero().squeeze(1) if rows is None else rows
        if not len(idx):
            return 0.0
        f_base = self._outputs[vary][0][idx]
        src = self.source_acts[vary][hook][idx]
        shifts = []
        for b in self._batches(len(idx)):
            rows = idx[b]
            fn = intervention(src[b], rows)
            p = self.decide(ps.base[rows], [(hook, fn)])
            shifts.append((p * ps.follow[rows]).sum(-1) - f_base[b])
        return float(torch.cat(shifts).mean())

    @torch.no_grad()
    def erased_effect(self, vary: str, hook: str, fn: HookFn) -> float:
        """``Delta_v`` with ``fn`` applied at ``hook`` in both the base and the source runs."""
        ps = self.pairs[vary]
        idx = ps.informative.nonzero().squeeze(1)
        if not len(idx):
            return 0.0
        shifts = []
        for b in self._batches(len(idx)):
            rows = idx[b]
            diff = self.decide(ps.source[rows], [(hook, fn)]) - self.decide(
                ps.base[rows], [(hook, fn)]
            )
            shifts.append((diff * ps.follow[rows]).sum(-1))
        return float(torch.cat(shifts).mean())

    def site_mask(self, act: Tensor, sites: Tensor) -> Tensor | None:
        """The pairs' ``sites`` as a mask on a hook activation, or None (see mesa.models.sites)."""
        from mesa.models.sites import site_mask

        return site_mask(self.model, act, sites)
