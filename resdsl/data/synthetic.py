"""Synthetic, learnable image data in CIFAR's shapes, for fast tests and smoke runs.

Each class has a fixed random template: a coarse grid of colours (``grid`` x ``grid`` cells)
smoothly upsampled to the image size, so it survives the 4-pixel shifts and flips of the CIFAR
augmentation. A sample is its class template plus Gaussian pixel noise and a random brightness
offset, clipped to uint8. A small residual net separates the classes in a few hundred
iterations, yet the task is not solved by the first batch. Everything is drawn from one
``torch.Generator`` seeded by ``seed``, so the same arguments give the same bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from resdsl.errors import DataError
from resdsl.data.arrays import ImageArrays


def make_synthetic(num_train: int = 5000, num_test: int = 1000, num_classes: int = 10,
                   shape: tuple[int, int, int] = (3, 32, 32), seed: int = 0,
                   noise: float = 40.0, contrast: float = 60.0, brightness: float = 20.0,
                   grid: int = 4) -> ImageArrays:
    """A ``ImageArrays`` of uint8 images; classes are balanced (counts differ by at most one).

    ``noise`` is the per-pixel noise std, ``contrast`` the template amplitude around mid-grey and
    ``brightness`` the std of a per-image offset, all in 0..255 units.
    """
    c, h, w = (int(s) for s in shape)
    if num_classes < 2:
        raise DataError(f"synthetic data needs at least 2 classes, got {num_classes}")
    if num_train < num_classes or num_test < 1:
        raise DataError(f"synthetic data needs at least one training image per class and one "
                        f"test image; got {num_train} train, {num_test} test, {num_classes} classes")
    if min(c, h, w) < 1:
        raise DataError(f"synthetic image shape must be positive, got {tuple(shape)}")
    g = torch.Generator().manual_seed(int(seed))
    coarse = torch.rand(num_classes, c, grid, grid, generator=g) * 2 - 1
    templates = 128 + contrast * F.interpolate(coarse, size=(h, w), mode="bilinear",
                                               align_corners=False)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
        x = templates[y]
        x = x + noise * torch.randn(x.shape, generator=g)
        x = x + brightness * torch.randn(n, 1, 1, 1, generator=g)
        return x.round().clamp(0, 255).to(torch.uint8), y.to(torch.int64)

    train_x, train_y = draw(num_train)
    test_x, test_y = draw(num_test)
    return ImageArrays(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                     classes=[f"class{i}" for i in range(num_classes)], name="synthetic")
