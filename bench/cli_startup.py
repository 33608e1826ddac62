"""How long the command line takes to start and answer, against `python -c "import torch"`.

    python bench/cli_startup.py              # 15 rounds
    python bench/cli_startup.py --runs 31
    python bench/cli_startup.py --checkout /tmp/main   # another checkout's resdsl (git archive)

A round runs each command once as its own process, output thrown away, and measures it from
start to exit: wall-clock seconds, and CPU seconds (user + system, from the kernel's accounting
of the process; on a shared machine this is what the command costs, the wall time what it took).
The order of the commands rotates from round to round so that none always runs first. One
warm-up round is not counted. Printed: the median, min and max wall seconds of each command,
its median CPU seconds, and the medians of its per-round ratios to `import torch` (paired within
a round, so drift in the machine's speed cancels), with the CPU, the core count and the load
average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from resdsl.machine import cpu_model

BASELINE = "python -c 'import torch'"


def resdsl_command(checkout: Path | None) -> list[str]:
    """The installed `resdsl` script beside this interpreter, as a user runs it; with a checkout,
    `python -m resdsl` with that checkout first on PYTHONPATH (see main)."""
    script = Path(sys.executable).with_name("resdsl")
    if checkout is None and script.exists():
        return [str(script)]
    return [sys.executable, "-m", "resdsl"]


def commands(checkout: Path | None) -> dict[str, list[str]]:
    cli = resdsl_command(checkout)
    return {
        "resdsl --help": [*cli, "--help"],
        "resdsl build cifar_6n2 --json": [*cli, "build", "cifar_6n2", "--json"],
        "resdsl build resnet50 --flops": [*cli, "build", "resnet50", "--flops"],
        BASELINE: [sys.executable, "-c", "import torch"],
    }


def run_once(argv: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                         cwd=cwd)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = code = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
    if code != 0:
        sys.exit(f"{' '.join(argv)} failed with exit code {code}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="counted rounds (default 15)")
    ap.add_argument("--checkout", type=Path, help="time the resdsl package of this checkout "
                    "(e.g. `git archive main` extracted to a folder) instead of the installed one")
    args = ap.parse_args()
    cmds = commands(args.checkout)
    env = dict(os.environ)
    if args.checkout is not None:
        env["PYTHONPATH"] = str(args.checkout.resolve())
    names = list(cmds)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    load_before = os.getloadavg()
    # every command starts in an empty folder: `python -m` puts the current folder first on
    # sys.path, and a checkout there would shadow the one asked for
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as cwd:
        for name in names:                    # warm-up: file cache, .pyc files
            run_once(cmds[name], env, cwd)
        for r in range(args.runs):
            for name in names[r % len(names):] + names[:r % len(names)]:
                w, c = run_once(cmds[name], env, cwd)
                wall[name].append(w)
                cpu[name].append(c)
    load_after = os.getloadavg()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"torch {version('torch')}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after; {args.runs} rounds"
          + (f"; resdsl from {args.checkout}" if args.checkout else ""))
    print()
    print("| command | wall s, median | min | max | wall ratio to import torch | CPU s, median "
          "| CPU ratio to import torch |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        w, c = wall[name], cpu[name]
        wall_ratio = statistics.median(a / b for a, b in zip(w, wall[BASELINE]))
        cpu_ratio = statistics.median(a / b for a, b in zip(c, cpu[BASELINE]))
        print(f"| `{name}` | {statistics.median(w):.3f} | {min(w):.3f} | {max(w):.3f} | "
              f"{wall_ratio:.3f} | {statistics.median(c):.3f} | {cpu_ratio:.3f} |")


if __name__ == "__main__":
    main()
