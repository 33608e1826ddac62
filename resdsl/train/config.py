"""Training configuration: the paper's recipes as presets, user overrides, validation, content hash.

``TrainConfig`` is what a user (or ``resdsl sweep``) asks for; ``resolve`` merges it with its
recipe preset, loads and checks the spec, and validates every value, raising ``RunError`` (with a
did-you-mean where it helps) on nonsense. ``config_hash`` is the content hash of what decides the
result of a run: spec texts, resolved spec parameters, recipe values and seed; not the device,
paths, evaluation cadence or worker count.

The recipes themselves (the paper's presets) are in ``recipes.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

from resdsl.data.names import DATASETS, TEST_MODES
from resdsl.errors import ResdslError, RunError
from resdsl.text import choose
from resdsl.train.options import FIELDS
from resdsl.train.recipes import AMP_MODES, DEVICES, RECIPES


# Warm-up of the 110-layer net (section 4.2): lr 0.01 until the training error is below 80%.
WARMUP_DEPTH = 100          # "auto" warms up nets deeper than this many weighted layers
WARMUP_LR_FACTOR = 0.1      # 0.1 -> 0.01
WARMUP_UNTIL_ERR = 0.8
WARMUP_WINDOW = 100         # iterations over which the running training error is measured
WARMUP_MAX_ITERS = 4000     # cap, so a net that never gets there still follows the recipe
# Plateau schedule (imagenet): divide by 10 when the monitored error has not improved (by more
# than PLATEAU_THRESHOLD, absolute) for PLATEAU_PATIENCE evaluations in a row.
PLATEAU_PATIENCE = 3
PLATEAU_THRESHOLD = 1e-3
PLATEAU_MAX_DROPS = 3       # 0.1 -> 0.0001 at most
# Synthetic data: sized so a tiny net learns it in a few hundred iterations.
SYNTHETIC_TRAIN = 5000
SYNTHETIC_TEST = 1000
SYNTHETIC_BYTES = 200_000_000


class _TrainConfigJson:
    """JSON form of a ``TrainConfig`` (config.json's ``request``, used by ``--resume``)."""

    def to_json(self) -> dict:
        d = asdict(self)
        d["overrides"] = {str(k): v for k, v in (self.overrides or {}).items()}
        d["input_shape"] = list(self.input_shape) if self.input_shape is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("input_shape") is not None:
            kw["input_shape"] = tuple(kw["input_shape"])
        return cls(**kw)


# A training request: the spec, its parameter overrides, then one attribute per training field
# (resdsl.train.options.FIELDS). ``None`` fields take the recipe's value.
TrainConfig = make_dataclass(
    "TrainConfig",
    [("spec", str), ("overrides", dict, field(default_factory=dict))]
    + [(f.name, f.type if f.default is not None else f.type | None, field(default=f.default))
       for f in FIELDS],
    bases=(_TrainConfigJson,))
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = "A training request. ``None`` fields take the recipe's value."


def load_request(run_dir) -> TrainConfig:
    """The TrainConfig a run record was started with (``--resume``, ensembles)."""
    from resdsl.record import read_request

    return TrainConfig.from_json(read_request(run_dir))


def resolve_run(run_dir, **changes) -> tuple[ResolvedConfig, bool]:
    """The resolved configuration of a run record. ``changes``: request fields to set (device,
    data_dir, test_mode), checked as ``resdsl train`` checks them.

    The network is the one the run trained: its spec is read again where the files still hold the
    texts config.json recorded, else rebuilt from those texts (a spec edited, moved or shipped in
    another version since). Returns (config, whether it was rebuilt from the recorded texts)."""
    from resdsl import record
    from resdsl.spec import spec_from_sources

    cfg = record.read_run_config(run_dir)
    if cfg.get("kind") == "ensemble":
        raise RunError(f"{run_dir} is an ensemble record: it has no network of its own; give one "
                       "of its member runs")
    request = replace(load_request(run_dir), **changes)
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
        r = resolve(replace(request, spec=str(path)))
    # the request as the run recorded it, not the temporary file it was rebuilt from
    return replace(r, request=request), True


class _ResolvedConfigMethods:
    """What a ResolvedConfig (generated below from the fields) can do."""

    def with_iters(self, iters_per_epoch: int) -> "ResolvedConfig":
        """Fix ``iters`` (and proportional milestones) from epochs and the epoch length."""
        if self.iters is not None:
            return self
        iters = max(1, math.ceil(self.epochs * iters_per_epoch))
        out = _copy(self, iters=iters)
        if not self.milestones_given and self.schedule == "multistep":
            out.milestones = _scaled_milestones(RECIPES[self.recipe], iters)
        out.eval_every = min(out.eval_every, iters)
        if out.warmup is not None and out.warmup["mode"] == "iters":
            out.warmup = dict(out.warmup, max_iters=min(out.warmup["max_iters"], iters))
        return out

    def with_tensorboard(self, folder: str) -> "ResolvedConfig":
        """The same run with its TensorBoard scalars in ``folder`` (a sweep gives each run its
        own), in the request too, so a resumed run goes on writing there."""
        return _copy(self, tensorboard=folder, request=replace(self.request, tensorboard=folder))

    def recipe_json(self) -> dict:
        """The ``recipe`` object of config.json (docs/ARCHITECTURE.md): every recorded field's
        resolved value, and what the recipe derives from them."""
        return {
            **{f.record: getattr(self, f.name) for f in FIELDS if f.record},
            "full_iters": self.full_iters, "schedule": self.schedule, "plateau": self.plateau,
            "augment": ("pad 4, random 32x32 crop, flip; per-pixel mean" if self.data != "imagenet"
                        else "scale [256, 480], random crop, flip, PCA colour; per-pixel mean"),
        }


# A validated request: the spec loaded and checked (``net``, an ``ir.Network``), and one attribute
# per training field (FIELDS) holding its checked value, the recipe's where the request left it
# None (``warmup`` becomes the warm-up record, ``input_shape`` the network's). Then what resolving
# derives. ``iters`` is None when the length was given in epochs; the runner fixes it from the
# size of the training set (``with_iters``).
ResolvedConfig = make_dataclass(
    "ResolvedConfig",
    [("request", TrainConfig), ("net", Any)]
    + [(f.name, f.resolved_type or f.type) for f in FIELDS]
    + [("full_iters", int), ("milestones_given", bool), ("schedule", str), ("depth", int),
       ("plateau", dict | None, field(default=None))],
    bases=(_ResolvedConfigMethods,))
ResolvedConfig.__module__ = __name__
ResolvedConfig.__doc__ = "A validated request (see the comment above its definition)."


def _copy(r: ResolvedConfig, **changes) -> ResolvedConfig:
    d = {f.name: getattr(r, f.name) for f in fields(r)}
    d.update(changes)
    return ResolvedConfig(**d)


def _choice(what: str, value: str, choices) -> str:
    return choose(f"unknown {what}", value, choices, RunError)


def _scaled_milestones(preset: dict, iters: int) -> list[int] | None:
    ms = preset.get("milestones")
    if not ms:
        return None
    full = preset["iters"]
    return [max(1, round(m * iters / full)) for m in ms]


def _num(name: str, value, kind=float, *, positive=False, nonneg=False):
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise RunError(f"--{name.replace('_', '-')} {value!r}: expected a number") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise RunError(f"--{name.replace('_', '-')} {value!r}: must be finite")
    if positive and v <= 0:
        raise RunError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if nonneg and v < 0:
        raise RunError(f"--{name.replace('_', '-')} must not be negative, got {value}")
    return v


def parse_warmup(value: str | None, depth: int, recipe: str, lr: float,
                 iters: int | None) -> dict | None:
    """'auto' | 'off' | 'ITERS' -> the warm-up record (or None when off)."""
    v = "off" if value is None else str(value).strip().lower()
    if v in ("off", "none", "no", "0", "false"):
        return None
    if v == "auto":
        if recipe != "cifar" or depth <= WARMUP_DEPTH:
            return None
        cap = WARMUP_MAX_ITERS if iters is None else min(WARMUP_MAX_ITERS, max(1, iters // 4))
        return {"mode": "auto", "lr": lr * WARMUP_LR_FACTOR, "until_err": WARMUP_UNTIL_ERR,
                "window": WARMUP_WINDOW, "max_iters": cap,
                "why": f"depth {depth} > {WARMUP_DEPTH} (the paper's 110-layer rule)"}
    try:
        n = int(v)
    except ValueError:
        raise RunError(f"--warmup {value!r}: expected auto, off or a number of iterations") from None
    if n < 0:
        raise RunError(f"--warmup must not be negative, got {n}")
    return {"mode": "iters", "lr": lr * WARMUP_LR_FACTOR, "until_err": None, "window": None,
            "max_iters": n if iters is None else min(n, iters), "why": "requested"}


def absolute_dir(text) -> str:
    """'~/data/x' or '../data/x' -> the folder's absolute path: a run records where its data were,
    and a relative path would name another folder from anywhere but where the run started."""
    if not str(text).strip():
        raise RunError("--data-dir is empty; give the data folder")
    return str(Path(str(text)).expanduser().resolve())


def resolve(cfg: TrainConfig, requires: bool = True) -> ResolvedConfig:
    """The recipe preset overridden by every non-None field of ``cfg``, the spec loaded, all
    values checked. Raises ``RunError`` (or ``SpecError`` for the spec) on nonsense.
    requires=False: the spec's `require`s need not hold (a sweep's plan; ``load_network``)."""
    from resdsl.spec.analysis import summarize
    from resdsl.spec import load_network

    if cfg.data_dir is not None:
        cfg = replace(cfg, data_dir=absolute_dir(cfg.data_dir))
    recipe = _choice("recipe", cfg.recipe, tuple(RECIPES))
    preset = RECIPES[recipe]
    data = _choice("data set", cfg.data if cfg.data is not None else preset["data"], DATASETS)
    if cfg.iters is not None and cfg.epochs is not None:
        raise RunError("give --iters or --epochs, not both")
    iters = epochs = None
    if cfg.epochs is not None:
        epochs = _num("epochs", cfg.epochs, float, positive=True)
    elif cfg.iters is not None:
        if isinstance(cfg.iters, float) and not cfg.iters.is_integer():
            raise RunError(f"--iters must be a whole number, got {cfg.iters}")
        iters = _num("iters", cfg.iters, int, positive=True)
    else:
        iters = preset["iters"]
    batch = _num("batch_size", cfg.batch_size if cfg.batch_size is not None else preset["batch_size"],
                 int, positive=True)
    lr = _num("lr", cfg.lr if cfg.lr is not None else preset["lr"], float, positive=True)
    momentum = _num("momentum", cfg.momentum if cfg.momentum is not None else preset["momentum"],
                    float, nonneg=True)
    if momentum >= 1:
        raise RunError(f"--momentum must be below 1, got {momentum}")
    wd = _num("weight_decay", cfg.weight_decay if cfg.weight_decay is not None
              else preset["weight_decay"], float, nonneg=True)
    val_split = _num("val_split", cfg.val_split if cfg.val_split is not None else preset["val_split"],
                     int, nonneg=True)
    if val_split and data == "imagenet":
        raise RunError("--val-split holds out part of a CIFAR-style training set; ImageNet "
                       "runs validate on the val/ folder")
    subset = None
    if cfg.subset is not None:
        subset = _num("subset", cfg.subset, int, positive=True)
    workers = None if cfg.workers is None else _num("workers", cfg.workers, int, nonneg=True)
    seed = _num("seed", cfg.seed, int, nonneg=True)
    schedule = preset["schedule"]
    milestones_given = cfg.milestones is not None
    if milestones_given:
        ms = list(cfg.milestones)
        try:
            ms = [int(m) for m in ms]
        except (TypeError, ValueError):
            raise RunError(f"--milestones {cfg.milestones!r}: expected iterations, e.g. 32000,48000") from None
        if any(m <= 0 for m in ms):
            raise RunError(f"--milestones must be positive iterations, got {ms}")
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise RunError(f"--milestones must be strictly increasing, got {ms}")
        if iters is not None and ms and ms[-1] >= iters:
            raise RunError(f"milestone {ms[-1]} is not before the end of training ({iters} iterations)")
        milestones = ms
        schedule = "multistep"
    elif schedule == "multistep":
        milestones = _scaled_milestones(preset, iters) if iters is not None else None
    else:
        milestones = None
    eval_every = cfg.eval_every if cfg.eval_every is not None else preset["eval_every"]
    eval_every = _num("eval_every", eval_every, int, positive=True)
    if iters is not None:
        eval_every = min(eval_every, iters)
    test_mode = cfg.test_mode if cfg.test_mode is not None else preset["test_mode"]
    if data != "imagenet" and cfg.test_mode is None:
        test_mode = "single"
    test_mode = _choice("test mode", test_mode, TEST_MODES)
    if data != "imagenet" and test_mode != "single":
        raise RunError(f"--test-mode {test_mode} needs ImageNet-style data; {data} is tested on "
                       "the single original view (--test-mode single)")
    if data == "imagenet" and test_mode == "single":
        test_mode = "center"
    amp = cfg.amp
    if amp is not None:
        amp = str(amp).lower()
        if amp in ("off", "none", "no", ""):
            amp = None
        else:
            amp = _choice("--amp mode", amp, AMP_MODES)
    device = _choice("device", str(cfg.device).split(":")[0], DEVICES) and str(cfg.device)

    input_shape = tuple(int(v) for v in cfg.input_shape) if cfg.input_shape is not None else None
    try:
        net = load_network(cfg.spec, dict(cfg.overrides or {}), input_shape, requires)
    except ResdslError:
        raise
    depth = summarize(net).depth
    if data == "cifar10" and tuple(net.input_shape) != (3, 32, 32):
        raise RunError(f"spec {net.name} takes {'x'.join(map(str, net.input_shape))} inputs but "
                       "CIFAR-10 images are 3x32x32; use a CIFAR spec or --data synthetic")
    if data == "cifar10" and net.num_classes != 10:
        raise RunError(f"spec {net.name} has {net.num_classes} classes but CIFAR-10 has 10")
    warmup = parse_warmup(cfg.warmup if cfg.warmup is not None else preset["warmup"], depth,
                          recipe, lr, iters)
    plateau = None
    if schedule == "plateau":
        plateau = {"patience": PLATEAU_PATIENCE, "threshold": PLATEAU_THRESHOLD,
                   "factor": 0.1, "max_drops": PLATEAU_MAX_DROPS,
                   "monitor": "val_err" if val_split else "test_err"}
    tensorboard = None
    if cfg.tensorboard is not None:
        from resdsl.train.scalars import check_scalars_dir

        tensorboard = check_scalars_dir(cfg.tensorboard)
    values = {f.name: getattr(cfg, f.name) for f in FIELDS}   # a field with no check: as given
    values.update(
        recipe=recipe, data=data, iters=iters, epochs=epochs, batch_size=batch, lr=lr,
        milestones=milestones, momentum=momentum, weight_decay=wd, warmup=warmup,
        val_split=val_split, seed=seed, device=device, amp=amp, compile=bool(cfg.compile),
        eval_every=eval_every, test_mode=test_mode, subset=subset, workers=workers,
        input_shape=tuple(net.input_shape), sync_bn=bool(cfg.sync_bn), tensorboard=tensorboard)
    return ResolvedConfig(request=cfg, net=net, **values, full_iters=preset["iters"],
                          milestones_given=milestones_given, schedule=schedule, depth=depth,
                          plateau=plateau)


def hash_payload(r: ResolvedConfig) -> dict:
    """What the content hash covers, as a JSON-able dict."""
    net = r.net
    recipe = {f.record: getattr(r, f.name) for f in FIELDS if f.hashed and f.name != "seed"}
    recipe.update(schedule=r.schedule, plateau=r.plateau)
    if r.warmup is not None:   # the reason is an explanation, not a value
        recipe["warmup"] = {k: v for k, v in r.warmup.items() if k != "why"}
    return {
        "sources": sorted(net.sources.values()),
        "network": net.name,
        "params": {k: net.params[k] for k in sorted(net.params)},
        "input_shape": list(net.input_shape),
        "recipe": recipe,
        "seed": r.seed,
    }


def config_hash(resolved: ResolvedConfig) -> str:
    """sha256 (first 16 hex digits) of spec texts, spec parameters, recipe values and seed."""
    text = json.dumps(hash_payload(resolved), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
