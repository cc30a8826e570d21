"""``mesa demo --quick`` runs end to end and leaves a complete report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mesa.cli import main


@pytest.mark.slow
def test_quick_demo_writes_report(tmp_path: Path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "report: " in out
    page = (tmp_path / "report.html").read_text()
    assert len(re.findall(r"data:image/png;base64,", page)) >= 2 * 4
    for family in ("maze", "sycophancy"):
        assert f"<h2>{family}</h2>" in page
        for member in (tmp_path / family / "members").iterdir():
            for name in (
                "config.json",
                "model.safetensors",
                "metrics.jsonl",
                "ood.json",
                "verdict.json",
            ):
                assert (member / name).is_file(), (member, name)
