"""Writers for the report's tables and figures: Rich (terminal), Markdown, CSV, LaTeX, HTML.

Markdown and LaTeX are written here by hand (pandas' to_markdown needs tabulate and to_latex
needs jinja2, neither of which is a resdsl dependency). All functions return text; writing
files is command.py's job.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime, timezone

import pandas as pd
from rich.table import Table as RichTable
from rich.text import Text

from resdsl.cli_common import result_table
from resdsl.report.figures import FigureOut, figure_png
from resdsl.report.records import BadRun
from resdsl.report.tables import REDUCED_MARK, Table
from resdsl.text import csv_frame


def _is_numberish(s: str) -> bool:
    s = s.strip().rstrip(REDUCED_MARK).rstrip("†M%GK")
    if not s:
        return False
    head = s.split(" ")[0]
    try:
        float(head.replace("±", ""))
        return True
    except ValueError:
        return False


def numeric_column(frame: pd.DataFrame, col) -> bool:
    """Right-align a column when most of its non-empty cells are numbers."""
    cells = [str(v) for v in frame[col] if v is not None and str(v) != ""]
    return bool(cells) and sum(_is_numberish(c) for c in cells) > len(cells) / 2


# ---------------------------------------------------------------- rich

def to_rich(table: Table) -> RichTable:
    rt = result_table(title=table.title, title_justify="left", header_style="bold",
                      caption_justify="left")
    for col in table.frame.columns:
        numeric = numeric_column(table.frame, col)
        # widths: resdsl.cli_common.fit_table, where the terminal's width is known
        rt.add_column(str(col), justify="right" if numeric else "left", overflow="fold")
    for row in table.frame.itertuples(index=False):
        cells = []
        for v in row:
            s = "" if v is None else str(v)
            style = "yellow" if s.endswith(REDUCED_MARK) else ("green" if s.startswith("-") and _is_numberish(s)
                                                                 else None)
            cells.append(Text(s, style=style or ""))
        rt.add_row(*cells)
    if table.notes:
        rt.caption = "\n".join(table.notes)
    return rt


# ---------------------------------------------------------------- markdown

def _md_cell(v) -> str:
    return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    cols = [str(c) for c in table.frame.columns]
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
    aligns = []
    for col in table.frame.columns:
        numeric = numeric_column(table.frame, col)
        aligns.append("---:" if numeric else ":---")
    lines.append("| " + " | ".join(aligns) + " |")
    for row in table.frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {_md_cell(n)}" for n in table.notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- csv

def to_csv(table: Table) -> str:
    buf = io.StringIO()
    table.frame.to_csv(buf, index=False)
    return buf.getvalue()


def runs_csv(runs: pd.DataFrame) -> str:
    """The runs frame itself (numbers, errors as fractions), for further analysis; rounded by
    the one rule of resdsl.text.csv_frame."""
    buf = io.StringIO()
    csv_frame(runs).to_csv(buf, index=False)
    return buf.getvalue()


# ---------------------------------------------------------------- latex

_LATEX_ESC = [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
              ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
              ("^", r"\textasciicircum{}")]
_LATEX_UNI = [("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("−", r"$-$"), ("–", "--"), ("—", "---"),
              ("†", r"$^\dagger$"), ("×", r"$\times$"), ("’", "'")]


def latex_escape(s) -> str:
    s = "" if s is None else str(s)
    out = []
    for ch in s:
        for a, b in _LATEX_ESC:
            if ch == a:
                ch = b
                break
        out.append(ch)
    s = "".join(out)
    # `{`/`}` of the replacements above are added after escaping, so they stay intact
    for a, b in _LATEX_UNI:
        s = s.replace(a, b)
    return s


def to_latex(table: Table) -> str:
    cols = list(table.frame.columns)
    spec = "".join("r" if numeric_column(table.frame, c) else "l" for c in cols)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             r"\caption{" + latex_escape(table.title) + "}",
             r"\begin{tabular}{" + spec + "}", r"\hline",
             " & ".join(latex_escape(c) for c in cols) + r" \\", r"\hline"]
    for row in table.frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(v) for v in row) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\footnotesize")
        lines += [latex_escape(n) + r"\\" for n in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- html

def to_html_table(table: Table) -> str:
    cols = list(table.frame.columns)
    numeric = [numeric_column(table.frame, c) for c in cols]
    out = [f'<table class="report" id="{html.escape(table.key)}">',
           f"<caption>{html.escape(table.title)}</caption>", "<thead><tr>"]
    out += [f"<th>{html.escape(str(c))}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for row in table.frame.itertuples(index=False):
        out.append("<tr>")
        for v, num in zip(row, numeric):
            s = "" if v is None else str(v)
            cls = []
            if num:
                cls.append("num")
            if s.endswith(REDUCED_MARK):
                cls.append("reduced")
            if not s:
                cls.append("empty")
            attr = f' class="{" ".join(cls)}"' if cls else ""
            out.append(f"<td{attr}>{html.escape(s)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
                   + "</ul>")
    return "\n".join(out)


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table.report { border-collapse: collapse; margin: 0.5em 0; font-size: 0.88em; }
table.report caption { caption-side: top; text-align: left; font-weight: 600; padding: 0.3em 0; }
table.report th, table.report td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; }
table.report th { background: #f4f6f8; text-align: left; position: sticky; top: 0; }
table.report td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.report td.reduced { background: #fff5d6; }
table.report tbody tr:hover { background: #f7fbff; }
ul.notes { font-size: 0.82em; color: #555; margin-top: 0.2em; }
.wrap { overflow-x: auto; }
.warn { background: #fff3f0; border-left: 4px solid #e0603a; padding: 0.6em 1em; }
.meta { color: #666; font-size: 0.9em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; }
"""


def figure_img_tag(f: FigureOut, png: bytes | None = None) -> str:
    data = base64.b64encode(png if png is not None else figure_png(f.figure)).decode("ascii")
    return (f'<figure id="{html.escape(f.key)}"><img alt="{html.escape(f.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(f.title)}.</b> '
            f"{html.escape(f.caption)}</figcaption></figure>")


def html_page(tables: list[Table], figures: list[FigureOut], bad: list[BadRun],
              skipped: list[tuple[str, str]], source: str, filters: list[str] | None = None,
              pngs: dict[str, bytes] | None = None) -> str:
    """One self-contained page: tables, then figures (PNG embedded as base64), then warnings."""
    pngs = pngs or {}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>resdsl report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>resdsl report</h1>",
             f'<p class="meta">Run records under <code>{html.escape(source)}</code>'
             + (" filtered by " + ", ".join(f"<code>{html.escape(f)}</code>" for f in filters)
                if filters else "")
             + f"; generated {when}. Paper: He et al., Deep Residual Learning for Image "
               "Recognition (CVPR 2016).</p>"]
    if bad:
        parts.append(f'<div class="warn"><b>{len(bad)} run record(s) could not be used:</b><ul>'
                     + "".join(f"<li><code>{html.escape(b.run_dir)}</code>: {html.escape(b.reason)}</li>"
                               for b in bad) + "</ul></div>")
    parts.append("<h2>Tables</h2>")
    for t in tables:
        parts.append(f'<div class="wrap">{to_html_table(t)}</div>')
    parts.append("<h2>Figures</h2>")
    if not figures:
        parts.append("<p>No figures: no run has the data for one.</p>")
    for f in figures:
        parts.append(figure_img_tag(f, pngs.get(f.key)))
    if skipped:
        parts.append("<h3>Figures not made</h3><ul class=\"notes\">"
                     + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in skipped)
                     + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def table_html_page(table: Table) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(table.title)}</title><style>{CSS}</style></head><body>\n"
            + to_html_table(table) + "\n</body></html>\n")


def render(table: Table, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(table)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "latex":
        return to_latex(table)
    if fmt == "html":
        return table_html_page(table)
    raise ValueError(fmt)
