"""mesa.probes stands alone: it imports nothing from the rest of mesa, its package imports its
attributes lazily, and ``mesa.errors`` (which re-exports its error type) stays cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROBES = Path(__file__).parents[2] / "probes"


def _imported_modules(path: Path) -> list[str]:
    """Absolute names of the modules a file imports (relative imports resolved in mesa.probes)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside mesa.probes (a file here is never a package root)
                names.append("mesa.probes" + (f".{node.module}" if node.module else ""))
            else:
                names.append(node.module or "")
    return names


def test_probes_import_nothing_from_the_rest_of_mesa():
    files = sorted(PROBES.glob("*.py"))
    assert len(files) >= 10
    outside = {
        f"{path.name}: {name}"
        for path in files
        for name in _imported_modules(path)
        if (name == "mesa" or name.startswith("mesa."))
        and not (name == "mesa.probes" or name.startswith("mesa.probes."))
    }
    assert not outside, sorted(outside)


def test_the_check_sees_an_outside_import(tmp_path):
    # the check above must be able to fail
    bad = tmp_path / "bad.py"
    bad.write_text("from mesa.errors import MesaError\nimport mesa.models\nfrom .hooks import x\n")
    assert _imported_modules(bad) == ["mesa.errors", "mesa.models", "mesa.probes.hooks"]


def _fresh_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("code", ["import mesa.errors", "import mesa.probes"])
def test_errors_and_the_package_import_no_torch(code):
    loaded = _fresh_modules(code)
    assert "mesa.probes" in loaded
    assert not {"torch", "transformer_lens", "sklearn", "numpy"} & loaded


def test_one_error_class_for_all_of_mesa():
    import mesa.errors
    import mesa.probes
    from mesa.probes.errors import MesaError

    assert mesa.errors.MesaError is MesaError is mesa.probes.MesaError
    assert issubclass(MesaError, ValueError)


def test_lazy_attributes_dir_and_all():
    import mesa.probes

    assert dir(mesa.probes) == sorted(mesa.probes.__all__) == sorted(mesa.probes._LAZY)
    for name in mesa.probes.__all__:
        assert getattr(mesa.probes, name).__name__ == name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        mesa.probes.nope  # noqa: B018


def test_no_function_over_sixty_lines_without_a_reason():
    # a longer function must say in its docstring why it is not split ("... is long because ...")
    long = []
    for path in sorted(PROBES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > 60 and "is long because" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long
