"""Running a planned sweep on this machine: prepare the study (recover dead workers' trials,
queue retries and missing grid points), then work through its queue with the plan's workers
until it is empty, the --timeout passes or Ctrl-C; progress shows meanwhile.

A design rejected before training (over --max-flops/--max-params, or a spec that does not check)
is not one of the --trials N: a grid with --trials is prepared again for the points the
rejections left over, and a space in which no admissible design is found ends the sweep with a
message (SweepEnd.error).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from resdsl.cli_common import err_console
from resdsl.sweep.display import Monitor, _params_text, print_start
from resdsl.sweep.study import (
    FINISHED, SweepPlan, counts_toward_trials, covers, is_rejected,
    make_storage, open_study, point_key, prepare, start_workers, storage_lock,
    trial_params,
)
from resdsl.sweep.supervise import run_workers
from resdsl.text import format_count


@dataclass
class SweepEnd:
    """How a sweep on this machine ended."""

    interrupted: bool = False    # Ctrl-C: finished runs and the study are kept, a re-run continues
    error: str | None = None     # the study cannot get the designs it was asked for


def run_sweep(plan: SweepPlan) -> SweepEnd:
    """Run what the study still needs (see the module doc)."""
    deadline = time.time() + plan.timeout if plan.timeout is not None else None
    storage = None
    first = True
    while True:
        with storage_lock(plan.storage):  # also guards creating the tables of a new storage
            storage = storage or make_storage(plan.storage)
            study = open_study(plan, storage, create=True)
            prep = prepare(study, storage, plan)
        trials = study.get_trials(deepcopy=False)
        finished = {t.number for t in trials if t.state.name in FINISHED}
        rejected_before = sum(1 for t in trials if is_rejected(t))
        nothing = _nothing_to_run(plan, study, prep.waiting)
        if first:
            print_start(plan, study, prep, nothing)
            first = False
        if nothing:
            break
        monitor = Monitor(plan, prep.total, finished).start()
        try:
            gave_up = _run_workers(plan, deadline)
        except KeyboardInterrupt:
            return SweepEnd(interrupted=True)
        finally:
            monitor.stop()
        if gave_up:
            return SweepEnd(error=_gave_up_message(study, plan))
        # only a grid with --trials has points left to queue, and only after new rejections
        # (each pass rejects at least one of its finitely many points, so this ends)
        if plan.sampler != "grid" or plan.trials is None:
            break
        if sum(1 for t in study.get_trials(deepcopy=False) if is_rejected(t)) == rejected_before:
            break
        if deadline is not None and time.time() >= deadline:
            break
    return SweepEnd(error=_empty_grid_message(study, plan))


def _nothing_to_run(plan: SweepPlan, study, waiting: int) -> bool:
    """No trial queued, and the grid is covered or the study already has --trials designs that
    count (trained or reused; not rejected, interrupted or killed ones)."""
    if waiting:
        return False
    if plan.sampler == "grid":
        return True
    counting = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_trials(t))
    return plan.trials is not None and counting >= plan.trials


def _run_workers(plan: SweepPlan, deadline: float | None) -> bool:
    """Work through the queue with plan.workers worker processes, watched: a worker that dies
    of a native crash fails its trial and is replaced (resdsl.sweep.supervise). True when a
    worker gave up after a run of rejections (resdsl.sweep.study.give_up_after)."""
    return run_workers(plan, deadline, start_workers, err_console)


def _rejected_now(study, plan: SweepPlan) -> list:
    """The study's trials whose design the plan still rejects."""
    return [t for t in study.get_trials(deepcopy=False) if is_rejected(t) and covers(t, plan)]


def _why_rejected(rejected: list, plan: SweepPlan) -> tuple[str, str]:
    """('12 over --max-flops 10M (the smallest 12.3M); ...', 'raise --max-flops ...')."""
    parts, hints = [], []
    for what, limit, attr in (("flops", plan.max_flops, "flops"),
                              ("params", plan.max_params, "params_count")):
        if limit is None:
            continue
        values = [t.user_attrs[attr] for t in rejected if (t.user_attrs.get(attr) or 0) > limit]
        if values:
            parts.append(f"{len(values)} over --max-{what} {format_count(limit)} "
                         f"(the smallest {format_count(min(values))})")
            hints.append(f"raise --max-{what}")
    unmet = [t for t in rejected if t.user_attrs.get("status") == "constraint"]
    if unmet:
        parts.append(f"{len(unmet)} that break a require of the spec, e.g. trial {unmet[0].number} "
                     f"{_params(unmet[0])}: {unmet[0].user_attrs.get('reason')}")
    invalid = [t for t in rejected if t.user_attrs.get("status") == "invalid"]
    if invalid:
        parts.append(f"{len(invalid)} whose spec does not check, e.g. trial {invalid[0].number} "
                     f"{_params(invalid[0])}: {invalid[0].user_attrs.get('reason')}")
    hints.append("narrow the space (fix parameters with --NAME VALUE, or list values with --grid)")
    return "; ".join(parts), " or ".join(hints)


def _params(t) -> str:
    """A trial's parameters as the table shows them (wa=36.44, not wa=36.44201553446822)."""
    return _params_text(t)


def _rejected_in_a_row(study) -> int:
    """The rejected designs at the end of the study, in a row (by trial number)."""
    n = 0
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number, reverse=True):
        if not is_rejected(t):
            break
        n += 1
    return n


def _gave_up_message(study, plan: SweepPlan) -> str:
    why, hint = _why_rejected(_rejected_now(study, plan), plan)
    trained = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_trials(t))
    in_a_row = _rejected_in_a_row(study)
    if not trained:
        return (f"no admissible design found: {in_a_row} sampled designs in a row "
                f"were rejected, none trained ({why}); {hint}")
    of = f" of --trials {plan.trials}" if plan.trials is not None else ""
    return (f"stopped after {in_a_row} sampled designs in a row were rejected "
            f"({why}); {trained}{of} designs trained; the sampler finds few admissible designs: "
            f"{hint}")


def _empty_grid_message(study, plan: SweepPlan) -> str | None:
    """The message when every point of the grid is covered and all of them are rejected."""
    if plan.sampler != "grid":
        return None
    names = plan.space.names
    covering = [t for t in study.get_trials(deepcopy=False) if covers(t, plan)]
    points = {point_key(trial_params(t), names) for t in covering}
    if not covering or any(not is_rejected(t) for t in covering):
        return None
    if len(points) < len(plan.space.grid_points()):
        return None
    why, hint = _why_rejected(covering, plan)
    return f"no grid point is admissible: all {len(points)} were rejected ({why}); {hint}"
