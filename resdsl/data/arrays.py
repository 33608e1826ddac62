"""Image classification data held in memory as uint8 tensors, whatever its source (CIFAR-10
batches, synthetic images): the container, the validation split, the per-pixel mean, the
normalization the in-memory loaders apply, and ``ImageMean``, the mean a run subtracts
(any dataset; recorded as input_mean.pt)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from resdsl.errors import DataError


# --------------------------------------------------------------------------- the container

@dataclass
class ImageArrays:
    """A small image-classification data set held in memory as uint8 tensors.

    ``train_x``/``test_x`` (and ``val_x`` after ``split_validation``) are uint8 (N, C, H, W);
    the labels are int64 (N,). Used for CIFAR-10 and for synthetic data, so both go through the
    same loader and augmentation.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    name: str = "cifar10"
    root: Path | None = None

    def __post_init__(self) -> None:
        self.classes = list(self.classes)
        splits = [("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)]
        if (self.val_x is None) != (self.val_y is None):
            raise DataError(f"{self.name}: val_x and val_y must be given together")
        if self.val_x is not None:
            splits.append(("val", self.val_x, self.val_y))
        shape = tuple(self.train_x.shape[1:])
        for split, x, y in splits:
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(f"{self.name} {split}: images must be uint8 (N, C, H, W), "
                                f"got {x.dtype} {tuple(x.shape)}")
            if tuple(x.shape[1:]) != shape:
                raise DataError(f"{self.name} {split}: image shape {tuple(x.shape[1:])} differs "
                                f"from the training images' {shape}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{self.name} {split}: labels must be int64 of shape "
                                f"({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise DataError(f"{self.name} {split}: labels must lie in 0..{len(self.classes) - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def mean_image(self) -> torch.Tensor:
        """Per-pixel mean of the training split (the one actually trained on), float32 (C, H, W)."""
        return mean_image(self.train_x)


# --------------------------------------------------------------------------- splits and means

def split_validation(data: ImageArrays, val_size: int, seed: int = 0) -> ImageArrays:
    """Hold out ``val_size`` training images as a validation set (the paper's 45k/5k split).

    Deterministic given ``seed``; ``val_size=0`` returns ``data`` unchanged. Both parts keep the
    original order of the training set.
    """
    n = len(data.train_x)
    if val_size == 0:
        return data
    if data.val_x is not None:
        raise DataError(f"{data.name} already has a validation split")
    if not 0 < val_size < n:
        raise DataError(f"validation size {val_size} must lie between 0 and the number of "
                        f"training images ({n}), exclusive")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    val_idx = perm[:val_size].sort().values
    train_idx = perm[val_size:].sort().values
    return replace(data, train_x=data.train_x[train_idx], train_y=data.train_y[train_idx],
                   val_x=data.train_x[val_idx], val_y=data.train_y[val_idx])


def mean_image(x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Per-pixel mean of uint8 images (N, C, H, W), float32 (C, H, W), in 0..255 units.

    Summed exactly in int64 over chunks (a one-shot ``sum(dtype=int64)`` would materialize an
    int64 copy of the whole set), then divided once in float64.
    """
    if x.dim() != 4 or len(x) == 0:
        raise DataError(f"mean_image needs a non-empty (N, C, H, W) batch, got {tuple(x.shape)}")
    if x.device.type == "cpu":  # numpy accumulates with a small buffer: exact and fast
        total = torch.from_numpy(x.contiguous().numpy().sum(0, dtype=np.int64))
    else:
        total = _chunked_sum(x, chunk)
    return (total.double() / len(x)).float()


def _chunked_sum(x: torch.Tensor, chunk: int) -> torch.Tensor:
    total = torch.zeros(x.shape[1:], dtype=torch.int64, device=x.device)
    for i in range(0, len(x), chunk):  # int32 is exact for a chunk (chunk * 255 < 2**31)
        total += x[i:i + chunk].sum(0, dtype=torch.int32)
    return total


def normalize(x: torch.Tensor, mean: torch.Tensor, scale: float = 1 / 255) -> torch.Tensor:
    """``(x - mean) * scale`` in float32: per-pixel mean subtraction, then a fixed scale."""
    out = x.to(torch.float32, copy=True)
    # in place: on the whole training set, temporaries cost ten times the arithmetic
    return out.sub_(mean.to(x.device, torch.float32)).mul_(scale)


# the commonly published ImageNet channel means, in 0..255 units: a fallback that needs no scan
IMAGENET_CHANNEL_MEAN = (123.675, 116.28, 103.53)


@dataclass
class ImageMean:
    """Mean pixel values in 0..255: ``pixel`` (3, S, S) or None, ``channel`` (3,). What a run
    subtracts from its inputs (CIFAR-10's per-pixel mean too; recorded as input_mean.pt)."""

    channel: torch.Tensor
    pixel: torch.Tensor | None = None

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, W) or (N, 3, H, W) pixels in 0..255 -> float32 ``(x - mean) * (1/255)``, the
        operation of the CIFAR loaders (``normalize`` above), so a run's inputs are recomputed
        bit for bit; per pixel when the size matches the mean image, per channel otherwise."""
        if self.pixel is not None and tuple(x.shape[-2:]) == tuple(self.pixel.shape[-2:]):
            m = self.pixel
        else:
            m = self.channel[:, None, None]
        return normalize(x, m)

    @classmethod
    def imagenet(cls) -> "ImageMean":
        return cls(channel=torch.tensor(IMAGENET_CHANNEL_MEAN, dtype=torch.float32))
