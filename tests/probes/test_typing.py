"""mesa ships its annotations (PEP 561 ``py.typed``): mypy, run on a user's script against the
package as an install lays it out, finds mesa.probes' types and flags a wrong call.

To stay fast the script is checked against a minimal stand-in for torch's stubs (analysing torch
itself takes mypy half a minute); everything of mesa is analysed for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]

TORCH_STUB = """
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn as nn

_F = TypeVar("_F", bound=Callable[..., Any])

class Tensor:
    def __getattr__(self, name: str) -> Any: ...

class no_grad:
    def __call__(self, fn: _F) -> _F: ...
    def __enter__(self) -> None: ...
    def __exit__(self, *args: object) -> None: ...

def zeros(*size: int) -> Tensor: ...
def __getattr__(name: str) -> Any: ...
"""

NN_STUB = """
from typing import Any

class Module:
    def __getattr__(self, name: str) -> Any: ...

class Linear(Module):
    def __init__(self, in_features: int, out_features: int) -> None: ...

def __getattr__(name: str) -> Any: ...
"""

MYPY_INI = """
[mypy]
python_version = 3.11
mypy_path = stubs
[mypy-numpy.*,sklearn.*,scipy.*,transformer_lens.*,concept_erasure.*,einops.*,jaxtyping.*,tqdm.*,matplotlib.*,safetensors.*,gymnasium.*]
follow_imports = skip
follow_imports_for_stubs = True
"""

USER_SCRIPT = """
import torch

from mesa.probes import LinearProbe, collect_activations, patch_sweep, steer

model = torch.nn.Linear(2, 2)
reveal_type(LinearProbe(C=0.5).fit)
reveal_type(patch_sweep)
acts = collect_activations(model, torch.zeros(1, 2), "x", batch_size=64)
acts = collect_activations(model, torch.zeros(1, 2), "x", batch_size="big")
steer("not a model", torch.zeros(1, 2), "x", torch.zeros(2))
"""


def _source_dir(package: str) -> Path:
    """Where setuptools takes ``package`` from: the longest mapped prefix in package-dir."""
    parts = package.split(".")
    mapping = SETUPTOOLS.get("package-dir", {})
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[i:])
    return ROOT / Path(*parts)


def _installed_layout(site: Path, package_data: bool = True) -> None:
    """The packages of pyproject's list as an install lays them out: modules, plus package-data."""
    data = SETUPTOOLS.get("package-data", {}) if package_data else {}
    for package in SETUPTOOLS["packages"]:
        src, dst = _source_dir(package), site / Path(*package.split("."))
        dst.mkdir(parents=True)
        for path in src.glob("*.py"):
            shutil.copy(path, dst)
        for pattern in [*data.get(package, []), *data.get("*", [])]:
            for path in src.glob(pattern):
                shutil.copy(path, dst)


def _mypy(tmp_path: Path, package_data: bool) -> str:
    pytest.importorskip("mypy", reason="mypy (the dev extra: pip install -e '.[dev]') is absent")
    site = tmp_path / "site"
    _installed_layout(site, package_data)
    (tmp_path / "stubs" / "torch" / "nn").mkdir(parents=True)
    (tmp_path / "stubs" / "torch" / "__init__.pyi").write_text(TORCH_STUB)
    (tmp_path / "stubs" / "torch" / "nn" / "__init__.pyi").write_text(NN_STUB)
    (tmp_path / "mypy.ini").write_text(MYPY_INI)
    (tmp_path / "user.py").write_text(USER_SCRIPT)
    # the site directory is on the path mypy searches for installed packages (PEP 561); run
    # from tmp_path so that the checkout's own mesa/ is not found instead. The caller's own
    # PYTHONPATH follows it: where mypy itself was installed there, the child finds it too
    path = [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    command = ["-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", "cache", "user.py"]
    proc = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,
        env={"PYTHONPATH": os.pathsep.join(path), "PATH": ""},
        capture_output=True,
        text=True,
    )
    return proc.stdout + proc.stderr


def test_every_package_ships_py_typed():
    data = SETUPTOOLS["package-data"]
    for package in ("mesa", "mesa.probes", "mesa.models"):
        assert package in SETUPTOOLS["packages"]
        assert "py.typed" in data.get(package, []) + data.get("*", [])
        assert (_source_dir(package) / "py.typed").is_file()


def test_mypy_finds_the_types_of_mesa_probes_in_a_users_script(tmp_path):
    out = _mypy(tmp_path, package_data=True)
    lines = out.splitlines()
    assert 'note: Revealed type is "def (X: Any, y: Any) -> mesa.probes.linear.LinearProbe"' in out
    assert "-> mesa.probes.patching.PatchResult" in out
    assert "model: torch.nn.Module" in out  # the annotation of a public function's model
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 2, out
    assert errors[0].startswith('user.py:10: error: Argument "batch_size"')
    assert 'has incompatible type "str"; expected "int"' in errors[0]
    assert errors[1].startswith('user.py:11: error: Argument 1 to "steer" has incompatible type')


def test_without_py_typed_mypy_would_not_read_the_package(tmp_path):
    # the check above depends on the marker: without it the package is "installed, but missing
    # library stubs or py.typed marker" and every name from it is untyped
    out = _mypy(tmp_path, package_data=False)
    assert "missing library stubs or py.typed marker" in out


def test_the_wheel_holds_the_markers(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for folder in ("mesa", "probes", "models"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [sys.executable, *command, "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("mesa-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mesa/py.typed", "mesa/probes/py.typed", "mesa/models/py.typed"} <= names
    assert "mesa/probes/hooks.py" in names and "mesa/probes/errors.py" in names
