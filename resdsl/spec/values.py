"""The values of the spec language: ints, floats, bools, strings and lists, their names and text.

A list is a ListValue: an immutable tuple (so lists compare with == and are hashable, as
unique() and `in` need) that knows how deeply it nests, so that no list is ever deeper than
MAX_LIST_NESTING and comparing or showing one never runs out of stack.
"""

from __future__ import annotations

from typing import Iterable

from .limits import MAX_LIST_LENGTH, MAX_LIST_NESTING


class ListValue(tuple):
    """A list of the language. Build one with make_list, which checks the limits."""

    depth: int  # 1 for a list of plain values, 2 for a list of such lists, ...

    def __repr__(self) -> str:  # as a spec writes it, wherever a list is printed
        return show(self, None)


def make_list(items: Iterable) -> ListValue:
    """A list of the items; ValueError (its message a noun phrase, as value_problem's) when it is
    longer than MAX_LIST_LENGTH or nests deeper than MAX_LIST_NESTING."""
    result = ListValue(items)
    if len(result) > MAX_LIST_LENGTH:
        raise ValueError(f"a list of {len(result)} items, over the limit of {MAX_LIST_LENGTH}")
    result.depth = 1 + max((x.depth for x in result if type(x) is ListValue), default=0)
    if result.depth > MAX_LIST_NESTING:
        raise ValueError(f"lists nested more than {MAX_LIST_NESTING} deep")
    return result


EMPTY_LIST = make_list(())

TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
              ListValue: "a list"}
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string", ListValue: "list"}


def type_name(value) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def is_number(value) -> bool:
    """An int or a float; true and false are not numbers here."""
    return type(value) in (int, float)


def show(value, limit: int | None = 8) -> str:
    """A value as a spec writes it: "A", true, 0.1, [16, 32]. Lists longer than ``limit`` items
    are cut short ([1, 2, ... (100 items)]); None shows every item."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if type(value) is ListValue:
        shown = value if limit is None or len(value) <= limit else value[:limit]
        text = ", ".join(show(v, limit) for v in shown)
        if len(shown) < len(value):
            text += f", ... ({len(value)} items)"
        return f"[{text}]"
    return repr(value)


def to_text(value) -> str:
    """str(value) in a spec: a string itself, anything else as the spec writes it."""
    return value if isinstance(value, str) else show(value, None)
