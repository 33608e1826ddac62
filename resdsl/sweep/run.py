"""Running a planned sweep on this machine: prepare the study (recover dead workers' trials,
queue retries and missing grid points), then work through its queue with the plan's workers
until it is empty, the --timeout passes or Ctrl-C; progress shows meanwhile.
"""

from __future__ import annotations

import time

from resdsl.cli_common import err_console
from resdsl.sweep.display import Monitor, print_start
from resdsl.sweep.study import (
    FINISHED, SweepPlan, is_retryable, make_storage, open_study, prepare, start_workers,
    storage_lock,
)
from resdsl.sweep.supervise import run_workers


def run_sweep(plan: SweepPlan) -> bool:
    """Run what the study still needs; True when Ctrl-C interrupted it (finished runs and the
    study are kept, a re-run continues)."""
    with storage_lock(plan.storage):  # also guards creating the tables of a new SQLite file
        storage = make_storage(plan.storage)
        study = open_study(plan, storage, create=True)
        prep = prepare(study, storage, plan)
    finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED}
    nothing = _nothing_to_run(plan, study, prep.waiting)
    print_start(plan, study, prep, nothing)
    if nothing:
        return False
    deadline = time.time() + plan.timeout if plan.timeout is not None else None
    monitor = Monitor(plan, prep.total, finished).start()
    try:
        _run_workers(plan, deadline)
    except KeyboardInterrupt:
        return True
    finally:
        monitor.stop()
    return False


def _nothing_to_run(plan: SweepPlan, study, waiting: int) -> bool:
    """No trial queued, and the grid is covered or the study already has --trials trials that
    count (all but the interrupted or killed ones, which are retried)."""
    if waiting:
        return False
    if plan.sampler == "grid":
        return True
    counting = sum(1 for t in study.get_trials(deepcopy=False) if not is_retryable(t))
    return plan.trials is not None and counting >= plan.trials


def _run_workers(plan: SweepPlan, deadline: float | None) -> None:
    """Work through the queue with plan.workers worker processes, watched: a worker that dies
    of a native crash fails its trial and is replaced (resdsl.sweep.supervise)."""
    run_workers(plan, deadline, start_workers, err_console)
