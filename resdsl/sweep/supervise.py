"""A local sweep's worker processes, watched by the command's process.

Trials always train in worker processes, never in the command's own: a native crash (a signal
from inside torch or a library) then ends one worker, not the sweep. The watcher records the
dead worker's trial as failed with the signal, in the study and in the run's summary.json, and
starts another worker while trials remain, so the sweep goes on.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from resdsl.io import atomic_write_json

# Signals that a process sends itself when native code breaks: the trial failed for a reason of
# its own, and running it again would break again. SIGKILL and SIGTERM come from outside (the
# OOM killer, a person, a scheduler): such a trial is "killed" and is retried on a re-run.
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}
POLL_S = 0.5


def describe_exit(returncode: int) -> str:
    """'SIGSEGV (a native crash)', 'SIGKILL', 'exit code 3'."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return sig.name + (" (a native crash)" if sig in CRASH_SIGNALS else "")
    return f"exit code {returncode}"


def _is_crash(returncode: int) -> bool:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-returncode) in CRASH_SIGNALS
        return False
    return returncode not in (0, 130)   # 130: the worker was interrupted and recorded it itself


def record_dead_worker(plan, pid: int, returncode: int) -> list[int]:
    """Fail the RUNNING trials of worker ``pid`` (this host) after it ended with ``returncode``;
    returns their numbers. A crash is final (status failed); a kill is retried on a re-run."""
    from optuna.trial import TrialState

    from resdsl.sweep.study import make_storage, open_study, trial_id

    how = describe_exit(returncode)
    crash = _is_crash(returncode)
    status = "failed" if crash else "killed"
    reason = f"its worker process (pid {pid}) died: {how}"
    storage = make_storage(plan.storage, heartbeat=False)
    study = open_study(plan, storage, create=False)
    me = f"{socket.gethostname()}:{pid}"
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if str(t.user_attrs.get("worker", "")) != me:
            continue
        runs = t.user_attrs.get("runs") or []
        run_dir = (runs[-1].get("run_dir") if runs else None) or t.user_attrs.get("run_dir")
        if run_dir:
            _mark_run(Path(run_dir), "failed" if crash else "interrupted", reason)
        tid = trial_id(storage, study, t.number)
        storage.set_trial_user_attr(tid, "status", status)
        storage.set_trial_user_attr(tid, "reason", reason)
        if storage.set_trial_state_values(tid, state=TrialState.FAIL):
            failed.append(t.number)
    return failed


def _mark_run(run_dir: Path, status: str, reason: str) -> None:
    """The run's summary.json still says running: say how it ended (the checkpoint is kept)."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if summary.get("status") == "running":
        summary.update(status=status, reason=reason)
        atomic_write_json(path, summary)


def run_workers(plan, deadline: float | None, start_workers, err_console) -> bool:
    """Run plan.workers worker processes until the queue is empty, replacing any that dies
    abnormally while trials remain; True when a worker stopped because every design it sampled
    was rejected (resdsl.sweep.study.EXIT_NO_ADMISSIBLE). Ctrl-C here is passed on to the
    workers, which record their trials as interrupted; it is re-raised once they are done."""
    from resdsl.sweep.study import EXIT_NO_ADMISSIBLE

    # a sweep started in the background by a script inherits SIGINT ignored (POSIX shells do
    # that to `cmd &`): Ctrl-C or `kill -INT` should still stop it cleanly, as it stops a train
    main = threading.current_thread() is threading.main_thread()   # only it may set handlers
    old_sigint = signal.signal(signal.SIGINT, signal.default_int_handler) if main else None
    procs = start_workers(plan, deadline, plan.workers)
    replacements = 0
    gave_up = False
    try:
        while procs:
            time.sleep(POLL_S)
            for p in [p for p in procs if p.poll() is not None]:
                procs.remove(p)
                if p.returncode == 0:
                    continue
                if p.returncode == EXIT_NO_ADMISSIBLE:  # it told its trials; not a crash
                    gave_up = True
                    continue
                numbers = record_dead_worker(plan, p.pid, p.returncode)
                what = f"trial(s) {', '.join(map(str, numbers))}" if numbers else "no trial"
                err_console.print(f"resdsl: a worker process ended with {describe_exit(p.returncode)}; "
                                  f"{what} recorded as failed", highlight=False, markup=False, soft_wrap=True)
                expired = deadline is not None and time.time() >= deadline
                # every abnormal end took at most one trial with it: bounded by the study's size
                if not expired and p.returncode != -signal.SIGINT and replacements < _max_replacements(plan):
                    replacements += 1
                    procs.extend(start_workers(plan, deadline, 1))
    except KeyboardInterrupt:
        # workers run in sessions of their own (a terminal's Ctrl-C reaches only this process):
        # pass it on once, and let each checkpoint and record its trial as interrupted
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except Exception:
                p.terminate()
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, old_sigint)
    return gave_up


def _max_replacements(plan) -> int:
    return 10 * plan.workers + (plan.trials or 0) + len(plan.space.grid_points() if plan.sampler == "grid" else [])


def die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the command's process dies (even by SIGKILL), so no
    orphan trains on; the next sweep then finds its trial's worker dead and retries it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
