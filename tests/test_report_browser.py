"""The report as a reader opens it: headless Chromium renders it with every image present and no
console error. Skipped, with the reason, where ``chromium`` is not installed.

What is checked, for a single-run report and a zoo report: a copy of ``report.html`` gets a probe
script at the top of its ``<head>`` that counts, once the page has loaded, its images, the images
that failed to decode (not complete, or zero natural width: a broken or truncated PNG) and the
errors the page raised (``error`` events, including failed resource loads, and
``console.error`` calls); Chromium's ``--dump-dom`` prints the page with those counts written
into ``<body>``'s attributes. Chromium's own log (``--enable-logging=stderr``) must hold no
console message either, since the report itself has no script that should log anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mesa.report import write_report
from tests.test_report import _fake_zoo, _tiny_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not on PATH (Debian: apt-get install chromium)"
    ),
    pytest.mark.slow,
]

PROBE = """<script>
const seen = [];
window.addEventListener("error", (e) => seen.push(e.message || "resource failed"), true);
const logError = console.error;
console.error = (...args) => { seen.push(args.join(" ")); logError(...args); };
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0));
  document.body.dataset.images = images.length;
  document.body.dataset.broken = broken.length;
  document.body.dataset.errors = seen.length;
});
</script>"""


def render(page: Path, tmp: Path) -> tuple[dict[str, int], str]:
    """The probe's counts and Chromium's log for ``page`` rendered headless."""
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",  # let the page load before the DOM is dumped
            "--dump-dom",
            probed.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body, f"no page rendered: {proc.stderr[-2000:]}"
    counts = {k: int(v) for k, v in re.findall(r'data-(\w+)="(\d+)"', body.group(1))}
    return counts, proc.stderr


@pytest.mark.parametrize("kind", ["run", "zoo"])
def test_report_renders_in_chromium(tmp_path: Path, kind: str):
    root = tmp_path / kind
    if kind == "run":
        _tiny_run(root)
    else:
        _fake_zoo(root, "maze")
    page, _ = write_report(root)
    embedded = page.read_text().count("src='data:image/png;base64,")
    counts, log = render(page, tmp_path)
    assert counts == {"images": embedded, "broken": 0, "errors": 0}, counts
    assert embedded >= 4
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console
