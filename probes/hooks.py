"""Named activations of any PyTorch model: the one interface every mesa.probes function uses.

A *hook* names an activation inside a model. mesa.probes reads activations at hooks (as
TransformerLens's ``run_with_cache`` does) and replaces them during a forward pass (as its
``run_with_hooks`` does), on two kinds of model, with one naming rule each:

- a **TransformerLens hooked model** (a ``HookedRootModule`` or ``TransformerBridge``; anything
  with ``hook_dict``, ``run_with_hooks`` and ``run_with_cache``): its hook points, run through its
  own ``run_with_hooks`` / ``run_with_cache``, exactly as TransformerLens runs them;
- **any other** ``torch.nn.Module``: module paths as ``named_modules()`` names them
  (``"blocks.0.mlp"``), read and replaced at the module's *output* by forward hooks
  (``register_forward_hook``), as pyvene and nnsight address a model, so a researcher's own
  PyTorch model needs no rewrite. A module whose output is a tuple (``nn.MultiheadAttention``,
  ``nn.LSTM``, many transformer blocks) is read and replaced at its **first element**; the other
  elements pass through unchanged. Any other non-tensor output (a dict, a dataclass) is refused.
  Containers that are never called (``nn.ModuleList``, ``nn.ModuleDict``) are not hooks, and a
  module that runs more than once in a forward pass is refused (its output is ambiguous).

Either way the model is called as ``model(inputs)`` on one tensor (or numpy array) whose first
axis indexes the examples, and every activation keeps that axis first (``[batch, ...]``;
e.g. ``nn.MultiheadAttention(..., batch_first=True)``). Inputs are moved to the device of the
model's weights (a model on a GPU takes CPU inputs), and what mesa.probes returns to you —
activations, accuracies, effects — is on the CPU. Token inputs are checked against the
vocabulary where the model states it (``model.cfg.d_vocab``, as TransformerLens models do), and
an index out of range anywhere in a forward pass is reported in one line.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from mesa.probes.checks import as_tensor
from mesa.probes.errors import MesaError

#: A hook function, TransformerLens's form: ``fn(activation, hook=...)`` returns the activation
#: to use instead, or None to keep it.
HookFn = Callable[..., Tensor | None]

#: Modules that hold others but are never called, so never produce an output.
_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)

#: Up to this many hooks, an unknown name's error lists them all.
_LIST_ALL = 12


def model_device(model: Any) -> torch.device:
    """The device of a model's weights (its first parameter or buffer; the CPU if it has none)."""
    for tensors in ("parameters", "buffers"):
        get = getattr(model, tensors, None)
        if callable(get):
            for t in get():
                return t.device  # type: ignore[no-any-return]
    return torch.device("cpu")


def _is_lens(model: object) -> bool:
    return (
        hasattr(model, "hook_dict")
        and callable(getattr(model, "run_with_hooks", None))
        and callable(getattr(model, "run_with_cache", None))
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class Hooked:
    """A model seen through its named activations (see the module docstring for the rules)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lens = _is_lens(model)
        if self.lens:
            self.names: list[str] = list(model.hook_dict)
            self._modules: dict[str, nn.Module] = {}
        elif isinstance(model, nn.Module):
            self._modules = {
                name: module
                for name, module in model.named_modules()
                if name and not isinstance(module, _CONTAINERS)
            }
            self.names = list(self._modules)
        else:
            raise MesaError(
                f"{type(model).__name__} is not a torch.nn.Module (nor a TransformerLens hooked "
                "model); mesa.probes works on PyTorch models"
            )

    def check(self, names: str | Iterable[str]) -> list[str]:
        """``names`` as a list, or a one-line error naming the closest valid hooks."""
        wanted = [names] if isinstance(names, str) else list(names)
        if not wanted:
            raise MesaError("no hook names given; " + self._listing(""))
        known = set(self.names)
        for name in wanted:
            if not isinstance(name, str) or name not in known:
                raise MesaError(f"unknown hook {name!r}; " + self._listing(str(name)))
        return wanted

    def _listing(self, name: str) -> str:
        if not self.names:
            return f"{type(self.model).__name__} has no submodules to hook"
        if len(self.names) <= _LIST_ALL:
            return "valid: " + ", ".join(self.names)
        close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.6)
        hint = f"closest: {', '.join(close)}; " if close else ""
        kind = "hook points" if self.lens else "modules"
        return (
            f"{hint}the model has {len(self.names)} {kind} "
            "(mesa.probes.hook_names(model) lists them)"
        )

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (its first parameter or buffer; the CPU if none)."""
        return model_device(self.model)

    def inputs(self, x: Any, what: str = "inputs") -> Tensor:
        """``x`` checked as the model's inputs (a non-empty tensor, token ids in the vocabulary),
        on the model's device."""
        x = as_tensor(x, what)
        vocab = getattr(getattr(self.model, "cfg", None), "d_vocab", None)
        integer = not (x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool)
        if integer and isinstance(vocab, int) and vocab > 0:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= vocab:
                raise MesaError(
                    f"{what} hold token ids {lo}..{hi}, outside the model's vocabulary "
                    f"0..{vocab - 1}"
                )
        return x.to(self.device)

    @contextmanager
    def _forward_errors(self) -> Iterator[None]:
        try:
            yield
        except IndexError as error:
            raise MesaError(
                f"an index out of range in the model's forward pass ({_first_line(error)}): are "
                "the inputs valid for it, e.g. token ids inside its vocabulary?"
            ) from error

    def run(self, inputs: Tensor, fwd_hooks: Sequence[tuple[str, HookFn]] = ()) -> Any:
        """The model's output on ``inputs``, with each hook function replacing its activation."""
        with self._forward_errors():
            if self.lens:
                if not fwd_hooks:
                    return self.model(inputs)
                return self.model.run_with_hooks(inputs, fwd_hooks=list(fwd_hooks))
            return self._run_plain(inputs, fwd_hooks, {})

    def cache(self, inputs: Tensor, names: Sequence[str]) -> tuple[Any, dict[str, Tensor]]:
        """The model's output and ``{hook: activation}`` for ``names`` (detached)."""
        out, acts = self._cache(inputs, names)
        for name in names:
            if name not in acts:
                raise MesaError(f"hook {name!r} did not run in the model's forward pass")
            act = acts[name]
            if act.ndim == 0 or act.shape[0] != len(inputs):
                raise MesaError(
                    f"hook {name!r} gives shape {tuple(act.shape)}, whose first axis is not the "
                    f"{len(inputs)} examples; mesa.probes needs batch-first activations"
                )
        return out, acts

    def fired(self, inputs: Tensor) -> dict[str, Tensor]:
        """``{hook: activation}`` of every hook that runs on ``inputs`` with a batch-first
        activation, in module order."""
        with warnings.catch_warnings():
            # a bridge warns of the hooks it never runs: here they are left out on purpose
            warnings.filterwarnings("ignore", message="run_with_cache: skipped")
            acts = self._cache(inputs, self.names, strict=False)[1]
        return {
            name: acts[name]
            for name in self.names
            if name in acts and acts[name].ndim and acts[name].shape[0] == len(inputs)
        }

    def _cache(
        self, inputs: Tensor, names: Sequence[str], strict: bool = True
    ) -> tuple[Any, dict[str, Tensor]]:
        wanted = set(names)
        with self._forward_errors():
            if self.lens:
                out, cache = self.model.run_with_cache(inputs, names_filter=wanted.__contains__)
                return out, {n: cache[n] for n in names if n in cache}
            acts: dict[str, Tensor] = {}
            return self._run_plain(inputs, (), {n: acts for n in wanted}, strict), acts

    def _run_plain(
        self,
        inputs: Tensor,
        fwd_hooks: Sequence[tuple[str, HookFn]],
        stores: dict[str, dict[str, Tensor]],
        strict: bool = True,
    ) -> Any:
        handles = []
        try:
            for name, fn in fwd_hooks:
                handles.append(self._modules[name].register_forward_hook(_replacing(name, fn)))
            for name, store in stores.items():
                storing = _storing(name, store, strict)
                handles.append(self._modules[name].register_forward_hook(storing))
            return self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()


def _output_tensor(name: str, output: Any) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
        return output[0]
    raise MesaError(
        f"module {name!r} returns {type(output).__name__}; mesa.probes reads a module's tensor "
        "output or the first element of a tuple"
    )


def _once(name: str) -> Callable[[], None]:
    calls = 0

    def count() -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise MesaError(f"module {name!r} runs more than once in a forward pass; hook another")

    return count


def _replacing(name: str, fn: HookFn) -> Callable[..., Any]:
    count = _once(name)

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        count()
        new = fn(_output_tensor(name, output), hook=module)
        if new is None or isinstance(output, Tensor):
            return new
        if hasattr(output, "_fields"):  # a named tuple
            return output._replace(**{output._fields[0]: new})
        return (new, *output[1:])

    return hook


def _storing(name: str, store: dict[str, Tensor], strict: bool = True) -> Callable[..., None]:
    """A forward hook keeping the module's output in ``store``; not ``strict``, a module that
    runs twice or returns something else than a tensor is left out instead of refused."""
    count = _once(name)
    left_out = False

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal left_out
        try:
            count()
            store[name] = _output_tensor(name, output).detach()
        except MesaError:
            if strict:
                raise
            left_out = True
        if left_out:
            store.pop(name, None)

    return hook


def hooked(model: Any) -> Hooked:
    """``model`` behind the one interface of this module (see the module docstring)."""
    return model if isinstance(model, Hooked) else Hooked(model)


def hook_names(model: nn.Module) -> list[str]:
    """Every hook name of ``model``, in module order: its hook points (TransformerLens models)
    or its module paths (any other ``nn.Module``)."""
    return list(hooked(model).names)


def check_hooks(model: nn.Module, names: str | Iterable[str]) -> list[str]:
    """Return ``names`` as a list, or raise a one-line error naming the closest valid hooks."""
    return hooked(model).check(names)
