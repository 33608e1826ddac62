"""`resdsl sweep`: many trainings of one spec as one Optuna study; progress, table, CSV."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from resdsl.cli_common import console, err_console, parse_spec_overrides
from resdsl.errors import SweepError, did_you_mean
from resdsl.io import atomic_write_text
from resdsl.outputs import check_output_dir, check_sqlite_url
from resdsl.train import options as opt

SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median", "hyperband", "sha")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _choice(option: str, value: str, choices) -> str:
    v = value.strip().lower()
    if v in choices:
        return v
    guess = did_you_mean(v, choices)
    raise SweepError(f"{option} {value!r}: choose one of {', '.join(choices)}"
                     + (f" (did you mean {guess!r}?)" if guess else ""))


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


# --------------------------------------------------------------------------- progress

class Monitor:
    """Polls the storage once a second: a line per finished trial; on a terminal also a live
    panel (running trials with their parameters, done/pruned/failed counts, best so far)."""

    def __init__(self, plan, total: int | None, skip: set[int]):
        from resdsl.sweep.study import make_storage

        self.plan = plan
        self.total = total
        self.storage = make_storage(plan.storage, heartbeat=False)
        self.study_id = self.storage.get_study_id_from_name(plan.study_name)
        self.seen = set(skip)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.live = None
        self.lock = threading.Lock()

    def start(self) -> "Monitor":
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(self._panel([]), console=console, refresh_per_second=2, transient=True)
            self.live.start()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
        self.poll()
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _loop(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                self.poll()
            except Exception:  # a locked database for a moment: try again next second
                pass

    def poll(self) -> None:
        with self.lock:
            trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
            for t in trials:
                if t.state.name in FINISHED and t.number not in self.seen:
                    self.seen.add(t.number)
                    line = self._line(t, trials)
                    if self.live is not None:
                        self.live.console.print(line, highlight=False, markup=False)
                    else:
                        console.print(line, highlight=False, soft_wrap=True, markup=False)
            if self.live is not None:
                self.live.update(self._panel(trials))

    def _counts(self, trials) -> str:
        from resdsl.sweep.study import is_retryable

        by = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
        retry = 0
        for t in trials:
            if is_retryable(t):
                retry += 1
            else:
                by[t.state.name] = by.get(t.state.name, 0) + 1
        done = by["COMPLETE"] + by["PRUNED"] + by["FAIL"]
        total = f"/{self.total}" if self.total else ""
        best = self._best(trials)
        return (f"[{done}{total} done: {by['COMPLETE']} complete, {by['PRUNED']} pruned, "
                f"{by['FAIL']} failed" + (f", {retry} interrupted or killed" if retry else "")
                + f"; {by['RUNNING']} running, {by['WAITING']} queued"
                + (f"; best {best}" if best else "") + "]")

    def _best(self, trials) -> str | None:
        done = [t for t in trials if t.state.name == "COMPLETE" and t.values]
        if not done:
            return None
        if self.plan.objective.multi:
            return f"{len(_pareto(done))} on the Pareto front"
        b = min(done, key=lambda t: t.values[0])
        return f"{self.plan.objective.metrics[0]} {_fmt(b.values[0])} (trial {b.number})"

    def _line(self, t, trials) -> str:
        params = " ".join(f"{k}={_fmt(v)}" for k, v in _params(t).items())
        status = t.user_attrs.get("status") or t.state.name.lower()
        if t.state.name == "COMPLETE":
            what = "  ".join(f"{m} {_fmt(v)}" for m, v in zip(self.plan.objective.metrics, t.values))
            if t.user_attrs.get("reused_from"):
                what += "  (reused)"
        else:
            what = t.user_attrs.get("reason") or ""
        return f"trial {t.number} {status}  {params}  {what}  {self._counts(trials)}"

    def _panel(self, trials):
        from rich.panel import Panel
        from rich.text import Text

        lines = []
        for t in trials:
            if t.state.name == "RUNNING":
                params = " ".join(f"{k}={_fmt(v)}" for k, v in _params(t).items())
                steps = t.intermediate_values
                last = ""
                if steps:
                    it = max(steps)
                    last = f"  iter {it}: {self.plan.objective.metrics[0]} {_fmt(steps[it])}"
                lines.append(f"running trial {t.number}: {params}{last}")
        lines.append(self._counts(trials))
        return Panel(Text("\n".join(lines)), title=f"sweep {self.plan.study_name}", expand=False)


def _params(t) -> dict:
    from resdsl.sweep.study import trial_params

    return trial_params(t)


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def _pareto(trials) -> list:
    front = []
    for t in trials:
        dominated = any(all(a <= b for a, b in zip(o.values, t.values)) and
                        any(a < b for a, b in zip(o.values, t.values)) for o in trials)
        if not dominated:
            front.append(t)
    return front


# --------------------------------------------------------------------------- the table

def study_frame(study, plan):
    """One row per trial: parameters, state, objective(s), counts, run folder, reason."""
    import pandas as pd

    names = plan.space.names
    rows = []
    for t in study.get_trials(deepcopy=False):
        p = _params(t)
        ua = t.user_attrs
        row = {"trial": t.number, **{n: p.get(n) for n in names}}
        if plan.space.seeds > 1 and not plan.space.seed_dim:
            row["seeds"] = ",".join(str(r.get("seed")) for r in ua.get("runs") or [])
        row["state"] = t.state.name
        row["status"] = ua.get("status")
        for i, m in enumerate(plan.objective.metrics):
            if m not in ("params", "flops"):   # those are the count columns below
                row[m] = t.values[i] if t.values and t.state.name == "COMPLETE" else None
        for k in ("val_err", "test_err", "train_err"):
            if k not in row:
                row[k] = ua.get(k)
        row["params"] = ua.get("params_count")
        row["flops"] = ua.get("flops")
        row["iters_done"] = ua.get("iters_done")
        row["wall_s"] = ua.get("wall_s")
        row["run_dir"] = ua.get("run_dir")
        row["reused_from"] = ua.get("reused_from")
        row["reason"] = ua.get("reason")
        row["config_hash"] = ua.get("config_hash")
        row["retry_of"] = ua.get("retry_of")
        rows.append(row)
    return pd.DataFrame(rows)


def _rel(path: str | None, out: Path) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)


def print_table(df, plan, out: Path) -> None:
    from rich.table import Table
    from rich.text import Text

    if df.empty:
        console.print("the study has no trials yet")
        return
    names = plan.space.names
    table = Table(title=f"study {plan.study_name}", show_lines=False)
    cols = ["trial", *names] + (["seeds"] if "seeds" in df.columns else []) + ["state"]
    cols += [m for m in dict.fromkeys(plan.objective.metrics + ["test_err"]) if m not in ("params", "flops")]
    cols += ["params", "flops", "run / reason"]
    for c in cols:
        table.add_column(c, justify="right" if c not in ("state", "run / reason") else "left",
                         overflow="fold")
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            if c == "run / reason":
                run, reason = _val(r["run_dir"]), _val(r["reason"])
                if r["state"] == "COMPLETE":
                    v = _rel(run, out) + (" (reused)" if _val(r["reused_from"]) else "")
                else:
                    v = reason or "-"
                    if run:
                        v += f"  [{_rel(run, out)}]"
            elif c == "state":
                v = r["state"] if _val(r["status"]) in (None, "completed", "pruned") or r["state"] == "COMPLETE" \
                    else f"{r['state']} ({r['status']})"
            elif c in ("params", "flops"):
                v = "-" if _isnull(r[c]) else _count(r[c])
            else:
                v = "-" if _isnull(r[c]) else _fmt(r[c])
            cells.append(Text(str(v)))
        table.add_row(*cells)
    _wide().print(table)


def _wide():
    """The console, or, when output is not a terminal (a log, a pipe), one wide enough for the
    table not to fold every cell."""
    if console.is_terminal:
        return console
    from rich.console import Console

    return Console(width=200, highlight=False)


def _val(v):
    """A table cell's value, None for pandas' missing values."""
    return None if _isnull(v) else v


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _count(n) -> str:
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def print_seed_summary(study, plan) -> None:
    """Per configuration (all parameters but the seed): runs, mean±std of each objective, best."""
    from rich.table import Table
    from rich.text import Text

    from resdsl.sweep.space import SEED_PARAM

    dims = [d.name for d in plan.space.dims]
    groups: dict[tuple, list[list[float]]] = {}
    labels: dict[tuple, str] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or not t.values:
            continue
        p = {k: v for k, v in _params(t).items() if k != SEED_PARAM}
        key = tuple(repr(p.get(n)) for n in dims)
        labels[key] = " ".join(f"{n}={_fmt(p.get(n))}" for n in dims) or "(fixed)"
        per = t.user_attrs.get("seed_values") or [list(t.values)]
        groups.setdefault(key, []).extend(per)
    if not groups:
        return
    table = Table(title="per configuration over seeds: best (mean±std)")
    table.add_column("configuration")
    table.add_column("runs", justify="right")
    for m in plan.objective.metrics:
        table.add_column(m, justify="right")
    for key, vals in groups.items():
        cells = [labels[key], str(len(vals))]
        for j, _ in enumerate(plan.objective.metrics):
            xs = [v[j] for v in vals]
            mean = sum(xs) / len(xs)
            std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
            cells.append(f"{_fmt(min(xs))} ({_fmt(mean)}±{_fmt(std)})")
        table.add_row(*map(Text, cells))
    _wide().print(table)


def print_pareto(study, plan) -> None:
    from rich.table import Table
    from rich.text import Text

    front = sorted(study.best_trials, key=lambda t: t.values)
    table = Table(title=f"Pareto front ({', '.join(plan.objective.metrics)}; all minimised)")
    table.add_column("trial", justify="right")
    table.add_column("parameters")
    for m in plan.objective.metrics:
        table.add_column(m, justify="right")
    for t in front:
        table.add_row(str(t.number), Text(" ".join(f"{k}={_fmt(v)}" for k, v in _params(t).items())),
                      *[_count(v) if m in ("flops", "params") else _fmt(v)
                        for m, v in zip(plan.objective.metrics, t.values)])
    _wide().print(table)


# --------------------------------------------------------------------------- workers

def _run_local(plan, deadline: float | None) -> None:
    """Run the queue with plan.workers worker processes, watched (resdsl.sweep.supervise)."""
    from resdsl.sweep.study import start_workers
    from resdsl.sweep.supervise import run_workers

    run_workers(plan, deadline, start_workers, err_console)


# --------------------------------------------------------------------------- the command

@opt.with_train_options(exclude=("seed", "sync_bn"), aliases=False)  # --workers: trials at once
def sweep_command(
    ctx: typer.Context,
    spec: str = typer.Argument(..., help="A .net file, or the name of a shipped spec."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", metavar="NAME=V1,V2,...",
        help="A grid dimension: a spec parameter or a training field (lr, batch_size, ...). Repeat for more."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="grid, tpe or random (default: grid with --grid, else tpe)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Size of the study (tpe/random: required unless --timeout; grid: at most N points)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="Start no new trial after this many seconds."),
    seeds: int = typer.Option(1, "--seeds", help="Train every configuration with seeds 0..K-1 (mean±std in the table)."),
    objective: str = typer.Option("error", "--objective", help="error (validation error), test_err, train_err, ...; error,flops or error,params for a Pareto front."),
    pruner: str = typer.Option("none", "--pruner", help="none, median, hyperband or sha (from the intermediate evaluations)."),
    max_flops: Optional[str] = typer.Option(None, "--max-flops", metavar="N", help="Do not train configurations with more multiply-adds (e.g. 41M, 1.2G)."),
    max_params: Optional[str] = typer.Option(None, "--max-params", metavar="N", help="Do not train configurations with more parameters (e.g. 1.7M)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Study folder: study.db, study.csv, runs/ (default reports/sweeps/<study>)."),
    study_name: Optional[str] = typer.Option(None, "--study", help="Study name (default <network>-<hash of the sweep's settings>)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Optuna storage URL (default sqlite:///<out>/study.db)."),
    workers: int = typer.Option(1, "--workers", help="Trials run at once on this machine (processes; CPU threads are split)."),
    reuse: bool = typer.Option(True, "--reuse/--no-reuse", help="Reuse completed runs with the same content hash."),
    set_: opt.SetParam = None,
    *,
    train_options: dict,
):
    """Train many configurations of one spec as one Optuna study, with a table at the end.

    The search space: with --grid, exactly the grid's names vary (spec parameters or training
    fields such as lr); without it, every declared space of the spec (param n = 3 in 1..200)
    varies except those fixed with --NAME VALUE. The default objective is the validation error
    of the final evaluation (a held-out split: nobody tunes on the test set).

    Every trial is a normal `resdsl train` run folder under OUT/runs/, tagged with its trial in
    config.json; OUT also holds study.db and study.csv. A trial whose spec, parameters, recipe
    and seed equal a completed run (content hash) anywhere under reports/ reuses it. Diverged or
    failing trials are recorded with their reason and the sweep goes on. Re-running the same
    command resumes the study: finished trials are not repeated; interrupted ones (Ctrl-C) and
    those of a killed process (no heartbeat for 40 s, or a dead pid on this machine) are retried.

    Several machines on one study: give every machine the same --storage URL and --study NAME,
    e.g. --storage postgresql://user:pass@dbhost/resdsl --study plain-vs-res (needs psycopg2),
    or mysql+pymysql://user:pass@dbhost/resdsl (needs pymysql). Each machine queues what is
    missing and takes trials from the shared queue; runs are written to each machine's --out.
    The study opens in optuna-dashboard as it is: optuna-dashboard sqlite:///OUT/study.db

    Examples:

      resdsl sweep specs/cifar_6n2.net --grid n=3,5,7,9 --grid shortcut=none,A --seeds 5

      resdsl sweep cifar_6n2 --n 18 --grid shortcut=A,B,C --val-split 5000

      resdsl sweep cifar_6n2 --data synthetic --grid n=1,2 --grid lr=0.1,0.05 --iters 300 --workers 2

      resdsl sweep cifar_6n2 --sampler tpe --trials 40 --objective error,flops --max-flops 100M

      resdsl sweep cifar_6n2 --shortcut A --width 16 --sampler tpe --trials 30 --pruner median
    """
    from resdsl.analysis import summarize  # noqa: F401  (fail early if the spec layer is broken)
    from resdsl.spec import load_network
    from resdsl.sweep.space import build_space, parse_objective
    from resdsl.sweep.study import (
        SweepPlan, covers, make_storage, open_study, prepare, quiet_optuna, storage_lock,
        trial_params,
    )
    from resdsl.train.config import RECIPES, TrainConfig, resolve
    from resdsl.train.data import synthetic_sizes

    quiet_optuna()
    pruner = _choice("--pruner", pruner, PRUNERS)
    if sampler is not None:
        sampler = _choice("--sampler", sampler, SAMPLERS)
    if workers < 1:
        raise SweepError(f"--workers must be at least 1, got {workers}")
    if trials is not None and trials < 1:
        raise SweepError(f"--trials must be at least 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise SweepError(f"--timeout must be positive, got {timeout}")
    flops_limit = parse_count("--max-flops", max_flops)
    params_limit = parse_count("--max-params", max_params)

    overrides = parse_spec_overrides(ctx.args, set_)
    shape = train_options["input_shape"]
    spec_arg = str(Path(spec).resolve()) if Path(spec).is_file() else spec
    net = load_network(spec_arg, overrides, shape)

    recipe = train_options["recipe"]
    recipe_name = recipe.strip().lower()
    if recipe_name not in RECIPES:
        guess = did_you_mean(recipe_name, list(RECIPES))
        raise SweepError(f"--recipe {recipe!r}: choose one of {', '.join(RECIPES)}"
                         + (f" (did you mean {guess!r}?)" if guess else ""))
    data = train_options["data"]
    data_name = data if data is not None else RECIPES[recipe_name]["data"]
    metrics_text = objective
    wants_val = any(p.strip().lower() in ("error", "err", "val", "val_err", "val_top5_err")
                    for p in metrics_text.split(","))
    val_split = train_options["val_split"]
    if val_split is None and wants_val and data_name != "imagenet":
        if data_name == "synthetic":
            val_split = max(1, synthetic_sizes(tuple(net.input_shape), net.num_classes)[0] // 10)
        else:
            val_split = 5000
    obj = parse_objective(metrics_text, data_name, val_split or 0)
    if "test_err" in obj.metrics and data_name != "imagenet":
        err_console.print("resdsl: warning: optimising the test error tunes the configuration on "
                          "the test set; its test error is then an optimistic estimate")
    train_kw = dict(train_options, recipe=recipe_name, val_split=val_split)
    base = resolve(TrainConfig(spec=spec_arg, overrides=overrides, **train_kw))

    if sampler is None:
        sampler = "grid" if grid else "tpe"

    def validate(target: str, key: str, value) -> None:
        if target == "spec":
            load_network(spec_arg, {**overrides, key: value}, shape)
        else:
            kw = dict(train_kw)
            kw[key] = value
            if key == "epochs":
                kw["iters"] = None
            if key == "iters":
                kw["epochs"] = None
            resolve(TrainConfig(spec=spec_arg, overrides=overrides, **kw))

    space = build_space(net, list(grid or []), overrides, sampler, seeds, validate)
    if any(d.name in ("iters", "epochs") for d in space.dims) and (train_kw["iters"] is not None and train_kw["epochs"] is not None):
        raise SweepError("give --iters or --epochs, not both")
    if sampler != "grid" and trials is None and timeout is None:
        raise SweepError(f"--sampler {sampler} needs --trials N (or --timeout SECONDS) to know "
                         "when to stop")
    if obj.multi and pruner != "none":
        raise SweepError(f"--pruner {pruner} with a multi-objective study: Optuna cannot prune "
                         "trials of a multi-objective study; drop --pruner or use one objective")

    if study_name is None:
        payload = {"spec": net.name, "fixed": overrides,
                   "train": {k: v for k, v in train_kw.items()
                             if k not in ("device", "eval_every", "workers", "data_dir")},
                   "space": space.describe(), "seeds": seeds, "objective": obj.metrics,
                   "sampler": sampler}
        study_name = _study_name(net.name, payload)
    if out is None:
        out = Path("reports") / "sweeps" / study_name
    out = check_output_dir("--out", out, create=True)
    if storage is None:
        storage = f"sqlite:///{(out / 'study.db').resolve()}"
    check_sqlite_url("--storage", storage)

    threads = None
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
    plan = SweepPlan(
        spec=spec_arg, fixed=overrides, train=train_kw, space=space, objective=obj,
        sampler=sampler, pruner=pruner, storage=storage, study_name=study_name,
        out=str(out.resolve()), trials=trials, timeout=timeout, max_flops=flops_limit,
        max_params=params_limit, reuse=reuse, reuse_roots=_reuse_roots(out), workers=workers,
        threads=threads, min_resource=base.eval_every,
        max_resource=base.iters if base.iters is not None else base.eval_every * 10)

    with storage_lock(storage):  # also guards creating the tables of a new SQLite file
        rdb = make_storage(storage)
        study = open_study(plan, rdb, create=True)
        prep = prepare(study, plan)
    before = {t.number for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED}
    n_done = sum(1 for t in study.get_trials(deepcopy=False)
                 if t.state.name in FINISHED and covers(t))
    space_text = ", ".join(f"{k} {v}" for k, v in space.describe().items()) or "(none)"
    console.print(f"sweep {study_name}: {net.name}, {sampler} over {space_text}; "
                  f"objective {', '.join(obj.metrics)}" + (f"; pruner {pruner}" if pruner != "none" else ""),
                  highlight=False, markup=False, soft_wrap=True)
    todo = []
    if prep.recovered:
        todo.append(f"{prep.recovered} trial(s) of a dead worker failed")
    if prep.retried:
        todo.append(f"{prep.retried} interrupted trial(s) queued again")
    if sampler == "grid":
        todo.append(f"{n_done} of {prep.total} grid point(s) done, {prep.waiting} to run")
    else:
        todo.append(f"{n_done} trial(s) done" + (f" of {trials}" if trials else ""))
    console.print("; ".join(todo) + f"; storage {storage}", highlight=False, soft_wrap=True,
                  markup=False)

    deadline = time.time() + timeout if timeout is not None else None
    interrupted = False
    monitor = None
    nothing = sampler == "grid" and prep.waiting == 0 or (
        sampler != "grid" and trials is not None and prep.waiting == 0 and
        sum(1 for t in study.get_trials(deepcopy=False) if t.state.name != "FAIL" or
            t.user_attrs.get("status") not in (None, "running", "interrupted", "killed")) >= trials)
    if nothing:
        console.print("nothing to run: the study is complete")
    else:
        monitor = Monitor(plan, prep.total, before).start()
        try:
            _run_local(plan, deadline)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            monitor.stop()

    study = open_study(plan, make_storage(storage, heartbeat=False), create=False)
    df = study_frame(study, plan)
    atomic_write_text(out / "study.csv", df.to_csv(index=False))
    print_table(df, plan, out)
    if seeds > 1:
        print_seed_summary(study, plan)
    if obj.multi and any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        print_pareto(study, plan)
    elif not obj.multi:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        if done:
            b = min(done, key=lambda t: t.values[0])
            console.print(f"best: trial {b.number} "
                          + " ".join(f"{k}={_fmt(v)}" for k, v in trial_params(b).items())
                          + f"  {obj.metrics[0]} {_fmt(b.values[0])}", highlight=False, markup=False)
    console.print(f"wrote {out / 'study.csv'}; open the study with: optuna-dashboard {storage}",
                  highlight=False, soft_wrap=True, markup=False)
    if interrupted:
        print("resdsl: sweep interrupted; finished runs and the study are kept. Re-run the "
              "same command to continue.", file=sys.stderr)
        raise typer.Exit(130)
