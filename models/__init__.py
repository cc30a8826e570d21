"""Hooked model definitions, imported as ``mesa.models``.

Every model exposes TransformerLens's hook interface: the policies are ``HookedRootModule``s
with a named ``HookPoint`` after every block; the transformers are ``TransformerBridge``s built
offline. Each architecture has a frozen config dataclass with a ``build()`` method.
:func:`build_model` rebuilds a model from ``(arch, config dict)`` as stored in a run's
``config.json`` (this is how :func:`mesa.load` restores models without unpickling) and tags it
with ``model.mesa_spec``. Architectures are imported lazily: TransformerLens costs seconds.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch

from mesa.errors import MesaError, choice_error

#: arch name -> "module:ConfigClass". The config class is a frozen dataclass whose ``build()``
#: returns a freshly initialised model.
ARCHS: dict[str, str] = {
    "conv": "mesa.models.policies:ConvPolicyConfig",
    "mlp": "mesa.models.policies:MLPPolicyConfig",
    "transformer": "mesa.models.transformer:SequenceTransformerConfig",
    "cell_transformer": "mesa.models.cell_transformer:CellTransformerPolicyConfig",
}


def config_class(arch: str) -> type[Any]:
    if arch not in ARCHS:
        raise choice_error("architecture", arch, ARCHS)
    module, cls = ARCHS[arch].split(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def build_model(arch: str, config: dict[str, Any], seed: int | None = None) -> Any:
    """A freshly initialised model of ``arch`` from a JSON config dict (unknown keys refused).

    With ``seed``, initialisation is deterministic and leaves the global RNG untouched.
    """
    from mesa.config import config_from_dict

    cfg = config_from_dict(config_class(arch), config, arch, noun="config key")
    if seed is None:
        model = cfg.build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cfg.build()
    model.mesa_spec = {"arch": arch, "config": dataclasses.asdict(cfg)}
    return model


def model_spec(model: Any) -> dict[str, Any]:
    """``{"arch": ..., "config": {...}}`` of a model made by :func:`build_model`."""
    spec = getattr(model, "mesa_spec", None)
    if not isinstance(spec, dict):
        raise MesaError(f"{type(model).__name__} was not built by mesa.models.build_model")
    return spec
