"""Hook-name checks shared by every mesa.probes function.

mesa.probes accepts any model that exposes TransformerLens's hook interface: a
``transformer_lens.HookedRootModule`` (mesa's policies, a user's own hooked model) or a
``transformer_lens.TransformerBridge`` (mesa's transformers). Both have ``hook_dict`` (name ->
``HookPoint``), ``run_with_hooks`` and ``run_with_cache``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from mesa.probes.errors import MesaError


@runtime_checkable
class HookedModel(Protocol):
    hook_dict: dict[str, Any]

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any: ...


def check_model(model: object) -> HookedModel:
    if not isinstance(model, HookedModel):
        raise MesaError(
            f"{type(model).__name__} is not a hooked model: expected a transformer_lens "
            "HookedRootModule or TransformerBridge (with hook_dict and run_with_hooks)"
        )
    return model


def hook_names(model: HookedModel) -> list[str]:
    """Every hook point name of ``model``, in module order."""
    return list(check_model(model).hook_dict)


def check_hooks(model: HookedModel, names: str | Iterable[str]) -> list[str]:
    """Return ``names`` as a list, or raise a one-line error naming the valid hooks."""
    wanted = [names] if isinstance(names, str) else list(names)
    valid = hook_names(model)
    if not wanted:
        raise MesaError("no hook names given; valid: " + ", ".join(valid))
    valid_set = set(valid)
    for name in wanted:
        if name not in valid_set:
            shown = ", ".join(valid if len(valid) <= 40 else [*valid[:40], "..."])
            raise MesaError(f"unknown hook {name!r}; valid: {shown}")
    return wanted
