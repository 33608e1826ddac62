"""What a run shows while it trains: a rich progress bar on a terminal, else one log line per
evaluation on stderr (or nothing)."""

from __future__ import annotations

import sys


class Progress:
    """A rich progress bar (ETA, loss, error, images/s), or one log line per evaluation."""

    def __init__(self, total: int, start: int, bar: bool, lines: bool, title: str):
        self.lines = lines
        self.bar = None
        self.total = total
        from rich.console import Console

        self.console = Console(stderr=True)
        if bar and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("loss {task.fields[loss]} err {task.fields[err]} "
                           "{task.fields[ips]} img/s test {task.fields[test]}"),
                console=self.console, transient=False)
            self.task = self.bar.add_task(title, total=total, completed=start, loss="-",
                                          err="-", ips="-", test="-")
            self.bar.start()
            self.lines = False

    def step(self, it: int, loss: float | None = None, err: float | None = None,
             ips: float | None = None) -> None:
        if self.bar is not None:
            kw = {}
            if loss is not None:
                kw["loss"] = f"{loss:.3f}"
            if err is not None:
                kw["err"] = f"{100 * err:.1f}%"
            if ips is not None:
                kw["ips"] = f"{ips:.0f}"
            self.bar.update(self.task, completed=it, **kw)

    def eval(self, row: dict) -> None:
        test = row.get("test_err")
        if self.bar is not None:
            self.bar.update(self.task, completed=row["iter"],
                            test="-" if test is None else f"{100 * test:.2f}%")
        if self.lines:
            parts = [f"iter {row['iter']}/{self.total}", f"epoch {row['epoch']:.2f}",
                     f"lr {row['lr']:.4g}", f"loss {row['train_loss']:.4f}",
                     f"train err {100 * row['train_err']:.2f}%"]
            if row.get("val_err") is not None:
                parts.append(f"val err {100 * row['val_err']:.2f}%")
            if test is not None:
                parts.append(f"test err {100 * test:.2f}%")
            if row.get("test_top5_err") is not None:
                parts.append(f"top-5 {100 * row['test_top5_err']:.2f}%")
            parts.append(f"{row['images_per_s']:.0f} img/s")
            parts.append(f"{row['elapsed_s']:.0f}s")
            print("  ".join(parts), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
