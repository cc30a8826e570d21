"""mesa.probes: probes, activation patching, subspace interventions and concept erasure.

Works on any TransformerLens hooked model — a ``HookedRootModule`` (mesa's policies, your own
models) or a ``TransformerBridge`` (mesa's transformers) — and depends on nothing else in mesa but
its error type::

    from mesa.probes import collect_activations, LinearProbe, probe_sweep, patch_sweep

Importing this package does not import TransformerLens.
"""

from mesa.probes.activations import collect_activations
from mesa.probes.erasure import (
    ErasureFitter,
    erasing_hook,
    erasure_effect,
    fit_eraser,
    fit_erasers,
)
from mesa.probes.hooks import check_hooks, hook_names
from mesa.probes.linear import LinearProbe
from mesa.probes.patching import PatchResult, logit_diff, patch_sweep, target_prob
from mesa.probes.steering import steer, steering_hook
from mesa.probes.subspace import DAS, fit_das, interchange_accuracy, interchange_subspace
from mesa.probes.sweep import SweepResult, probe_sweep

__all__ = [
    "DAS",
    "ErasureFitter",
    "LinearProbe",
    "PatchResult",
    "SweepResult",
    "check_hooks",
    "collect_activations",
    "erasing_hook",
    "erasure_effect",
    "fit_das",
    "fit_eraser",
    "fit_erasers",
    "hook_names",
    "interchange_accuracy",
    "interchange_subspace",
    "logit_diff",
    "patch_sweep",
    "probe_sweep",
    "steer",
    "steering_hook",
    "target_prob",
]
