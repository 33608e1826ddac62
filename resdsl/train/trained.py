"""A run record as a trained model: its network rebuilt as it was trained and its weights loaded
(``resdsl.load_run``, ``resdsl eval``, ``resdsl export``, and ensembles that recompute a member's
predictions)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from resdsl import record
from resdsl.errors import RunError
from resdsl.train.config import ResolvedConfig, resolve_run


@dataclass
class TrainedRun:
    """A run's network with its trained weights, in eval mode on ``device``."""

    model: torch.nn.Module
    config: ResolvedConfig
    device: torch.device
    weights: Path                 # the file the weights came from (weights.pt or checkpoint.pt)
    weights_iter: int | None      # the iteration they were taken at, when the record says
    status: str | None            # summary.json's status (None without a readable summary)
    rebuilt: bool                 # the network was rebuilt from the spec texts in config.json


def open_run(run_dir: str | Path, device: str = "cpu", **changes) -> TrainedRun:
    """The trained network of a run record (``resolve_run`` for ``changes``) on ``device``."""
    r, rebuilt = resolve_run(run_dir, device=str(device), **changes)
    return load_trained(run_dir, r, rebuilt)


def load_trained(run_dir: str | Path, r: ResolvedConfig, rebuilt: bool = False) -> TrainedRun:
    """``r``'s network (``resolve_run(run_dir)``) with the run's weights, from weights.pt or, for
    a record without it, checkpoint.pt, on ``r.device``. The module is in the memory format resdsl
    trains and evaluates in on that device, so its outputs are the run's own."""
    from resdsl.spec.analysis import estimate_memory
    from resdsl.spec.compiler import compile_network
    from resdsl.machine import available_host_memory, check_memory
    from resdsl.train.devices import memory_format, pick_device

    run_dir = Path(run_dir)
    need = estimate_memory(r.net)
    # the weights as read from the file and in the module
    check_memory("loading this network's weights", 2 * need.weight_bytes, available_host_memory(),
                 need.params)
    dev = pick_device(r.device)
    weights = record.load_weights(run_dir)
    with torch.random.fork_rng(devices=[]):     # the initialization is overwritten: leave the caller's RNG alone
        model = compile_network(r.net)
    try:
        model.load_state_dict(weights.state)
    except RuntimeError as e:
        raise RunError(f"{weights.path}: its weights do not fit the run's network "
                       f"({record.first_line(e)})") from None
    model = model.to(dev, memory_format=memory_format(dev, model)).eval()
    status = (record.read_summary(run_dir) or {}).get("status")
    return TrainedRun(model=model, config=r, device=dev, weights=weights.path,
                      weights_iter=weights.iter, status=status, rebuilt=rebuilt)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, ResolvedConfig]:
    """The trained module of a run record (eval mode, on ``device``) and its resolved config."""
    run = open_run(run_dir, device)
    return run.model, run.config
