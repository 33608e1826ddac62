"""Logs where users look: `resdsl train` in a batch job (stderr not a terminal) prints evaluation
and progress lines, the terminal bar keeps its fields whole at 80 columns, sweep trials show
their progress and learning curves, and --tensorboard writes the metrics.jsonl rows as
TensorBoard scalars. Tiny nets on synthetic data."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.train import TrainConfig, resume, train
from resdsl.train.progress import PROGRESS_ENV, Progress
from resdsl.train.scalars import TAGS

from conftest import REPO, TINY_SWEEP_NET

SPEC = str(REPO / "specs" / "cifar_6n2.net")
TINY_TRAIN = ["train", "cifar_6n2", "--n", "1", "--width", "8", "--data", "synthetic",
              "--batch-size", "8", "--iters", "40", "--eval-every", "20", "--out", "run"]
# a progress line as the runner prints it (the evaluation lines have an epoch, no ETA)
PROGRESS_LINE = re.compile(r"^iter (\d+)/40  loss (\S+)  train err (\S+)%  (\d+) img/s  ETA (\S+)$")


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def run_train(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """`resdsl train` in a subprocess whose stderr is a pipe, as in a batch job; progress lines
    as often as the loop offers them (every 10 iterations)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **{PROGRESS_ENV: "1e-9"})
    r = subprocess.run([sys.executable, "-m", "resdsl", *TINY_TRAIN, *extra], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def test_batch_job_prints_evaluation_and_progress_lines(tmp_path):
    r = run_train(tmp_path)
    rows = metrics(tmp_path / "run")
    lines = r.stderr.splitlines()
    evals = [line for line in lines if re.match(r"^iter \d+/40  epoch ", line)]
    assert [int(line.split()[1].split("/")[0]) for line in evals] == [20, 40]
    for line, row in zip(evals, rows):
        assert f"loss {row['train_loss']:.4f}" in line
        assert f"test err {100 * row['test_err']:.2f}%" in line
    progress = [PROGRESS_LINE.match(line) for line in lines if PROGRESS_LINE.match(line)]
    assert [int(m[1]) for m in progress] == [10, 20, 30, 40]
    # at an evaluation the progress line's training window is the row's
    for m in progress:
        row = next((row for row in rows if row["iter"] == int(m[1])), None)
        if row is not None:
            assert m[2] == f"{row['train_loss']:.4f}" and m[3] == f"{100 * row['train_err']:.2f}"
    assert progress[-1][5] == "0:00"      # nothing left at the last iteration
    assert "completed after 40 of 40 iterations" in r.stdout


def test_quiet_prints_the_evaluation_lines_only(tmp_path):
    r = run_train(tmp_path, "--quiet")
    lines = r.stderr.splitlines()
    assert not [line for line in lines if PROGRESS_LINE.match(line) or "ETA" in line]
    assert len([line for line in lines if re.match(r"^iter \d+/40  epoch ", line)]) == 2


MUST = ["12000/64000", "loss 2.303", "err 90.0%", "1235 img/s", "ETA "]


@pytest.mark.parametrize("width, shown, left_out", [
    (56, MUST, ["━", "test", "cifar_resnet"]),
    (80, ["━", *MUST, "test 12.34%"], ["cifar_resnet"]),      # COLUMNS=80
    (120, ["cifar_resnet", "━", *MUST, "test 12.34%"], []),
])
def test_terminal_bar_keeps_its_fields_whole(width, shown, left_out):
    """Iteration, loss, error, images/s and ETA always whole; bar, test error and name as
    the width allows."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    p = Progress(64000, 0, "live", "cifar_resnet", console=console)
    p.bar.stop()                     # render by hand below, not from the refresh thread
    p.step(12000, 2.30258, 0.9, 1234.6)
    p.eval({"iter": 12000, "test_err": 0.1234})
    console.file = io.StringIO()
    console.print(p.bar.make_tasks_table(p.bar.tasks))
    p.close()
    line = console.file.getvalue().rstrip("\n")
    assert "\n" not in line and "…" not in line and len(line) <= width, line
    for text in shown:
        assert text in line, (text, line)
    for text in left_out:
        assert text not in line, (text, line)
    assert re.search(r"ETA \d+:\d\d", line)


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected_scalars(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl's rows as TensorBoard keeps them (float32)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, tag in TAGS.items():
            if row.get(key) is not None:
                out.setdefault(tag, []).append((row["iter"], float(np.float32(row[key]))))
    return out


def test_tensorboard_scalars_equal_metrics_rows_also_after_resume(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed "
                                              "(pip install tensorboard)")
    tb = tmp_path / "tb"
    cfg = TrainConfig(spec=SPEC, overrides={"n": "1", "width": "8"}, data="synthetic", iters=40,
                      batch_size=8, eval_every=10, val_split=100, tensorboard=str(tb))

    def stop_at_20(row):
        if row["iter"] == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run", on_eval=stop_at_20, quiet=True)
    assert [s for s, _ in scalars(tb)["test/err"]] == [10, 20]
    # a segment killed after an evaluation whose checkpoint it did not write leaves scalars
    # past the checkpoint; the resumed run evaluates there again and TensorBoard keeps the new
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tb)) as stale:
        stale.add_scalar("test/err", 0.999, 30)
    s = resume(tmp_path / "run", quiet=True)
    assert s["status"] == "completed"
    rows = metrics(tmp_path / "run")
    assert [row["iter"] for row in rows] == [10, 20, 30, 40]
    got = scalars(tb)
    want = expected_scalars(rows)
    assert set(want) >= {"train/loss", "train/err", "test/err", "val/err", "lr", "images_per_s"}
    assert got == want
    # the folder is recorded absolute in the run's request: --resume finds it from anywhere
    request = json.loads((tmp_path / "run" / "config.json").read_text())["request"]
    assert request["tensorboard"] == str(tb.resolve())


def test_sweep_trials_report_every_evaluation_show_progress_and_write_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed "
                                              "(pip install tensorboard)")
    (tmp_path / "tiny.net").write_text(TINY_SWEEP_NET)
    out, tb = tmp_path / "sweep", tmp_path / "tb"
    r = CliRunner().invoke(app, [
        "sweep", str(tmp_path / "tiny.net"), "--grid", "n=1,2", "--data", "synthetic",
        "--device", "cpu", "--batch-size", "16", "--iters", "30", "--eval-every", "10",
        "--out", str(out), "--no-reuse", "--tensorboard", str(tb)], terminal_width=200)
    assert r.exit_code == 0, r.output
    names = optuna.get_all_study_names(storage=f"sqlite:///{out / 'study.db'}")
    # where the scalars go changes no result, nor the study's default name
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.train.options import FIELDS

    train_opts = {f.name: f.default for f in FIELDS
                  if f.name not in ("seed", "sync_bn", "tensorboard")}
    train_opts.update(data="synthetic", device="cpu", batch_size=16, iters=30, eval_every=10)
    plain = plan_sweep(str(tmp_path / "tiny.net"), {}, train_opts,
                       SweepOptions(grid=["n=1,2"], out=out, reuse=False))
    assert names == [plain.study_name]
    study = optuna.load_study(study_name=names[0], storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 2
    for t in study.trials:
        run = Path(t.user_attrs["run_dir"])
        rows = metrics(run)
        # a learning curve for optuna-dashboard: the objective at every evaluation
        assert t.intermediate_values == {row["iter"]: row["val_err"] for row in rows}
        assert sorted(t.intermediate_values) == [10, 20, 30]
        # the worker's last progress record: the end of training, the last row's window
        progress = t.user_attrs["progress"]
        assert progress["iter"] == progress["iters"] == 30 and progress["eta_s"] == 0
        assert progress["train_loss"] == pytest.approx(rows[-1]["train_loss"])
        assert progress["train_err"] == pytest.approx(rows[-1]["train_err"])
        assert progress["seed"] == 0
        # TensorBoard: one folder per run, named like the run's folder
        assert scalars(tb / run.name) == expected_scalars(rows)
    assert sorted(p.name for p in tb.iterdir()) == sorted(
        Path(t.user_attrs["run_dir"]).name for t in study.trials)


def test_heartbeat_publishes_the_trials_progress_while_it_trains(tmp_path, monkeypatch):
    """A sweep worker's Heartbeat writes the training loop's latest snapshot into the study while
    the trial is still running, not only at its end: at the first evaluation (iteration 20 of
    40) the storage already holds a snapshot of iterations 1-20, and the trial is RUNNING."""
    import time

    import resdsl.sweep.study as sweep_study

    monkeypatch.setattr(sweep_study, "PROGRESS_INTERVAL", 0.01)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="beat")
    trial = study.ask()
    seen = []

    def at_evaluation(row):
        if row["iter"] == 20:                        # the loop waits here; the heartbeat does not
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                attrs = storage.get_trial(trial._trial_id).user_attrs
                if "progress" in attrs:
                    break
                time.sleep(0.01)
            t = storage.get_trial(trial._trial_id)
            seen.append((t.state, t.user_attrs.get("progress")))
        return False

    cfg = TrainConfig(spec=SPEC, overrides={"n": "1", "width": "8"}, data="synthetic", iters=40,
                      batch_size=8, eval_every=20, device="cpu")
    with sweep_study.Heartbeat(storage, trial._trial_id, seed=3) as beat:
        summary = train(cfg, tmp_path / "run", on_eval=at_evaluation, on_progress=beat.listen,
                        progress=False, quiet=True)
    assert summary["status"] == "completed"
    [(state, during)] = seen
    assert state == optuna.trial.TrialState.RUNNING
    assert during is not None and 1 <= during["iter"] <= 20 and during["iters"] == 40
    assert during["seed"] == 3 and during["eta_s"] > 0
    after = storage.get_trial(trial._trial_id).user_attrs["progress"]
    assert after["iter"] == 40 and after["eta_s"] == 0          # the last one, at the end


def test_sweep_monitor_shows_in_trial_progress(tmp_path, monkeypatch, capsys):
    """Not on a terminal: a progress line per running trial; on one: the panel shows it."""
    from rich.console import Console

    from resdsl.sweep.display import Monitor
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.sweep.study import make_storage, open_study
    from resdsl.train.options import FIELDS

    monkeypatch.setenv(PROGRESS_ENV, "1e-9")
    (tmp_path / "tiny.net").write_text(TINY_SWEEP_NET)
    train_opts = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn")}
    train_opts.update(data="synthetic", iters=60, eval_every=30)
    plan = plan_sweep(str(tmp_path / "tiny.net"), {}, train_opts,
                      SweepOptions(grid=["n=1,2"], out=tmp_path / "sweep"))
    study = open_study(plan, make_storage(plan.storage, heartbeat=False), create=True)
    study.enqueue_trial({"n": 2})
    trial = study.ask()
    trial.suggest_int("n", 1, 4)
    trial.report(0.4375, 30)
    trial.set_user_attr("progress", {"iter": 40, "iters": 60, "train_loss": 1.23456,
                                     "train_err": 0.4, "images_per_s": 1234.4, "eta_s": 65.2,
                                     "seed": 0})
    monitor = Monitor(plan, 2, set())
    monitor.poll()
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["trial 0 running  n=2  iter 40/60  loss 1.2346  train err 40.00%  "
                       "1234 img/s  ETA 1:05  val_err 0.4375 at iter 30"]
    monitor.poll()                       # unchanged progress: not printed again
    assert capsys.readouterr().out == ""
    panel = Console(file=io.StringIO(), width=120, color_system=None)
    panel.print(monitor._panel(study.trials))
    assert "iter 40/60  loss 1.2346  train err 40.00%  1234 img/s  ETA 1:05" in panel.file.getvalue()


def run_main(args, monkeypatch, capsys, cwd) -> tuple[int, str]:
    """The `resdsl` entry point in this process (its ResdslError -> message and exit 2)."""
    from resdsl.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["resdsl", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_tensorboard_missing_is_one_message_before_any_work(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if not installed
    args = [command, "cifar_6n2", "--n", "1", "--width", "8", "--data", "synthetic", "--iters",
            "4", "--out", "o", "--tensorboard", "tb"]
    if command == "sweep":
        args += ["--grid", "lr=0.1,0.05"]
    code, err = run_main(args, monkeypatch, capsys, tmp_path)
    assert code == 2, err
    assert "--tensorboard needs the tensorboard package" in err
    assert "pip install tensorboard" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "tb").exists()


def test_tensorboard_into_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed "
                                              "(pip install tensorboard)")
    (tmp_path / "notes.txt").write_text("mine")
    code, err = run_main(["train", "cifar_6n2", "--n", "1", "--width", "8", "--data", "synthetic",
                          "--iters", "4", "--out", "o", "--tensorboard", "notes.txt"],
                         monkeypatch, capsys, tmp_path)
    assert code == 2 and "--tensorboard notes.txt: exists and is a file" in err, err
    assert not (tmp_path / "o").exists() and (tmp_path / "notes.txt").read_text() == "mine"
