"""Typed, frozen configuration dataclasses and their checks.

Every setting a user can give — a task option (``--opt``), a trainer hyperparameter (``--hp``),
a model's config in ``config.json`` — lands in a frozen dataclass. Its declared type is the
contract: :func:`check_fields` (called from each config's ``__post_init__``) refuses a value of
another type with one line (``steps must be an integer, got 10.5``; a bool field takes only
``true``/``false``, never the string ``"no"``; a float must be finite), and converts the few
harmless cases (an integer where a float is declared, a JSON list where a tuple is). Ranges are
checked by each config with :func:`at_least` and :func:`in_range`.

:func:`config_from_dict` builds a config from user input and names the valid keys when one is
unknown. This module depends on nothing but the error type, so tasks, trainers and models all
use it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from typing import Any

from mesa.errors import MesaError

_NAMES = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if typing.get_origin(tp) is tuple:
        return "a list of integers" if int in args else "a list"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any) -> tuple[bool, Any]:
    """``(ok, value)``: ``value`` as type ``tp`` where that loses nothing."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = _convert(value, arg)
            if ok:
                return True, converted
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is Any:
        return True, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        return math.isfinite(value), float(value)
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, value
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is ... else list(args)
        if len(item_types) != len(value):
            return False, value
        items = [_convert(v, t) for v, t in zip(value, item_types, strict=True)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    return isinstance(value, tp) if isinstance(tp, type) else True, value


def check_fields(config: Any) -> None:
    """Check every field of a dataclass instance against its declared type (see the module
    docstring); converts ints to floats and lists to tuples in place."""
    hints = _hints(type(config))  # type: ignore[arg-type]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        ok, converted = _convert(value, hints.get(f.name, Any))
        if not ok:
            raise MesaError(f"{f.name} must be {_describe(hints[f.name])}, got {value!r}")
        if converted is not value:
            object.__setattr__(config, f.name, converted)


def at_least(config: Any, low: float, *names: str) -> None:
    """Each named field (unless None) is ``>= low``."""
    for name in names:
        value = getattr(config, name)
        if value is not None and value < low:
            raise MesaError(f"{name} must be at least {low:g}, got {value!r}")


def in_range(
    config: Any, name: str, low: float, high: float, open_low: bool = False, open_high: bool = False
) -> None:
    """The named field (unless None) lies in the interval from ``low`` to ``high``."""
    value = getattr(config, name)
    if value is None:
        return
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if too_low or too_high:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise MesaError(f"{name} must be in {interval}, got {value!r}")


def parse_assignments(items: list[str] | tuple[str, ...] | None, what: str) -> dict[str, Any]:
    """``["lr=3e-4", "size=7"]`` -> ``{"lr": 0.0003, "size": 7}``: the ``--opt`` / ``--hp`` form
    (values read as JSON where they parse, else kept as strings; their types are checked by the
    config they go into)."""
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise MesaError(f"{what} must look like KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def odd_in(config: Any, name: str, low: int, high: int, label: str | None = None) -> None:
    """The named field is an odd integer in ``low..high`` (grid sides: a maze needs odd ones)."""
    value = getattr(config, name)
    if not (isinstance(value, int) and low <= value <= high and value % 2 == 1):
        raise MesaError(f"{label or name} must be an odd integer in {low}..{high}, got {value!r}")


def config_from_dict(
    cls: type[Any], values: dict[str, Any], what: str, noun: str = "option"
) -> Any:
    """Build a frozen config dataclass, rejecting unknown keys with the valid ones named."""
    if not isinstance(values, dict):
        raise MesaError(f"{what} {noun}s must be a mapping of names to values, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise MesaError(f"unknown {what} {noun} {unknown[0]!r}; valid: {', '.join(names)}")
    try:
        return cls(**values)
    except TypeError as e:
        raise MesaError(f"bad {what} {noun}s: {e}") from None


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstring under each field of a dataclass (its one-line meaning), read from
    the source; empty where the source is not available."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe_fields(cls: type) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, meaning)`` of each field of a config dataclass, for help texts."""
    docs, hints = field_docs(cls), _hints(cls)  # type: ignore[arg-type]
    rows = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        tp = hints.get(f.name, Any)
        name = getattr(tp, "__name__", None) if typing.get_origin(tp) is None else None
        rows.append((f.name, name or str(tp), repr(default), docs.get(f.name, "")))
    return rows
