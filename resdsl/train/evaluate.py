"""Evaluation: top-1/top-5 error and loss over a loader, the paper's test-time views, layer
responses (Figure 7) and softmax predictions (for ensembles). Uses no random numbers, so it never
disturbs the training streams."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F

from resdsl.data import multiscale_scores, multiscale_sizes, tencrop_scores, topk_correct
from resdsl.train.devices import autocast, memory_format


@dataclass
class EvalResult:
    err: float
    top5_err: float | None
    loss: float | None
    n: int
    probs: torch.Tensor | None = field(default=None, repr=False)
    targets: torch.Tensor | None = field(default=None, repr=False)


class ResponseProbe:
    """Forward hooks that accumulate the std of each response layer's output (after BN, before
    the in-place ReLU: the hook runs before the next module touches the tensor)."""

    def __init__(self, layers: list[tuple[str, torch.nn.Module]]):
        self.names = [n for n, _ in layers]
        self.stats = [[0.0, 0.0, 0] for _ in layers]   # sum, sum of squares, count (float64)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, (_, m) in enumerate(layers)]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            t = output.detach().double()
            s = self.stats[i]
            s[0] += float(t.sum())
            s[1] += float((t * t).sum())
            s[2] += t.numel()
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def result(self) -> list[dict]:
        out = []
        for name, (s, ss, n) in zip(self.names, self.stats):
            if n == 0:
                out.append({"name": name, "std": None})
                continue
            mean = s / n
            var = max(ss / n - mean * mean, 0.0) * n / max(n - 1, 1)
            out.append({"name": name, "std": math.sqrt(var)})
        return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: Iterable, device: torch.device, num_classes: int,
             amp: str | None = None, keep_probs: bool = False, view: str = "single",
             scales=None) -> EvalResult:
    """Error of ``model`` over (x, y) batches. ``view``: single/center (x is (B,C,H,W)),
    10crop (x is (B,10,C,H,W)), multiscale (x is one full image (1,C,H,W))."""
    was_training = model.training
    model.eval()
    fmt = memory_format(device, model)
    n = c1 = c5 = 0
    loss_sum = 0.0
    probs, targets = [], []
    try:
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with autocast(amp, device):
                if view == "10crop":
                    p = tencrop_scores(model, x.contiguous())
                    logp = p.clamp_min(1e-12).log()
                elif view == "multiscale":
                    kw = {} if scales is None else {"scales": scales}
                    p = torch.stack([multiscale_scores(model, x[i:i + 1], **kw) for i in range(len(x))])
                    logp = p.clamp_min(1e-12).log()
                else:
                    out = model(x.contiguous(memory_format=fmt)).float()
                    logp = F.log_softmax(out, dim=1)
                    p = logp.exp() if keep_probs else None
            loss_sum += float(F.nll_loss(logp.float(), y, reduction="sum"))
            k1, k5 = topk_correct(logp, y, (1, 5))
            c1 += k1
            c5 += k5
            n += len(y)
            if keep_probs:
                probs.append(p.float().cpu())
                targets.append(y.cpu())
    finally:
        model.train(was_training)
    if n == 0:
        return EvalResult(err=float("nan"), top5_err=None, loss=None, n=0)
    return EvalResult(
        err=1.0 - c1 / n, top5_err=(1.0 - c5 / n) if num_classes > 5 else None,
        loss=loss_sum / n, n=n,
        probs=torch.cat(probs) if keep_probs else None,
        targets=torch.cat(targets) if keep_probs else None)


def periodic_view(data: str) -> str:
    """The view the periodic evaluations use: the single image (CIFAR-style), else the centre crop."""
    return "center" if data == "imagenet" else "single"


def evaluate_final_view(model: torch.nn.Module, data, r, device: torch.device) -> EvalResult:
    """The run's final test: ``r.test_mode``'s view of ``data`` (a ``RunData``), softmax outputs
    kept (predictions.pt, ensembles). ``r`` is the run's ``ResolvedConfig``."""
    if r.test_mode in ("10crop", "multiscale"):
        return evaluate(model, data.final_test(r.test_mode, r.workers), device, data.num_classes,
                        r.amp, keep_probs=True, view=r.test_mode,
                        scales=multiscale_sizes(r.net.input_shape[1]))
    return evaluate(model, data.test, device, data.num_classes, r.amp, keep_probs=True,
                    view=periodic_view(r.data))
