"""The torch modules of the primitives that torch.nn has no class for; primitives.py builds them."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ZeroPadShortcut(nn.Module):
    """Option A: y = [x[:, :, ::s, ::s], 0, ..., 0], zero channels appended; no parameters."""

    def __init__(self, stride: int, in_channels: int, out_channels: int):
        super().__init__()
        self.stride = stride
        self.extra = out_channels - in_channels  # known when compiled, so tracing sees a constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            zeros = x.new_zeros(x.shape[0], self.extra, x.shape[2], x.shape[3])
            x = torch.cat([x, zeros], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra}"


class FlatLinear(nn.Linear):
    """y = W flatten(x) + b: the fc layer reads a whole (C, H, W) map and gives an (out, 1, 1) one,
    the shape the checker gives it, so any layer may follow (bn, another fc)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1))[:, :, None, None]


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, each sample's whole tensor is dropped with
    probability p and the kept ones are scaled by 1 / (1 - p), so the expectation is unchanged; at
    eval, the identity."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of each position of an (N, C, H, W) map (ConvNeXt), with a
    per-channel weight and bias; written as torchvision writes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """y = w * x with a learnable per-channel w, initialized to `init` (Touvron et al. 2021)."""

    def __init__(self, channels: int, init: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight
