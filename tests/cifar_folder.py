"""A tiny CIFAR-10 folder in the python-batches format, written by the tests that need real files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(parent: Path, n: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, n).tolist()
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({b"batch_label": name.encode(), b"labels": labels,
                                                  b"data": data, b"filenames": [b"x"] * n},
                                                 protocol=2))
    meta = {b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer",
                                                  "dog", "frog", "horse", "ship", "truck")]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder
