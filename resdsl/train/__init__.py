"""Training: the paper's recipes, the training loop, run records, resume, ensembles.

Python API (used by ``resdsl sweep``)::

    from resdsl.train import TrainConfig, resolve, config_hash, train, resume
    summary = train(TrainConfig("specs/cifar_6n2.net", {"n": 3}, data="synthetic", iters=500),
                    "reports/runs/r20", on_eval=lambda row: row["test_err"] > 0.8)
"""

from resdsl.train.config import (
    RECIPES, ResolvedConfig, TrainConfig, config_hash, load_request, resolve,
)
from resdsl.train.data import synthetic_sizes
from resdsl.train.runner import resume, train

__all__ = ["RECIPES", "ResolvedConfig", "TrainConfig", "config_hash", "resolve", "train",
           "resume", "load_request", "synthetic_sizes"]
