"""Output paths: one check and one kind of message in every command (build --onnx, train --out,
ensemble --out, report --out, sweep --out/--storage); inputs are never overwritten, a file of
another kind only with --force; nothing is trained or written when a path is wrong."""

import os

import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.errors import ResdslError
from resdsl.outputs import ONNX_MAGIC, OutputError, check_output_dir, check_output_file, check_sqlite_url

runner = CliRunner()
TRAIN = ["--data", "synthetic", "--device", "cpu", "--iters", "2", "--batch-size", "8", "--quiet"]


def cli(*args):
    """As `resdsl ARGS` (resdsl.cli.main): a ResdslError is its message and exit code 2."""
    r = runner.invoke(app, [str(a) for a in args], terminal_width=200)
    if isinstance(r.exception, ResdslError):
        return 2, r.output + str(r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.output


@pytest.fixture
def place(tmp_path):
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.txt").write_text("my notes\n")
    return tmp_path


def bad_out_cases(place):
    """(path, what the message says) for a folder output."""
    return [(place / "afile", "exists and is a file, not a folder"),
            (place / "afile" / "sub", f"{place / 'afile'} is a file, not a folder")]


def test_build_onnx_never_overwrites_its_spec_or_other_files(place):
    spec = place / "tiny.net"
    text = "network t {\n  input 3x8x8\n  classes 2\n  stem s { conv(4, 3); bn; relu }\n  head { avgpool; fc(classes) }\n}\n"
    spec.write_text(text)
    code, out = cli("build", spec, "--onnx", spec)
    assert code == 2 and "is an input of this command" in out and "Traceback" not in out
    assert spec.read_text() == text
    code, out = cli("build", spec, "--onnx", place / "notes.txt")
    assert code == 2 and "exists and is not an ONNX model; use --force" in out
    assert (place / "notes.txt").read_text() == "my notes\n"
    code, out = cli("build", spec, "--onnx", place / "adir")
    assert code == 2 and "is a folder; give a file name" in out
    code, out = cli("build", spec, "--onnx", place / "afile" / "x.onnx")
    assert code == 2 and "is a file, not a folder" in out
    # a real export, then replacing it (an ONNX model) needs no --force; --force replaces notes
    pytest.importorskip("onnxscript")
    code, out = cli("build", spec, "--onnx", place / "t.onnx")
    assert code == 0, out
    assert (place / "t.onnx").read_bytes()[:1] == ONNX_MAGIC
    assert cli("build", spec, "--onnx", place / "t.onnx")[0] == 0
    code, out = cli("build", spec, "--onnx", place / "notes.txt", "--force")
    assert code == 0 and (place / "notes.txt").read_bytes()[:1] == ONNX_MAGIC


def test_train_out_is_checked_before_training(place):
    for path, why in bad_out_cases(place):
        code, out = cli("train", "cifar_6n2", *TRAIN, "--out", path)
        assert code == 2 and f"--out {path}: {why}" in out and "Traceback" not in out
    assert (place / "afile").read_text() == "not a folder\n"
    code, out = cli("train", "--resume", place / "afile")
    assert code == 2 and "is a file, not a folder" in out


def test_report_and_ensemble_out(place):
    for path, why in bad_out_cases(place):
        code, out = cli("report", place / "adir", "--out", path)
        assert code == 2 and f"--out {path}: {why}" in out and "Traceback" not in out
        code, out = cli("ensemble", place / "adir", place / "adir", "--out", path)
        assert code == 2 and f"--out {path}: {why}" in out and "Traceback" not in out


def test_sweep_out_and_sqlite_storage(place):
    (place / "tiny.net").write_text("network t {\n  input 3x8x8\n  classes 2\n  stem s { conv(4, 3); bn; relu }\n"
                                    "  head { avgpool; fc(classes) }\n}\n")
    args = ["sweep", place / "tiny.net", "--grid", "lr=0.1", *TRAIN[:-1]]
    for path, why in bad_out_cases(place):
        code, out = cli(*args, "--out", path)
        assert code == 2 and f"--out {path}: {why}" in out and "Traceback" not in out
    code, out = cli(*args, "--out", place / "s", "--storage", f"sqlite:///{place / 'notes.txt'}")
    assert code == 2 and "exists and is not an SQLite database" in out
    assert (place / "notes.txt").read_text() == "my notes\n"
    code, out = cli(*args, "--out", place / "s", "--storage", f"sqlite:///{place / 'adir'}")
    assert code == 2 and "is a folder" in out


def test_the_checks_themselves(place):
    assert check_output_dir("--out", place / "new" / "deeper", create=True).is_dir()
    assert check_output_file("--x", place / "adir" / "f.onnx") == place / "adir" / "f.onnx"
    empty = place / "empty.onnx"
    empty.write_bytes(b"")
    check_output_file("--onnx", empty, kind="an ONNX model", magic=ONNX_MAGIC)   # empty: replaceable
    check_sqlite_url("--storage", "postgresql://u@h/db")                       # a server's business
    with pytest.raises(OutputError, match="through|is a file"):
        check_output_file("--x", place / "afile" / "a" / "b")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_without_write_permission(place):
    locked = place / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            check_output_dir("--out", locked / "run")
        code, out = cli("train", "cifar_6n2", *TRAIN, "--out", locked / "run")
        assert code == 2 and "permission denied" in out
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_where_nothing_can_be_created_even_for_root(place):
    """Permission bits say nothing for root or /proc: the check tries for real."""
    for args in (["train", "cifar_6n2", *TRAIN, "--out", "/proc/resdsl-run"],
                 ["report", place / "adir", "--out", "/proc/resdsl-report"],
                 ["build", "cifar_6n2", "--onnx", "/proc/resdsl.onnx"]):
        code, out = cli(*args)
        assert code == 2 and "cannot write in /proc" in out, (args, out)
    # the storage is checked before --out is created: a refused sweep leaves no folder behind
    (place / "tiny.net").write_text("network t {\n  input 3x8x8\n  classes 2\n  stem s { conv(4, 3); bn; relu }\n"
                                    "  head { avgpool; fc(classes) }\n}\n")
    code, out = cli("sweep", place / "tiny.net", "--grid", "lr=0.1", *TRAIN[:-1], "--out", place / "sw",
                    "--storage", "sqlite:////proc/resdsl.db")
    assert code == 2 and "--storage /proc/resdsl.db: cannot write in /proc" in out
    assert not (place / "sw").exists()
