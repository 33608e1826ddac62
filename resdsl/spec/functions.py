"""The functions a spec may call in an expression: one fixed table (FUNCTIONS), nothing else.

Each takes and gives values of the language (values.py). A call that cannot be computed raises
FunctionError with a phrase that follows the function's name ("needs a number, got string "a""),
the argument it is about and a hint; expressions.py turns it into a SpecError at that argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .limits import INT_LIMIT, MAX_INT_BITS, MAX_LIST_LENGTH, value_problem
from .values import ListValue, is_number, make_list, show, to_text, type_name


class FunctionError(Exception):
    def __init__(self, message: str, arg: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.arg = arg  # index of the argument it is about; None: the call as a whole
        self.hint = hint


@dataclass(frozen=True)
class Function:
    params: tuple[str, ...]  # parameter names, in order
    required: int  # how many of them a call must give
    apply: Callable  # the value, from every parameter's value (defaults filled in)
    usage: str
    defaults: tuple = ()  # values of the optional parameters a call leaves out
    keywords: bool = False  # arguments may be given by name: make_divisible(c, divisor=4)
    # apply gets only the arguments given, positionally, from `required` to len(params) of them
    # (any number when params is empty: max(a, b, c)); no defaults are filled in.
    variadic: bool = False


# ---------------------------------------------------------------- argument checks
def _got(value) -> str:
    return f"{type_name(value)} {show(value)}"


def _number(value, arg: int):
    if not is_number(value):
        raise FunctionError(f"needs a number, got {_got(value)}", arg)
    return value


def _int(value, arg: int) -> int:
    if type(value) is not int:
        hint = "round(x), floor(x), ceil(x) or int(x) make an integer" if type(value) is float else None
        raise FunctionError(f"needs an integer, got {_got(value)}", arg, hint)
    return value


def _list(value, arg: int) -> ListValue:
    if type(value) is not ListValue:
        raise FunctionError(f"needs a list, got {_got(value)}", arg)
    return value


def _new_list(items) -> ListValue:
    try:
        return make_list(items)
    except ValueError as e:
        raise FunctionError(f"gives {e}") from None


# ---------------------------------------------------------------- the functions
def power(base, exponent):
    """base ** exponent (the `**` operator, pow and power): a real, finite value or FunctionError."""
    _number(base, 0)
    _number(exponent, 1)
    if type(base) is int and type(exponent) is int and exponent >= 0:
        # Refuse a result past the limit before computing it: 2 ** 10**18 would never finish.
        if abs(base) > 1 and exponent * (abs(base).bit_length() - 1) >= MAX_INT_BITS:
            raise FunctionError(f"gives {value_problem(INT_LIMIT)}")
        return base ** exponent
    if base == 0 and exponent < 0:
        raise FunctionError("of 0 to a negative power divides by zero")
    if base < 0 and not float(exponent).is_integer():
        raise FunctionError(f"of a negative number to a fractional power has no real value "
                            f"(({show(base)}) ** {show(exponent)})")
    try:
        return float(base) ** exponent
    except OverflowError:
        raise FunctionError("gives a number that is not finite") from None


def _extreme(pick: Callable) -> Callable:
    """min or max: of its arguments, or of the one list given; all numbers or all strings."""

    def apply(*values):
        one_list = len(values) == 1 and type(values[0]) is ListValue
        items = values[0] if one_list else values
        if not items:
            raise FunctionError("needs at least one value, got an empty list", 0)
        same_kind = is_number if is_number(items[0]) else lambda v: isinstance(v, str)
        for i, v in enumerate(items):
            if not same_kind(v):
                raise FunctionError(f"needs numbers or strings (not both), got {_got(v)}", 0 if one_list else i)
        return pick(items)

    return apply


def _round(x):
    return round(_number(x, 0))


def _log(x, base):
    if _number(x, 0) <= 0:
        raise FunctionError(f"needs a number > 0, got {show(x)}", 0, "the logarithm of 0 or less is not defined")
    if base is None:
        return math.log(x)
    if _number(base, 1) <= 0 or base == 1:
        raise FunctionError(f"needs a base > 0 other than 1, got {show(base)}", 1)
    # log2 and log10 are exact on powers of their base (math.log(1000, 10) is 2.9999999999999996).
    if base == 2:
        return math.log2(x)
    if base == 10:
        return math.log10(x)
    return math.log(x, base)


def _sqrt(x):
    if _number(x, 0) < 0:
        raise FunctionError(f"needs a number >= 0, got {show(x)}", 0, "abs(x) is the magnitude of x")
    return math.sqrt(x)


def _exp(x):
    try:
        return math.exp(_number(x, 0))
    except OverflowError:
        raise FunctionError("gives a number that is not finite") from None


def _len(xs):
    if not isinstance(xs, (str, ListValue)):
        raise FunctionError(f"needs a list or a string, got {_got(xs)}", 0)
    return len(xs)


def _sum(xs):
    for v in _list(xs, 0):
        if not is_number(v):
            raise FunctionError(f"needs a list of numbers, got an item {_got(v)}", 0)
    return sum(xs)


def _range(*args):
    bounds = [_int(v, i) for i, v in enumerate(args)]
    if len(bounds) == 3 and bounds[2] == 0:
        raise FunctionError("needs a step other than 0", 2)
    numbers = range(*bounds)
    # Counted before it is built: range(10**18) must not be.
    if len(numbers) > MAX_LIST_LENGTH:
        raise FunctionError(f"gives a list of {len(numbers)} items, over the limit of {MAX_LIST_LENGTH}")
    return _new_list(numbers)


def _zip(*lists):
    for i, xs in enumerate(lists):
        _list(xs, i)
    return _new_list(_new_list(items) for items in zip(*lists))


def _unique(xs):
    return _new_list(dict.fromkeys(_list(xs, 0)))


def _count(xs, value):
    return _list(xs, 0).count(value)


def _make_divisible(value, divisor, min_value):
    """The channel rounding of MobileNet (and EfficientNet, RegNet): the multiple of divisor
    nearest to value, at least min_value (default divisor), and not below 90% of value."""
    _number(value, 0)
    if _int(divisor, 1) < 1:
        raise FunctionError(f"needs a divisor >= 1, got {divisor}", 1)
    if min_value is not None:
        _int(min_value, 2)
    new = max(min_value or divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _one(apply: Callable, usage: str) -> Function:
    return Function(("x",), 1, apply, usage)


def _to_int(x):
    return int(_number(x, 0))  # toward zero


FUNCTIONS: dict[str, Function] = {
    "min": Function((), 1, _extreme(min), "min(a, b, ...) or min(list)", variadic=True),
    "max": Function((), 1, _extreme(max), "max(a, b, ...) or max(list)", variadic=True),
    "round": _one(_round, "round(x)"),
    "floor": _one(lambda x: math.floor(_number(x, 0)), "floor(x)"),
    "ceil": _one(lambda x: math.ceil(_number(x, 0)), "ceil(x)"),
    "int": _one(_to_int, "int(x)"),
    "float": _one(lambda x: float(_number(x, 0)), "float(x)"),
    "str": _one(to_text, "str(x)"),
    "log": Function(("x", "base"), 1, _log, "log(x) or log(x, base)", (None,), keywords=True),
    "exp": _one(_exp, "exp(x)"),
    "sqrt": _one(_sqrt, "sqrt(x)"),
    "abs": _one(lambda x: abs(_number(x, 0)), "abs(x)"),
    "pow": Function(("x", "y"), 2, power, "pow(x, y)"),
    "power": Function(("x", "y"), 2, power, "power(x, y)"),
    "len": Function(("list",), 1, _len, "len(list)"),
    "sum": Function(("list",), 1, _sum, "sum(list)"),
    "range": Function(("start", "stop", "step"), 1, _range,
                      "range(stop), range(start, stop) or range(start, stop, step)", variadic=True),
    "zip": Function((), 1, _zip, "zip(a, b, ...): the lists' items side by side", variadic=True),
    "unique": Function(("list",), 1, _unique, "unique(list)"),
    "count": Function(("list", "value"), 2, _count, "count(list, value)"),
    "make_divisible": Function(("value", "divisor", "min_value"), 1, _make_divisible,
                               "make_divisible(value, divisor=8, min_value=None)", (8, None), keywords=True),
}
