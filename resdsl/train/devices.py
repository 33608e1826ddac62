"""Where training runs: device choice, mixed precision, memory format, DistributedDataParallel."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass

import torch

from resdsl.errors import RunError
from resdsl.machine import available_host_memory, cpu_model


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


def hardware_name(device: torch.device) -> str:
    """What computes on ``device``, for the run record: the GPU's name, else the CPU's model
    (a throughput figure means little without it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} (MPS)"
    return cpu_model()


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process on ``device`` (None where it cannot be told, e.g. MPS)."""
    if device.type == "cpu":
        return available_host_memory()
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) that leave it without AVX-512.
_BELOW_AVX512 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"}


def onednn_below_avx512() -> bool:
    """Does oneDNN run its AVX2 (or older) x86 kernels here: a CPU without AVX-512, or a cap set
    in the environment? ATen's own capability check answers for the CPU (it asks for the same
    AVX-512 F/BW/VL/DQ set as oneDNN's avx512_core)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        cap = os.environ.get(var, "").strip().upper()
        if cap in _BELOW_AVX512:
            return True
    return torch.backends.cpu.get_cpu_capability() != "AVX512"


def channels_last_hazards(model: torch.nn.Module) -> list[str]:
    """Names of the convolutions whose backward oneDNN's AVX2 kernel gets wrong in channels_last.

    Measured with bench/onednn_conv_probe.py on torch 2.13.0+cpu: a 1x1 convolution with stride
    2 whose input channels (per group) are not a multiple of 8 crashes the process (one thread:
    SIGSEGV or a corrupted heap), hangs it (two threads, at an OpenMP barrier) or silently returns
    wrong weight gradients. Multiples of 8 and stride 1 were correct. Any stride above 1 is
    flagged, to stay on the safe side of what was measured.
    """
    out = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d) and tuple(m.kernel_size) == (1, 1) \
                and tuple(m.stride) != (1, 1) and (m.in_channels // m.groups) % 8:
            out.append(name)
    return out


def memory_format(device: torch.device, model: torch.nn.Module) -> torch.memory_format:
    """The one place that picks the layout: channels_last on CPU and CUDA (faster for these nets,
    measured), the default layout elsewhere, and on CPUs where oneDNN runs AVX2 kernels for any
    model with a convolution that channels_last would break (see channels_last_hazards)."""
    if device.type == "cuda":
        return torch.channels_last
    if device.type != "cpu":
        return torch.contiguous_format
    if onednn_below_avx512() and channels_last_hazards(model):
        return torch.contiguous_format
    return torch.channels_last


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
