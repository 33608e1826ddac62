"""Where a command may write: one check for every output path, one kind of message.

Each command checks its outputs before it does any work, so a wrong path costs no training and
leaves nothing half-written; inputs are never overwritten, and a file of another kind only with
--force.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .errors import ResdslError

ONNX_MAGIC = b"\x08"                   # an ONNX ModelProto opens with its ir_version field
SQLITE_MAGIC = b"SQLite format 3\x00"


class OutputError(ResdslError):
    """An output path that cannot be written as asked."""


def _fail(option: str, path: Path, why: str) -> OutputError:
    return OutputError(f"{option} {path}: {why}")


def _cannot_write_in(folder: Path) -> str | None:
    """Why nothing can be created in ``folder``, or None. Tried for real (a folder made and
    removed at once): permission bits say nothing for root, /proc, read-only mounts."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".resdsl-write-test-"))
    except OSError as e:
        return "permission denied" if e.errno in (errno.EACCES, errno.EPERM) else (e.strerror or str(e))
    return None


def _check_parents(option: str, path: Path) -> None:
    """Every existing ancestor is a folder, and the nearest one lets us create what is missing."""
    probe = path.parent
    while True:
        if probe.exists() or probe.is_symlink():
            if not probe.is_dir():
                raise _fail(option, path, f"{probe} is a file, not a folder")
            why = _cannot_write_in(probe)
            if why:
                raise _fail(option, path, f"cannot write in {probe} ({why})")
            return
        if probe.parent == probe:
            return
        probe = probe.parent


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError:
        return False
    return head == magic or head == b""


def check_output_file(option: str, path: Path | str, *, inputs: Iterable[Path | str] = (),
                      kind: str | None = None, magic: bytes | None = None, force: bool = False) -> Path:
    """A file this command will (re)write. ``kind``/``magic``: an existing file is replaced only
    when it starts with ``magic`` (or is empty), unless ``force``."""
    path = Path(path).expanduser()
    for src in inputs:
        if _same_file(path, Path(src)):
            raise _fail(option, path, "is an input of this command; it is never overwritten")
    if path.is_dir():
        raise _fail(option, path, "is a folder; give a file name")
    _check_parents(option, path)
    if path.exists():
        if not path.is_file():
            raise _fail(option, path, "exists and is not a regular file")
        if not os.access(path, os.W_OK):
            raise _fail(option, path, "cannot be overwritten (permission denied)")
        if magic is not None and not force and not _starts_with(path, magic):
            raise _fail(option, path, f"exists and is not {kind}; use --force to replace it")
    return path


def check_output_dir(option: str, path: Path | str, *, reusable: Callable[[Path], bool] | None = None,
                     create: bool = False) -> Path:
    """A folder this command writes into (created if missing when ``create``)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise _fail(option, path, "exists and is a file, not a folder")
    _check_parents(option, path)
    why = _cannot_write_in(path) if path.is_dir() else None
    if why:
        raise _fail(option, path, f"cannot write in it ({why})")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _fail(option, path, f"cannot create it ({e.strerror or e})") from None
    return path


def check_sqlite_url(option: str, url: str) -> str:
    """sqlite:///PATH: the database file is an output too; other URLs are the server's business."""
    if url.startswith("sqlite:///"):
        raw = url[len("sqlite:///"):]
        if raw and raw != ":memory:":
            check_output_file(option, raw, kind="an SQLite database", magic=SQLITE_MAGIC)
    return url
