"""What a sweep shows: the opening lines, the live progress (a line per finished trial; on a
terminal a panel of the running trials with their iteration, loss and ETA, elsewhere a progress
line per running trial every $RESDSL_PROGRESS_EVERY_S seconds), and at the end the table (also
study.csv), the per-configuration summary over seeds and the Pareto front or the best trial.

Reads the study through its storage; changes nothing in it.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from resdsl.cli_common import console, fit_table, table_console
from resdsl.io import atomic_write_text
from resdsl.pareto import pareto_front
from resdsl.sweep.storage import shown
from resdsl.sweep.study import (
    FINISHED, REJECTED_STATUSES, Prepared, SweepPlan, counts_toward_trials, covers, is_rejected,
    trial_params,
)
from resdsl.text import csv_frame, format_count
from resdsl.train.progress import progress_every_s, progress_text


def _fmt(v) -> str:
    """A number in a table cell or a progress line: four significant digits, 3.1e-05 for tiny."""
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def _params_text(t) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in trial_params(t).items())


def _front(done: list) -> list:
    """The COMPLETE trials on the Pareto front of their objective values, best first."""
    return [done[i] for i in pareto_front([t.values for t in done])]


def _print(text: str) -> None:
    console.print(text, highlight=False, soft_wrap=True, markup=False)


# --------------------------------------------------------------------------- the start

def print_start(plan: SweepPlan, study, prep: Prepared, nothing_to_run: bool) -> None:
    """What is swept and what is left to do."""
    trials = study.get_trials(deepcopy=False)
    # grid: a rejected point is accounted for (nothing to train); tpe/random: --trials counts
    # the designs trained, so rejected samples are not among the done
    counted = (lambda t: covers(t, plan)) if plan.sampler == "grid" else counts_toward_trials
    n_done = sum(1 for t in trials if t.state.name in FINISHED and counted(t))
    n_rejected = sum(1 for t in trials if is_rejected(t))
    space_text = ", ".join(f"{k} {v}" for k, v in plan.space.describe().items()) or "(none)"
    sampler = plan.sampler + (f" (seed {plan.sampler_seed})" if plan.sampler_seed is not None else "")
    _print(f"sweep {plan.study_name}: {plan.network}, {sampler} over {space_text}; "
           f"objective {', '.join(plan.objective.metrics)}"
           + (f"; pruner {plan.pruner}" if plan.pruner != "none" else ""))
    todo = []
    if prep.recovered:
        todo.append(f"{prep.recovered} trial(s) of a dead worker failed")
    if prep.retried:
        todo.append(f"{prep.retried} interrupted trial(s) queued again")
    if plan.sampler == "grid":
        todo.append(f"{n_done} of {prep.total} grid point(s) done, {prep.waiting} to run")
    else:
        todo.append(f"{n_done} trial(s) done" + (f" of {plan.trials}" if plan.trials else ""))
    if n_rejected:
        todo.append(f"{n_rejected} design(s) rejected before training")
    _print("; ".join(todo) + f"; storage {shown(plan.storage)}")
    if nothing_to_run:
        console.print("nothing to run: the study is complete")


# --------------------------------------------------------------------------- progress

class Monitor:
    """Polls the storage once a second: a line per finished trial; on a terminal also a live
    panel (running trials with their parameters and progress, done/pruned/failed counts, best
    so far), elsewhere a progress line per running trial every progress_every_s() seconds.

    A trial's progress is the ``progress`` user attribute its worker records every few seconds
    (resdsl.sweep.study.Heartbeat)."""

    def __init__(self, plan: SweepPlan, total: int | None, skip: set[int]):
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
        self.every_s = progress_every_s()
        self.progress_shown: dict[int, tuple[float, dict]] = {}   # trial -> (when, what) last shown
        self.started = time.monotonic()

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
            else:
                self._progress_lines(trials)

    def _progress_lines(self, trials) -> None:
        """Not on a terminal: each running trial's progress, at most every self.every_s
        seconds, when it changed."""
        now = time.monotonic()
        for t in trials:
            progress = t.user_attrs.get("progress")
            if t.state.name != "RUNNING" or not progress:
                continue
            when, shown = self.progress_shown.get(t.number, (self.started, None))
            if progress != shown and now - when >= self.every_s:
                self.progress_shown[t.number] = (now, progress)
                _print(f"trial {t.number} running  {_params_text(t)}  {self._progress(t)}")

    def _progress(self, t) -> str:
        """A running trial's training progress and last reported objective value."""
        parts = []
        progress = t.user_attrs.get("progress")
        if progress:
            if self.plan.space.seeds > 1 and not self.plan.space.seed_dim:
                parts.append(f"seed {progress.get('seed')}")
            parts.append(progress_text(progress))
        steps = t.intermediate_values
        if steps:
            it = max(steps)
            parts.append(f"{self.plan.objective.metrics[0]} {_fmt(steps[it])} at iter {it}")
        return "  ".join(parts)

    def _counts(self, trials) -> str:
        from resdsl.sweep.study import is_retryable

        by = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
        retry = rejected = 0
        for t in trials:
            if is_retryable(t):
                retry += 1
            elif is_rejected(t):         # refused before training: not one of the trials
                rejected += 1
            else:
                by[t.state.name] = by.get(t.state.name, 0) + 1
        done = by["COMPLETE"] + by["PRUNED"] + by["FAIL"]
        total = f"/{self.total}" if self.total else ""
        best = self._best(trials)
        return (f"[{done}{total} done: {by['COMPLETE']} complete, {by['PRUNED']} pruned, "
                f"{by['FAIL']} failed" + (f", {retry} interrupted or killed" if retry else "")
                + (f", {rejected} rejected" if rejected else "")
                + f"; {by['RUNNING']} running, {by['WAITING']} queued"
                + (f"; best {best}" if best else "") + "]")

    def _best(self, trials) -> str | None:
        done = [t for t in trials if t.state.name == "COMPLETE" and t.values]
        if not done:
            return None
        if self.plan.objective.multi:
            return f"{len(_front(done))} on the Pareto front"
        b = min(done, key=lambda t: t.values[0])
        return f"{self.plan.objective.metrics[0]} {_fmt(b.values[0])} (trial {b.number})"

    def _line(self, t, trials) -> str:
        status = t.user_attrs.get("status") or t.state.name.lower()
        if t.state.name == "COMPLETE":
            what = "  ".join(f"{m} {_fmt(v)}" for m, v in zip(self.plan.objective.metrics, t.values))
            if t.user_attrs.get("reused_from"):
                what += "  (reused)"
        else:
            what = t.user_attrs.get("reason") or ""
        return f"trial {t.number} {status}  {_params_text(t)}  {what}  {self._counts(trials)}"

    def _panel(self, trials):
        from rich.panel import Panel
        from rich.text import Text

        lines = []
        for t in trials:
            if t.state.name == "RUNNING":
                progress = self._progress(t)
                lines.append(f"running trial {t.number}: {_params_text(t)}"
                             + (f"\n  {progress}" if progress else ""))
        lines.append(self._counts(trials))
        return Panel(Text("\n".join(lines)), title=f"sweep {self.plan.study_name}", expand=False)


# --------------------------------------------------------------------------- the end

def show_results(plan: SweepPlan) -> None:
    """Write study.csv and print the table, the summary over seeds, and the Pareto front (two
    or more objectives) or the best trial."""
    from resdsl.sweep.study import make_storage, open_study

    out = Path(plan.out)
    study = open_study(plan, make_storage(plan.storage, heartbeat=False), create=False)
    df = study_frame(study, plan)
    atomic_write_text(out / "study.csv", csv_frame(df).to_csv(index=False))
    print_table(df, plan, out)
    if plan.space.seeds > 1:
        print_seed_summary(study, plan)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if plan.objective.multi and done:
        print_pareto(study, plan)
    elif not plan.objective.multi and done:
        b = min(done, key=lambda t: t.values[0])
        console.print(f"best: trial {b.number} {_params_text(b)}  {plan.objective.metrics[0]} "
                      f"{_fmt(b.values[0])}", highlight=False, markup=False)
    _print(f"wrote {out / 'study.csv'}; open the study with: optuna-dashboard {shown(plan.storage)}")


def study_frame(study, plan: SweepPlan):
    """One row per trial: parameters, state, objective(s), counts, run folder, reason."""
    import pandas as pd

    names = plan.space.names
    rows = []
    for t in study.get_trials(deepcopy=False):
        p = trial_params(t)
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


# Rejected designs the result table of a tpe/random study lists: a sparse space (RegNetX under
# --max-flops) rejects dozens per design it trains; study.csv lists them all.
SHOWN_REJECTED = 10


def print_table(df, plan: SweepPlan, out: Path) -> None:
    from rich.table import Table
    from rich.text import Text

    if df.empty:
        console.print("the study has no trials yet")
        return
    left_out = None
    rejected = df["status"].isin(REJECTED_STATUSES)
    if plan.sampler != "grid" and rejected.sum() > SHOWN_REJECTED:
        # the first few rejected designs, and every design trained (a grid's rejected points
        # are points it was asked for: all shown)
        hidden = rejected & (rejected.cumsum() > SHOWN_REJECTED)
        left_out = df.loc[hidden, "status"].value_counts()
        df = df.loc[~hidden]
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
            elif c == "state" and _val(r["status"]) in REJECTED_STATUSES:
                v = f"rejected ({r['status']})"
            elif c == "state":
                v = r["state"] if _val(r["status"]) in (None, "completed", "pruned") or r["state"] == "COMPLETE" \
                    else f"{r['state']} ({r['status']})"
            elif c in ("params", "flops"):
                v = "-" if _isnull(r[c]) else format_count(r[c])
            else:
                v = "-" if _isnull(r[c]) else _fmt(r[c])
            cells.append(Text(str(v)))
        table.add_row(*cells)
    _print_fitted(table, breakable=("run / reason",))
    if left_out is not None:
        n = int(left_out.sum())
        _print(f"{n} more design(s) rejected before training are not shown ("
               + ", ".join(f"{int(k)} {status}" for status, k in left_out.items())
               + f"); {out / 'study.csv'} lists every trial")


def _print_fitted(table, breakable: tuple[str, ...]) -> None:
    """A result table on stdout, no word folded where the width allows (a path may fold)."""
    out = table_console()
    fit_table(table, out, breakable=breakable)
    out.print(table)


def _val(v):
    """A table cell's value, None for pandas' missing values."""
    return None if _isnull(v) else v


def _isnull(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def print_seed_summary(study, plan: SweepPlan) -> None:
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
        p = {k: v for k, v in trial_params(t).items() if k != SEED_PARAM}
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
    _print_fitted(table, breakable=("configuration",))


def print_pareto(study, plan: SweepPlan) -> None:
    from rich.table import Table
    from rich.text import Text

    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    table = Table(title=f"Pareto front ({', '.join(plan.objective.metrics)}; all minimised)")
    table.add_column("trial", justify="right")
    table.add_column("parameters")
    for m in plan.objective.metrics:
        table.add_column(m, justify="right")
    for t in _front(done):
        table.add_row(str(t.number), Text(_params_text(t)),
                      *[format_count(v) if m in ("flops", "params") else _fmt(v)
                        for m, v in zip(plan.objective.metrics, t.values)])
    _print_fitted(table, breakable=("parameters",))
