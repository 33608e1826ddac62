"""Which 1x1 convolutions does oneDNN's CPU backward get wrong in channels_last? Each case runs in a
subprocess, so a crash or a hang is a result, not the end of the probe.

    python bench/onednn_conv_probe.py                  # this CPU as it is
    python bench/onednn_conv_probe.py --isa AVX2       # oneDNN capped at AVX2: an AVX2-only CPU's kernels
    python bench/onednn_conv_probe.py --isa AVX2 --full

A case is a Conv2d(cin, 32, 1x1, stride) on a (32, cin, 16, 16) batch, 10 forward/backward
passes, then its weight gradient against a float64 reference. Results: ok, wrong (gradient off,
silently), crash (the signal), hang (no answer within --timeout). The last column is what
resdsl.train.devices.memory_format picks for a model holding that convolution: every case that is
not ok in channels_last must show NCHW there, or resdsl would walk into it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ONE_CASE = r"""
import json, sys, torch
threads, cin, stride, layout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
torch.manual_seed(0)
cout = 32
conv = torch.nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
x = torch.randn(32, cin, 16, 16)
if layout == "channels_last":
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
for _ in range(10):
    conv.weight.grad = None
    conv(x).sum().backward()
w = conv.weight.detach().double().requires_grad_(True)
torch.nn.functional.conv2d(x.double(), w, stride=stride).sum().backward()
err = (conv.weight.grad.double() - w.grad).abs().max().item() / w.grad.abs().max().item()
print(json.dumps({"rel_err": err}))
"""


@dataclass(frozen=True)
class Case:
    threads: int
    cin: int
    stride: int
    layout: str  # channels_last | nchw


def run_case(case: Case, isa: str | None = None, timeout: float = 30.0) -> dict:
    """One case in a fresh interpreter: {'result': ok|wrong|crash|hang|error, 'detail': str}."""
    env = dict(os.environ)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    args = [sys.executable, "-c", ONE_CASE, str(case.threads), str(case.cin), str(case.stride), case.layout]
    try:
        p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"result": "hang", "detail": f"no answer in {timeout:.0f}s"}
    if p.returncode < 0:
        return {"result": "crash", "detail": signal.Signals(-p.returncode).name}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        # glibc's heap checks abort() from inside the process: exit 134 through some launchers
        return {"result": "crash" if p.returncode in (134, 139) else "error", "detail": last[:80]}
    err = json.loads(p.stdout.strip().splitlines()[-1])["rel_err"]
    return {"result": "ok" if err < 1e-3 else "wrong", "detail": f"rel. gradient error {err:.2g}"}


def resdsl_layout(case: Case, isa: str | None) -> str:
    """What resdsl picks for a model holding this convolution, under the same ISA cap."""
    import torch

    from resdsl.train.devices import memory_format

    old = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = isa
    try:
        model = torch.nn.Sequential(torch.nn.Conv2d(case.cin, 32, 1, stride=case.stride))
        fmt = memory_format(torch.device("cpu"), model)
    finally:
        if old is None:
            os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
        else:
            os.environ["ONEDNN_MAX_CPU_ISA"] = old
    return "channels_last" if fmt == torch.channels_last else "NCHW"


def cases(full: bool) -> list[Case]:
    if full:
        grid = itertools.product((1, 2), (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16), (1, 2, 3), ("channels_last", "nchw"))
    else:
        grid = itertools.product((1, 2), (3, 4, 7, 8, 16), (1, 2), ("channels_last", "nchw"))
    return [Case(*c) for c in grid]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", help="cap oneDNN's ISA, e.g. AVX2 (ONEDNN_MAX_CPU_ISA)")
    ap.add_argument("--full", action="store_true", help="the larger grid of cases")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a case counts as hung")
    ap.add_argument("--jobs", type=int, default=1, help="cases at once (1 keeps 2-thread cases honest)")
    args = ap.parse_args()

    import torch

    todo = cases(args.full)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_case(c, args.isa, args.timeout), todo))
    print(f"torch {torch.__version__}, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"oneDNN cap {args.isa or 'none'}")
    print(f"{'threads':>7} {'cin':>4} {'stride':>6} {'layout':<13} {'result':<6} {'detail':<32} resdsl picks")
    unsafe_missed = 0
    for c, r in zip(todo, results):
        pick = resdsl_layout(c, args.isa) if c.layout == "channels_last" else ""
        if c.layout == "channels_last" and r["result"] != "ok" and pick == "channels_last":
            unsafe_missed += 1
            pick += "  <-- UNSAFE"
        print(f"{c.threads:>7} {c.cin:>4} {c.stride:>6} {c.layout:<13} {r['result']:<6} {r['detail']:<32} {pick}")
    print(f"{unsafe_missed} failing channels_last case(s) that resdsl would run in channels_last")
    return 1 if unsafe_missed else 0


if __name__ == "__main__":
    sys.exit(main())
