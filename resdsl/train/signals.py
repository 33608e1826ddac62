"""Stopping a run from outside (Ctrl-C, SIGTERM), even when it is stuck in native code.

The first SIGINT/SIGTERM sets ``StopFlag.hit``; the loop checks it between iterations, writes a
checkpoint and stops cleanly. A Python signal handler only runs when the main thread is back in
the interpreter, so a process stuck in a native kernel (a hung oneDNN barrier) never sees it.
Hence a watchdog thread learns of every signal through ``signal.set_wakeup_fd`` (written by the
C-level handler, whatever the main thread is doing) and ends the process itself when the main
thread does not act in time: a second signal gives it ``SECOND_SIGNAL_WAIT_S``, the first one
``grace_s`` (``$RESDSL_STOP_GRACE_S``, default 30 s). Before ending the process it calls
``on_force(why)`` so the run is recorded as interrupted; the checkpoint of the last completed
evaluation stays valid (checkpoints are replaced atomically).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from typing import Callable

from resdsl.text import seconds_from_env

GRACE_ENV = "RESDSL_STOP_GRACE_S"
DEFAULT_GRACE_S = 30.0
SECOND_SIGNAL_WAIT_S = 2.0   # a responsive main thread raises KeyboardInterrupt well within this
# A terminal's Ctrl-C reaches every process of its group at once, and forked children (data
# loader workers) inherit the wakeup pipe: stop signals this close together are one request.
SAME_SIGNAL_S = 0.25
FORCED_EXIT_CODE = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def grace_seconds() -> float:
    """Seconds a run may take to stop after the first signal before it is ended."""
    return seconds_from_env(GRACE_ENV, DEFAULT_GRACE_S)


class StopFlag:
    """SIGINT/SIGTERM set a flag checked between iterations; a second signal stops at once
    (KeyboardInterrupt), or, when the main thread is stuck, ends the process (module doc)."""

    def __init__(self, on_force: Callable[[str], None] | None = None, grace_s: float | None = None):
        self.hit: str | None = None
        self.on_force = on_force
        self.grace_s = grace_seconds() if grace_s is None else grace_s
        self._old: dict = {}
        self._done = threading.Event()
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup: int | None = None
        self._watchdog: threading.Thread | None = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self   # signals reach the main thread only; its caller handles them
        for sig in STOP_SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):
                pass
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(r)
            os.close(w)
            return self
        self._pipe = (r, w)
        self._watchdog = threading.Thread(target=self._watch, args=(r,), daemon=True,
                                          name="resdsl-stop-watchdog")
        self._watchdog.start()
        return self

    def _handle(self, signum, frame):
        if self.hit is not None:
            raise KeyboardInterrupt
        self.hit = signal.Signals(signum).name

    def _watch(self, fd: int) -> None:
        """Count stop signals from the wakeup pipe; end the process when the main thread does
        not leave the stop-checked region in time."""
        stops = 0
        deadline: float | None = None
        first = ""
        last = -SAME_SIGNAL_S
        while not self._done.is_set():
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            ready, _, _ = select.select([fd], [], [], wait)
            if self._done.is_set():
                return
            if ready:
                try:
                    data = os.read(fd, 64)
                except OSError:
                    return
                for byte in data:
                    now = time.monotonic()
                    if byte in (int(s) for s in STOP_SIGNALS) and now - last >= SAME_SIGNAL_S:
                        last = now
                        stops += 1
                        if stops == 1:
                            first = signal.Signals(byte).name
                            deadline = time.monotonic() + self.grace_s
                        elif stops == 2:
                            deadline = min(deadline, time.monotonic() + SECOND_SIGNAL_WAIT_S)
            if deadline is not None and time.monotonic() >= deadline and not self._done.is_set():
                why = ("a second stop signal arrived" if stops > 1 else
                       f"{first} arrived and the run did not stop within {self.grace_s:g} s")
                self._force(why)

    def _force(self, why: str) -> None:
        try:
            if self.on_force is not None:
                self.on_force(why)
        finally:
            print(f"resdsl: {why} while the run was inside a computation; ended it. The "
                  "checkpoint of its last evaluation is kept.", file=sys.stderr, flush=True)
            os._exit(FORCED_EXIT_CODE)

    def __exit__(self, *exc):
        self._done.set()
        if self._pipe is not None:
            r, w = self._pipe
            try:
                os.write(w, b"\0")   # wake the watchdog
            except OSError:
                pass
            if self._watchdog is not None:
                self._watchdog.join(timeout=5)
            signal.set_wakeup_fd(self._old_wakeup if self._old_wakeup is not None else -1)
            os.close(r)
            os.close(w)
            self._pipe = None
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
        return False
