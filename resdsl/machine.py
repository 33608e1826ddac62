"""What this machine is and can hold: its CPU model, memory available to this process; without
importing torch."""

from __future__ import annotations

import platform
from pathlib import Path

from .errors import ResdslError


def cpu_model() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor"), for run records and benchmarks."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):          # x86 (ARM's cpuinfo has none)
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """A container's limit less what it uses (cgroup v2, then v1); None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:      # v1 writes "no limit" as a huge number
                return None
            return max(0, int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_host_memory() -> int | None:
    """Bytes this process can still allocate in RAM, or None where the system does not say."""
    found = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    return min(found) if found else None


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def memory_problem(what: str, needed: int, available: int | None, params: int) -> str | None:
    """A sentence naming what does not fit, or None when it fits (or nothing is known)."""
    if available is None or needed <= available:
        return None
    return (f"{what} needs about {gib(needed)} ({needed:,} bytes) but {gib(available)} "
            f"({available:,} bytes) is available; the network has {params:,} parameters")


def check_memory(what: str, needed: int, available: int | None, params: int) -> None:
    problem = memory_problem(what, needed, available, params)
    if problem:
        raise ResdslError(problem + ". Make it smaller (widths, classes, input size, batch size).")
