import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"

# A net small enough for sweeps that train real trials in seconds: n basic blocks per stage.
TINY_SWEEP_NET = """import "prelude"
param n = 1 in 1..4
network tiny {
  input 3x16x16
  classes 4
  stem conv1 { conv(8, 3); bn; relu }
  stage s1: basic(8) x n
  stage s2: basic(16) x n stride 2
  head { avgpool; fc(classes) }
}
"""

# Two cores on CI: keep torch from oversubscribing them when pytest runs.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def specs_dir() -> Path:
    return SPECS


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`resdsl ARGS` in this process, through the same entry point as the installed command."""
    from resdsl.cli import main

    old = sys.argv
    sys.argv = ["resdsl", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def assert_reported_at(err, path, text: str, line: int, col: int, words=()) -> None:
    """A SpecError names path:line:col, holds each of words, and shows the source line of `text`
    with a caret under the column."""
    message = str(err)
    assert message.startswith(f"{path}:{line}:{col}: error: "), message
    for w in words:
        assert w in message, message
    assert_source_shown(message, text.splitlines()[line - 1], col)


def assert_source_shown(message: str, src: str, col: int) -> None:
    """A SpecError's second and third lines show source line ``src`` (a long one as a window of
    at most 100 characters around the column, "…" where cut) and a caret under column ``col``."""
    lines = message.splitlines()
    shown = lines[1].split(" | ", 1)[1]
    caret = lines[2].index("^") - lines[2].index("|") - 2
    if shown == src:
        assert caret == col - 1, message
        return
    lead, trail = shown.startswith("…"), shown.endswith("…")
    core = shown[int(lead):len(shown) - int(trail)]
    start = col - 1 - (caret - int(lead))      # where the shown part begins in the source line
    assert len(core) <= 100 and start >= 0 and src[start:start + len(core)] == core, message
    assert lead == (start > 0) and trail == (start + len(core) < len(src)), message