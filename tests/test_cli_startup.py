"""The command line's start and manners: what `resdsl --help` and `resdsl build` import (not how
long they take: bench/cli_startup.py times that), -h, metavars, choices, examples, completion."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.cli_common import choices_metavar
from resdsl.data.names import DATASETS, TEST_MODES
from resdsl.report.formats import FORMATS
from resdsl.sweep.plan import PRUNERS, SAMPLERS
from resdsl.train.recipes import AMP_MODES, DEVICES, RECIPES

HEAVY = ("torch", "pandas", "matplotlib", "optuna")
COMMANDS = ("build", "train", "ensemble", "eval", "export", "report", "sweep")

# Runs the CLI's entry point as the installed script does, then reports on stderr which heavy
# modules the process imported, whatever way the command ended (typer exits through SystemExit).
WRAPPER = f"""
import json, sys
sys.argv = ["resdsl", *sys.argv[1:]]
try:
    from resdsl.cli import main
    main()
finally:
    print("HEAVY=" + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)
"""


def run_cli(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    p = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "COLUMNS": "100", **(env or {})})
    marks = [line for line in p.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marks, p.stderr
    return p, json.loads(marks[-1][len("HEAVY="):])


@pytest.mark.parametrize("args", [("--help",), ("-h",), *((c, "-h") for c in COMMANDS)])
def test_help_imports_no_heavy_module(args):
    p, heavy = run_cli(*args)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: resdsl")
    assert heavy == []


def test_build_json_and_flops_import_no_heavy_module():
    p, heavy = run_cli("build", "cifar_6n2", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert (summary["params"], summary["depth"]) == (269_722, 20)   # ResNet-20 (n=3), option A
    assert heavy == []
    p, heavy = run_cli("build", "resnet50", "--flops")
    assert p.returncode == 0, p.stderr
    assert "multiply-adds" in p.stdout and heavy == []


def test_completion_answers_without_heavy_modules():
    complete = {"_RESDSL_COMPLETE": "complete_bash"}
    p, heavy = run_cli(env={**complete, "COMP_WORDS": "resdsl bu", "COMP_CWORD": "1"})
    assert p.stdout.split() == ["build"] and heavy == []
    p, heavy = run_cli(env={**complete, "COMP_WORDS": "resdsl sweep cifar_6n2 --sampler ",
                            "COMP_CWORD": "4"})
    assert p.stdout.split() == list(SAMPLERS) and heavy == []
    p, _ = run_cli(env={**complete, "COMP_WORDS": "resdsl train cifar_6n2 --test-mode m",
                        "COMP_CWORD": "4"})
    assert p.stdout.split() == [m for m in TEST_MODES if m.startswith("m")]


def test_completion_script_and_install_option_are_offered():
    runner = CliRunner()
    root = runner.invoke(app, ["--help"], prog_name="resdsl")
    assert "--install-completion" in root.output and "--show-completion" in root.output
    p, heavy = run_cli("--show-completion", "bash",
                       env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert p.returncode == 0 and "_RESDSL_COMPLETE" in p.stdout and heavy == []


def _help(args: list[str], columns: int = 200) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)},
                           prog_name="resdsl")
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_h_is_help_on_every_command(command):
    args = [command] if command else []
    r = CliRunner().invoke(app, [*args, "-h"], env={"COLUMNS": "200"}, prog_name="resdsl")
    assert r.exit_code == 0 and r.output == _help(args)
    assert "-h, --help" in r.output


# typer's own way of naming a value: <str>, <int>, <path>, <list[Path]>, ...
TYPE_METAVAR = re.compile(r"<(?:str|int|float|bool|path|Path|list\[[^\]]*\]|tuple\[[^\]]*\])>")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_values_are_named_by_what_they_are(command):
    text = _help([command] if command else [])
    assert not TYPE_METAVAR.search(text), TYPE_METAVAR.search(text)
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage, usage
    # the first column of every argument and option row names no type either
    rows = [line for line in text.splitlines() if re.match(r"  \S", line)]
    assert rows
    for line in rows:
        first = re.split(r"\s{2,}", line.strip())[0]
        assert "<" not in first and "{" not in first, line
    expected = {"build": ["SPEC", "--onnx PATH", "--input CxHxW", "--set NAME=VALUE"],
                "train": ["[SPEC]", "--out DIR", "--iters N", "--lr RATE", "--data-dir DIR"],
                "ensemble": ["RUN_DIR...", "--out DIR"],
                "eval": ["RUN_DIR", "--data-dir DIR", "--batch-size N"],
                "export": ["RUN_DIR", "--onnx PATH"],
                "report": ["DIR", "--filter KEY=VALUE", "--out DIR", "--edf-param NAME"],
                "sweep": ["SPEC", "--trials N", "--workers N", "--study NAME", "--seeds K"]}
    for piece in expected.get(command, []):
        assert piece in text, piece


def test_help_lists_the_choices_from_their_one_home():
    sweep, train, report = _help(["sweep"]), _help(["train"]), _help(["report"])
    for text in (sweep, train):
        for names in (tuple(RECIPES), DATASETS, TEST_MODES, AMP_MODES, DEVICES):
            assert choices_metavar(names) in text, names
    assert choices_metavar(SAMPLERS) in sweep and choices_metavar(PRUNERS) in sweep
    assert choices_metavar(FORMATS) in report
    assert choices_metavar(DEVICES) in _help(["ensemble"])


def _examples(command_function) -> list[str]:
    return [line.strip() for line in inspect.getdoc(command_function).splitlines()
            if line.strip().startswith(("resdsl ", "torchrun ", "optuna-dashboard "))]


@pytest.mark.parametrize("command", COMMANDS)
def test_examples_keep_one_line_each_on_a_narrow_terminal(command):
    from resdsl.cli import build_command, ensemble_command, eval_command, export_command
    from resdsl.cli import report_command, sweep_command, train_command

    function = {"build": build_command, "train": train_command, "ensemble": ensemble_command,
                "eval": eval_command, "export": export_command, "report": report_command,
                "sweep": sweep_command}[command]
    examples = _examples(function)
    assert examples
    lines = {line.strip() for line in _help([command], columns=60).splitlines()}
    for example in examples:
        assert example in lines, example


def test_a_wrong_choice_is_one_message_and_exit_2():
    p, heavy = run_cli("report", ".", "--format", "pdf")
    assert p.returncode == 2 and "pdf" in p.stderr and "Traceback" not in p.stderr
    assert heavy == []
