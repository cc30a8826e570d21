"""The suite's device: the CPU, wherever it runs, except for tests marked ``gpu``.

mesa's default device is ``auto`` (CUDA when present), so on a machine with a GPU the existing
tests would quietly train on it, and the tests that compare bits across runs state a CPU
property. Every test but those marked ``gpu`` therefore sees a machine without CUDA
(:func:`mesa.runtime.cuda_available` answers False; a zoo resolves its device in the test's own
process and hands ``cpu`` to its workers). Tests marked ``gpu`` see the real machine and are
skipped, with the reason, where torch sees no CUDA GPU.
"""

from __future__ import annotations

import pytest
import torch

#: Why a GPU test did not run.
NO_GPU = "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_GPU)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    if "gpu" not in request.keywords:
        from mesa import runtime

        monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    yield
