"""What a design rejected before training costs in `resdsl sweep`, against another checkout.

    python bench/sweep_rejections.py --baseline /tmp/base      # 3 rounds
    python bench/sweep_rejections.py --baseline /tmp/base --rounds 5

/tmp/base: another checkout's package, e.g. `git archive a1689bb | tar -x -C /tmp/base` (the
version before the study file got its write-ahead log: SQLite's defaults, as plain Optuna opens
it). Without --baseline, only this checkout is timed.

The sweep is the one a design-space search runs into: RegNetX (specs/regnet.net) under the random
sampler with a FLOP limit no design meets, so every draw is rejected before training until the
sweep gives up after 500 in a row (exit code 2, as it should). Each round runs both versions once
(the order alternating), each in a fresh study folder. Printed: the median wall and CPU seconds
(CPU: the sweep and its worker process, user + system) per rejected design, and the median of the
per-round ratios baseline / this checkout, with the CPU, the core count and the load average.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_startup import cpu_model

SWEEP = ["sweep", "regnet", "--sampler", "random", "--trials", "2", "--max-flops", "1k",
         "--data", "synthetic"]
REJECTED = ("over_budget", "constraint", "invalid")      # study.csv's status of a rejected design


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_sweep(checkout: Path | None, folder: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, designs rejected) of one sweep into ``folder``."""
    env = dict(os.environ)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout.resolve())
    cpu0, t0 = children_cpu(), time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "resdsl", *SWEEP, "--out", str(folder / "study")],
                       cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if p.returncode != 2 or "no admissible design found" not in p.stderr:
        sys.exit(f"the sweep ({checkout or 'this checkout'}) ended with exit code "
                 f"{p.returncode}, not 2 with 'no admissible design found':\n{p.stderr[-2000:]}")
    with open(folder / "study" / "study.csv", newline="") as f:
        rejected = sum(1 for row in csv.DictReader(f) if row["status"] in REJECTED)
    return wall, cpu, rejected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--baseline", type=Path, help="another checkout's folder to compare with")
    args = ap.parse_args()
    versions: dict[str, Path | None] = {"this checkout": None}
    if args.baseline is not None:
        if not (args.baseline / "resdsl" / "__init__.py").is_file():
            sys.exit(f"--baseline {args.baseline}: no resdsl package there")
        versions[f"baseline ({args.baseline})"] = args.baseline
    per_wall: dict[str, list[float]] = {name: [] for name in versions}
    per_cpu: dict[str, list[float]] = {name: [] for name in versions}
    load_before = os.getloadavg()
    names = list(versions)
    with tempfile.TemporaryDirectory(prefix="sweep-rejections-") as tmp:
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                # a fresh folder each time: `python -m` puts the current folder first on
                # sys.path, and the study must start empty
                folder = Path(tmp) / f"{r}-{names.index(name)}"
                folder.mkdir()
                wall, cpu, rejected = run_sweep(versions[name], folder)
                per_wall[name].append(wall / rejected)
                per_cpu[name].append(cpu / rejected)
    load_after = os.getloadavg()

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {load_before[0]:.2f} "
          f"before, {load_after[0]:.2f} after; {args.rounds} rounds; "
          f"resdsl {' '.join(SWEEP)}")
    print()
    print("| version | wall s per rejected design, median | min | max | CPU s per rejected design |")
    print("|---|---|---|---|---|")
    for name in names:
        w = per_wall[name]
        print(f"| {name} | {statistics.median(w):.4f} | {min(w):.4f} | {max(w):.4f} | "
              f"{statistics.median(per_cpu[name]):.4f} |")
    if len(names) == 2:
        ratio = statistics.median(b / a for a, b in zip(per_wall[names[0]], per_wall[names[1]]))
        print(f"\nbaseline / this checkout, wall per rejected design (median of rounds): {ratio:.2f}")


if __name__ == "__main__":
    main()
