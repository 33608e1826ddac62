"""Pieces every command shares: spec parameter overrides from the command line, the console,
the help's layout (metavars, choices, -h) and tables that fit the terminal."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Container, Iterable, get_args, get_origin

from rich.console import Console
from typer.core import TyperCommand

from .errors import SpecError

if TYPE_CHECKING:
    from rich.table import Table

console = Console()
err_console = Console(stderr=True)

# Commands that take a spec accept its parameters as unknown options: --n 18, --shortcut=none.
SPEC_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
# -h as well as --help, on the root and (inherited through the context) on every command.
HELP_CONTEXT = {"help_option_names": ["-h", "--help"]}


def choices_metavar(names: Iterable[str]) -> str:
    """The metavar of an option that takes one of ``names``: [grid|tpe|random]."""
    return "[" + "|".join(names) + "]"


def complete_choices(names: Iterable[str]) -> Callable[[str], list[str]]:
    """Shell completion of an option's value from its choices."""
    names = tuple(names)

    def complete(incomplete: str) -> list[str]:
        return [n for n in names if n.startswith(incomplete)]

    return complete


def _default_metavar(annotation) -> str:
    """What a value is, for an option or argument that names no metavar of its own."""
    if get_origin(annotation) in (list, tuple):
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return choices_metavar(str(m.value) for m in annotation)
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "PATH"
    return "TEXT"


def _argument_label(param) -> str:
    label = param.metavar or param.name.upper()
    return label + ("..." if param.nargs != 1 else "")


class HelpCommand(TyperCommand):
    """A command whose help names each value by what it is (SPEC, DIR, N, NAME=VALUE) and never
    by a Python type: typer writes ``<str>`` or ``<list[Path]>`` after every argument and after
    each option that names no metavar. The usage line reads ``SPEC``, ``[SPEC]``, ``RUN_DIR...``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "option" and not param.is_flag and param.metavar is None:
                param.metavar = _default_metavar(param.type_descriptor.annotation)

    def format_options(self, ctx, formatter) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((_argument_label(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                label = _argument_label(param)
                pieces.append(label if param.required else f"[{label}]")
        return pieces


def result_table(**kwargs) -> Table:
    """A rich table in the style of the paper's (a rule under the header, no column lines):
    two spaces between columns leave room for the columns themselves on a narrow terminal."""
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                 **kwargs)


# A table sent to a file or a log is not squeezed into 80 columns.
PIPED_WIDTH = 240


def table_console() -> Console:
    """The console for tables on stdout: the terminal's width, or $COLUMNS where it is set;
    piped to a file or a log, PIPED_WIDTH."""
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPED_WIDTH if wide else None, highlight=False)


# A column that may fold (a path) is still not narrowed below this, or the lesser of this and its
# widest cell: a letter per line helps nobody.
FOLD_FLOOR = 8


def natural_width(table: Table, console: Console) -> int:
    """The width a rich table takes when nothing in it wraps."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1 << 20), table).maximum


def fit_table(table: Table, console: Console, width: int | None = None,
              breakable: Container[str] = ()) -> None:
    """Fix the widths of a rich table's columns so that it fits ``width`` (the console's) with
    no word folded: each column gets at least its longest word, header included, and the room
    left goes to the columns that need least first (``_share``). Columns whose header is in
    ``breakable`` (paths, free text) may fold. A table that fits as it is is left alone, and
    so is one whose longest words alone do not fit: rich then folds rather than drops columns.
    """
    from rich.cells import cell_len
    from rich.text import Text

    width = console.width if width is None else width
    columns = table.columns
    texts = [[c.header.plain if isinstance(c.header, Text) else str(c.header),
              *(x.plain if isinstance(x, Text) else str(x) for x in c.cells)] for c in columns]
    natural = [max((cell_len(line) for t in ts for line in t.splitlines()), default=0)
               for ts in texts]
    floor = [min(n, FOLD_FLOOR) if ts[0] in breakable
             else max((cell_len(w) for t in ts for w in t.split()), default=0)
             for ts, n in zip(texts, natural)]
    room = width - (natural_width(table, console) - sum(natural))  # less padding and borders
    if sum(natural) <= room or sum(floor) > room:
        return
    need = [n - f for n, f in zip(natural, floor)]
    for column, f, extra in zip(columns, floor, _share(room - sum(floor), need)):
        column.width = f + extra


def _share(spare: int, need: list[int]) -> list[int]:
    """``spare`` columns of room shared out so that the least needy are served in full first
    (a short cell is not wrapped to give a long one a column more); the rest equally."""
    share = [0] * len(need)
    open_ = [i for i, k in enumerate(need) if k > 0]
    while open_ and spare > 0:
        each = spare // len(open_)
        if each == 0:   # fewer columns of room than columns wanting them: the neediest first
            for i in sorted(open_, key=lambda i: share[i] - need[i])[:spare]:
                share[i] += 1
            break
        for i in list(open_):
            give = min(each, need[i] - share[i])
            share[i] += give
            spare -= give
            if share[i] == need[i]:
                open_.remove(i)
    return share


def parse_spec_overrides(extra_args: list[str], sets: list[str] | None = None) -> dict[str, str]:
    """--NAME VALUE / --NAME=VALUE pairs left over by the command, plus --set NAME=VALUE."""
    overrides: dict[str, str] = {}
    args = list(extra_args)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise SpecError(f"unexpected argument '{arg}'",
                            hint="spec parameters are given as --NAME VALUE or --set NAME=VALUE")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args) and not (args[i + 1].startswith("--") and len(args[i + 1]) > 2):
            i += 1
            value = args[i]
        else:
            raise SpecError(f"--{key} needs a value", hint=f"e.g. --{key} VALUE or --set {key}=VALUE")
        _put(overrides, key.replace("-", "_"), value)
        i += 1
    for item in sets or []:
        if "=" not in item:
            raise SpecError(f"--set {item}: expected NAME=VALUE")
        key, value = item.split("=", 1)
        _put(overrides, key.strip(), value.strip())
    return overrides


def _put(overrides: dict[str, str], key: str, value: str) -> None:
    # A second value would silently replace the first.
    if key in overrides:
        raise SpecError(f"parameter '{key}' is given twice ({overrides[key]} and {value})",
                        hint="give each spec parameter once")
    overrides[key] = value
