"""`resdsl sweep`: grids to completion, re-runs that add nothing, failures recorded, workers that
never train a grid point twice, pruning, budgets, reuse across studies, killed workers retried.

All on synthetic data with a tiny 16x16 net and a handful of iterations.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.errors import SweepError
from resdsl.sweep.space import parse_grid, parse_objective
from resdsl.sweep.plan import parse_count

from conftest import REPO

runner = CliRunner()

TINY = """import "prelude"

param n = 1 in 1..4
param shortcut = "A" in ["none", "A", "B"]
param width = 4 in 4..16 step 4

network tiny {
  input 3x16x16
  classes 4
  stem conv1 { conv(width, 3); bn; relu }
  stage s1: basic(width, shortcut=shortcut) x n
  stage s2: basic(2 * width, shortcut=shortcut) x n stride 2
  head { avgpool; fc(classes) }
}
"""
FAST = ["--data", "synthetic", "--device", "cpu", "--batch-size", "16", "--iters", "6",
        "--eval-every", "3"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The nets are tiny: one torch thread is faster, and on a busy 2-core box much faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.net").write_text(TINY)
    return root


def sweep(args, expect=0):
    r = runner.invoke(app, ["sweep", *map(str, args)], terminal_width=200)
    if r.exit_code != expect:
        raise AssertionError(f"exit {r.exit_code}\n{r.output}\n{r.exception!r}")
    return r


def load(out: Path) -> optuna.Study:
    names = optuna.get_all_study_names(storage=f"sqlite:///{out / 'study.db'}")
    assert len(names) == 1, names
    return optuna.load_study(study_name=names[0], storage=f"sqlite:///{out / 'study.db'}")


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "runs").iterdir() if p.is_dir()) if (out / "runs").exists() else []


def point(t) -> tuple:
    return tuple(sorted(t.params.items()))


@pytest.fixture(scope="module")
def grid4(work):
    """The 4-point ablation grid n x shortcut, run once for several tests."""
    out = work / "reports" / "sweeps" / "grid4"
    r = sweep([work / "tiny.net", "--grid", "n=1,2", "--grid", "shortcut=none,A", *FAST,
               "--out", out])
    return out, r


def test_grid_of_four_completes_with_four_trials_and_run_folders(grid4):
    out, r = grid4
    study = load(out)
    trials = study.trials
    assert len(trials) == 4
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert sorted(point(t) for t in trials) == sorted(
        (("n", n), ("shortcut", s)) for n in (1, 2) for s in ("none", "A"))
    dirs = run_dirs(out)
    assert len(dirs) == 4
    # every trial is a normal run folder, linked to its trial and parameters
    for t in trials:
        run = Path(t.user_attrs["run_dir"])
        assert run in [d.resolve() for d in dirs]
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["sweep"] == {"study": study.study_name, "trial": t.number, "params": t.params}
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert t.user_attrs["config_hash"] == cfg["hash"] == summary["hash"]
        # the objective is the validation error of the final evaluation (held-out split)
        assert t.values[0] == pytest.approx(summary["final"]["val_err"])
        assert cfg["recipe"]["val_split"] > 0
        assert t.user_attrs["status"] == "completed" and t.user_attrs["flops"] > 0
        # intermediate evaluations are reported (dashboard curves, pruners)
        assert sorted(t.intermediate_values) == [3, 6]
    # dashboard compatibility: a plain Optuna RDB study with named metrics
    assert study.metric_names == ["val_err"]
    assert study.user_attrs["resdsl"]["objective"] == ["val_err"]
    # the table is printed and written as CSV
    csv = (out / "study.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[0].startswith("trial,n,shortcut,state")
    assert "study " + study.study_name in r.output and "COMPLETE" in r.output


def test_rerun_adds_no_trial(grid4, work):
    out, _ = grid4
    before = {d.name: (d / "summary.json").stat().st_mtime for d in run_dirs(out)}
    r = sweep([work / "tiny.net", "--grid", "n=1,2", "--grid", "shortcut=none,A", *FAST,
               "--out", out])
    assert "nothing to run" in r.output
    assert len(load(out).trials) == 4
    assert {d.name: (d / "summary.json").stat().st_mtime for d in run_dirs(out)} == before


def test_reuse_across_studies(grid4, work):
    """A second study with an overlapping point reuses the completed run: no new run folder."""
    out_a, _ = grid4
    a = {point(t): t.user_attrs["run_dir"] for t in load(out_a).trials}
    out_b = work / "reports" / "sweeps" / "other"
    sweep([work / "tiny.net", "--n", "2", "--grid", "shortcut=A,B", *FAST, "--out", out_b])
    trials = load(out_b).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    reused = [t for t in trials if t.params["shortcut"] == "A"][0]
    assert reused.user_attrs["reused_from"] == a[(("n", 2), ("shortcut", "A"))]
    assert reused.user_attrs["run_dir"] == a[(("n", 2), ("shortcut", "A"))]
    assert [d.name for d in run_dirs(out_b)] == ["t0001-shortcut=B"]
    # --no-reuse trains it again
    out_c = work / "reports" / "sweeps" / "noreuse"
    sweep([work / "tiny.net", "--n", "2", "--grid", "shortcut=A", *FAST, "--out", out_c, "--no-reuse"])
    assert len(run_dirs(out_c)) == 1


def test_diverging_trial_is_failed_and_the_sweep_goes_on(work):
    out = work / "diverge"
    sweep([work / "tiny.net", "--grid", "lr=1e6,0.05", *FAST, "--out", out])
    trials = {t.params["lr"]: t for t in load(out).trials}
    bad, good = trials[1e6], trials[0.05]
    assert bad.state.name == "FAIL"
    assert bad.user_attrs["status"] == "diverged"
    assert "diverged" in bad.user_attrs["reason"] and "nan" in bad.user_attrs["reason"].lower()
    assert json.loads((Path(bad.user_attrs["run_dir"]) / "summary.json").read_text())["status"] == "diverged"
    assert good.state.name == "COMPLETE"
    assert bad.number < good.number  # the good one ran after the failure
    # a diverged point is done: the re-run does not train it again
    r = sweep([work / "tiny.net", "--grid", "lr=1e6,0.05", *FAST, "--out", out])
    assert "nothing to run" in r.output and len(load(out).trials) == 2


def test_budget_rejects_before_training(work):
    out = work / "budget"
    r = sweep([work / "tiny.net", "--grid", "n=1,3", *FAST, "--max-params", "3k", "--out", out,
               "--no-reuse"])
    trials = {t.params["n"]: t for t in load(out).trials}
    assert trials[1].state.name == "COMPLETE"
    over = trials[3]
    assert over.state.name == "PRUNED" and over.user_attrs["status"] == "over_budget"
    assert over.user_attrs["reason"].startswith("over --max-params:")
    assert over.user_attrs.get("run_dir") is None
    assert [d.name for d in run_dirs(out)] == ["t0000-n=1"]
    assert "over --max-params" in r.output


def test_pruning_stops_a_clearly_bad_trial_early(work):
    out = work / "prune"
    iters = 25
    sweep([work / "tiny.net", "--grid", "lr=0.1,0.08,0.06,1e-4", "--data", "synthetic",
           "--device", "cpu", "--batch-size", "32", "--iters", iters, "--eval-every", "5",
           "--milestones", iters - 1, "--pruner", "median", "--out", out])
    trials = {t.params["lr"]: t for t in load(out).trials}
    bad = trials[1e-4]
    assert bad.state.name == "PRUNED", {k: (t.state.name, t.intermediate_values) for k, t in trials.items()}
    assert max(bad.intermediate_values) < iters
    summary = json.loads((Path(bad.user_attrs["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["iters_done"] < iters
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "resdsl", "sweep", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_workers_on_one_storage_never_train_a_point_twice(work):
    """Two sweep commands (one with --workers 2) at once on one study: 3 workers, 6 points."""
    out = work / "workers"
    args = [work / "tiny.net", "--grid", "n=1,2", "--grid", "shortcut=none,A,B", *FAST,
            "--out", out, "--no-reuse"]
    p1 = _cli(*args, "--workers", "2")
    p2 = _cli(*args)
    outs = [p.communicate(timeout=300) for p in (p1, p2)]
    assert p1.returncode == 0 and p2.returncode == 0, outs
    trials = load(out).trials
    assert len(trials) == 6
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({point(t) for t in trials}) == 6
    dirs = run_dirs(out)
    assert len(dirs) == 6
    params = [json.loads((d / "config.json").read_text())["sweep"]["params"] for d in dirs]
    assert len({tuple(sorted(p.items())) for p in params}) == 6
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) >= 2, workers


def test_killed_sweep_is_resumed_on_rerun(work):
    """SIGKILL mid-trial: the re-run finds the dead worker's RUNNING trial, fails it, retries it
    (resuming its run folder from the checkpoint) and completes the grid."""
    out = work / "killed"
    iters = 150
    args = [work / "tiny.net", "--grid", "n=1", "--data", "synthetic", "--device", "cpu",
            "--batch-size", "16", "--iters", iters, "--eval-every", "10", "--out", out]
    p = _cli(*args)
    deadline = time.time() + 120
    ck = None
    while time.time() < deadline and ck is None and p.poll() is None:
        found = list((out / "runs").glob("t0000-*/checkpoint.pt")) if (out / "runs").exists() else []
        ck = found[0] if found else None
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert ck is not None, p.communicate(timeout=5)
    first = ck.parent
    killed_at = json.loads((first / "summary.json").read_text())
    assert killed_at["status"] == "running" and killed_at["iters_done"] < iters
    r = sweep(args)
    assert "1 trial(s) of a dead worker failed" in r.output
    trials = load(out).trials
    assert [(t.number, t.state.name, t.user_attrs.get("status")) for t in trials] == [
        (0, "FAIL", "killed"), (1, "COMPLETE", "completed")]
    retry = trials[1]
    assert retry.user_attrs["retry_of"] == 0 and retry.params == {"n": 1}
    assert retry.user_attrs["run_dir"] == str(first.resolve())  # resumed in place
    assert run_dirs(out) == [first]
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iters_done"] == iters
    assert json.loads((first / "config.json").read_text())["sweep"]["trial"] == 1
    # done: nothing more to run
    assert "nothing to run" in sweep(args).output


def test_ctrl_c_keeps_the_study_and_the_rerun_continues(work):
    """SIGINT mid-trial: exit 130, the trial FAILs as interrupted (its run checkpointed), the
    queued point stays queued; the re-run retries the interrupted trial from its checkpoint.
    The sweep starts with SIGINT ignored, as `resdsl sweep ... &` from a script does (and as CI
    runners started that way pass on to every test): it must stop all the same."""
    out = work / "sigint"
    args = [work / "tiny.net", "--grid", "n=1,2", "--data", "synthetic", "--device", "cpu",
            "--batch-size", "16", "--iters", "150", "--eval-every", "10", "--out", out, "--no-reuse"]
    p = _cli(*args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not list(out.glob("runs/t0000-*/checkpoint.pt")):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, (stdout, stderr)
    assert "Re-run the same command" in stderr and "Traceback" not in stderr
    trials = load(out).trials
    assert [(t.state.name, t.user_attrs.get("status")) for t in trials] == [
        ("FAIL", "interrupted"), ("WAITING", None)]
    first = Path(trials[0].user_attrs["run_dir"])
    assert json.loads((first / "summary.json").read_text())["status"] == "interrupted"
    assert (out / "study.csv").exists()
    r = sweep(args)
    assert "1 interrupted trial(s) queued again" in r.output
    trials = load(out).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].user_attrs["retry_of"] == 0
    assert trials[2].user_attrs["run_dir"] == str(first)
    assert len(run_dirs(out)) == 2


def test_seeds_are_a_grid_dimension_with_mean_and_std(work):
    out = work / "seeds"
    r = sweep([work / "tiny.net", "--grid", "shortcut=none,A", "--seeds", "2", *FAST, "--out", out])
    trials = load(out).trials
    assert sorted(point(t) for t in trials) == sorted(
        (("seed", s), ("shortcut", c)) for s in (0, 1) for c in ("none", "A"))
    seeds = {json.loads((Path(t.user_attrs["run_dir"]) / "config.json").read_text())["recipe"]["seed"]
             for t in trials}
    assert seeds == {0, 1}
    assert "mean±std" in r.output and "shortcut=none" in r.output


# --------------------------------------------------------------------------- bad input

def test_bad_input_is_one_message_and_exit_2(work):
    spec = work / "tiny.net"
    cases = [
        (["--grid", "nn=1,2"], "did you mean 'n'"),
        (["--grid", "n"], "expected NAME=V1,V2"),
        (["--grid", "n=1,,2"], "comma-separated"),
        (["--grid", "n=1,9"], "--grid n=9"),
        (["--sampler", "tpx", "--trials", "2"], "did you mean 'tpe'"),
        (["--pruner", "median", "--objective", "error,flops", "--grid", "n=1,2"], "multi-objective"),
        (["--grid", "n=1,2", "--val-split", "0"], "--objective test_err"),
        (["--grid", "n=1,2", "--objective", "val_error"], "did you mean 'val_err'"),
        (["--sampler", "tpe"], "--trials"),
        (["--grid", "seed=1,2"], "--seeds"),
        (["--grid", "n=1,2", "--n", "2"], "both fixed"),
    ]
    for extra, text in cases:
        r = runner.invoke(app, ["sweep", str(spec), "--data", "synthetic", *extra, "--out",
                                str(work / "bad")])
        assert isinstance(r.exception, SweepError), (extra, r.output, r.exception)
        assert text in str(r.exception), (extra, str(r.exception))
    p = _cli(spec, "--grid", "lrr=0.1", "--data", "synthetic", "--out", work / "bad")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 2
    assert "did you mean 'lr'" in stderr and "Traceback" not in stderr
    assert not (work / "bad" / "study.db").exists()


def test_grid_and_count_parsing():
    assert parse_grid(["n=3,5,7,9", "shortcut=none,A"]) == [("n", ["3", "5", "7", "9"]),
                                                           ("shortcut", ["none", "A"])]
    assert parse_grid(["batch-size=64,128"]) == [("batch_size", ["64", "128"])]
    with pytest.raises(SweepError, match="twice"):
        parse_grid(["n=1,1"])
    assert parse_count("--max-flops", "41M") == 41e6
    assert parse_count("--max-flops", "1.5g") == 1.5e9
    with pytest.raises(SweepError):
        parse_count("--max-flops", "lots")
    obj = parse_objective("error,flops", "synthetic", 500)
    assert obj.metrics == ["val_err", "flops"] and obj.directions == ["minimize", "minimize"]
    assert parse_objective("error", "imagenet", 0).metrics == ["test_err"]


# --------------------------------------------------------------------------- plan and display

def test_default_study_name_is_stable(tmp_path):
    """The default study name is a hash of the sweep's settings: a re-run of the same command
    finds the same study (this value is what the command has always given)."""
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.train.options import FIELDS

    # what `resdsl sweep cifar_6n2 --data synthetic --iters 30` gives plan_sweep (the command
    # keeps --tensorboard, which changes no result, out of the plan's name)
    train = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn", "tensorboard")}
    train.update(data="synthetic", iters=30)
    plan = plan_sweep("cifar_6n2", {}, train, SweepOptions(
        grid=["n=1,2", "lr=0.1,0.05"], seeds=2, out=tmp_path / "s"))
    assert plan.study_name == "cifar_resnet-0fdeece1"
    assert plan.sampler == "grid" and plan.network == "cifar_resnet"
    assert plan.objective.metrics == ["val_err"] and plan.train["val_split"] > 0
    assert plan.space.grid() == {"n": [1, 2], "lr": [0.1, 0.05], "seed": [0, 1]}
    assert plan.storage == f"sqlite:///{(tmp_path / 's' / 'study.db').resolve()}"


def test_pareto_table_lists_the_front_by_error(capsys):
    from types import SimpleNamespace

    from optuna.distributions import IntDistribution

    from resdsl.sweep.display import print_pareto

    study = optuna.create_study(directions=["minimize", "minimize"])
    for n, values in ((1, [0.30, 40e6]), (2, [0.25, 80e6]), (3, [0.31, 80e6]), (4, [0.20, 160e6])):
        study.add_trial(optuna.trial.create_trial(
            params={"n": n}, distributions={"n": IntDistribution(1, 9)}, values=values))
    print_pareto(study, SimpleNamespace(objective=parse_objective("error,flops", "synthetic", 500)))
    rows = [[c.strip() for c in line.split("│")[1:-1]]
            for line in capsys.readouterr().out.splitlines() if "n=" in line]
    # trial 2 (0.31 at 80M) is beaten by trial 1 (0.25 at 80M)
    assert rows == [["3", "n=4", "0.2", "160M"], ["1", "n=2", "0.25", "80M"], ["0", "n=1", "0.3", "40M"]]


def test_processes_opening_a_new_study_database_at_once_all_get_it(tmp_path):
    """Several processes that create one SQLite study database at the same moment race on
    Optuna's schema (the losers hit the version row the winner wrote): each must still open it."""
    script = (
        "import sys, time\n"
        "from resdsl.sweep.study import make_storage\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "make_storage(f'sqlite:///{sys.argv[1]}', heartbeat=False)\n"
        "print('opened')\n")
    for round_ in range(3):
        db = tmp_path / f"study{round_}.db"
        start = time.time() + 4      # after every interpreter has started
        procs = [subprocess.Popen([sys.executable, "-c", script, str(db), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "opened", err


def test_a_study_database_being_created_is_retried(tmp_path, monkeypatch):
    """The retry itself, made certain: the first attempt fails as a lost creation race does."""
    import optuna.storages
    from sqlalchemy.exc import IntegrityError

    from resdsl.sweep import study as study_mod

    real, calls = optuna.storages.RDBStorage, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    storage = study_mod.make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=False)
    assert len(calls) == 2 and storage.get_all_studies() == []


# --------------------------------------------------------------------------- the study file

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /home nfs4 rw,relatime 0 0
/dev/vdb /home/me/scratch\\040disk xfs rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


def test_filesystem_type_reads_the_longest_mount_point():
    from resdsl.sweep.sqlite import filesystem_type, uses_wal

    assert filesystem_type(Path("/work/reports"), MOUNTS) == "ext4"
    assert filesystem_type(Path("/home/me/sweeps"), MOUNTS) == "nfs4"
    assert filesystem_type(Path("/home/me/scratch disk/s"), MOUNTS) == "xfs"
    assert filesystem_type(Path("/homework"), MOUNTS) == "ext4"     # not under /home
    assert uses_wal(Path("/tmp/s/study.db"), MOUNTS)
    assert not uses_wal(Path("/home/me/s/study.db"), MOUNTS)


def _pragmas(storage) -> tuple[str, int]:
    from sqlalchemy import text

    with storage.engine.connect() as con:
        return (con.execute(text("PRAGMA journal_mode")).scalar(),
                con.execute(text("PRAGMA synchronous")).scalar())


def test_study_file_on_a_local_disk_has_a_write_ahead_log(tmp_path):
    """WAL (readers do not block the writer) and synchronous NORMAL (1), on every connection; the
    study stays readable by plain Optuna, and no -wal file is left once it is closed."""
    import optuna

    from resdsl.sweep import study as study_mod

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = study_mod.make_storage(url, heartbeat=False)
    assert _pragmas(storage) == ("wal", 1)
    optuna.create_study(study_name="s", storage=storage).enqueue_trial({"x": 1})
    storage.engine.dispose()
    assert not (tmp_path / "study.db-wal").exists()
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1


def test_study_file_on_a_network_filesystem_keeps_sqlites_defaults(tmp_path, monkeypatch):
    from resdsl.sweep import sqlite as sqlite_mod
    from resdsl.sweep import study as study_mod

    monkeypatch.setattr(sqlite_mod, "filesystem_type", lambda path, mounts_text=None: "nfs4")
    storage = study_mod.make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat=False)
    assert _pragmas(storage) == ("delete", 2)        # rollback journal, synchronous FULL
