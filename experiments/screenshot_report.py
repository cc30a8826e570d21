"""A report opened as a person would: headless Chromium renders ``DIR/report.html`` to a PNG.

Needs a Chromium browser (Debian: ``apt-get install chromium``). See ``screenshot_report.md``. ::

    mesa demo                                            # or any `mesa report DIR`
    python -m experiments screenshot_report runs/demo    # --height 9000 (pixels)

writes ``results/screenshot_report/<DIR's name>-<commit>.png`` and, beside it, the ``.json``
that says what was rendered and how.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from experiments.common import (
    git_commit,
    result_stem,
    results_dir,
    with_suffix,
    write_bytes,
    write_result,
)


def render(page: Path, out: Path, height: int, browser: str) -> None:
    """Screenshot ``page`` (an HTML file) into ``out`` at 1200 x ``height`` pixels."""
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "shot.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size=1200,{height}",
                f"--screenshot={shot}",
                page.resolve().as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        write_bytes(out, shot.read_bytes())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="a report directory (holds report.html)")
    ap.add_argument("--height", type=int, default=9000, help="window height in pixels")
    ap.add_argument("--browser", default="chromium", help="the Chromium executable")
    args = ap.parse_args(argv)
    page = args.dir / "report.html"
    if not page.is_file():
        raise SystemExit(f"no report.html in {args.dir} (run: mesa report {args.dir})")
    if shutil.which(args.browser) is None:
        raise SystemExit(f"{args.browser} not found: install Chromium (apt-get install chromium)")
    what = args.dir.resolve().name
    commit, dirty = git_commit()
    png = with_suffix(result_stem("screenshot_report", what, commit, dirty, results_dir()), ".png")
    render(page, png, args.height, args.browser)
    write_result(
        "screenshot_report",
        what,
        {"report": str(page), "image": png.name, "width": 1200, "height": args.height},
    )


def headline(result: dict[str, Any]) -> dict[str, Any]:
    return {"image": result["image"], "height": result["height"]}


def table(result: dict[str, Any]) -> str:
    return (
        "| report | image | window |\n|---|---|---|\n"
        f"| `{result['report']}` | `{result['image']}` | {result['width']} x {result['height']} |"
    )


def load(path: Path) -> dict[str, Any]:
    """A result: this script's JSON, or an archived PNG alone (its size read from the file)."""
    import json
    import struct

    if path.suffix == ".json":
        return json.loads(path.read_text())
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the PNG's IHDR chunk
    return {"report": "(not recorded)", "image": path.name, "width": width, "height": height}
