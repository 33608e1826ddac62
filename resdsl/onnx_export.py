"""ONNX: the one export of a network (`resdsl build --onnx`, `resdsl export`) and the check of an
exported file against PyTorch on a random batch (`resdsl export --check`)."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import ResdslError

CHECK_BATCH = 2
CHECK_SEED = 0
# float32 through tens of layers in two runtimes: agree to this share of the largest output
CHECK_RTOL = 1e-4


def require_exporter() -> None:
    """Refuse before any work when the exporter's packages are missing."""
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError:
        raise ResdslError("--onnx needs the onnx extras: pip install 'resdsl[onnx]'") from None


def check_export_memory(net, memory=None, available: int | None = None) -> None:
    """Refuse, before allocating, a network (``ir.Network``) too big to export on this machine.
    ``memory``/``available``: the caller's ``estimate_memory(net)`` and host memory, if it has them."""
    from .spec.analysis import estimate_memory
    from .machine import available_host_memory, check_memory

    memory = memory or estimate_memory(net)
    available = available if available is not None else available_host_memory()
    check_memory("exporting this network to ONNX", memory.onnx_export(), available, memory.params)


def export_onnx(model, input_shape, path: Path) -> None:
    """Write a compiled network as ONNX, batch size dynamic, atomically. The module is put in eval
    mode and in the default memory layout (torch 2.13's exporter fails on channels_last weights)."""
    require_exporter()
    import torch

    from .io import atomic_path

    model = model.eval().to(memory_format=torch.contiguous_format)
    dummy = torch.randn(1, *input_shape)
    # The exporter wants a file name; it writes the temporary one that becomes `path` when done.
    with atomic_path(path, suffix=".onnx") as tmp:
        # The exporter narrates its passes and warns about torchvision ops it cannot register; quiet it.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(model, (dummy,), tmp, dynamo=True, input_names=["image"],
                              output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                              external_data=False)


@dataclass
class OnnxCheck:
    """An exported file's outputs against PyTorch's on the same random batch."""

    runtime: str              # what ran the ONNX file
    max_abs_diff: float
    tolerance: float          # CHECK_RTOL of the largest PyTorch output (at least CHECK_RTOL)
    batch: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def onnxruntime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _run_onnx(path: Path, x):
    """(outputs, runtime): onnxruntime when installed, else onnx's reference evaluator (part of the
    onnx extra; slower, as exact)."""
    if onnxruntime_installed():
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {"image": x})[0], "onnxruntime"
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, {"image": x})[0], "onnx reference evaluator"


def check_onnx(path: Path, model, input_shape) -> OnnxCheck:
    """Run the ONNX file at ``path`` and ``model`` (on the CPU, eval mode) on one random batch
    (seeded: the same batch every time) and compare their outputs."""
    import numpy as np
    import torch

    from .record import first_line

    x = torch.randn(CHECK_BATCH, *input_shape, generator=torch.Generator().manual_seed(CHECK_SEED))
    with torch.no_grad():
        expected = model.eval()(x).float().numpy()
    try:
        got, runtime = _run_onnx(path, x.numpy())
    except Exception as e:   # a runtime that cannot load or run the file: say so, no traceback
        raise ResdslError(f"{path}: the ONNX file does not run ({first_line(e)})") from None
    if got.shape != expected.shape:
        raise ResdslError(f"{path}: the ONNX file gives outputs of shape {tuple(got.shape)}, "
                          f"PyTorch {tuple(expected.shape)}")
    diff = float(np.abs(got.astype(np.float64) - expected).max())
    tolerance = CHECK_RTOL * max(1.0, float(np.abs(expected).max()))
    return OnnxCheck(runtime=runtime, max_abs_diff=diff, tolerance=tolerance, batch=CHECK_BATCH)
