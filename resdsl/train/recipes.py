"""The paper's training recipes as presets, and the names the training options choose from.

Light on purpose: the command line's help lists these names, and it must not import torch.

Recipes (He et al. 2016):
- ``cifar`` (section 4.2): SGD momentum 0.9, weight decay 1e-4, batch 128, lr 0.1 divided by 10
  at 32k and 48k iterations, 64k iterations; 4-pixel pad + random 32x32 crop + flip; per-pixel
  mean; single-view test. Warm-up for nets deeper than 100 layers: lr 0.01 until the training
  error is below 80% (about 400 iterations), then 0.1.
- ``imagenet`` (section 3.4): batch 256, lr 0.1 divided by 10 when the validation error
  plateaus, momentum 0.9, weight decay 1e-4, up to 600k iterations; scale augmentation
  [256, 480], 224 crop, flip, per-pixel mean, PCA colour; 10-crop test by default.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    "cifar": {
        "data": "cifar10", "iters": 64000, "batch_size": 128, "lr": 0.1,
        "milestones": [32000, 48000], "schedule": "multistep", "momentum": 0.9,
        "weight_decay": 1e-4, "warmup": "auto", "val_split": 0, "test_mode": "single",
        "eval_every": 1000,
    },
    "imagenet": {
        "data": "imagenet", "iters": 600000, "batch_size": 256, "lr": 0.1,
        "milestones": None, "schedule": "plateau", "momentum": 0.9,
        "weight_decay": 1e-4, "warmup": "off", "val_split": 0, "test_mode": "10crop",
        "eval_every": 5000,
    },
}
AMP_MODES = ("bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda", "mps")
