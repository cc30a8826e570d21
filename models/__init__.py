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
from collections.abc import Callable
from typing import Any, TypeVar, overload

import torch

from mesa.errors import MesaError, choice_error

T = TypeVar("T", bound=type[Any])

#: arch name -> "module:ConfigClass" (or the class itself, for one registered in code). The
#: config class is a frozen dataclass whose ``build()`` returns a freshly initialised model.
ARCHS: dict[str, str | type[Any]] = {
    "conv": "mesa.models.policies:ConvPolicyConfig",
    "mlp": "mesa.models.policies:MLPPolicyConfig",
    "transformer": "mesa.models.transformer:SequenceTransformerConfig",
    "cell_transformer": "mesa.models.cell_transformer:CellTransformerPolicyConfig",
}


@overload
def register_arch(name: str) -> Callable[[T], T]: ...
@overload
def register_arch(name: str, config_class: T) -> T: ...
def register_arch(name: str, config_class: T | None = None) -> T | Callable[[T], T]:
    """Register your own architecture: ``config_class`` is a frozen dataclass of JSON-able
    fields whose ``build()`` returns a TransformerLens hooked model (a ``HookedRootModule`` or
    ``TransformerBridge``). Models built from it are saved and loaded like mesa's own (the
    module that registers it must be imported when loading: ``mesa --import``). Usable as a
    class decorator: ``@register_arch("my_net")``."""
    if config_class is None:
        return lambda cls: register_arch(name, cls)
    if not (dataclasses.is_dataclass(config_class) and callable(getattr(config_class, "build", 0))):
        raise MesaError(f"{config_class!r} is not a dataclass with a build() method")
    known = ARCHS.get(name)
    if known is not None and known is not config_class:
        raise MesaError(f"architecture {name!r} is already registered")
    ARCHS[name] = config_class
    return config_class


def config_class(arch: str) -> type[Any]:
    if arch not in ARCHS:
        raise choice_error("architecture", arch, ARCHS)
    target = ARCHS[arch]
    if not isinstance(target, str):
        return target
    module, cls = target.split(":")
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
        raise MesaError(
            f"{type(model).__name__} was not built by mesa.models.build_model, so it cannot be "
            "saved and loaded without pickle; register its config with mesa.models.register_arch"
        )
    return spec
