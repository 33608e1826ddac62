"""Loading data-set pickles without letting them run code.

A pickle can name any importable callable (``os.system``, ``subprocess.Popen``...) and have the
loader call it. Data-set files come from the internet, so we only admit the handful of globals
that plain numpy arrays need; everything else (dicts, lists, bytes, str, numbers) is built by
pickle opcodes that name no class at all.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from resdsl.errors import DataError

try:  # numpy >= 2 keeps the implementation in numpy._core; numpy.core is a deprecated alias
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(obj: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Python 3 writes ``bytes`` in protocol-2 pickles as ``_codecs.encode(str, 'latin1')``.

    ``codecs.encode`` accepts any codec name, so we admit it only in that one harmless form.
    """
    if encoding.replace("-", "").replace("_", "").lower() != "latin1" or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, "latin1", errors)


# (module, name) -> the object handed to the unpickler. Resolved here, once, so that loading
# never imports a module named by the file (importing can itself run code).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar  # numpy scalars (np.int64(3))
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol-5 arrays


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``_ALLOWED``; any other raises."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


class _Refused(pickle.UnpicklingError):
    def __init__(self, qualname: str):
        super().__init__(qualname)
        self.qualname = qualname


def safe_load_pickle(path: str | Path, encoding: str = "bytes") -> Any:
    """Unpickle a data file, admitting only numpy arrays and plain Python data.

    ``encoding="bytes"`` is how the CIFAR files are meant to be read (they were written by
    Python 2, so their keys come back as ``b"data"``...). Every failure is a ``DataError`` that
    names the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding=encoding).load()
    except _Refused as e:
        raise DataError(
            f"refusing to load {path}: it names class {e.qualname}, which a data file has no "
            "reason to contain (loading it could run code). Delete the file and get the data "
            "set again from its official source."
        ) from None
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # truncated or garbage file: EOFError, UnpicklingError, ValueError...
        raise DataError(
            f"{path} is not a readable pickle ({type(e).__name__}: {e}); the file is probably "
            "truncated or corrupt. Delete it and get the data set again."
        ) from None
