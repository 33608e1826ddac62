"""The Optuna study of a sweep: queue, workers, one trial = one (or K seeds of) `resdsl train` runs.

How trials are scheduled (why no grid point is trained twice and none is lost):

- The command's process prepares the study under a lock (a file lock beside an SQLite storage,
  an advisory lock of a PostgreSQL server):
  it fails the RUNNING trials of dead workers (same host, pid gone; other hosts through Optuna's
  heartbeat), queues a retry of every trial that was interrupted or killed, and, under the grid
  sampler, queues every grid point not yet covered by a trial (``study.enqueue_trial``). A grid
  point is covered by a COMPLETE, PRUNED (rejected ones included), WAITING or RUNNING trial, or
  by one that FAILed for a reason of its own (diverged, raised); so re-running a finished sweep
  queues nothing.
- Workers pop WAITING trials atomically (the storage's WAITING -> RUNNING transition succeeds
  for one caller only). Under tpe/random, a worker with an empty queue asks the sampler for a
  new trial while the study has fewer than --trials designs that count; it counts and asks
  under the same lock, so two workers never both make the last one.
- Under --sampler-seed S, the sampler that draws trial k's design is seeded from (S, k)
  (``trial_seed``): trial numbers are unique in a study, so workers never share a seed. One
  worker whose trainings repeat bit for bit (the same CPU) repeats the study draw for draw;
  a retried trial takes a new number, and TPE past its random start-up learns from results
  in the order they arrive, so several workers, or a sweep interrupted and retried, may not.
- Where a server storage has no such lock (MySQL) and two machines queue the same point at the
  same moment, the later trial is recorded PRUNED as "duplicate" when popped.

Rejected designs: a trial whose design is over --max-flops/--max-params, breaks a ``require`` of
the spec, or whose spec fails to check with its parameters, is told PRUNED with status
``over_budget``, ``constraint`` (the reason is the spec's message) or ``invalid`` and its
reason, before anything is trained. It does not count toward --trials: --trials N means N
trained (or reused) designs, and the sampler is asked again. Each rejection also sets Optuna
constraints (``trial.set_constraint``: how far over each limit it is), so TPE learns where the
admissible designs lie. A worker that sees ``give_up_after`` rejections in a row stops with
EXIT_NO_ADMISSIBLE, and the command reports that the space holds no admissible design it can
find: MAX_REJECTED_IN_A_ROW under tpe, MAX_REJECTED_IN_A_ROW_RANDOM under random, or, once designs
have been admitted, GIVE_UP_GAPS times the draws the study has needed per admitted design.
A rejection for a limit is re-checked against the limits of each later sweep of the study: with
a higher --max-flops the point is no longer taken as covered.

Optuna is used through its public API: the storage object the sweep made itself (its public
methods), trial ids looked up by trial number, ``enqueue_trial``/``add_trial``/``tell``. Two
places use what Optuna keeps for itself, each with its reason in a comment: running a given
queued trial (``optuna.Trial(study, trial_id)``) and reading a queued trial's parameters (the
``fixed_params`` system attribute ``enqueue_trial`` writes).

Every trial records in its user attributes: ``status`` (completed, diverged, failed, pruned,
over_budget, constraint, invalid, duplicate, interrupted, killed), ``reason``, ``run_dir``,
``config_hash``, ``reused_from``, ``params_count``, ``flops``, the final metrics, ``runs`` (one
entry per seed) and, while and after it trains, ``progress`` (its run's latest iteration, loss, ETA:
``Heartbeat``). A single-objective study gets every evaluation of the first seed's run
(``trial.report``; Optuna keeps no intermediate values for several objectives). A run
folder's config.json gets ``"sweep": {"study", "trial", "params"}``.

Reuse: a trial whose content hash (``resdsl.train.config_hash``: spec sources, parameters,
recipe, seed) equals that of a completed run reuses it instead of training. Completed runs are
looked up in the study's own trials and in every run folder (summary.json) under the reuse
roots: by default the ``reports/`` folder above --out (else --out itself), up to 5 levels deep.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import re
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resdsl.errors import ConstraintError, ResdslError, SweepError
from resdsl.io import atomic_write_json
from resdsl.record import first_line, is_completed, read_json, read_metrics
from resdsl.sweep.space import COUNT_METRICS, SEED_PARAM, Objective, SearchSpace
from resdsl.text import format_count

HEARTBEAT_INTERVAL = 10     # seconds between a running trial's heartbeats
# seconds between records of a running trial's progress: a few small writes a minute per worker,
# whatever the iteration rate (several workers share one SQLite file)
PROGRESS_INTERVAL = 5
GRACE_PERIOD = 40           # a RUNNING trial without a heartbeat for this long is dead
MAX_STALE_RETRIES = 3       # heartbeat retries of one trial within a sweep
FINAL_STATUSES = ("completed", "diverged", "failed", "pruned", "over_budget", "constraint",
                  "invalid", "duplicate")
RETRY_STATUSES = (None, "running", "interrupted", "killed")
FINISHED = ("COMPLETE", "PRUNED", "FAIL")   # Optuna trial states of a trial that has ended
REJECTED_STATUSES = ("over_budget", "constraint", "invalid")  # designs refused before training (PRUNED)
# Rejections in a row after which a tpe/random worker stops: each costs a spec check and about
# ten storage commits (0.4 s on a busy disk with SQLite), and by then TPE has had 40 samples
# guided by the constraints after its 10 random ones.
MAX_REJECTED_IN_A_ROW = 50
# The random sampler learns nothing from a rejection, so a sparse space takes as many draws
# before its first admitted design as the space makes it: RegNetX (specs/regnet.net) under
# --max-flops 400M at 224x224 admits about 2 designs in 100, and 50 draws in a row miss them
# one time in three; 500 draws miss them once in 25,000 (and a 1-in-100 space once in 150), and
# take about 2 minutes of rejections with SQLite where the space has no admissible design.
MAX_REJECTED_IN_A_ROW_RANDOM = 500
# Once the study has admitted designs, a worker goes on while its run of rejections is shorter
# than this many times the draws per admitted design so far (a miss by chance: e**-10).
GIVE_UP_GAPS = 10
EXIT_NO_ADMISSIBLE = 3      # a worker's exit code after give_up_after() rejections in a row
# The constraint value of a design whose spec fails to check: farther from admissible for TPE
# than any design that is merely over a limit (those are measured in multiples of the limit).
INVALID_VIOLATION = 1e6
# A design that breaks a `require` of the spec: infeasible by an amount the spec does not say,
# so one limit's worth.
REQUIRE_VIOLATION = 1.0
SCAN_DEPTH = 5              # reports/sweeps/<study>/runs/<run> is 4 levels below reports/


@dataclass
class SweepPlan:
    """Everything a worker needs (picklable: worker processes are spawned)."""

    spec: str
    fixed: dict
    train: dict                      # TrainConfig keyword arguments except spec/overrides/seed
    space: SearchSpace
    objective: Objective
    sampler: str                     # grid | tpe | random
    pruner: str                      # none | median | hyperband | sha
    storage: str
    study_name: str
    out: str
    trials: int | None = None
    timeout: float | None = None
    max_flops: float | None = None
    max_params: float | None = None
    reuse: bool = True
    reuse_roots: list = field(default_factory=list)
    workers: int = 1
    threads: int | None = None
    min_resource: int = 1
    max_resource: int = 1
    prune_startup: int = 3
    network: str = ""                # the checked network's name, for messages
    sampler_seed: int | None = None  # tpe/random: each new trial's draws seeded (make_sampler)


# --------------------------------------------------------------------------- Optuna plumbing

def quiet_optuna() -> None:
    """Optuna's own INFO lines and experimental warnings would drown the sweep's progress."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
    warnings.filterwarnings("ignore", message=".*reported at step.*")
    warnings.filterwarnings("ignore", message=".*GridSampler.*")


CREATE_ATTEMPTS = 5


def make_storage(url: str, heartbeat: bool = True):
    """An Optuna RDB storage (sqlite, postgresql, mysql URL) with heartbeats."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from resdsl.sweep.sqlite import engine_kwargs as sqlite_engine_kwargs
    from resdsl.sweep.storage import shown

    quiet_optuna()
    engine_kwargs: dict = {}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = sqlite_engine_kwargs(path)
    kw: dict = {}
    if heartbeat:
        kw = dict(heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                      max_retry=MAX_STALE_RETRIES))
    from sqlalchemy.exc import IntegrityError, OperationalError

    # Processes that open a new database at the same moment (several sweeps, the command and
    # its workers, a dashboard) race to create its tables: the losers fail on the version row
    # the winner wrote. A moment later the schema is there, so they try again.
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return RDBStorage(url, engine_kwargs=engine_kwargs, **kw)
        except (IntegrityError, OperationalError, optuna.exceptions.StorageInternalError) as e:
            if attempt + 1 < CREATE_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)
                continue
            raise SweepError(f"--storage {shown(url)}: cannot open it ({first_line(e)})") from None
        except Exception as e:  # bad URL, missing driver (psycopg, pymysql), unreachable server
            raise SweepError(f"--storage {shown(url)}: cannot open it ({type(e).__name__}: {e}); "
                             "expected sqlite:///PATH, postgresql://USER@HOST[:PORT]/DB or "
                             "mysql+pymysql://USER@HOST/DB") from None


def make_sampler(plan: SweepPlan, trial_number: int | None = None):
    """The plan's sampler. tpe/random are unseeded unless --sampler-seed S: then the sampler that
    draws trial k's design is seeded from (S, k) (``trial_seed``)."""
    import optuna

    if plan.sampler == "grid":
        return _GridSampler(plan.space.grid(), seed=0)
    seed = None
    if plan.sampler_seed is not None and trial_number is not None:
        seed = trial_seed(plan.sampler_seed, trial_number)
    if plan.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def trial_seed(sampler_seed: int, trial_number: int) -> int:
    """The seed of trial ``trial_number``'s draws under --sampler-seed: a function of the two
    only, so one worker repeats a study draw for draw, while trial numbers, unique in a study,
    keep concurrent workers and machines (and a resumed sweep) from drawing the same designs."""
    digest = hashlib.sha256(f"{sampler_seed}:{trial_number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_pruner(plan: SweepPlan):
    import optuna.pruners as P

    if plan.pruner == "median":
        return P.MedianPruner(n_startup_trials=plan.prune_startup, n_warmup_steps=0)
    if plan.pruner == "hyperband":
        return P.HyperbandPruner(min_resource=plan.min_resource, max_resource=plan.max_resource,
                                 reduction_factor=3)
    if plan.pruner == "sha":
        return P.SuccessiveHalvingPruner(min_resource=plan.min_resource, reduction_factor=3)
    return P.NopPruner()


def _grid_sampler_class():
    from optuna.samplers import GridSampler

    class QuietGrid(GridSampler):
        """GridSampler whose after_trial does nothing: the sweep queues every grid point itself
        and drives the queue with ask/tell, while GridSampler's after_trial would call
        study.stop() (only legal inside study.optimize) and looks up the grid id it assigns
        itself, which enqueued trials do not have."""

        def after_trial(self, study, trial, state, values) -> None:
            return None

    return QuietGrid


def _GridSampler(space, seed=0):
    return _grid_sampler_class()(space, seed=seed)


def open_study(plan: SweepPlan, storage, create: bool):
    import optuna

    kw = dict(storage=storage, study_name=plan.study_name, sampler=make_sampler(plan),
              pruner=make_pruner(plan))
    if not create:
        return optuna.load_study(**kw)
    study = optuna.create_study(directions=plan.objective.directions, load_if_exists=True, **kw)
    meta = study.user_attrs.get("resdsl")
    if meta is None:
        study.set_user_attr("resdsl", {
            "objective": plan.objective.metrics, "spec": plan.spec, "fixed": plan.fixed,
            "train": plan.train, "sampler": plan.sampler, "space": plan.space.describe(),
            "seeds": plan.space.seeds, "out": plan.out, "sampler_seed": plan.sampler_seed})
        with contextlib.suppress(Exception):
            study.set_metric_names(list(plan.objective.metrics))
    elif meta.get("objective") != plan.objective.metrics:
        raise SweepError(f"study {plan.study_name!r} in {plan.storage} optimises "
                         f"{','.join(meta.get('objective') or [])}, not "
                         f"{','.join(plan.objective.metrics)}; choose another --study or --out")
    elif plan.sampler != "grid" and meta.get("sampler_seed") != plan.sampler_seed:
        # one study, one way of drawing: a seeded search continued unseeded (or with another
        # seed) would no longer be the search its seed repeats
        def how(seed):
            return "unseeded" if seed is None else f"with --sampler-seed {seed}"

        raise SweepError(f"study {plan.study_name!r} in {plan.storage} was sampled "
                         f"{how(meta.get('sampler_seed'))}, this sweep {how(plan.sampler_seed)}; "
                         "give the study's, or choose another --study or --out")
    return study


def trial_params(t) -> dict:
    """A trial's parameters, including those only fixed by enqueue_trial so far."""
    # A queued trial has no params yet; enqueue_trial keeps them in this system attribute and
    # Optuna has no public accessor for them.
    return {**t.system_attrs.get("fixed_params", {}), **t.params}


def trial_id(storage, study, number: int) -> int:
    """The storage's id of a study's trial (Optuna's trial objects keep it private)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def point_key(params: dict, names: list[str]) -> tuple:
    return tuple((n, repr(params.get(n))) for n in names)


def is_retryable(t) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.FAIL and t.user_attrs.get("status") in RETRY_STATUSES


def covers(t, plan: SweepPlan | None = None) -> bool:
    """Does this trial account for its grid point (no other trial needed)? With ``plan``, a
    design rejected for a limit that ``plan`` no longer breaks does not."""
    from optuna.trial import TrialState

    if t.user_attrs.get("status") == "duplicate":
        return False
    if t.state == TrialState.FAIL:
        return not is_retryable(t)
    if plan is not None and t.user_attrs.get("status") == "over_budget":
        return bool(over_limits(plan, t.user_attrs.get("flops"), t.user_attrs.get("params_count")))
    return True


def is_rejected(t) -> bool:
    """Was this trial's design refused before training (over a limit, breaking a require, or not
    checking)?"""
    return t.user_attrs.get("status") in REJECTED_STATUSES


def counts_toward_trials(t) -> bool:
    """Is this trial one of the --trials N designs: trained, reused, or still to be (queued or
    running and not rejected yet)? Rejected, duplicate and retried trials are not."""
    return covers(t) and not is_rejected(t)


def give_up_after(plan: SweepPlan, trials) -> int:
    """After how many rejected designs in a row a tpe/random worker stops (see the module doc):
    the sampler's floor, or GIVE_UP_GAPS times the draws per admitted design of ``trials`` (the
    study's), whichever is more. Queued trials, and those not checked yet, are neither."""
    floor = MAX_REJECTED_IN_A_ROW_RANDOM if plan.sampler == "random" else MAX_REJECTED_IN_A_ROW
    # a trial has a status once its design is checked ("running" once admitted)
    admitted = sum(1 for t in trials
                   if counts_toward_trials(t) and t.user_attrs.get("status") is not None)
    if not admitted:
        return floor
    rejected = sum(1 for t in trials if is_rejected(t))
    return max(floor, math.ceil(GIVE_UP_GAPS * (rejected + admitted) / admitted))


def over_limits(plan: SweepPlan, flops, params) -> list[str]:
    """Why a design with these counts breaks the plan's --max-flops/--max-params (empty: it
    does not). Counts that are unknown (None) break nothing."""
    why = []
    for what, limit, value in (("flops", plan.max_flops, flops), ("params", plan.max_params, params)):
        if limit is not None and value is not None and value > limit:
            why.append(f"over --max-{what}: {format_count(value)} > {format_count(limit)} "
                       f"({value:,} > {int(limit):,})")
    return why


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (dead, not yet reaped by its new parent) answers kill(pid, 0) too
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] != "Z"
    except (OSError, ValueError):
        return True


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def storage_lock(url: str):
    """The processes sharing a storage prepare the queue one at a time: a file lock beside an
    SQLite storage, the server's lock for PostgreSQL (resdsl.sweep.storage.server_lock)."""
    if not url.startswith("sqlite:///"):
        from resdsl.sweep.storage import server_lock

        with server_lock(url):
            yield
        return
    import fcntl

    path = Path(url[len("sqlite:///"):] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def enqueue_retry(study, t) -> None:
    """Queue a WAITING copy of an interrupted/killed trial (as Optuna's retry callback does)."""
    import optuna
    from optuna.trial import TrialState

    # not its constraints: the retry sets its own when its design is admitted
    kept = {k: v for k, v in t.system_attrs.items() if not k.startswith("constraints")}
    system_attrs = {"failed_trial": t.number, "retry_history": [], **kept}
    system_attrs["retry_history"] = list(system_attrs["retry_history"]) + [t.number]
    user_attrs = {"retry_of": t.number}
    if t.user_attrs.get("run_dir") and not t.user_attrs.get("reused_from"):
        user_attrs["resume_dir"] = t.user_attrs["run_dir"]
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=t.params, distributions=t.distributions,
        user_attrs=user_attrs, system_attrs=system_attrs))


@dataclass
class Prepared:
    queued: int = 0          # new grid points queued now
    retried: int = 0         # interrupted/killed trials queued again
    recovered: int = 0       # RUNNING trials of dead workers failed now
    waiting: int = 0         # WAITING trials after preparing
    total: int | None = None  # target size of the study (grid points or --trials)


def prepare(study, storage, plan: SweepPlan) -> Prepared:
    """Recover dead workers' trials, queue retries and missing grid points (see module doc).
    ``storage`` is the one the study was opened on."""
    import optuna
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    out = Prepared()
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = str(t.user_attrs.get("worker", ""))
        h, _, pid = w.rpartition(":")
        if h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(Exception):
                tid = trial_id(storage, study, t.number)
                storage.set_trial_user_attr(tid, "status", "killed")
                storage.set_trial_user_attr(tid, "reason", f"its worker process (pid {pid}) died")
                # the storage's RUNNING -> FAIL succeeds once, for one of several preparers
                if storage.set_trial_state_values(tid, state=TrialState.FAIL):
                    out.recovered += 1
    with contextlib.suppress(Exception):
        optuna.storages.fail_stale_trials(study)

    trials = study.get_trials(deepcopy=False)
    retried_numbers: set[int] = set()
    for t in trials:
        retried_numbers.update(RetryFailedTrialCallback.retry_history(t))
    names = plan.space.names
    covered = {point_key(trial_params(t), names) for t in trials if covers(t, plan)}
    n_counting = sum(1 for t in trials if counts_toward_trials(t))
    for t in trials:
        if is_retryable(t) and t.number not in retried_numbers:
            key = point_key(trial_params(t), names)
            if plan.sampler == "grid" and key in covered:
                continue
            enqueue_retry(study, t)
            covered.add(key)
            n_counting += 1
            out.retried += 1
    if plan.sampler == "grid":
        points = plan.space.grid_points()
        out.total = len(points) if plan.trials is None else min(len(points), plan.trials)
        for p in points:
            if plan.trials is not None and n_counting >= plan.trials:
                break
            if point_key(p, names) in covered:
                continue
            study.enqueue_trial(p, user_attrs={"queued_by": worker_id()})
            covered.add(point_key(p, names))
            n_counting += 1
            out.queued += 1
    else:
        out.total = plan.trials
    out.waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    return out


# --------------------------------------------------------------------------- runs

class RunIndex:
    """Completed runs by content hash: the study's own trials, then run folders on disk."""

    def __init__(self, roots: list[str]):
        self.roots = [Path(r) for r in roots]
        self._disk: dict[str, str] | None = None

    def _scan(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            base = len(root.parts)
            for dirpath, dirnames, filenames in os.walk(root):
                if len(Path(dirpath).parts) - base >= SCAN_DEPTH:
                    dirnames[:] = []
                if "summary.json" in filenames:
                    dirnames[:] = []
                    s = read_json(Path(dirpath) / "summary.json")
                    if s and s.get("status") == "completed" and s.get("hash"):
                        found.setdefault(s["hash"], str(Path(dirpath).resolve()))
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        return found

    def find(self, study, h: str) -> str | None:
        for t in study.get_trials(deepcopy=False):
            for run in t.user_attrs.get("runs") or []:
                if run.get("hash") == h and run.get("status") == "completed" and is_completed(run.get("run_dir"), h):
                    return run["run_dir"]
        if self._disk is None:
            self._disk = self._scan()
        d = self._disk.get(h)
        return d if d and is_completed(d, h) else None


def run_dir_name(number: int, params: dict) -> str:
    parts = [f"t{number:04d}"] + [f"{k}={_short(v)}" for k, v in params.items()]
    name = "-".join(parts)
    name = re.sub(r"[^A-Za-z0-9._=+-]", "_", name)
    return name[:120]


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def tag_run(run_dir: Path, study: str, number: int, params: dict) -> None:
    """Add the "sweep" entry to a run's config.json (atomically)."""
    path = Path(run_dir) / "config.json"
    cfg = read_json(path)
    if cfg is None:
        return
    entry = {"study": study, "trial": number, "params": params}
    if cfg.get("sweep") != entry:
        cfg["sweep"] = entry
        atomic_write_json(path, cfg)


class Heartbeat:
    """Records the running trial's heartbeat every HEARTBEAT_INTERVAL seconds, and its training
    progress as the user attribute ``progress`` every PROGRESS_INTERVAL seconds when it changed
    and once more at the end (the sweep's display shows it; so does optuna-dashboard).

    ``listen`` is the training loop's progress listener (``resdsl.train.train(on_progress=)``):
    it only keeps the latest snapshot, so the loop never waits for the storage."""

    def __init__(self, storage, trial_id: int, seed: int | None = None):
        self.storage, self.trial_id, self.seed = storage, trial_id, seed
        self.latest: dict | None = None
        self.published: dict | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def listen(self, snapshot: dict) -> None:
        self.latest = snapshot

    def _publish(self) -> None:
        snapshot = self.latest
        if snapshot is None or snapshot is self.published:
            return
        with contextlib.suppress(Exception):
            self.storage.set_trial_user_attr(self.trial_id, "progress",
                                             {**snapshot, "seed": self.seed})
            self.published = snapshot

    def _run(self) -> None:
        last_beat = time.monotonic()
        while not self.stop.wait(PROGRESS_INTERVAL):
            self._publish()
            if time.monotonic() - last_beat >= HEARTBEAT_INTERVAL:
                last_beat = time.monotonic()
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(self.trial_id)

    def __enter__(self):
        with contextlib.suppress(Exception):
            self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self._publish()
        return False


def _first_line(e: BaseException) -> str:
    if isinstance(e, ResdslError):
        msg = getattr(e, "message", None) or str(e)
    else:
        msg = f"{type(e).__name__}: {e}"
    return msg.strip().splitlines()[0] if msg.strip() else type(e).__name__


class TrialRunner:
    """Runs one popped trial to its end and tells the study the outcome."""

    def __init__(self, plan: SweepPlan, study, storage):
        self.plan = plan
        self.study = study
        self.storage = storage
        self.index = RunIndex(plan.reuse_roots) if plan.reuse else None
        self.out = Path(plan.out)

    def set(self, trial, **attrs) -> None:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)

    def finish(self, trial, state, values=None, **attrs) -> None:
        from optuna.trial import TrialState

        self.set(trial, **attrs)
        if state == TrialState.COMPLETE:
            self.study.tell(trial, values)
        else:
            self.study.tell(trial, state=state)

    def duplicate_of(self, trial, params: dict) -> int | None:
        names = self.plan.space.names
        key = point_key(params, names)
        for t in self.study.get_trials(deepcopy=False):
            if (t.number < trial.number and covers(t, self.plan)
                    and point_key(trial_params(t), names) == key):
                return t.number
        return None

    def reject(self, trial, status: str, reason: str, constraints: dict[str, float]) -> None:
        """Tell the study that this design is not trained (PRUNED, with its status and reason),
        and how far it is from admissible (Optuna constraints: > 0 is infeasible)."""
        from optuna.trial import TrialState

        for key, value in constraints.items():
            trial.set_constraint(key, value)
        self.finish(trial, TrialState.PRUNED, status=status, reason=reason)

    def run(self, trial) -> bool:
        """Run ``trial`` to its end; False when its design was rejected before training."""
        from optuna.trial import TrialState
        from resdsl.spec.analysis import summarize
        from resdsl.train import TrainConfig, config_hash, resolve

        plan = self.plan
        space = plan.space
        params = {d.name: d.suggest(trial) for d in space.dims}
        if space.seed_dim:
            seeds = [trial.suggest_categorical(SEED_PARAM, list(range(space.seeds)))]
        elif plan.sampler == "grid":
            seeds = [0]
        else:
            seeds = list(range(space.seeds))
        # the worker first, so that a dead worker's trial is found; the rest once it is admitted
        # (every attribute is a commit of its own: a rejection is kept to a few)
        self.set(trial, worker=worker_id())
        if plan.sampler == "grid":
            dup = self.duplicate_of(trial, dict(trial.params))
            if dup is not None:
                self.finish(trial, TrialState.PRUNED, status="duplicate",
                            reason=f"grid point already taken by trial {dup}")
                return True
        overrides = dict(plan.fixed)
        train_kw = dict(plan.train)
        for d in space.dims:
            (overrides if d.target == "spec" else train_kw)[d.name] = params[d.name]

        def cfg_for(seed: int):
            return TrainConfig(spec=plan.spec, overrides=overrides, seed=seed, **train_kw)

        try:
            r0 = resolve(cfg_for(seeds[0]))
            ns = summarize(r0.net)
        except ConstraintError as e:  # a design the spec itself does not admit
            self.reject(trial, "constraint", _first_line(e), {"requires": REQUIRE_VIOLATION})
            return False
        except ResdslError as e:
            self.reject(trial, "invalid", _first_line(e), {"checks": INVALID_VIOLATION})
            return False
        self.set(trial, params_count=ns.params, flops=ns.flops)
        # how far over each limit, in multiples of it (<= 0 within it), for TPE
        constraints = {f"max_{what}": value / limit - 1.0 for what, limit, value in (
            ("flops", plan.max_flops, ns.flops), ("params", plan.max_params, ns.params))
            if limit is not None}
        over = over_limits(plan, ns.flops, ns.params)
        if over:
            self.reject(trial, "over_budget", "; ".join(over) + "; not trained", constraints)
            return False
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        self.set(trial, depth=ns.depth, status="running", reason=None,
                 started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        runs: list[dict] = []
        summaries: list[dict] = []
        for i, seed in enumerate(seeds):
            try:
                r = r0 if i == 0 else resolve(cfg_for(seed))
            except ResdslError as e:  # after seed 0 trained: a failure of this trial, not a rejection
                self.finish(trial, TrialState.FAIL, status="failed", reason=_first_line(e))
                return True
            h = config_hash(r)
            tag = dict(trial.params)
            if space.seeds > 1:
                tag[SEED_PARAM] = seed
            run, summary = self.run_one(trial, r, h, tag, seed, report=(i == 0),
                                        runs=runs)
            runs.append(run)
            summaries.append(summary)
            self.set(trial, runs=runs)
            if run["status"] != "completed":
                break
        self.conclude(trial, runs, summaries)
        return True

    def run_one(self, trial, r, h: str, tag: dict, seed: int, report: bool,
                runs: list) -> tuple[dict, dict]:
        from resdsl.train import resume, train

        plan = self.plan
        single = not plan.objective.multi
        metric = plan.objective.metrics[0]
        run = {"seed": seed, "hash": h, "run_dir": None, "status": "running", "reused_from": None}
        first = not runs
        reused = self.index.find(self.study, h) if self.index is not None else None
        if reused is not None:
            summary = read_json(Path(reused) / "summary.json") or {}
            if report and single:
                for row in _rows(Path(reused)):
                    if row.get(metric) is not None:
                        trial.report(float(row[metric]), int(row["iter"]))
            run.update(run_dir=reused, status="completed", reused_from=reused)
            if first:
                self.set(trial, run_dir=reused, config_hash=h, reused_from=reused)
            return run, summary

        resume_dir = None
        cand = trial.user_attrs.get("resume_dir") if first else None
        if cand:
            s = read_json(Path(cand) / "summary.json") or {}
            if (s.get("status") in ("running", "interrupted") and s.get("hash") == h
                    and (Path(cand) / "checkpoint.pt").exists()):
                resume_dir = Path(cand)
        if resume_dir is not None:
            run_dir = resume_dir
        else:
            run_dir = self.out / "runs" / run_dir_name(trial.number, tag)
            k = 1
            while run_dir.exists():
                k += 1
                run_dir = self.out / "runs" / (run_dir_name(trial.number, tag) + f"-{k}")
        run_dir = run_dir.resolve()
        run["run_dir"] = str(run_dir)
        scalars_root = plan.train.get("tensorboard")
        if scalars_root is not None and resume_dir is None:
            # side by side in TensorBoard: one folder per run, named like the run's folder (a
            # resumed run goes on in the folder its request names)
            r = r.with_tensorboard(str(Path(scalars_root) / run_dir.name))
        if first:
            self.set(trial, run_dir=str(run_dir), config_hash=h, reused_from=None)
        self.set(trial, runs=runs + [run])
        tagged = [False]

        def mark() -> None:
            if not tagged[0] and (run_dir / "config.json").exists():
                with contextlib.suppress(OSError, ValueError):
                    tag_run(run_dir, plan.study_name, trial.number, tag)
                    tagged[0] = True

        if resume_dir is not None and report and single:
            for row in _rows(run_dir):
                if row.get(metric) is not None:
                    trial.report(float(row[metric]), int(row["iter"]))

        def on_eval(row: dict) -> bool:
            mark()
            if not (report and single):
                return False
            v = row.get(metric)
            if v is None or not math.isfinite(v):
                return False
            trial.report(float(v), int(row["iter"]))
            return plan.pruner != "none" and trial.should_prune()

        try:
            with Heartbeat(self.storage, trial_id(self.storage, self.study, trial.number),
                           seed) as beat:
                if resume_dir is not None:
                    summary = resume(run_dir, on_eval=on_eval, on_progress=beat.listen,
                                     progress=False, quiet=True)
                else:
                    summary = train(r, run_dir, on_eval=on_eval, on_progress=beat.listen,
                                    progress=False, quiet=True)
        except KeyboardInterrupt:
            mark()
            run["status"] = "interrupted"
            self._interrupted(trial, runs + [run])
            raise
        except Exception as e:
            mark()
            s = read_json(run_dir / "summary.json") or {}
            run["status"] = "failed"
            return run, {"status": "failed", "reason": _first_line(e), **{
                k: v for k, v in s.items() if k not in ("status", "reason")}}
        mark()
        run["status"] = summary.get("status", "failed")
        return run, summary

    def _interrupted(self, trial, runs: list) -> None:
        from optuna.trial import TrialState

        with contextlib.suppress(Exception):
            self.finish(trial, TrialState.FAIL, status="interrupted", runs=runs,
                        reason="interrupted (Ctrl-C); re-run the sweep to continue it")

    def conclude(self, trial, runs: list[dict], summaries: list[dict]) -> None:
        from optuna.trial import TrialState

        plan = self.plan
        last = summaries[-1]
        status = runs[-1]["status"]
        final = last.get("final") or {}
        attrs: dict[str, Any] = {"runs": runs, "wall_s": sum(float(s.get("wall_s") or 0) for s in summaries)}
        for k in ("train_err", "val_err", "test_err"):
            attrs[k] = final.get(k)
        attrs["iters_done"] = last.get("iters_done")
        if status == "pruned":
            self.finish(trial, TrialState.PRUNED, status="pruned",
                        reason=last.get("reason") or "pruned", **attrs)
            return
        if status != "completed":
            reason = last.get("reason") or status
            if status == "diverged":
                reason = f"diverged: {reason}"
            self.finish(trial, TrialState.FAIL, status=status if status in FINAL_STATUSES else "failed",
                        reason=reason, **attrs)
            return
        per_seed: list[list[float]] = []
        for s in summaries:
            vals, missing = objective_values(s, plan.objective.metrics)
            if missing:
                self.finish(trial, TrialState.FAIL, status="failed",
                            reason=f"the run recorded no {missing}", **attrs)
                return
            per_seed.append(vals)
        values = [sum(v[j] for v in per_seed) / len(per_seed) for j in range(len(plan.objective.metrics))]
        if len(per_seed) > 1:
            attrs["seed_values"] = per_seed
        status_name = "completed"
        self.finish(trial, TrialState.COMPLETE, values, status=status_name, reason=None, **attrs)


def objective_values(summary: dict, metrics: list[str]) -> tuple[list[float], str | None]:
    final = summary.get("final") or {}
    vals = []
    for m in metrics:
        v = summary.get(m) if m in COUNT_METRICS else final.get(m)
        if v is None or not math.isfinite(float(v)):
            return [], m
        vals.append(float(v))
    return vals, None


def _rows(run_dir: Path) -> list[dict]:
    try:
        return read_metrics(run_dir)
    except (OSError, ValueError):
        return []


# --------------------------------------------------------------------------- workers

def pop_trial(study, storage, plan: SweepPlan):
    """The next trial to run, or None: a WAITING trial (atomically), else under tpe/random a
    new one while fewer than --trials designs count (rejected ones do not)."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        tid = trial_id(storage, study, t.number)
        try:
            # the storage's WAITING -> RUNNING succeeds for one caller only
            if storage.set_trial_state_values(tid, state=TrialState.RUNNING):
                if plan.sampler_seed is not None:    # whatever a queued trial leaves to draw
                    study.sampler = make_sampler(plan, t.number)
                # study.ask() also pops the queue, but makes a new trial when it is empty (an
                # extra grid point); the public Trial class has no other way to run this one.
                return optuna.Trial(study, tid)
        except UpdateFinishedTrialError:
            continue
    if plan.sampler == "grid":
        return None
    if plan.trials is None:
        return _ask(study, plan)
    # count and ask under the storage's lock: two workers that both saw N-1 counting trials
    # would otherwise both ask, and train N+1
    with storage_lock(plan.storage):
        counting = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_trials(t))
        return None if counting >= plan.trials else _ask(study, plan)


def _ask(study, plan: SweepPlan):
    """A new trial of the sampler (tpe/random). Under --sampler-seed its design is drawn by a
    sampler seeded for its number: both samplers draw at suggest time, after ask has numbered
    the trial (their relative search space is empty: TPE is not multivariate here)."""
    trial = study.ask()
    if plan.sampler_seed is not None:
        study.sampler = make_sampler(plan, trial.number)
        trial.set_user_attr("sampler_seed", plan.sampler_seed)
    return trial


def worker_loop(plan: SweepPlan, deadline: float | None = None) -> bool:
    """Run trials until the queue is empty (or the deadline passes). False when it stopped
    because give_up_after() sampled designs in a row were rejected (tpe/random)."""
    quiet_optuna()
    storage = make_storage(plan.storage)
    study = open_study(plan, storage, create=False)
    runner = TrialRunner(plan, study, storage)
    rejected_in_a_row = 0
    while deadline is None or time.time() < deadline:
        trial = pop_trial(study, storage, plan)
        if trial is None:
            break
        try:
            admitted = runner.run(trial)
            rejected_in_a_row = 0 if admitted else rejected_in_a_row + 1
            # a grid's points are finite and each is rejected once: no need to give up on it
            # (the study is read only once the run is as long as the least limit)
            if (plan.sampler != "grid" and rejected_in_a_row >= MAX_REJECTED_IN_A_ROW
                    and rejected_in_a_row >= give_up_after(plan, study.get_trials(deepcopy=False))):
                return False
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a bug or a storage hiccup: record it, go on
            from optuna.trial import TrialState

            with contextlib.suppress(Exception):
                runner.finish(trial, TrialState.FAIL, status="failed", reason=_first_line(e))
            print(f"trial {trial.number} failed: {_first_line(e)}", file=sys.stderr)
    return True


def worker_main() -> None:
    """Entry point of a worker process (``python -c``; the plan arrives pickled on stdin from the
    parent itself, never from a file others could write). A plain subprocess, so neither torch's
    thread pools nor the storage connection are forked, and the ``python -m resdsl`` entry module
    is not re-run as multiprocessing's spawn would."""
    import pickle

    from resdsl.sweep.supervise import die_with_parent

    die_with_parent()
    if str(os.getppid()) != os.environ.get("RESDSL_SWEEP_PARENT", str(os.getppid())):
        sys.exit(1)                       # the command died before this worker could follow it
    plan, deadline = pickle.load(sys.stdin.buffer)
    if plan.threads:
        import torch

        torch.set_num_threads(plan.threads)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        if not worker_loop(plan, deadline):
            sys.exit(EXIT_NO_ADMISSIBLE)
    except KeyboardInterrupt:
        sys.exit(130)


def start_workers(plan: SweepPlan, deadline: float | None, n: int) -> list:
    """Start n worker processes on this machine; returns the Popen objects."""
    import pickle
    import subprocess

    import resdsl

    payload = pickle.dumps((plan, deadline))
    env = dict(os.environ)
    root = str(Path(resdsl.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["RESDSL_SWEEP_PARENT"] = str(os.getpid())
    code = "from resdsl.sweep.study import worker_main; worker_main()"
    workers = []
    for _ in range(n):
        # a session of its own: signals meant for the command reach workers through it alone
        p = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                             start_new_session=True)
        p.stdin.write(payload)
        p.stdin.close()
        workers.append(p)
    return workers
