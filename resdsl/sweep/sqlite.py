"""A study in a SQLite file (the default --storage, OUT/study.db) on a local disk is opened with
a write-ahead log (``journal_mode=WAL``) and ``synchronous=NORMAL``.

Why: with SQLite's default rollback journal, a reader blocks every writer. The sweep's progress
display reads the whole study every second while the worker commits a dozen small writes per
trial, so each commit waited in SQLite's busy handler: a design rejected by --max-flops took
about 0.26 s, nearly all of it waiting. Under WAL, readers and the writer do not block each other,
and a commit appends to the log without an fsync (a power cut may lose the last commits, never the
file's consistency; an interrupted process loses nothing).

A file on a network filesystem (NFS, SMB, Lustre, ...) keeps SQLite's defaults: WAL needs memory
shared between the processes through the file, which those filesystems do not give.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_S = 60         # how long a connection waits for another's write lock
# Filesystem types (/proc/mounts) that share a file between machines or with a host, where
# SQLite's WAL is not safe
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "lustre", "gpfs", "beegfs", "ceph",
    "glusterfs", "9p", "virtiofs", "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "fuse.s3fs",
    "fuse.gcsfuse", "fuse.juicefs", "fuse.rclone", "panfs", "pvfs2", "orangefs", "ocfs2",
})


def filesystem_type(path: Path, mounts_text: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (its longest mount point in /proc/mounts);
    None where the mount table cannot be read (not Linux)."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes a space in a mount point as \040
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


def uses_wal(path: Path, mounts_text: str | None = None) -> bool:
    """Whether the study file at ``path`` is opened with a write-ahead log (a local disk)."""
    return filesystem_type(path.parent, mounts_text) not in NETWORK_FILESYSTEMS


def engine_kwargs(path: Path) -> dict:
    """SQLAlchemy engine arguments for the study file at ``path``: every connection waits up to
    BUSY_TIMEOUT_S for a lock, and on a local disk uses the write-ahead log."""
    if not uses_wal(path):
        return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}

    def connect() -> sqlite3.Connection:
        # the pool hands a connection to one thread at a time (the display polls from its own)
        con = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        try:
            # persistent in the file once set; refused (and left as it is) while another
            # process holds a transaction on a file still in rollback mode
            con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            pass
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    return {"creator": connect}
