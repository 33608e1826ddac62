"""`resdsl report DIR`: the command function; the CLI registers it with
`app.command("report")(report_command)`. Any user error is a ReportError (exit 2 in the CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from resdsl.cli_common import choices_metavar
from resdsl.io import atomic_write_bytes, atomic_write_text
from resdsl.outputs import check_output_dir
from resdsl.report.formats import EXT, FORMATS

# pandas and matplotlib are imported by the functions that use them: the CLI imports this
# module for `resdsl --help`.
if TYPE_CHECKING:
    from rich.console import Console

    from resdsl.report.figures import FigureSet
    from resdsl.report.records import BadRun, RunSet
    from resdsl.report.tables import Table

Format = Enum("Format", [(f, f) for f in FORMATS], type=str)


@dataclass
class Report:
    """Everything a report shows; `build_report` makes it, `write_report` writes it."""

    runset: RunSet
    tables: list[Table]  # shown: runs table + paper tables with runs (or all)
    all_tables: list[Table]  # runs table + every paper table (written under --out)
    runs_short: Table  # the runs table as the terminal shows it without --wide
    figures: FigureSet | None = None
    filters: list[str] = field(default_factory=list)

    @property
    def bad(self) -> list[BadRun]:
        return self.runset.bad


def build_report(run_dir: Path, filters: list[str] | None = None, all_tables: bool = False,
                 edf_param: str | None = None, with_figures: bool = True) -> Report:
    from resdsl.report.figures import check_edf_param, make_figures
    from resdsl.report.records import apply_filters, load_runs
    from resdsl.report.tables import PAPER_TABLES, runs_table, short_runs_table

    rs = apply_filters(load_runs(run_dir), filters)
    check_edf_param(rs, edf_param)
    every = [runs_table(rs.runs)] + [build(rs.runs) for build in PAPER_TABLES.values()]
    shown = [every[0]] + [t for t in every[1:] if all_tables or t.matched]
    figs = make_figures(rs, edf_param) if with_figures else None
    return Report(rs, shown, every, short_runs_table(rs.runs), figs, list(filters or []))


def write_report(report: Report, out: Path, fmt: str = "md") -> list[Path]:
    """Write every table (runs.<fmt>, table2.<fmt> ... table6.<fmt>), runs.csv (the runs frame,
    numbers), every figure as PNG and SVG, and the self-contained report.html. Atomic writes."""
    from resdsl.report.figures import FigureSet, figure_png, figure_svg
    from resdsl.report.render import html_page, render, runs_csv

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, data: str | bytes) -> None:
        path = out / name
        if isinstance(data, bytes):
            atomic_write_bytes(path, data)
        else:
            atomic_write_text(path, data)
        written.append(path)

    put("runs.csv", runs_csv(report.runset.runs))
    for t in report.all_tables:
        if t.key == "runs" and fmt == "csv":
            continue  # runs.csv is the full runs frame
        put(f"{t.key}.{EXT[fmt]}", render(t, fmt))
    pngs: dict[str, bytes] = {}
    figs = report.figures or FigureSet()
    for f in figs.figures:
        pngs[f.key] = figure_png(f.figure)
        put(f"{f.key}.png", pngs[f.key])
        put(f"{f.key}.svg", figure_svg(f.figure))
    put("report.html", html_page(report.tables, figs.figures, report.bad, figs.skipped,
                                 str(report.runset.root), report.filters, pngs))
    return written


def print_bad(console: Console, bad: list[BadRun]) -> None:
    if not bad:
        return
    console.print(f"[bold yellow]warning:[/] {len(bad)} run record(s) could not be used "
                  "and are left out:")
    for b in bad:
        console.print(f"  [yellow]{b.run_dir}[/]: {b.reason}", markup=True, highlight=False)


def report_command(
    run_dir: Annotated[Path, typer.Argument(
        help="Folder holding run records (searched recursively: every folder with a config.json).",
        metavar="DIR", show_default=False)],
    filter: Annotated[Optional[list[str]], typer.Option(
        "--filter", "-f",
        metavar="KEY=VALUE",
        help="Keep only runs with KEY=VALUE (repeatable; all must hold). VALUE may be a list "
             "'a,b'; KEY!=VALUE excludes. Keys: dataset, depth, shortcut (none|A|B|C), block, "
             "status, recipe, kind (run|ensemble|trial), test_mode, seed, study, dotted config "
             "paths (recipe.lr, spec.params.n) or spec/sweep parameter names.")] = None,
    fmt: Annotated[Optional[Format], typer.Option(
        "--format", metavar=choices_metavar(FORMATS),
        help="Table format for files under --out (default md); without --out, print the tables "
             "in this format instead of the terminal view.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="DIR",
        help="Write every table, runs.csv, every figure (PNG and SVG) and a self-contained "
             "report.html to this folder.")] = None,
    all_tables: Annotated[bool, typer.Option(
        "--all-tables", help="Show every paper table, also those no run matches.")] = False,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Show the runs table with every column (kind, dataset, params, FLOPs, "
                       "seed, budget, ...), as wide as it takes.")] = False,
    edf_param: Annotated[Optional[str], typer.Option(
        "--edf-param", metavar="NAME",
        help="Sweep parameter to split the error distribution function by "
             "(default: the first swept parameter). A continuous one, or one of more than 6 "
             "values, is split into up to 4 ranges with equal numbers of trials.")] = None,
) -> None:
    """Report run records as the paper's tables and figures, with the paper's numbers beside ours.

    Reads every run record under DIR (runs of `resdsl train`, trials of `resdsl sweep`, ensembles) and shows a table of all runs, then Tables 2-6 of He et al. (2016) for the runs that match a row by their config (dataset, depth, shortcut option, block, test mode).

    Runs at a reduced budget are marked with *. Unusable runs (corrupt, unfinished, still running) are listed as a warning; the rest are used. The terminal shows a short runs table (run, net, status, errors, wall time); --wide shows every column, and the files under --out always have them all.

    Examples:

    \b
      resdsl report runs/
      resdsl report runs/ --wide
      resdsl report runs/ --filter dataset=cifar10 --filter depth=20,56
      resdsl report runs/ --out reports/cifar --format latex
      resdsl report runs/sweep1 --out reports/sweep1 --edf-param width
    """  # noqa: E501 (one line per paragraph: the help text is rewrapped to the terminal)
    from rich.console import Console

    from resdsl.cli_common import fit_table, natural_width, table_console
    from resdsl.report.figures import FigureSet
    from resdsl.report.render import html_page, render, to_rich

    if out is not None:
        check_output_dir("--out", out)        # before reading anything: a wrong path costs nothing
    console = table_console()
    errc = Console(stderr=True)
    want_figures = out is not None or fmt == Format.html
    report = build_report(run_dir, filter, all_tables, edf_param, with_figures=want_figures)

    if fmt is not None and out is None:
        # machine-readable tables on stdout, nothing else there
        if fmt == Format.html:
            figs = report.figures or FigureSet()
            typer.echo(html_page(report.tables, figs.figures, report.bad, figs.skipped,
                                 str(report.runset.root), report.filters), nl=False)
        else:
            typer.echo("\n".join(render(t, fmt.value) for t in report.tables), nl=False)
    else:
        for t in [report.tables[0] if wide else report.runs_short, *report.tables[1:]]:
            table = to_rich(t)
            if wide and t.key == "runs":
                # as wide as it takes: the terminal wraps the lines, `less -S` scrolls them
                Console(width=max(console.width, natural_width(table, console))).print(table)
            else:
                fit_table(table, console, breakable=("run",))
                console.print(table)
            console.print()
        shown = {t.key for t in report.tables}
        hidden = [t.key for t in report.all_tables[1:] if t.key not in shown]
        if hidden:
            console.print(f"[dim]No run matches {', '.join(hidden)}; --all-tables shows them "
                          "with the paper's numbers.[/]")

    if out is not None:
        written = write_report(report, out, (fmt or Format.md).value)
        figs = report.figures or FigureSet()
        errc.print(f"wrote {len(written)} files to {out} ({len(figs.figures)} figures; "
                   f"open {out / 'report.html'})", highlight=False)
        for key, why in figs.skipped:
            errc.print(f"  [dim]figure skipped: {key}: {why}[/]", highlight=False)
    print_bad(errc, report.bad)
