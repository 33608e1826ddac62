"""A sweep's --storage on a database server (PostgreSQL, MySQL): the URL checked before anything
is written, and the lock under which the machines sharing a study prepare its queue.

PostgreSQL goes through psycopg 3 (``pip install 'resdsl[postgres]'``): a plain
``postgresql://`` URL, which SQLAlchemy would hand to psycopg2, is given the ``psycopg`` driver
when psycopg 3 is installed, so the URL the sweep prints (and optuna-dashboard opens) names the
driver that is there.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util

from resdsl.errors import SweepError

# SQLAlchemy's PostgreSQL driver names -> the module each needs
POSTGRES_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2"}
CONNECT_TIMEOUT_S = 10      # a server that does not answer (a firewall dropping packets)
# One advisory lock of the server for every sweep that prepares a queue there (preparing takes
# well under a second); the key is any fixed 64-bit number, this one from the lock's name.
PREPARE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"resdsl sweep prepare").digest()[:8], "big",
                                  signed=True)
INSTALL_HINT = "pip install 'resdsl[postgres]' (psycopg 3)"


def shown(url: str) -> str:
    """The URL with its password masked, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def server_url(option: str, url: str) -> str:
    """A server URL with its driver named and installed, checked by connecting to it. Raises
    SweepError for a URL SQLAlchemy cannot read, a missing driver or a server that refuses."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SweepError(f"{option} {url!r}: not a storage URL; expected sqlite:///PATH, "
                         "postgresql://USER@HOST[:PORT]/DB or mysql+pymysql://USER@HOST/DB") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql":
        if not driver:
            # SQLAlchemy's default is psycopg2; psycopg 3 is what the postgres extra installs
            driver = "psycopg" if _installed("psycopg") or not _installed("psycopg2") else "psycopg2"
            parsed = parsed.set(drivername=f"postgresql+{driver}")
        module = POSTGRES_DRIVERS.get(driver)
        if module is not None and not _installed(module):
            raise SweepError(f"{option} {shown(url)}: the PostgreSQL driver {module} is not "
                             f"installed; {INSTALL_HINT}"
                             + ("" if module == "psycopg" else ", then use postgresql://"))
    url = parsed.render_as_string(hide_password=False)
    _check_connects(option, url, backend)
    return url


def _check_connects(option: str, url: str, backend: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if backend in ("postgresql", "mysql") else {}
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except ModuleNotFoundError as e:
        raise SweepError(f"{option} {shown(url)}: its driver is not installed ({e})") from None
    except Exception as e:  # the driver's own error: refused, unknown host, auth, no database
        raise SweepError(f"{option} {shown(url)}: cannot connect ({_detail(e)})") from None


@contextlib.contextmanager
def server_lock(url: str):
    """Hold the server's prepare lock (PostgreSQL: a session advisory lock, let go when this
    process's connection ends, even if it dies). Other servers have none: two machines that
    queue the same grid point at once leave a trial recorded as "duplicate"."""
    if not url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    conn = None
    try:
        conn = engine.connect()
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PREPARE_LOCK_KEY})
        conn.commit()
    except Exception as e:
        with contextlib.suppress(Exception):
            if conn is not None:
                conn.close()
            engine.dispose()
        raise SweepError(f"--storage {shown(url)}: cannot take the lock for preparing the queue "
                         f"({_detail(e)})") from None
    try:
        yield
    finally:
        with contextlib.suppress(Exception):   # closing the connection lets it go anyway
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PREPARE_LOCK_KEY})
            conn.commit()
        with contextlib.suppress(Exception):
            conn.close()
            engine.dispose()


def _detail(e: Exception) -> str:
    """The driver's own message on one line."""
    return " ".join(str(getattr(e, "orig", None) or e).split())
