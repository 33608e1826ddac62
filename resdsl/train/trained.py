"""A run record as a trained model: its network rebuilt as it was trained and its weights loaded
(``resdsl.load_run``, ``resdsl eval``, ``resdsl export``, and ensembles that recompute a member's
predictions)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from resdsl import record
from resdsl.errors import ResdslError, RunError
from resdsl.train.config import ResolvedConfig, load_request, resolve


def resolve_run(run_dir: str | Path, **changes) -> tuple[ResolvedConfig, bool]:
    """The resolved configuration of a run record. ``changes``: request fields to set (device,
    data_dir, test_mode), checked as ``resdsl train`` checks them.

    The network is the one the run trained: its spec is read again where the files still hold the
    texts config.json recorded, else rebuilt from those texts (a spec edited, moved or shipped in
    another version since). Returns (config, whether it was rebuilt from the recorded texts)."""
    from resdsl.spec import spec_from_sources

    run_dir = Path(run_dir)
    cfg = record.read_run_config(run_dir)
    if cfg.get("kind") == "ensemble":
        raise RunError(f"{run_dir} is an ensemble record: it has no network of its own; give one "
                       "of its member runs")
    request = dataclasses.replace(load_request(run_dir), **changes)
    spec = cfg.get("spec") if isinstance(cfg.get("spec"), dict) else {}
    sources, root = spec.get("sources"), spec.get("path")
    if not (isinstance(sources, dict) and root in sources
            and all(isinstance(t, str) for t in sources.values())):
        return resolve(request), False          # a record without its spec texts: as it is now
    try:
        r = resolve(request)
        if sorted(r.net.sources.values()) == sorted(sources.values()):
            return r, False
    except ResdslError:
        pass                                    # the spec is gone or no longer checks
    with spec_from_sources(sources, root) as path:
        r = resolve(dataclasses.replace(request, spec=str(path)))
    # the request as the run recorded it, not the temporary file it was rebuilt from
    return dataclasses.replace(r, request=request), True


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
