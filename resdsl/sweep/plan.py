"""From the command's options and the spec to a SweepPlan: every option checked, the search
space, the objective, the study's name, folder and storage. Nothing is trained or queued here;
the only thing written is the study folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from resdsl.errors import SweepError
from resdsl.outputs import check_output_dir, check_sqlite_url
from resdsl.sweep.storage import server_url
from resdsl.sweep.study import SweepPlan
from resdsl.text import choose

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median", "hyperband", "sha")
# Training fields that do not change what a run computes: left out of the default study name.
NOT_IN_STUDY_NAME = ("device", "eval_every", "workers", "data_dir", "tensorboard")


@dataclass
class SweepOptions:
    """The sweep's own options, as given on the command line."""

    grid: list[str] = field(default_factory=list)
    sampler: str | None = None
    sampler_seed: int | None = None
    trials: int | None = None
    timeout: float | None = None
    seeds: int = 1
    objective: str = "error"
    pruner: str = "none"
    max_flops: str | None = None
    max_params: str | None = None
    out: Path | None = None
    study_name: str | None = None
    storage: str | None = None
    workers: int = 1
    reuse: bool = True


def parse_count(option: str, text: str | None) -> float | None:
    """'41M', '1.2G', '500k', '3e8' -> a number (for --max-flops / --max-params)."""
    if text is None:
        return None
    t = text.strip().upper().replace("_", "").replace(",", "")
    scale = 1.0
    for suffix, mult in (("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        if t.endswith(suffix):
            t, scale = t[:-1], mult
            break
    try:
        v = float(t) * scale
    except ValueError:
        raise SweepError(f"{option} {text!r}: expected a count such as 41M, 1.2G or 3e8") from None
    if not math.isfinite(v) or v <= 0:
        raise SweepError(f"{option} must be a positive count, got {text!r}")
    return v


def plan_sweep(spec: str, overrides: dict, train: dict, opts: SweepOptions) -> SweepPlan:
    """The plan of a sweep of ``spec`` with its parameters ``overrides`` fixed.

    ``train`` holds the training options as TrainConfig keyword arguments (all but spec,
    overrides and seed; None for the recipe's value); the plan's copy gets the default
    validation split when the objective is a validation error. Raises ResdslError (mostly
    SweepError) for anything that would fail later.
    """
    from resdsl.spec import load_network
    from resdsl.sweep.space import build_space, parse_objective
    from resdsl.train import RECIPES, TrainConfig, resolve

    pruner = choose("--pruner", opts.pruner.strip().lower(), PRUNERS, SweepError)
    sampler = opts.sampler
    if sampler is not None:
        sampler = choose("--sampler", sampler.strip().lower(), SAMPLERS, SweepError)
    if opts.workers < 1:
        raise SweepError(f"--workers must be at least 1, got {opts.workers}")
    if opts.trials is not None and opts.trials < 1:
        raise SweepError(f"--trials must be at least 1, got {opts.trials}")
    if opts.timeout is not None and opts.timeout <= 0:
        raise SweepError(f"--timeout must be positive, got {opts.timeout}")
    flops_limit = parse_count("--max-flops", opts.max_flops)
    params_limit = parse_count("--max-params", opts.max_params)

    shape = train.get("input_shape")
    spec_arg = str(Path(spec).resolve()) if Path(spec).is_file() else spec
    # The plan checks everything but the spec's `require`s: whether those hold is a matter of each
    # design (as a limit is), so a design they reject is rejected when it is sampled.
    net = load_network(spec_arg, overrides, shape, requires=False)

    train = dict(train)
    train["recipe"] = choose("--recipe", train["recipe"].strip().lower(), RECIPES, SweepError)
    data_name = train["data"] if train.get("data") is not None else RECIPES[train["recipe"]]["data"]
    if train.get("val_split") is None:
        train["val_split"] = _default_val_split(opts.objective, data_name, net)
    obj = parse_objective(opts.objective, data_name, train["val_split"] or 0)
    if "test_err" in obj.metrics and data_name != "imagenet":
        from resdsl.cli_common import err_console

        err_console.print("resdsl: warning: optimising the test error tunes the configuration on "
                          "the test set; its test error is then an optimistic estimate")
    base = resolve(TrainConfig(spec=spec_arg, overrides=overrides, **train), requires=False)

    if sampler is None:
        sampler = "grid" if opts.grid else "tpe"

    def validate(target: str, key: str, value) -> None:
        """Check one swept value now, so a bad one fails before any trial."""
        if target == "spec":
            load_network(spec_arg, {**overrides, key: value}, shape, requires=False)
        else:
            kw = {**train, key: value}
            if key == "epochs":
                kw["iters"] = None
            if key == "iters":
                kw["epochs"] = None
            resolve(TrainConfig(spec=spec_arg, overrides=overrides, **kw), requires=False)

    space = build_space(net, list(opts.grid), overrides, sampler, opts.seeds, validate)
    if any(d.name in ("iters", "epochs") for d in space.dims) and (
            train.get("iters") is not None and train.get("epochs") is not None):
        raise SweepError("give --iters or --epochs, not both")
    if opts.sampler_seed is not None:
        if sampler == "grid":
            raise SweepError("--sampler-seed seeds the tpe and random samplers; the grid sampler "
                             "draws nothing (its points run in a fixed order)")
        if opts.sampler_seed < 0:
            raise SweepError(f"--sampler-seed must be 0 or more, got {opts.sampler_seed}")
    if sampler != "grid" and opts.trials is None and opts.timeout is None:
        raise SweepError(f"--sampler {sampler} needs --trials N (or --timeout SECONDS) to know "
                         "when to stop")
    if obj.multi and pruner != "none":
        raise SweepError(f"--pruner {pruner} with a multi-objective study: Optuna cannot prune "
                         "trials of a multi-objective study; drop --pruner or use one objective")

    study_name = opts.study_name
    if study_name is None:
        settings = {
            "spec": net.name, "fixed": overrides,
            "train": {k: v for k, v in train.items() if k not in NOT_IN_STUDY_NAME},
            "space": space.describe(), "seeds": opts.seeds, "objective": obj.metrics,
            "sampler": sampler}
        if opts.sampler_seed is not None:   # a seeded search is a study of its own (unseeded
            settings["sampler_seed"] = opts.sampler_seed   # studies keep their names)
        study_name = _study_name(net.name, settings)
    out = Path(opts.out) if opts.out is not None else Path("reports") / "sweeps" / study_name
    out = check_output_dir("--out", out)
    storage = check_sqlite_url("--storage", opts.storage or f"sqlite:///{(out / 'study.db').resolve()}")
    if not storage.startswith("sqlite:"):
        storage = server_url("--storage", storage)   # the driver named and there, the server up
    check_output_dir("--out", out, create=True)      # both checked: only now create the folder

    threads = None
    if opts.workers > 1:  # split this machine's CPU threads between the worker processes
        threads = max(1, (os.cpu_count() or 1) // opts.workers)
    return SweepPlan(
        spec=spec_arg, fixed=overrides, train=train, space=space, objective=obj,
        sampler=sampler, sampler_seed=opts.sampler_seed, pruner=pruner, storage=storage,
        study_name=study_name,
        out=str(out.resolve()), trials=opts.trials, timeout=opts.timeout, max_flops=flops_limit,
        max_params=params_limit, reuse=opts.reuse, reuse_roots=_reuse_roots(out),
        workers=opts.workers, threads=threads, min_resource=base.eval_every,
        max_resource=base.iters if base.iters is not None else base.eval_every * 10,
        network=net.name)


def _default_val_split(objective: str, data: str, net) -> int | None:
    """Images held out for validation when the objective is a validation error and no
    --val-split is given: 5000 for CIFAR-10, a tenth of synthetic data; none for ImageNet
    (its validation set is the test set)."""
    from resdsl.train import synthetic_sizes

    wants_val = any(p.strip().lower() in ("error", "err", "val", "val_err", "val_top5_err")
                    for p in objective.split(","))
    if not wants_val or data == "imagenet":
        return None
    if data == "synthetic":
        return max(1, synthetic_sizes(tuple(net.input_shape), net.num_classes)[0] // 10)
    return 5000


def _reuse_roots(out: Path) -> list[str]:
    """Where completed runs are looked for: the nearest folder named 'reports' above --out
    (so every sweep and `resdsl train` run under reports/ is found), else --out itself."""
    out = out.resolve()
    for p in [out, *out.parents]:
        if p.name == "reports":
            return [str(p)]
    return [str(out)]


def _study_name(net_name: str, payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return f"{net_name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
