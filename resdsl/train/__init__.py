"""Training: the paper's recipes, the training loop, run records, resume, ensembles.

Python API (used by ``resdsl sweep``)::

    from resdsl.train import TrainConfig, resolve, config_hash, train, resume
    summary = train(TrainConfig("specs/cifar_6n2.net", {"n": 3}, data="synthetic", iters=500),
                    "reports/runs/r20", on_eval=lambda row: row["test_err"] > 0.8)

The names are imported on first use: the command line reads ``resdsl.train.options`` for its
help, and importing this package must not import torch for that.
"""

from __future__ import annotations

from resdsl.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(globals(), {
    "resdsl.train.config": ("ResolvedConfig", "TrainConfig", "config_hash", "load_request",
                            "resolve"),
    "resdsl.train.recipes": ("RECIPES",),
    "resdsl.train.data": ("synthetic_sizes",),
    "resdsl.train.runner": ("resume", "train"),
})

__all__ = ["RECIPES", "ResolvedConfig", "TrainConfig", "config_hash", "resolve", "train",
           "resume", "load_request", "synthetic_sizes"]
