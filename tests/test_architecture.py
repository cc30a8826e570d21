"""The layout the README states holds: packages depend on each other in one direction (no
cycles, counting imports inside functions too), ``mesa.models`` knows no task, trainer or
detector, ``mesa.probes`` nothing of mesa, and no library function runs past 60 lines unless its
docstring says why."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SOURCES = ("mesa", "probes", "models")


def _unit_of_file(path: Path) -> str:
    """The unit a file belongs to: ``mesa.probes``, ``mesa.models``, a subpackage of mesa
    (``mesa.tasks``) or one of its top-level modules (``mesa.io``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] in ("probes", "models"):
        return f"mesa.{parts[0]}"
    if len(parts) == 2:
        return "mesa" if parts[1] == "__init__" else f"mesa.{parts[1]}"
    return f"mesa.{parts[1]}"


def _unit_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "mesa":
        return None
    return "mesa" if len(parts) == 1 else f"mesa.{parts[1]}"


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in files:
        unit = _unit_of_file(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                other = _unit_of_module(name)
                if other is not None and other != unit:
                    graph[unit].add(other)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return [*stack[stack.index(v) :], v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def _files() -> list[Path]:
    return [p for d in SOURCES for p in sorted((ROOT / d).rglob("*.py"))]


def test_packages_form_no_cycle():
    graph = import_graph(_files())
    assert len(graph) > 10
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_can_fail(tmp_path: Path):
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_models_know_no_task_trainer_or_detector():
    graph = import_graph(_files())
    allowed = {"mesa.config", "mesa.errors", "mesa.runtime", "mesa.probes"}
    assert graph["mesa.models"] <= allowed, graph["mesa.models"] - allowed
    assert graph["mesa.probes"] == set()  # mesa.probes stands alone (tests/probes checks it too)


@pytest.mark.parametrize("source", SOURCES)
def test_no_function_runs_past_60_lines(source: str):
    long = []
    for path in sorted((ROOT / source).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if length > 60 and "long because" not in doc:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, long
