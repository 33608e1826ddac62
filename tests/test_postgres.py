"""Several machines on one study through PostgreSQL, as the README describes it: a throwaway
PostgreSQL cluster on this machine (initdb in a temporary folder, trust authentication, a free
port on 127.0.0.1), a database and a user made with psql, and two `resdsl sweep` processes at
once with their own --out on one --storage URL and --study name. No grid point is trained twice
or lost, the study is complete, and what optuna-dashboard serves for it (its WSGI app, asked in
this process as a browser would ask it) matches the run records of the two --out folders.

The server programs come from the system (Debian: apt-get install postgresql), psycopg from
`pip install '.[postgres]'`. Without them the server test skips and says why; with
RESDSL_REQUIRE_POSTGRES=1 (CI) it fails instead. initdb and postgres refuse to run as root: as
root they run as the unprivileged user 'postgres' (runuser), which owns the temporary folder.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from resdsl.errors import SweepError
from resdsl.sweep import storage as sweep_storage

from conftest import REPO

REQUIRE = os.environ.get("RESDSL_REQUIRE_POSTGRES") == "1"
SERVER_USER = "postgres"     # the unprivileged user Debian's package creates
STUDY = "two-machines"
GRID = ["--grid", "n=1,2", "--grid", "lr=0.1,0.05"]
FAST = ["--data", "synthetic", "--device", "cpu", "--width", "4", "--batch-size", "16",
        "--iters", "20", "--eval-every", "10"]


def unavailable(reason: str):
    """Skip, saying why; under RESDSL_REQUIRE_POSTGRES=1 fail instead (CI must run this)."""
    if REQUIRE:
        pytest.fail(f"RESDSL_REQUIRE_POSTGRES=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def need_psycopg() -> None:
    if importlib.util.find_spec("psycopg") is None:
        unavailable("psycopg is not installed: pip install '.[postgres]'")


def server_programs() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:   # a link on PATH: pg_ctl lies beside the program it points to
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    port: int
    url: str        # the URL a user writes: postgresql://USER@HOST:PORT/DB


@pytest.fixture(scope="module")
def postgres():
    need_psycopg()
    bindir = server_programs()
    if bindir is None:
        unavailable("PostgreSQL's server programs (initdb, pg_ctl) are not installed; on Debian: "
                    "apt-get install postgresql")
    psql = shutil.which("psql") or str(bindir / "psql")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            unavailable(f"running as root, and there is no user {SERVER_USER!r} to run the "
                        "server as (initdb and postgres refuse root)")
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("running as root, and runuser (util-linux) is not there to run the "
                        f"server as {SERVER_USER!r}")
        as_user = [runuser, "-u", SERVER_USER, "--"]
    tmp = Path(tempfile.mkdtemp(prefix="resdsl-pg-"))
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    data = tmp / "data"
    port = free_port()
    started = False
    try:
        p = subprocess.run([*as_user, bindir / "initdb", "-D", data, "-A", "trust", "-U",
                            "postgres", "-E", "UTF8", "--no-sync"],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            unavailable(f"initdb failed: {' | '.join(p.stderr.strip().splitlines()[-3:])}")
        # the server's socket in the temporary folder, TCP on 127.0.0.1 only; no fsync: a
        # throwaway cluster
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={tmp} "
                   "-c fsync=off")
        p = subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-l", tmp / "server.log",
                            "-w", "-t", "60", "-o", options, "start"],
                           capture_output=True, text=True, timeout=120)
        started = p.returncode == 0
        if not started:
            unavailable(f"the PostgreSQL server did not start: {tail(tmp / 'server.log')}")
        # what the README's recipe does on the database machine
        p = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d",
                            "postgres", "-v", "ON_ERROR_STOP=1", "-c", "CREATE ROLE resdsl LOGIN",
                            "-c", "CREATE DATABASE resdsl OWNER resdsl"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        yield Server(port=port, url=f"postgresql://resdsl@127.0.0.1:{port}/resdsl")
    finally:
        if started:
            stop = subprocess.run([*as_user, bindir / "pg_ctl", "-D", data, "-m", "immediate",
                                   "-w", "stop"], capture_output=True, text=True, timeout=60)
            if stop.returncode != 0:
                _kill_postmaster(data)
        shutil.rmtree(tmp, ignore_errors=True)


def _kill_postmaster(data: Path) -> None:
    """pg_ctl could not stop it: end the server by the pid it wrote (its first line)."""
    try:
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGQUIT)   # PostgreSQL's immediate shutdown
    except ProcessLookupError:
        pass


def sweep_process(out: Path, storage: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "resdsl", "sweep", "cifar_6n2", *GRID, *FAST, "--storage", storage,
         "--study", STUDY, "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dashboard_get(app, path: str) -> dict:
    """What optuna-dashboard's page fetches from its server, answered by its WSGI app here."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET", QUERY_STRING="")
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status and status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def run_record(run_dir: Path) -> dict:
    """The run folder's own account: its trial, parameters, final and per-evaluation errors."""
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    return {"sweep": config["sweep"], "status": summary["status"],
            "val_err": summary["final"]["val_err"],
            "curve": {r["iter"]: r["val_err"] for r in rows if r.get("val_err") is not None}}


def test_two_sweeps_share_one_postgres_study(postgres, tmp_path):
    outs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    procs = [sweep_process(out, postgres.url) for out in outs]
    ends = [p.communicate(timeout=900) for p in procs]
    for p, (stdout, stderr) in zip(procs, ends):
        assert p.returncode == 0, (stdout, stderr)
        assert "Traceback" not in stderr, stderr

    # the plain postgresql:// URL was given psycopg 3, the driver the postgres extra installs
    url = postgres.url.replace("postgresql://", "postgresql+psycopg://")
    assert f"storage {url}" in ends[0][0] and f"optuna-dashboard {url}" in ends[0][0]

    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = study.get_trials()
    grid = {(n, lr) for n in (1, 2) for lr in (0.1, 0.05)}
    assert len(trials) == 4, [(t.number, t.state.name, t.params, t.user_attrs.get("reason"))
                              for t in trials]
    assert {(t.params["n"], t.params["lr"]) for t in trials} == grid      # none twice, none lost
    assert all(t.state.name == "COMPLETE" for t in trials)

    # every run folder is in one of the two --out folders, one per trial
    folders = {p.resolve(): out for out in outs if (out / "runs").exists()
               for p in (out / "runs").iterdir()}
    assert sorted(map(str, folders)) == sorted(t.user_attrs["run_dir"] for t in trials)
    records = {p: run_record(p) for p in folders}
    # each machine's table lists the whole study (the other machine may still be training)
    for out in outs:
        rows = list(csv.DictReader((out / "study.csv").read_text().splitlines()))
        assert {(int(r["n"]), float(r["lr"])) for r in rows} == grid and len(rows) == 4

    # what optuna-dashboard serves for the study matches the run records
    from optuna_dashboard import wsgi

    app = wsgi(url)
    listed = {s["study_name"]: s for s in dashboard_get(app, "/api/studies")["study_summaries"]}
    assert list(listed) == [STUDY]
    detail = dashboard_get(app, f"/api/studies/{listed[STUDY]['study_id']}")
    assert detail["name"] == STUDY and detail["directions"] == ["minimize"]
    assert detail["objective_names"] == ["val_err"]
    assert len(detail["trials"]) == 4
    for shown in detail["trials"]:
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        record = records[Path(attrs["run_dir"])]
        params = {p["name"]: p["param_external_value"] for p in shown["params"]}
        assert shown["state"] == "Complete" and record["status"] == "completed"
        assert record["sweep"]["study"] == STUDY and record["sweep"]["trial"] == shown["number"]
        assert params == {k: str(v) for k, v in record["sweep"]["params"].items()}
        assert shown["values"] == [pytest.approx(record["val_err"])]
        assert {v["step"]: v["value"] for v in shown["intermediate_values"]} == pytest.approx(
            record["curve"])
        assert sorted(record["curve"]) == [10, 20]
        assert attrs["status"] == "completed"


def test_a_plain_postgres_url_gets_the_installed_driver(postgres):
    plain = postgres.url
    assert sweep_storage.server_url("--storage", plain) == plain.replace(
        "postgresql://", "postgresql+psycopg://")
    named = plain.replace("postgresql://", "postgresql+psycopg://")
    assert sweep_storage.server_url("--storage", named) == named


def test_a_missing_driver_is_one_message(monkeypatch):
    monkeypatch.setattr(sweep_storage, "_installed", lambda module: False)
    with pytest.raises(SweepError) as err:
        sweep_storage.server_url("--storage", "postgresql://resdsl:secret@db.example/resdsl")
    assert str(err.value) == (
        "--storage postgresql://resdsl:***@db.example/resdsl: the PostgreSQL driver psycopg is "
        "not installed; pip install 'resdsl[postgres]' (psycopg 3)")


def test_a_server_that_refuses_is_one_message_before_any_output(tmp_path):
    need_psycopg()
    port = free_port()      # nothing listens there
    out = tmp_path / "never"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "resdsl", "sweep", "cifar_6n2", *GRID, *FAST,
                        "--storage", f"postgresql://resdsl:secret@127.0.0.1:{port}/resdsl",
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "secret" not in p.stderr
    assert p.stderr.startswith(f"--storage postgresql+psycopg://resdsl:***@127.0.0.1:{port}/resdsl: "
                               "cannot connect (connection failed: "), p.stderr
    assert not out.exists()


def test_preparing_holds_the_servers_lock(postgres):
    """While one sweep prepares the queue, another connection cannot take the lock; once it is
    done, it can (the lock is let go)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    url = sweep_storage.server_url("--storage", postgres.url)
    engine = create_engine(url, poolclass=NullPool)

    def other_machine_can_lock() -> bool:
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                               {"k": sweep_storage.PREPARE_LOCK_KEY}).scalar()
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                             {"k": sweep_storage.PREPARE_LOCK_KEY})
            return got

    try:
        with sweep_storage.server_lock(url):
            assert other_machine_can_lock() is False
        assert other_machine_can_lock() is True
    finally:
        engine.dispose()
