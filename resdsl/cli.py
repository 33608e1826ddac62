"""The `resdsl` command: a thin front end over the spec, training, sweep and report layers.

Importing this module imports typer and the command modules only: each command imports its
layer (torch, pandas, matplotlib, optuna) inside its function, so `resdsl --help`, shell
completion and `resdsl build` start without them.
"""

from __future__ import annotations

import sys

import typer

from .build_cmd import build_command
from .cli_common import HELP_CONTEXT, SPEC_CONTEXT, HelpCommand
from .errors import ResdslError
from .report.command import report_command
from .sweep.command import sweep_command
from .train.command import ensemble_command, train_command
from .train.model_command import eval_command, export_command


class _Typer(typer.Typer):
    """Every command gets the help layout of HelpCommand unless it names another class."""

    def command(self, name=None, *, cls=None, **kwargs):
        return super().command(name, cls=cls or HelpCommand, **kwargs)


app = _Typer(
    help="State residual network designs as short .net specs; check, build, train, sweep and report them.",
    no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    rich_markup_mode=None, context_settings=HELP_CONTEXT,
)
app.command("build", context_settings=SPEC_CONTEXT)(build_command)
app.command("train", context_settings=SPEC_CONTEXT)(train_command)
app.command("ensemble")(ensemble_command)
app.command("eval")(eval_command)
app.command("export")(export_command)
app.command("report")(report_command)
app.command("sweep", context_settings=SPEC_CONTEXT)(sweep_command)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"resdsl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """State residual network designs as short .net specs; check, build, train, sweep and report them."""


def main() -> None:
    """Entry point: a user's mistake (ResdslError) is one message on stderr and exit code 2."""
    try:
        app()
    except ResdslError as e:
        # Plain print: a console would re-wrap the file:line:col line and the caret under it.
        print(str(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
