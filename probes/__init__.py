"""mesa.probes: probes, activation patching, subspace interventions and concept erasure.

Works on any ``torch.nn.Module``: on a TransformerLens hooked model (a ``HookedRootModule`` such
as mesa's policies, or a ``TransformerBridge`` such as mesa's transformers) hooks are its hook
points; on any other module they are module paths as ``named_modules()`` names them (see
:mod:`mesa.probes.hooks`). It imports nothing from the rest of mesa::

    from mesa.probes import collect_activations, LinearProbe, probe_sweep, patch_sweep

Attributes are imported on first use, so importing this package (or ``mesa.errors``, which
re-exports :class:`MesaError`) imports neither torch nor TransformerLens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, imported eagerly for type checkers
    from mesa.probes.activations import collect_activations
    from mesa.probes.erasure import (
        ErasureFitter,
        erasing_hook,
        erasure_effect,
        fit_eraser,
        fit_erasers,
    )
    from mesa.probes.errors import MesaError
    from mesa.probes.hooks import check_hooks, hook_names
    from mesa.probes.linear import LinearProbe
    from mesa.probes.patching import PatchResult, logit_diff, patch_sweep, target_prob
    from mesa.probes.steering import steer, steering_hook
    from mesa.probes.subspace import DAS, fit_das, interchange_accuracy, interchange_subspace
    from mesa.probes.sweep import SweepResult, probe_sweep

_LAZY: dict[str, str] = {
    "DAS": "mesa.probes.subspace",
    "ErasureFitter": "mesa.probes.erasure",
    "LinearProbe": "mesa.probes.linear",
    "MesaError": "mesa.probes.errors",
    "PatchResult": "mesa.probes.patching",
    "SweepResult": "mesa.probes.sweep",
    "check_hooks": "mesa.probes.hooks",
    "collect_activations": "mesa.probes.activations",
    "erasing_hook": "mesa.probes.erasure",
    "erasure_effect": "mesa.probes.erasure",
    "fit_das": "mesa.probes.subspace",
    "fit_eraser": "mesa.probes.erasure",
    "fit_erasers": "mesa.probes.erasure",
    "hook_names": "mesa.probes.hooks",
    "interchange_accuracy": "mesa.probes.subspace",
    "interchange_subspace": "mesa.probes.subspace",
    "logit_diff": "mesa.probes.patching",
    "patch_sweep": "mesa.probes.patching",
    "patching_hook": "mesa.probes.patching",
    "subspace_hook": "mesa.probes.subspace",
    "probe_sweep": "mesa.probes.sweep",
    "steer": "mesa.probes.steering",
    "steering_hook": "mesa.probes.steering",
    "target_prob": "mesa.probes.patching",
}

__all__ = [
    "DAS",
    "ErasureFitter",
    "LinearProbe",
    "MesaError",
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
    "patching_hook",
    "probe_sweep",
    "steer",
    "steering_hook",
    "subspace_hook",
    "target_prob",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mesa.probes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
