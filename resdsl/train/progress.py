"""What a run shows while it trains.

On a terminal: a rich progress bar with the iteration, training loss and error, images/s and
ETA; the bar itself, the last test error and the run's name are added as the terminal's width
allows, so an 80-column terminal still shows those five fields whole. Elsewhere (a batch job,
``nohup``, a CI log): one line per evaluation and, every ``$RESDSL_PROGRESS_EVERY_S`` seconds
(default 30), a progress line. ``--quiet`` keeps the evaluation lines only. A listener (a
sweep's worker) receives every progress snapshot whatever is shown.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from resdsl.text import seconds_from_env

PROGRESS_ENV = "RESDSL_PROGRESS_EVERY_S"
DEFAULT_PROGRESS_S = 30.0
# live: the bar on a terminal, else evaluation and progress lines; evaluations: evaluation lines
# only (--quiet); nothing: print nothing (the Python API's quiet, a sweep's trials)
SHOW = ("live", "evaluations", "nothing")
BAR_MIN_WIDTH = 10          # the bar is shown only when it gets at least this many characters
TITLE_MAX_WIDTH = 30        # a longer run name is cut with an ellipsis
Listener = Callable[[dict], None]


def progress_every_s() -> float:
    """Seconds between progress lines when the output is not a terminal."""
    return seconds_from_env(PROGRESS_ENV, DEFAULT_PROGRESS_S)


def format_eta(seconds: float | None) -> str:
    """1:02:03 or 2:03 (hours may pass 24); '-' when not known yet."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


# (key, label, format) of the values a line shows when they are known, in order
_TRAIN_FIELDS = (("train_loss", "loss ", "{:.4f}"), ("train_err", "train err ", None))
_EVAL_FIELDS = (("val_err", "val err ", None), ("test_err", "test err ", None),
                ("test_top5_err", "top-5 ", None))


def _known(values: dict, fields) -> list[str]:
    """'label value' for each of ``fields`` that ``values`` holds (a format of None: percent)."""
    return [label + (fmt.format(values[key]) if fmt else _pct(values[key]))
            for key, label, fmt in fields if values.get(key) is not None]


def progress_text(snap: dict) -> str:
    """A progress snapshot as one line: iter 1200/64000  loss 0.5321  train err 18.20%
    1234 img/s  ETA 1:02:03 (fields not known yet are left out, the ETA shows '-')."""
    parts = [f"iter {snap['iter']}/{snap['iters']}", *_known(snap, _TRAIN_FIELDS)]
    if snap.get("images_per_s") is not None:
        parts.append(f"{snap['images_per_s']:.0f} img/s")
    parts.append(f"ETA {format_eta(snap.get('eta_s'))}")
    return "  ".join(parts)


def evaluation_text(row: dict, total: int) -> str:
    """A metrics.jsonl row as one log line."""
    parts = [f"iter {row['iter']}/{total}", f"epoch {row['epoch']:.2f}", f"lr {row['lr']:.4g}"]
    if row.get("train_loss") is not None:       # the training window's loss and error go together
        parts += _known(row, _TRAIN_FIELDS)
    parts += _known(row, _EVAL_FIELDS)
    parts.append(f"{row['images_per_s']:.0f} img/s")
    parts.append(f"{row['elapsed_s']:.0f}s")
    return "  ".join(parts)


class Progress:
    """Shows a run's progress as ``show`` asks (SHOW) and hands every snapshot to ``listener``.

    ``step`` is called every few iterations with the training window's statistics, ``eval``
    with each metrics.jsonl row. The ETA is the remaining iterations at the pace of this
    segment so far, evaluations included.
    """

    def __init__(self, total: int, start: int, show: str, title: str,
                 listener: Listener | None = None, console=None):
        from rich.console import Console

        self.total = total
        self.start = start
        self.listener = listener
        self.console = console if console is not None else Console(stderr=True)
        self.every_s = progress_every_s()
        self.t0 = self.last_line = time.monotonic()
        self.bar = None
        self.eval_lines = show in ("live", "evaluations")
        self.progress_lines = show == "live"
        if show == "live" and self.console.is_terminal:
            self.bar = _make_bar(self.console)
            self.task = self.bar.add_task(title, total=total, completed=start, loss="-", err="-",
                                          ips="-", test="-", eta="-")
            self.bar.start()
            self.eval_lines = self.progress_lines = False

    def eta_s(self, it: int) -> float | None:
        done = it - self.start
        if done <= 0:
            return None
        return (self.total - it) * (time.monotonic() - self.t0) / done

    def step(self, it: int, loss: float | None = None, err: float | None = None,
             ips: float | None = None) -> None:
        snap = {"iter": it, "iters": self.total, "train_loss": loss, "train_err": err,
                "images_per_s": ips, "eta_s": self.eta_s(it)}
        if self.listener is not None:
            self.listener(snap)
        if self.bar is not None:
            fields = {"eta": format_eta(snap["eta_s"])}
            if loss is not None:
                fields["loss"] = f"{loss:.3f}"
            if err is not None:
                fields["err"] = f"{100 * err:.1f}%"
            if ips is not None:
                fields["ips"] = f"{ips:.0f}"
            self.bar.update(self.task, completed=it, **fields)
        if self.progress_lines and time.monotonic() - self.last_line >= self.every_s:
            self._print(progress_text(snap))

    def eval(self, row: dict) -> None:
        test = row.get("test_err")
        if self.bar is not None:
            self.bar.update(self.task, completed=row["iter"],
                            test="-" if test is None else f"{100 * test:.2f}%")
        if self.eval_lines:
            self._print(evaluation_text(row, self.total))

    def _print(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        self.last_line = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _make_bar(console):
    """A rich progress bar whose columns follow the terminal's width (module doc)."""
    from rich.progress import BarColumn
    from rich.progress import Progress as RichProgress
    from rich.progress import TextColumn
    from rich.table import Column

    def text(fmt: str) -> TextColumn:
        return TextColumn(fmt, table_column=Column(no_wrap=True))

    must = [text("{task.completed}/{task.total}"), text("loss {task.fields[loss]}"),
            text("err {task.fields[err]}"), text("{task.fields[ips]} img/s"),
            text("ETA {task.fields[eta]}")]
    bar = BarColumn(bar_width=None, table_column=Column(ratio=1))
    test = text("test {task.fields[test]}")
    title = TextColumn("[bold]{task.description}", table_column=Column(
        no_wrap=True, overflow="ellipsis", max_width=TITLE_MAX_WIDTH))
    order = [title, bar, *must[:-1], test, must[-1]]

    class Bar(RichProgress):
        def make_tasks_table(self, tasks):
            tasks = list(tasks)

            def width(column) -> int:
                return max((column.render(t).cell_len for t in tasks), default=0)

            # the five fields always; then, while there is room, the bar, the test error, the name
            used = sum(width(c) for c in must) + len(must) - 1   # one space between columns
            shown = list(must)
            for column, need in ((bar, BAR_MIN_WIDTH), (test, width(test)),
                                 (title, min(width(title), TITLE_MAX_WIDTH))):
                if used + 1 + need <= console.width:
                    shown.append(column)
                    used += 1 + need
            self.columns = tuple(c for c in order if c in shown)
            self.expand = bar in shown      # without the bar, nothing to stretch
            return super().make_tasks_table(tasks)

    return Bar(*order, console=console, transient=False, expand=True)
