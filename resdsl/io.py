"""Atomic file writes: a kill at any moment leaves either the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary file name beside ``path`` for a writer that wants a name, not a file object
    (an exporter). When the block ends without an error the file is given the mode a plain
    open() would, fsynced and renamed onto ``path``; on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 less the umask),
        # so records in a shared reports folder stay readable by the team.
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _atomic(path: Path, write: Callable[[IO], None], mode: str) -> None:
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        write(f)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data), "wb")


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch

    _atomic(path, lambda f: torch.save(obj, f), "wb")


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one line and fsync; a torn last line is skipped by readers (see read_jsonl)."""
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """All complete JSON lines of a file; a torn final line (a kill mid-write) is dropped."""
    rows = []
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows
