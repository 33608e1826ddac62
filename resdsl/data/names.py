"""The names the data layer answers to, without importing it (the command line lists them in
its help and must start without torch)."""

from __future__ import annotations

DATASETS = ("cifar10", "imagenet", "synthetic")

# Final test views: single (the one standard view: the centre crop here, the image itself for
# CIFAR) and the paper's ImageNet views (section 3.4).
TEST_MODES = ("single", "center", "10crop", "multiscale")
