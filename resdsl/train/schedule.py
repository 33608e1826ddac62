"""Learning-rate schedules, iteration based and checkpointable as plain numbers.

- multistep (cifar): lr = base * 0.1 ** (milestones passed).
- plateau (imagenet): divide by 10 when the monitored error has not improved by more than
  ``threshold`` for ``patience`` evaluations in a row (like ReduceLROnPlateau, but its whole
  state is a few numbers in the checkpoint).
- warm-up (the paper's 110-layer rule): ``warmup["lr"]`` until the running training error over
  the last ``window`` iterations is below ``until_err`` (mode auto), or for ``max_iters``
  iterations (mode iters); either way at most ``max_iters``.
"""

from __future__ import annotations

from collections import deque


class Schedule:
    def __init__(self, base_lr: float, kind: str, milestones: list[int] | None,
                 plateau: dict | None, warmup: dict | None):
        self.base_lr = float(base_lr)
        self.kind = kind
        self.milestones = list(milestones or [])
        self.plateau = plateau or {}
        self.warmup = warmup
        self.drops = 0                        # plateau: divisions so far
        self.best: float | None = None        # plateau: best monitored error
        self.bad_evals = 0                    # plateau: evaluations without improvement
        self.warming = warmup is not None and warmup["max_iters"] > 0
        self.warmup_ended_at: int | None = None if self.warming else (0 if warmup else None)
        self.window: deque[float] = deque(maxlen=(warmup or {}).get("window") or 1)

    def lr(self, it: int) -> float:
        """Learning rate of the step that starts after ``it`` completed iterations."""
        if self.warming:
            return float(self.warmup["lr"])
        if self.kind == "plateau":
            return self.base_lr * (self.plateau.get("factor", 0.1) ** self.drops)
        passed = sum(1 for m in self.milestones if it >= m)
        return self.base_lr * (0.1 ** passed)

    def observe_train(self, it: int, errors: list[float]) -> None:
        """Per-iteration training errors of the iterations up to ``it`` (completed)."""
        if not self.warming:
            return
        w = self.warmup
        if w["mode"] == "auto":
            self.window.extend(errors)
            full = len(self.window) == self.window.maxlen
            if full and sum(self.window) / len(self.window) < w["until_err"]:
                self._end_warmup(it)
                return
        if it >= w["max_iters"]:
            self._end_warmup(it)

    def _end_warmup(self, it: int) -> None:
        self.warming = False
        self.warmup_ended_at = it

    def observe_eval(self, err: float | None) -> bool:
        """Feed the monitored evaluation error (plateau schedule); True when the lr dropped."""
        if self.kind != "plateau" or err is None:
            return False
        p = self.plateau
        if self.best is None or err < self.best - p.get("threshold", 0.0):
            self.best, self.bad_evals = err, 0
            return False
        self.bad_evals += 1
        if self.bad_evals >= p.get("patience", 3) and self.drops < p.get("max_drops", 3):
            self.drops += 1
            self.bad_evals = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"drops": self.drops, "best": self.best, "bad_evals": self.bad_evals,
                "warming": self.warming, "warmup_ended_at": self.warmup_ended_at,
                "window": list(self.window)}

    def load_state_dict(self, s: dict) -> None:
        self.drops = int(s["drops"])
        self.best = None if s["best"] is None else float(s["best"])
        self.bad_evals = int(s["bad_evals"])
        self.warming = bool(s["warming"])
        self.warmup_ended_at = None if s["warmup_ended_at"] is None else int(s["warmup_ended_at"])
        self.window.clear()
        self.window.extend(float(v) for v in s["window"])
