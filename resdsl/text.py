"""Values as people write them: counts in engineering units, typed values from command-line
strings, the wording of a choice that was not one of the allowed names, and the decimals a CSV
file keeps.

Below every layer (it imports only resdsl.errors), so the spec, train, sweep and report layers
share one rule for each instead of a copy each.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

from resdsl.errors import did_you_mean

_UNITS = (("G", 1e9), ("M", 1e6), ("K", 1e3))
_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

# CSV files (runs.csv, study.csv) keep errors as fractions, as the run record does, rounded to
# ERROR_DECIMALS: one image of a 50,000-image test set is 2e-5, so no difference of an image is
# lost, and float noise (0.6376999999999999) is. The tables show the same numbers in percent
# with two decimals. Losses keep as many decimals; seconds SECONDS_DECIMALS.
ERROR_DECIMALS = 6
SECONDS_DECIMALS = 1


def format_count(n, decimals: int | None = None) -> str:
    """A count of parameters or multiply-adds in engineering units.

    Three significant digits by default (40.6M, 1.2G, 253M), no unit below a thousand; with
    ``decimals``, that many decimals and a space before the unit, as in the paper's Table 1
    (``decimals=3``: 3.858 G). None or NaN (a missing count) gives ''.
    """
    try:
        n = float(n)
    except TypeError:  # None, pandas' NA
        return ""
    if math.isnan(n):
        return ""
    for unit, scale in _UNITS:
        if abs(n) >= scale:
            v = n / scale
            if decimals is not None:
                return f"{v:.{decimals}f} {unit}"
            # .3g would write 999.7M as 1e+03M: whole numbers from a hundred up
            return f"{v:.3g}{unit}" if abs(v) < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def parse_value(raw: Any, ptype: type) -> Any:
    """A value of type ``ptype`` (int, float, bool or str) from a command-line string.

    The one rule for spec parameters (--n 18), sweep grids (--grid lr=0.1,0.05) and report
    filters (--filter depth=20): booleans are true/yes/on/1 or false/no/off/0; a whole number
    may be written 18, 1e3 or 18.0; numbers must be finite; a string may be quoted ("A" or 'A').
    A value that is not a string already (the Python API) must have the type (an int is a fine
    float). Raises ValueError saying what was expected.
    """
    if not isinstance(raw, str):
        if ptype is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if type(raw) is ptype:
            return raw
        raise ValueError(f"{raw!r} is not {_TYPE_WORDS.get(ptype, ptype.__name__)}")
    text = raw.strip()
    if ptype is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not true or false")
    if ptype is int:
        try:
            return int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            if math.isfinite(f) and f.is_integer():
                return int(f)
            raise ValueError(f"{raw!r} is not a whole number") from None
    if ptype is float:
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{raw!r} is not a finite number")
        return v
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text


def choose(what: str, value, choices: Iterable[str], error: type[Exception]):
    """``value`` when it is one of ``choices``; else ``error`` with the one wording every command
    uses: "WHAT 'x': choose one of a, b, c (did you mean 'b'?)"."""
    choices = list(choices)
    if value in choices:
        return value
    guess = did_you_mean(str(value), choices)
    raise error(f"{what} {value!r}: choose one of {', '.join(choices)}"
                + (f" (did you mean {guess!r}?)" if guess else ""))


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name``; ``default`` when it is
    unset, not a number or not positive (a tuning knob: a typo must not stop a run)."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


# Columns of counts: written as integers (a blank in a column makes pandas store 62695080.0)
COUNT_COLUMNS = frozenset({"params", "flops", "iters", "iters_done", "iters_full", "batch_size",
                           "seed", "trial", "retry_of", "members", "depth"})


def csv_frame(frame):
    """A DataFrame as resdsl writes it to CSV: rounded by ``csv_decimals``, and the count columns
    (COUNT_COLUMNS) as integers with blanks where they hold only whole numbers."""
    out = frame.round(csv_decimals(frame.columns))
    for c in out.columns:
        s = out[c]
        if c in COUNT_COLUMNS and s.dtype.kind == "f" and bool((s.dropna() % 1 == 0).all()):
            out[c] = s.astype("Int64")
    return out


def csv_decimals(columns: Iterable[str]) -> dict[str, int]:
    """The decimals each numeric column of a CSV file keeps, by its name: errors and losses
    (``*_err``, ``*_loss``) ERROR_DECIMALS, seconds (``*_s``) SECONDS_DECIMALS; for
    ``DataFrame.round``."""
    out = {}
    for c in columns:
        if c.endswith(("_err", "_loss")):
            out[c] = ERROR_DECIMALS
        elif c.endswith("_s"):
            out[c] = SECONDS_DECIMALS
    return out
