"""Pieces every command shares: spec parameter overrides from the command line, the console."""

from __future__ import annotations

from rich.console import Console

from .errors import SpecError

console = Console()
err_console = Console(stderr=True)

# Commands that take a spec accept its parameters as unknown options: --n 18, --shortcut=none.
SPEC_CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


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
