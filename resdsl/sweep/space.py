"""The search space of a sweep: the spec's declared parameter spaces and/or --grid NAME=V1,V2,...

A dimension varies either a spec parameter (``n``, ``shortcut``, ...) or a training field of the
recipe (``lr``, ``batch_size``, ...). The rule:

- with ``--grid``, exactly the grid's names vary; every other spec parameter keeps its default
  or its ``--NAME VALUE`` from the command line;
- without ``--grid``, every declared space of the spec varies (``param n = 3 in 1..200``),
  except the parameters fixed with ``--NAME VALUE``.

``--seeds K`` adds the seed: a grid dimension ``seed`` = 0..K-1 under the grid sampler (every
(configuration, seed) is one trial), K runs inside each trial under tpe/random.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from resdsl.errors import ResdslError, SweepError, did_you_mean
from resdsl.text import parse_value

# Training fields a sweep can vary (TrainConfig field -> value type).
TRAIN_FIELDS: dict[str, type] = {
    "lr": float, "batch_size": int, "momentum": float, "weight_decay": float,
    "iters": int, "epochs": float, "warmup": str, "subset": int,
}
SEED_PARAM = "seed"
MAX_GRID = 100_000

# Objective metrics: a column of the final metrics row, or an analytic count. All minimised.
ROW_METRICS = ("val_err", "test_err", "train_err", "train_loss", "test_loss", "val_top5_err",
               "test_top5_err")
COUNT_METRICS = ("flops", "params")
ALIASES = {"error": None, "err": None, "val": "val_err", "test": "test_err",
           "mult_adds": "flops", "multiply_adds": "flops", "macs": "flops"}


@dataclass
class Dim:
    """One varying quantity. ``target`` is "spec" or "train"; ``values`` the grid (categorical)
    values, or None when the dimension is a declared spec space searched by tpe/random."""

    name: str
    target: str
    ptype: type
    values: list | None = None
    space: Any = None            # ir.ParamSpace for a declared space

    def grid_values(self) -> list:
        if self.values is not None:
            return list(self.values)
        return expand_space(self.name, self.space, self.ptype)

    def suggest(self, trial) -> Any:
        if self.values is not None:
            return trial.suggest_categorical(self.name, list(self.values))
        sp = self.space
        if sp.kind == "choice":
            return trial.suggest_categorical(self.name, list(sp.choices))
        if self.ptype is int:
            step = int(sp.step) if sp.step is not None else 1
            return trial.suggest_int(self.name, int(sp.low), int(sp.high),
                                     step=step if sp.kind == "range" else 1, log=sp.kind == "log")
        if sp.kind == "log":
            return trial.suggest_float(self.name, float(sp.low), float(sp.high), log=True)
        return trial.suggest_float(self.name, float(sp.low), float(sp.high),
                                   step=float(sp.step) if sp.step is not None else None)

    def describe(self) -> str:
        if self.values is not None:
            return "[" + ", ".join(str(v) for v in self.values) + "]"
        return self.space.describe()


@dataclass
class SearchSpace:
    dims: list[Dim] = field(default_factory=list)
    seeds: int = 1
    seed_dim: bool = False       # seed is a grid dimension (grid sampler with --seeds > 1)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims] + ([SEED_PARAM] if self.seed_dim else [])

    def grid(self) -> dict[str, list]:
        """name -> values for Optuna's GridSampler (every dimension must be finite)."""
        g = {d.name: d.grid_values() for d in self.dims}
        if self.seed_dim:
            g[SEED_PARAM] = list(range(self.seeds))
        return g

    def grid_points(self) -> list[dict]:
        """Every combination once, first dimension slowest (the order the user wrote)."""
        g = self.grid()
        names = list(g)
        return [dict(zip(names, combo)) for combo in itertools.product(*g.values())]

    def describe(self) -> dict:
        d = {dim.name: dim.describe() for dim in self.dims}
        if self.seeds > 1:
            d[SEED_PARAM] = f"0..{self.seeds - 1}"
        return d


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """['n=3,5,7', 'shortcut=none,A'] -> [('n', ['3','5','7']), ('shortcut', ['none','A'])]."""
    out: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for item in items:
        if "=" not in item:
            raise SweepError(f"--grid {item!r}: expected NAME=V1,V2,... e.g. --grid n=3,5,7,9")
        name, _, rest = item.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not name:
            raise SweepError(f"--grid {item!r}: the parameter name is missing (NAME=V1,V2,...)")
        values = [v.strip() for v in rest.split(",")]
        if not rest.strip() or any(v == "" for v in values):
            raise SweepError(f"--grid {item!r}: expected a comma-separated list of values, "
                             f"e.g. --grid {name}=1,2,3")
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise SweepError(f"--grid {item!r}: the value {dup!r} is listed twice")
        if name in seen:
            raise SweepError(f"--grid {name} is given twice; list all its values in one --grid")
        seen.add(name)
        out.append((name, values))
    return out


def _grid_value(name: str, raw: str, ptype: type) -> Any:
    try:
        return parse_value(raw, ptype)
    except ValueError as e:
        raise SweepError(f"--grid {name}: {e}") from None


def classify(name: str, spec_params: dict) -> tuple[str, str]:
    """(target, key): whether a --grid name is a spec parameter or a training field."""
    forced = None
    for prefix in ("spec.", "train."):
        if name.startswith(prefix):
            forced, name = prefix[:-1], name[len(prefix):]
    in_spec, in_train = name in spec_params, name in TRAIN_FIELDS
    if forced == "spec" and in_spec or forced is None and in_spec and not in_train:
        return "spec", name
    if forced == "train" and in_train or forced is None and in_train and not in_spec:
        return "train", name
    if in_spec and in_train:
        raise SweepError(f"--grid {name}: both a spec parameter and a training field; write "
                         f"spec.{name} or train.{name}")
    if name == SEED_PARAM:
        raise SweepError("--grid seed: use --seeds K to train every configuration with seeds 0..K-1")
    candidates = list(spec_params) + list(TRAIN_FIELDS)
    guess = did_you_mean(name, candidates)
    raise SweepError(f"--grid {name}: no spec parameter or training field of that name"
                     + (f" (did you mean {guess!r}?)" if guess else "")
                     + f"; spec parameters: {', '.join(spec_params) or 'none'}; training fields: "
                     + ", ".join(TRAIN_FIELDS))


def expand_space(name: str, sp, ptype: type) -> list:
    """The finite values of a declared space (for the grid sampler)."""
    if sp.kind == "choice":
        return list(sp.choices)
    if sp.kind == "range" and (ptype is int or sp.step is not None):
        step = sp.step if sp.step is not None else 1
        n = int(math.floor((sp.high - sp.low) / step + 1e-9)) + 1
        if n > MAX_GRID:
            raise SweepError(f"parameter {name} spans {n} values ({sp.describe()}); too many for a "
                             f"grid: list the values with --grid {name}=... or use --sampler tpe")
        vals = [sp.low + i * step for i in range(n)]
        return [int(round(v)) for v in vals] if ptype is int else [round(v, 12) for v in vals]
    raise SweepError(f"parameter {name} has a continuous space ({sp.describe()}) that a grid cannot "
                     f"enumerate; list values with --grid {name}=... or use --sampler tpe")


def build_space(net, grid_items: list[str], fixed: dict, sampler: str, seeds: int,
                validate=None) -> SearchSpace:
    """The sweep's dimensions from the checked spec (``net``), --grid and the fixed overrides.

    ``validate(target, key, value)`` checks one value (raises ResdslError); the command uses it
    to load the spec / resolve the recipe with that value, so bad values fail before any trial.
    """
    if seeds < 1:
        raise SweepError(f"--seeds must be at least 1, got {seeds}")
    dims: list[Dim] = []
    parsed = parse_grid(grid_items)
    names_seen: set[str] = set()
    for raw_name, raw_values in parsed:
        target, key = classify(raw_name, net.params)
        if key in names_seen:
            raise SweepError(f"--grid {key} is given twice; list all its values in one --grid")
        names_seen.add(key)
        if target == "spec" and key in fixed:
            raise SweepError(f"{key} is both fixed (--{key} {fixed[key]}) and swept (--grid {key}=...); "
                             "drop one")
        ptype = net.param_types.get(key, type(net.params[key])) if target == "spec" else TRAIN_FIELDS[key]
        if issubclass(ptype, tuple):  # a list parameter (resdsl.spec.values.ListValue)
            raise SweepError(f"--grid {key}: '{key}' is a list; a grid lists numbers, strings or true/"
                             "false: sweep the parameters its items are computed from")
        values = [_grid_value(key, v, ptype) for v in raw_values]
        if len(set(map(repr, values))) != len(values):
            raise SweepError(f"--grid {key}: two values are the same number ({', '.join(raw_values)})")
        if validate is not None:
            for v in values:
                try:
                    validate(target, key, v)
                except SweepError:
                    raise
                except ResdslError as e:
                    raise SweepError(f"--grid {key}={v}: {_one_line(e)}") from None
        dims.append(Dim(name=key, target=target, ptype=ptype, values=values))
    if not parsed:
        for key, sp in net.spaces.items():
            if key in fixed:
                continue
            ptype = net.param_types.get(key, type(net.params[key]))
            dims.append(Dim(name=key, target="spec", ptype=ptype, space=sp))
    space = SearchSpace(dims=dims, seeds=seeds, seed_dim=(sampler == "grid" and seeds > 1))
    if not dims and seeds == 1:
        raise SweepError("nothing to sweep: the spec declares no parameter spaces (or all are fixed "
                         "on the command line) and no --grid is given; e.g. --grid n=3,5,7,9, or "
                         "--seeds 5 for replicates")
    if sampler == "grid":
        total = 1
        for vals in space.grid().values():
            total *= len(vals)
        if total > MAX_GRID:
            raise SweepError(f"the grid has {total} points; more than {MAX_GRID}. Narrow it with "
                             "--grid or fix parameters with --NAME VALUE, or use --sampler tpe")
    return space


def _one_line(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    return msg.splitlines()[0] if msg else type(e).__name__


@dataclass
class Objective:
    metrics: list[str]           # "val_err", "flops", ...
    names: list[str]             # as the user wrote them (for the table header)

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    @property
    def directions(self) -> list[str]:
        return ["minimize"] * len(self.metrics)


def parse_objective(text: str, data: str, val_split: int) -> Objective:
    """'error' (the validation error), 'test_err', 'error,flops', ... -> Objective."""
    parts = [p.strip().lower().replace("-", "_") for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise SweepError(f"--objective {text!r}: expected metric names separated by commas, "
                         "e.g. error or error,flops")
    error_metric = "test_err" if data == "imagenet" else "val_err"
    metrics: list[str] = []
    for p in parts:
        m = ALIASES.get(p, p)
        if m is None:
            m = error_metric
        if m not in ROW_METRICS and m not in COUNT_METRICS:
            guess = did_you_mean(p, list(ROW_METRICS) + list(COUNT_METRICS) + ["error"])
            raise SweepError(f"--objective: unknown metric {p!r}"
                             + (f" (did you mean {guess!r}?)" if guess else "")
                             + f"; choose from error, {', '.join(ROW_METRICS + COUNT_METRICS)}")
        if m in metrics:
            raise SweepError(f"--objective: {p} is listed twice")
        metrics.append(m)
    if all(m in COUNT_METRICS for m in metrics):
        raise SweepError("--objective: params and flops are known before training; add an error "
                         "metric, e.g. --objective error,flops")
    if data != "imagenet" and any(m.startswith("val_") for m in metrics) and not val_split:
        raise SweepError("the objective is the validation error but --val-split is 0; hold out "
                         "a validation split (e.g. --val-split 5000), or optimise the test error "
                         "explicitly with --objective test_err (tuning on the test set)")
    return Objective(metrics=metrics, names=parts)
