"""Where training runs: device choice, mixed precision, memory format, DistributedDataParallel."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from resdsl.errors import RunError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else mps, else cpu; explicit names are checked."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {name}: CUDA is not available on this machine (try --device auto)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None
                              and torch.backends.mps.is_available()):
        raise RunError(f"--device {name}: MPS is not available on this machine (try --device auto)")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise RunError(f"--device {name}: {e}") from None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def memory_format(device: torch.device) -> torch.memory_format:
    """The one place that picks the layout: channels_last on CPU and CUDA (faster for these
    nets, measured), the default layout elsewhere."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def check_amp(amp: str | None, device: torch.device) -> None:
    if amp is None:
        return
    if amp == "fp16" and device.type != "cuda":
        raise RunError(f"--amp fp16 needs a CUDA device (this run is on {device.type}); "
                       "use --amp bf16 on CPU, or no --amp")
    if amp == "bf16" and device.type not in ("cpu", "cuda"):
        raise RunError(f"--amp bf16 is supported on CPU and CUDA, not on {device.type}")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RunError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")


def autocast(amp: str | None, device: torch.device):
    if amp is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class Dist:
    """The process group of a torchrun launch (world 1 when not distributed)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    started_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.broadcast(t, 0)
        return t

    def close(self) -> None:
        if self.started_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device_request: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), from env vars."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_request in ("auto", "cuda") or \
            device_request.startswith("cuda")
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
        started = True
    return Dist(world=dist.get_world_size(), rank=dist.get_rank(), local_rank=local,
                started_here=started)
