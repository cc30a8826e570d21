"""Tables as HTML and Markdown, shared by the report and by Jupyter.

A table is a list of rows of strings, the first row its header. The report writes them into
``report.html`` and ``report.md``; mesa's results (:class:`mesa.evaluation.OODResult`,
:class:`mesa.detection.Verdict`, :class:`mesa.zoo.ZooResult`) return them from ``_repr_html_``, so
a notebook shows a table where it used to print text.
"""

from __future__ import annotations

import html
import math
from typing import Any

#: Inline style for tables shown in Jupyter, where the report's stylesheet is absent.
_NOTEBOOK_STYLE = "border-collapse:collapse;font-size:13px;text-align:right"


def fmt(x: Any, digits: int = 2) -> str:
    """A number as text: ``n/a`` for NaN or None, a pair as an interval ``[lo, hi]``."""
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.{digits}f}"
    if isinstance(x, list | tuple) and len(x) == 2:
        return f"[{fmt(x[0], digits)}, {fmt(x[1], digits)}]"
    return str(x)


def html_table(rows: list[list[str]], caption: str | None = None, inline: bool = False) -> str:
    """``<table>`` of ``rows`` (header first), every cell escaped. ``inline`` adds the styles a
    notebook needs (the report has a stylesheet)."""
    style = f" style='{_NOTEBOOK_STYLE}'" if inline else ""
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return f"<table{style}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def md_table(rows: list[list[str]]) -> str:
    """A Markdown table; a ``|`` inside a cell is escaped, so it stays one cell."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(rows[0]), "|" + "---|" * len(rows[0])]
    lines += [line(r) for r in rows[1:]]
    return "\n".join(lines)
