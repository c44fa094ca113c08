"""A table laid out like the paper's (`Cell`, `Table`) and its files: `<name>.csv` (numeric, one
line per cell), `<name>.md`, `<name>.tex` and `<name>.html` (for the HTML report), written
atomically with `<name>.csv.provenance.json`.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emcom import provenance

log = logging.getLogger(__name__)

FORMATS = (".csv", ".md", ".tex", ".html")  # the files of every table, in `write`'s order


@dataclasses.dataclass(frozen=True)
class Cell:
    """One number of a table, in the table's units (NaN = not available).

    `kind`: "stat" prints `mean +- se` (just the mean with one seed), "num" prints the mean with two
    decimals, "p" a p-value, "int" an integer.
    """
    mean: float = math.nan
    se: float = math.nan
    n: int = 0
    kind: str = "stat"

    def text(self) -> str:
        if not np.isfinite(self.mean):
            return "n/a"
        if self.kind == "p":
            return f"{self.mean:.3g}"
        if self.kind == "int":
            return str(int(self.mean))
        if self.kind == "stat" and self.n > 1 and np.isfinite(self.se):
            return f"{self.mean:.2f} ± {self.se:.2f}"
        return f"{self.mean:.2f}"


@dataclasses.dataclass
class Table:
    """A table laid out like the paper's: `rows` of (label, cells aligned with `columns`)."""
    name: str
    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    notes: list[str]


def to_markdown(table: Table) -> str:
    """The table as a GitHub Markdown section: title, table (or a no-data line), notes."""
    lines = [f"### {table.title}", ""]
    if not table.rows or not table.columns:
        lines.append("_No data: the tidy tables have no rows for this table "
                     "(see docs/report.md)._")
    else:
        def line(texts: list[str]) -> str:
            # A bare "|" (as in "|C|") would split the cell.
            return "| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |"

        lines.append(line([table.row_header] + table.columns))
        lines.append("|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|")
        lines += [line([label] + [c.text() for c in cells]) for label, cells in table.rows]
    if table.notes:
        lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "|": r"\textbar{}", "±": r"$\pm$", "ρ": r"$\rho$", "↑": r"$\uparrow$",
          "↓": r"$\downarrow$", "→": r"$\to$", "×": r"$\times$"}


def rst_text(text: str) -> str:
    """`text` safe as reStructuredText, the language of the HTML report's captions: a bare "|"
    (as in "|C|") would open a substitution reference."""
    return text.replace("|", "\\|")


def _latex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """The table as a booktabs `tabular` (to `\\input` inside a table environment)."""
    lines = [f"% {table.title}"]
    if not table.rows or not table.columns:
        return "\n".join(lines + ["% No data: the tidy tables have no rows for this table."]) + "\n"
    lines += [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
              " & ".join(_latex(h) for h in [table.row_header] + table.columns) + r" \\",
              r"\midrule"]
    for label, cells in table.rows:
        lines.append(" & ".join([_latex(label)] + [_latex(c.text()) for c in cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def html_page(title: str, body: list[str], style: str) -> str:
    """A small self-contained HTML page (what `snakemake --report` embeds): `title` as its
    heading, then the `body` parts; `style` is CSS beyond the shared font and table rules."""
    head = ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
            "body{font-family:sans-serif;font-size:14px} table{border-collapse:collapse}"
            f"th,td{{padding:3px 10px;border-bottom:1px solid #ccc}}{style}</style></head><body>")
    return "\n".join([head, f"<h3>{html.escape(title)}</h3>", *body, "</body></html>"]) + "\n"


def html_row(cells: Sequence[str], tag: str = "td") -> str:
    """One HTML table row of `cells`, which are HTML already (escape plain text first)."""
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def to_html(table: Table) -> str:
    """The table as an HTML page (`html_page`)."""
    e = html.escape
    parts = []
    if not table.rows or not table.columns:
        parts.append("<p><em>No data: the tidy tables have no rows for this table.</em></p>")
    else:
        parts.append("<table>" + html_row([e(h) for h in [table.row_header] + table.columns], "th"))
        parts += [html_row([e(label)] + [e(c.text()) for c in cells])
                  for label, cells in table.rows]
        parts.append("</table>")
    if table.notes:
        parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in table.notes) + "</ul>")
    return html_page(table.title, parts, "th,td{text-align:right} "
                     "th:first-child,td:first-child{text-align:left}")


def to_frame(table: Table) -> pd.DataFrame:
    """The table's numbers, one line per cell: row, column, value, se, n (in the table's units)."""
    records = [{"row": label, "column": column, "value": cell.mean, "se": cell.se, "n": cell.n}
               for label, cells in table.rows for column, cell in zip(table.columns, cells)]
    return pd.DataFrame(records, columns=["row", "column", "value", "se", "n"])


def write(table: Table, out_dir: str | os.PathLike, config: Any = None) -> list[Path]:
    """Writes `<name>.csv`, `.md`, `.tex`, `.html` and the CSV's provenance; returns the four
    paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{table.name}{ext}" for ext in FORMATS]
    with provenance.atomic_path(paths[0], suffix=".csv") as tmp:
        to_frame(table).to_csv(tmp, index=False)
    for path, text in zip(paths[1:], (to_markdown(table), to_latex(table), to_html(table))):
        with provenance.atomic_path(path, suffix=path.suffix) as tmp:
            tmp.write_text(text, encoding="utf-8")
    provenance.write_provenance(paths[0], config, title=table.title, notes=table.notes)
    log.info("wrote %s (%d rows) to %s", table.name, len(table.rows), out_dir)
    return paths
