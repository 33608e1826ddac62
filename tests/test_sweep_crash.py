"""A native crash in a sweep's worker process (here a SIGSEGV delivered mid-training, as a broken
kernel would raise it) fails that trial with the signal, in the study and in the run's
summary.json, and the sweep goes on with a new worker to finish the other points."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from conftest import REPO, TINY_SWEEP_NET



def _running_trial(db: Path):
    if not db.exists():
        return None
    try:
        names = optuna.get_all_study_names(storage=f"sqlite:///{db}")
        if not names:
            return None
        study = optuna.load_study(study_name=names[0], storage=f"sqlite:///{db}")
        for t in study.get_trials(deepcopy=False):
            if t.state.name == "RUNNING" and t.user_attrs.get("run_dir") and \
                    (Path(t.user_attrs["run_dir"]) / "checkpoint.pt").exists():
                return t
    except Exception:  # the database is being created or written: look again
        return None
    return None


def test_a_crashed_worker_fails_its_trial_with_the_signal_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "tiny.net").write_text(TINY_SWEEP_NET)
    out = tmp_path / "sweep"
    args = [sys.executable, "-m", "resdsl", "sweep", str(tmp_path / "tiny.net"), "--grid", "n=1,2",
            "--data", "synthetic", "--device", "cpu", "--batch-size", "16", "--iters", "200",
            "--eval-every", "10", "--out", str(out), "--no-reuse"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 180
    while time.time() < deadline and victim is None and p.poll() is None:
        victim = _running_trial(out / "study.db")
        time.sleep(0.1)
    assert victim is not None, p.communicate(timeout=5)
    host, _, pid = victim.user_attrs["worker"].rpartition(":")
    assert int(pid) != p.pid                  # trials train in a worker, not in the command
    os.kill(int(pid), signal.SIGSEGV)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "SIGSEGV" in stderr and f"trial(s) {victim.number} recorded as failed" in stderr

    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{out / 'study.db'}")[0],
                              storage=f"sqlite:///{out / 'study.db'}")
    trials = {t.number: t for t in study.trials}
    crashed = trials[victim.number]
    assert crashed.state.name == "FAIL" and crashed.user_attrs["status"] == "failed"
    assert "SIGSEGV (a native crash)" in crashed.user_attrs["reason"]
    summary = json.loads((Path(crashed.user_attrs["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "failed" and "SIGSEGV" in summary["reason"]
    others = [t for n, t in trials.items() if n != victim.number]
    assert [t.state.name for t in others] == ["COMPLETE"]
    assert others[0].params["n"] != crashed.params["n"]
    assert others[0].user_attrs["worker"] != crashed.user_attrs["worker"]   # a new worker ran it

    # a crash is final: the re-run does not train the point again
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to run" in again.stdout, (again.stdout, again.stderr)
