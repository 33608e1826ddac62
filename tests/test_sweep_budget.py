"""`resdsl sweep --max-flops/--max-params`: rejected designs are not trials. --trials N gives N
trained designs under tpe and random; a space with no admissible design stops with a message and
exit code 2; a grid trains its admissible points and lists the others as rejected.

On synthetic data with a tiny 16x16 net whose multiply-adds and validity depend on its
parameters (the counts below are what resdsl.spec.analysis gives for this spec).
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.errors import SweepError
from resdsl.sweep.study import give_up_after
from resdsl.text import format_count

from conftest import REPO, run_cli

runner = CliRunner()

# conv groups=3 needs a width divisible by 3: width 4 and 16 with g=3 do not check.
SPEC = """import "prelude"

param n = 1 in 1..3
param width = 6 in [4, 6, 12, 16]
param g = 1 in [1, 3]

network budget {
  input 3x16x16
  classes 4
  stem conv1 { conv(width, 3); bn; relu; conv(width, 3, groups=g); bn; relu }
  stage s1: basic(width) x n
  stage s2: basic(2 * width) x n stride 2
  head { avgpool; fc(classes) }
}
"""
# Multiply-adds of some designs: (n, width, g) -> flops.
FLOPS = {(1, 4, 1): 195616, (2, 4, 1): 343072, (1, 16, 1): 2797696, (3, 16, 1): 7516288,
         (3, 12, 3): 4027488}
LIMIT = "1M"   # 7 of the 24 designs are within it, 6 do not check, 11 are over it
FAST = ["--data", "synthetic", "--device", "cpu", "--batch-size", "16", "--iters", "10",
        "--eval-every", "5", "--no-reuse"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("budget") / "budget.net"
    path.write_text(SPEC)
    return path


def sweep(*args):
    r = runner.invoke(app, ["sweep", *map(str, args)], terminal_width=200)
    if r.exit_code != 0:
        raise AssertionError(f"exit {r.exit_code}\n{r.output}\n{r.exception!r}")
    return r


def cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "resdsl", "sweep", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def load(out: Path) -> optuna.Study:
    storage = f"sqlite:///{out / 'study.db'}"
    names = optuna.get_all_study_names(storage=storage)
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=storage)


def run_dirs(out: Path) -> list[Path]:
    return sorted((out / "runs").iterdir()) if (out / "runs").exists() else []


def design(t) -> tuple:
    p = t.params or t.system_attrs.get("fixed_params", {})
    return p.get("n", 1), p.get("width", 6), p.get("g", 1)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_trials_counts_trained_designs_only(spec, tmp_path, sampler):
    """Three designs the sampler must reject come first (queued by hand: two over the limit, one
    that does not check); --trials 3 still trains three designs within the limit."""
    out = tmp_path / sampler
    name = f"budget-{sampler}"
    queued = [{"n": 3, "width": 16, "g": 1}, {"n": 1, "width": 4, "g": 3},
              {"n": 3, "width": 12, "g": 3}]
    out.mkdir()
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    for p in queued:
        study.enqueue_trial(p)
    r = sweep(spec, "--sampler", sampler, "--trials", 3, "--max-flops", LIMIT, *FAST,
              "--study", name, "--out", out)

    trials = load(out).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    rejected = [t for t in trials if t.state.name == "PRUNED"]
    assert len(complete) == 3, [(t.number, t.state.name, t.user_attrs.get("reason")) for t in trials]
    assert len(complete) + len(rejected) == len(trials)
    assert [t.params for t in trials[:3]] == queued
    assert [t.user_attrs["status"] for t in trials[:3]] == ["over_budget", "invalid", "over_budget"]
    assert trials[0].user_attrs["reason"] == (
        "over --max-flops: 7.52M > 1M (7,516,288 > 1,000,000); not trained")
    assert trials[1].user_attrs["reason"].startswith("conv groups=3 must divide both its input "
                                                     "channels (4)")
    assert trials[2].user_attrs["flops"] == FLOPS[(3, 12, 3)]
    for t in complete:
        assert t.user_attrs["flops"] <= 1e6 and t.user_attrs["status"] == "completed"
        summary = json.loads((Path(t.user_attrs["run_dir"]) / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["flops"] == t.user_attrs["flops"]
    for t in rejected:
        assert t.user_attrs["status"] in ("over_budget", "invalid")
        assert t.user_attrs.get("run_dir") is None
        if t.user_attrs["status"] == "over_budget":
            assert t.user_attrs["flops"] > 1e6
        assert max(t.constraints.values()) > 0
    # how far over the limit, for TPE: 7.52M is 6.52 limits over it
    assert trials[0].constraints == {"max_flops": pytest.approx(7516288 / 1e6 - 1)}
    assert all(t.constraints["max_flops"] <= 0 for t in complete)
    assert len(run_dirs(out)) == 3
    assert "over --max-flops" in r.output

    # the study has its three designs: a re-run trains nothing
    again = sweep(spec, "--sampler", sampler, "--trials", 3, "--max-flops", LIMIT, *FAST,
                  "--study", name, "--out", out)
    assert "nothing to run" in again.output and len(load(out).trials) == len(trials)


def test_no_admissible_design_stops_with_a_message(spec, tmp_path):
    """Every design of the space is over --max-flops 100k (the smallest is 196K) or does not
    check: the sweep stops after 50 rejections in a row, exit 2, nothing trained."""
    out = tmp_path / "none"
    p = cli(spec, "--sampler", "tpe", "--trials", 3, "--max-flops", "100k", *FAST, "--out", out)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    message = p.stderr.strip().splitlines()[-1]
    assert message.startswith("no admissible design found: 50 sampled designs in "
                              "a row were rejected, none trained ("), message
    assert "raise --max-flops or narrow the space" in message
    trials = load(out).trials
    assert len(trials) == 50
    assert all(t.state.name == "PRUNED" and t.user_attrs["status"] in ("over_budget", "invalid")
               for t in trials)
    over = [t.user_attrs["flops"] for t in trials if t.user_attrs["status"] == "over_budget"]
    assert f"{len(over)} over --max-flops 100K (the smallest {format_count(min(over))})" in message
    assert run_dirs(out) == []
    # the rejected designs are listed in the table (and study.csv)
    assert (out / "study.csv").read_text().count(",PRUNED,") == 50


def test_grid_trains_the_admissible_points_and_lists_the_rest(spec, tmp_path):
    """Of 8 points, 2 are over the limit and 4 do not check (groups 3 with widths 4 and 16,
    though each value checks alone): 2 are trained, the other 6 listed as rejected."""
    out = tmp_path / "grid"
    r = sweep(spec, "--grid", "n=1,3", "--grid", "width=4,16", "--grid", "g=1,3",
              "--max-flops", LIMIT, *FAST, "--out", out)
    trials = {design(t): t for t in load(out).trials}
    assert len(trials) == 8
    assert {d for d, t in trials.items() if t.state.name == "COMPLETE"} == {(1, 4, 1), (3, 4, 1)}
    for d in ((1, 16, 1), (3, 16, 1)):
        t = trials[d]
        assert t.state.name == "PRUNED" and t.user_attrs["status"] == "over_budget"
        assert t.user_attrs["flops"] == FLOPS[d] and t.user_attrs.get("run_dir") is None
    for d in ((1, 4, 3), (1, 16, 3), (3, 4, 3), (3, 16, 3)):
        t = trials[d]
        assert t.state.name == "PRUNED" and t.user_attrs["status"] == "invalid"
        assert t.user_attrs["reason"].startswith(f"conv groups=3 must divide both its input "
                                                 f"channels ({d[1]})")
    assert sorted(d.name for d in run_dirs(out)) == ["t0000-n=1-width=4-g=1",
                                                     "t0004-n=3-width=4-g=1"]
    assert "over --max-flops: 2.8M > 1M" in r.output and "over --max-flops: 7.52M > 1M" in r.output
    csv = (out / "study.csv").read_text()
    assert csv.count(",PRUNED,over_budget,") == 2 and csv.count(",PRUNED,invalid,") == 4


def test_grid_trials_counts_trained_points(spec, tmp_path):
    """--trials 2 on a grid whose first two points are over the limit: the next two are queued
    and trained."""
    out = tmp_path / "grid-trials"
    sweep(spec, "--grid", "width=16,4", "--grid", "n=1,2", "--trials", 2, "--max-flops", LIMIT,
          *FAST, "--out", out)
    trials = load(out).trials
    assert [(design(t), t.state.name) for t in trials] == [
        ((1, 16, 1), "PRUNED"), ((2, 16, 1), "PRUNED"), ((1, 4, 1), "COMPLETE"),
        ((2, 4, 1), "COMPLETE")]


def test_grid_with_no_admissible_point_stops_and_a_higher_limit_trains_it(spec, tmp_path):
    out = tmp_path / "grid-none"
    args = [spec, "--grid", "n=1,2", "--grid", "width=4", *FAST, "--out", out]
    p = cli(*args, "--max-flops", "150k")
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.strip().splitlines()[-1] == (
        "no grid point is admissible: all 2 were rejected (2 over --max-flops 150K "
        "(the smallest 196K)); raise --max-flops or narrow the space (fix parameters with "
        "--NAME VALUE, or list values with --grid)")
    assert run_dirs(out) == []
    # the same study with a higher limit: n=1 (196K) is now admissible, n=2 (343K) is not
    sweep(*args, "--max-flops", "200k")
    trials = load(out).trials
    assert [(design(t), t.state.name, t.user_attrs["status"]) for t in trials] == [
        ((1, 4, 1), "PRUNED", "over_budget"), ((2, 4, 1), "PRUNED", "over_budget"),
        ((1, 4, 1), "COMPLETE", "completed")]
    assert [d.name for d in run_dirs(out)] == ["t0002-n=1-width=4"]


def test_the_limit_must_be_a_count(spec, tmp_path):
    r = runner.invoke(app, ["sweep", str(spec), "--grid", "n=1,2", "--data", "synthetic",
                            "--max-flops", "0", "--out", str(tmp_path / "bad")])
    assert isinstance(r.exception, SweepError) and "positive count" in str(r.exception)
    assert not (tmp_path / "bad").exists()


# ---- the spec's own constraints: designs a `require` refuses are rejected, not trained ----
REQUIRE_SPEC = """import "prelude"

param n = 1 in 1..3
param width = 8 in [4, 8, 16]

require width * n <= 16, "width " + str(width) + " with n = " + str(n) + " is over the budget (width * n <= 16)"

network req {
  input 3x16x16
  classes 4
  stem conv1 { conv(width, 3); bn; relu }
  stage s1: basic(width) x n
  stage s2: basic(2 * width) x n stride 2
  head { avgpool; fc(classes) }
}
"""


def unmet(width: int, n: int) -> str:
    """The spec's message for a design its require refuses."""
    return f"width {width} with n = {n} is over the budget (width * n <= 16)"


@pytest.fixture(scope="module")
def require_spec(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("require") / "req.net"
    path.write_text(REQUIRE_SPEC)
    return path


def test_a_grid_trains_the_points_its_requires_admit(require_spec, tmp_path):
    """--n 3 fixes a design (n=3 with the default width 8) that the require refuses, as is width=8
    with the default n: neither stops the sweep. Of width 4, 8, 16 only 4 is trained; the others
    are rejected with the spec's message, as designs over a limit are."""
    out = tmp_path / "grid"
    r = sweep(require_spec, "--n", 3, "--grid", "width=4,8,16", *FAST, "--out", out)
    trials = load(out).trials
    assert [(t.params["width"], t.state.name, t.user_attrs["status"]) for t in trials] == [
        (4, "COMPLETE", "completed"), (8, "PRUNED", "constraint"), (16, "PRUNED", "constraint")]
    assert [t.user_attrs["reason"] for t in trials[1:]] == [unmet(8, 3), unmet(16, 3)]
    for t in trials[1:]:
        assert t.user_attrs.get("run_dir") is None and t.constraints == {"requires": 1.0}
    assert [d.name for d in run_dirs(out)] == ["t0000-width=4"]
    assert unmet(16, 3) in r.output
    assert (out / "study.csv").read_text().count(",PRUNED,constraint,") == 2


def test_trials_counts_designs_that_meet_the_requires(require_spec, tmp_path):
    """Three designs the require refuses come first (queued by hand); --trials 2 still trains
    two designs, and the three are not counted."""
    out = tmp_path / "tpe"
    name = "require-tpe"
    queued = [{"n": 3, "width": 16}, {"n": 2, "width": 16}, {"n": 3, "width": 8}]
    out.mkdir()
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")
    for p in queued:
        study.enqueue_trial(p)
    sweep(require_spec, "--sampler", "tpe", "--trials", 2, *FAST, "--study", name, "--out", out)
    trials = load(out).trials
    assert [t.params for t in trials[:3]] == queued
    assert [(t.state.name, t.user_attrs["status"], t.user_attrs["reason"]) for t in trials[:3]] == [
        ("PRUNED", "constraint", unmet(16, 3)), ("PRUNED", "constraint", unmet(16, 2)),
        ("PRUNED", "constraint", unmet(8, 3))]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2 and len(run_dirs(out)) == 2
    for t in trials:
        admitted = t.params["width"] * t.params["n"] <= 16
        assert (t.state.name == "COMPLETE") == admitted, (t.number, t.params, t.user_attrs)


def test_a_space_where_every_design_breaks_a_require_stops_with_exit_2(require_spec, tmp_path):
    out = tmp_path / "none"
    p = cli(require_spec, "--n", 3, "--grid", "width=8,16", *FAST, "--out", out)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "no grid point is admissible: all 2 were rejected (2 that break a require of the spec, "
        f"e.g. trial 0 width=8: {unmet(8, 3)}); narrow the space (fix parameters with --NAME VALUE, "
        "or list values with --grid)")
    assert run_dirs(out) == []


def test_a_list_parameter_is_no_grid_dimension(tmp_path):
    spec = tmp_path / "lists.net"
    spec.write_text(REQUIRE_SPEC.replace("param n = 1 in 1..3", "param n = 1 in 1..3\nparam widths = [8, 16]"))
    r = runner.invoke(app, ["sweep", str(spec), "--grid", "widths=8,16", "--data", "synthetic",
                            "--out", str(tmp_path / "bad")])
    assert isinstance(r.exception, SweepError)
    assert str(r.exception) == ("--grid widths: 'widths' is a list; a grid lists numbers, strings or "
                                "true/false: sweep the parameters its items are computed from")
    assert not (tmp_path / "bad").exists()


# ---- how long a run of rejected designs a worker goes on through ----

def _finished(status: str):
    """A trial as the study records it: trained, or rejected before training with ``status``."""
    from optuna.trial import TrialState, create_trial

    if status == "completed":
        return create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={"status": status})
    return create_trial(state=TrialState.PRUNED, user_attrs={"status": status})


def test_a_sparse_space_is_searched_for_as_long_as_its_admission_rate_asks():
    """tpe learns from the rejections where the admissible designs lie; random does not, so it
    draws longer before it takes a space for empty. Once designs are admitted, a worker gives up
    only after ten times the draws per admitted design the study has needed."""
    tpe, rnd = SimpleNamespace(sampler="tpe"), SimpleNamespace(sampler="random")
    assert give_up_after(tpe, []) == 50 and give_up_after(rnd, []) == 500
    none_admitted = [_finished("constraint")] * 40 + [_finished("over_budget")] * 30
    assert give_up_after(tpe, none_admitted) == 50 and give_up_after(rnd, none_admitted) == 500
    # RegNetX under --max-flops 400M at 224x224: 2 designs in 100 admitted
    sparse = [_finished("completed")] * 4 + [_finished("constraint")] * 196
    assert give_up_after(tpe, sparse) == 500 and give_up_after(rnd, sparse) == 500
    sparser = [_finished("completed")] * 2 + [_finished("over_budget")] * 398
    assert give_up_after(tpe, sparser) == give_up_after(rnd, sparser) == 2000
    dense = [_finished("completed")] * 10 + [_finished("invalid")] * 10
    assert give_up_after(tpe, dense) == 50 and give_up_after(rnd, dense) == 500


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_random_goes_on_through_a_run_of_rejections_that_stops_tpe(require_spec, tmp_path,
                                                                   monkeypatch, sampler):
    """The worker's own loop (in this process, with floors of 3 and 20 rejections in a row): five
    designs the require refuses come first; tpe gives up after three, random trains a design
    (3 of the 9 designs are refused: 15 more in a row, once in 14 million)."""
    from resdsl.sweep import study as sweep_study
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.train.options import FIELDS

    monkeypatch.setattr(sweep_study, "MAX_REJECTED_IN_A_ROW", 3)
    monkeypatch.setattr(sweep_study, "MAX_REJECTED_IN_A_ROW_RANDOM", 20)
    train = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn", "tensorboard")}
    train.update(data="synthetic", device="cpu", batch_size=16, iters=4, eval_every=2)
    plan = plan_sweep(str(require_spec), {}, train, SweepOptions(
        sampler=sampler, trials=1, reuse=False, out=tmp_path / sampler))
    storage = sweep_study.make_storage(plan.storage)
    study = sweep_study.open_study(plan, storage, create=True)
    for _ in range(5):
        study.enqueue_trial({"n": 3, "width": 16})
    assert sweep_study.worker_loop(plan) is (sampler == "random")
    states = [(t.state.name, t.user_attrs.get("status")) for t in study.get_trials()]
    if sampler == "tpe":   # the two still queued are no admitted designs
        assert states == [("PRUNED", "constraint")] * 3 + [("WAITING", None)] * 2
    else:
        assert states[:5] == [("PRUNED", "constraint")] * 5
        assert states[-1] == ("COMPLETE", "completed") and len(run_dirs(tmp_path / sampler)) == 1


def test_the_table_lists_a_few_rejected_designs_and_study_csv_all(require_spec, tmp_path,
                                                                   monkeypatch, capsys):
    """A sparse space rejects dozens of sampled designs per design it trains: the table at the
    end of a tpe/random sweep shows the trained ones and the first 10 rejected, then says how
    many more there are and why; study.csv keeps every trial."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from resdsl.sweep.display import show_results
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.sweep.study import make_storage, open_study
    from resdsl.train.options import FIELDS

    train = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn")}
    train.update(data="synthetic", iters=4)
    plan = plan_sweep(str(require_spec), {}, train, SweepOptions(
        sampler="random", trials=2, out=tmp_path / "s"))
    study = open_study(plan, make_storage(plan.storage, heartbeat=False), create=True)
    dist = {"n": IntDistribution(1, 3), "width": CategoricalDistribution([4, 8, 16])}
    for k in range(30):
        if k in (12, 29):
            study.add_trial(create_trial(params={"n": 1, "width": 4}, distributions=dist,
                                         values=[0.5], user_attrs={"status": "completed"}))
        else:
            status = "over_budget" if k % 3 == 0 else "constraint"
            study.add_trial(create_trial(
                params={"n": 3, "width": 16}, distributions=dist, state=TrialState.PRUNED,
                user_attrs={"status": status, "reason": f"rejected {k}"}))
    monkeypatch.setenv("COLUMNS", "120")
    show_results(plan)
    out = capsys.readouterr().out
    shown = [int(line.split("│")[1]) for line in out.splitlines()
             if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert shown == [*range(10), 12, 29]      # the first ten rejected, both trained
    # 10, 11 and 13..28 left out: 15, 18, 21, 24 and 27 over the limit
    assert (f"18 more design(s) rejected before training are not shown (13 constraint, "
            f"5 over_budget); {tmp_path / 's' / 'study.csv'} lists every trial") in " ".join(
                out.split())
    assert (tmp_path / "s" / "study.csv").read_text().count(",PRUNED,") == 28


def test_the_give_up_message_names_a_rejected_design_by_short_numbers():
    """As the table does: wa=36.44, not wa=36.44201553446822."""
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from resdsl.sweep.run import _why_rejected

    t = create_trial(state=TrialState.PRUNED, params={"w0": 24, "wa": 36.44201553446822},
                     distributions={"w0": IntDistribution(8, 256, step=8),
                                    "wa": FloatDistribution(8.0, 256.0, log=True)},
                     user_attrs={"status": "constraint", "reason": "5 stages"})
    why, _ = _why_rejected([t], SimpleNamespace(max_flops=None, max_params=None))
    assert why == f"1 that break a require of the spec, e.g. trial {t.number} w0=24 wa=36.44: 5 stages"


def test_two_workers_asking_at_once_make_no_trial_beyond_trials(spec, tmp_path, monkeypatch):
    """Two workers that both find one trial missing under --trials 1: the one that comes second
    (its count waits for the first's ask, under the storage's lock) gets nothing. Study.ask is
    slowed so that, without the lock, both counts would come before either ask."""
    import threading
    import time

    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.sweep.study import counts_toward_trials, make_storage, open_study, pop_trial
    from resdsl.train.options import FIELDS

    train = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn")}
    train.update(data="synthetic", iters=10)
    plan = plan_sweep(str(spec), {}, train, SweepOptions(sampler="random", trials=1,
                                                         out=tmp_path / "s"))
    open_study(plan, make_storage(plan.storage, heartbeat=False), create=True)
    real_ask = optuna.Study.ask

    def slow_ask(self, *args, **kwargs):
        time.sleep(0.5)
        return real_ask(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "ask", slow_ask)
    got = []

    def worker():
        storage = make_storage(plan.storage, heartbeat=False)
        got.append(pop_trial(open_study(plan, storage, create=False), storage, plan))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(t is None for t in got) == [False, True]
    trials = load(tmp_path / "s").trials
    assert len(trials) == 1 and counts_toward_trials(trials[0])


def _draws(out: Path) -> list[tuple]:
    """Every trial of the sweep in out/, in order: (design, status), rejected ones included."""
    return [(design(t), t.user_attrs.get("status")) for t in load(out).trials]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_seeded_search_repeats_design_for_design(spec, tmp_path, sampler):
    """--sampler-seed: the same command in two fresh folders samples the same designs in the same
    order, rejections included, under one study name; another seed draws others."""
    def seeded(seed, folder):
        r = sweep(spec, "--sampler", sampler, "--sampler-seed", seed, "--trials", 2,
                  "--max-flops", LIMIT, *FAST, "--out", tmp_path / folder)
        assert f"{sampler} (seed {seed}) over" in r.output
        return _draws(tmp_path / folder)

    first, again = seeded(5, "a"), seeded(5, "b")
    assert first == again and len(first) >= 2
    assert sum(status == "completed" for _, status in first) == 2
    assert all(t.user_attrs["sampler_seed"] == 5 for t in load(tmp_path / "a").trials)
    names = [optuna.get_all_study_names(f"sqlite:///{tmp_path / f / 'study.db'}") for f in "ab"]
    assert names[0] == names[1]
    if sampler == "random":
        other = seeded(6, "c")
        assert other != first
        assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'c' / 'study.db'}") != names[0]


def test_trial_seeds_differ_from_trial_to_trial_and_seed_to_seed():
    """Concurrent workers and machines ask for trials with distinct numbers, so under one
    --sampler-seed they never share a sampler seed (and never draw alike for that reason)."""
    from resdsl.sweep.study import trial_seed

    seeds = {trial_seed(s, k) for s in range(4) for k in range(2000)}
    assert len(seeds) == 8000 and all(0 <= x < 2 ** 32 for x in seeds)
    assert trial_seed(5, 17) == trial_seed(5, 17)


def test_sampler_seed_is_refused_where_nothing_is_drawn(spec, tmp_path, capsys):
    for args, message in [
            (["--grid", "n=1,2", "--sampler-seed", "1"], "--sampler-seed seeds the tpe and random "
                                                         "samplers; the grid sampler draws nothing"),
            (["--sampler", "random", "--trials", "2", "--sampler-seed", "-1"],
             "--sampler-seed must be 0 or more, got -1")]:
        code, out, err = run_cli(["sweep", spec, *args, *FAST, "--out", tmp_path / "x"], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "x").exists()
    # a study keeps the way it was drawn: continued unseeded or with another seed, it refuses
    sweep(spec, "--sampler", "random", "--sampler-seed", 5, "--trials", 1, *FAST, "--study", "s",
          "--out", tmp_path / "s")
    for extra, now in [([], "unseeded"), (["--sampler-seed", "6"], "with --sampler-seed 6")]:
        code, out, err = run_cli(["sweep", spec, "--sampler", "random", "--trials", "2", *extra,
                                  *FAST, "--study", "s", "--out", tmp_path / "s"], capsys)
        assert code == 2, err
        assert (f"study 's' in sqlite:///{tmp_path / 's' / 'study.db'} was sampled with "
                f"--sampler-seed 5, this sweep {now}; give the study's") in err
    assert len(load(tmp_path / "s").trials) == 1
