"""Expressions of a spec: the names an expression sees, its value, and the types values must have.

Values are ints, floats, bools and strings; nothing is evaluated as Python.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping

from . import ast
from ..errors import SourcePos, SpecError, did_you_mean
from .limits import value_problem

TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}


class CheckContext:
    """Where the checker is: the source of each file (for carets) and the chain of block calls."""

    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        self.trace: list[str] = []
        self.instances = 0

    def error(self, message: str, pos: SourcePos | None, hint: str | None = None) -> SpecError:
        if self.trace:
            chain = "\n".join(f"  in {t}" for t in reversed(self.trace))
            hint = f"{hint}\n{chain}" if hint else chain
        source = self.sources.get(pos.path) if pos else None
        return SpecError(message, pos, source, hint)


# ---------------------------------------------------------------- expressions
def type_name(v) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list"}.get(type(v), type(v).__name__)


class Names(Mapping):
    """The names an expression sees: local names (the network's classes, a block's formals) over
    the spec's globals (parameters and lets). Every global looked up is noted in `read`, which is
    how the checker learns which parameters the network uses."""

    def __init__(self, globals_: dict, local: dict | None = None, read: set | None = None):
        self.globals = globals_
        self.local = local or {}
        self.read = read if read is not None else set()

    def with_locals(self, names: dict) -> "Names":
        return Names(self.globals, {**self.local, **names}, self.read)

    def note_read(self, name: str) -> None:
        """Record a read of `name` without needing its value."""
        if name not in self.local and name in self.globals:
            self.read.add(name)

    def __getitem__(self, name: str):
        if name in self.local:
            return self.local[name]
        value = self.globals[name]
        self.read.add(name)
        return value

    def __contains__(self, name) -> bool:
        return name in self.local or name in self.globals

    def __iter__(self):
        yield from self.local
        yield from (k for k in self.globals if k not in self.local)

    def __len__(self) -> int:
        return len(self.local) + sum(1 for k in self.globals if k not in self.local)


def evaluate(expr: ast.Expr, env: Names, ctx: CheckContext):
    """Value of an expression; names come from env. Chains are loops, so only brackets recurse,
    and the parser bounds how deep they nest."""
    if isinstance(expr, ast.Lit):
        return expr.value
    if isinstance(expr, ast.Var):
        if expr.name not in env:
            guess = did_you_mean(expr.name, env)
            raise ctx.error(f"unknown name '{expr.name}'", expr.pos,
                            f"did you mean '{guess}'?" if guess else None)
        return env[expr.name]
    if isinstance(expr, ast.Chain):
        return _chain(expr, env, ctx)
    if isinstance(expr, ast.ListLit):
        return [evaluate(item, env, ctx) for item in expr.items]
    if isinstance(expr, ast.Cond):
        for i, (value, test) in enumerate(expr.cases):
            t = evaluate(test, env, ctx)
            if not isinstance(t, bool):
                raise ctx.error(f"the condition of 'if' must be true or false, got {type_name(t)}", test.pos)
            if t:
                _note_reads([other for j, (other, _) in enumerate(expr.cases) if j != i]
                            + [later for _, later in expr.cases[i + 1:]] + [expr.otherwise], env)
                return evaluate(value, env, ctx)
        _note_reads([v for v, _ in expr.cases], env)
        return evaluate(expr.otherwise, env, ctx)
    v = evaluate(expr.operand, env, ctx)
    if expr.op == "not":
        if not isinstance(v, bool):
            raise ctx.error(f"'not' needs true or false, got {type_name(v)}", expr.pos)
        return v if expr.count % 2 == 0 else not v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ctx.error(f"'-' needs a number, got {type_name(v)}", expr.pos)
    return v if expr.count % 2 == 0 else -v


def _note_reads(exprs: list[ast.Expr], env: Names) -> None:
    """Look up, without evaluating, the names in the branches not taken: a parameter that only an
    untaken branch reads is still a parameter the network reads (another value takes that branch)."""
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Var):
            env.note_read(e.name)
        elif isinstance(e, ast.Chain):
            stack.append(e.first)
            stack.extend(operand for _, operand, _ in e.rest)
        elif isinstance(e, ast.Cond):
            stack.extend(x for case in e.cases for x in case)
            stack.append(e.otherwise)
        elif isinstance(e, ast.UnaryOp):
            stack.append(e.operand)
        elif isinstance(e, ast.ListLit):
            stack.extend(e.items)


def _chain(expr: ast.Chain, env: Names, ctx: CheckContext):
    left = evaluate(expr.first, env, ctx)
    left_pos = expr.first.pos
    for i, (op, operand, pos) in enumerate(expr.rest):
        if op in ("and", "or"):
            if not isinstance(left, bool):
                raise ctx.error(f"'{op}' needs true or false, got {type_name(left)}", left_pos)
            if (op == "and" and not left) or (op == "or" and left):
                _note_reads([e for _, e, _ in expr.rest[i:]], env)
                return left
            left, left_pos = evaluate(operand, env, ctx), operand.pos
            if not isinstance(left, bool):
                raise ctx.error(f"'{op}' needs true or false, got {type_name(left)}", left_pos)
            continue
        left = _binop(op, left, evaluate(operand, env, ctx), pos, ctx)
    return left


def _binop(op: str, left, right, pos: SourcePos, ctx: CheckContext):
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    both_numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    both_strings = isinstance(left, str) and isinstance(right, str)
    if op in ("<", ">", "<=", ">="):
        if not (both_numbers or both_strings):
            raise ctx.error(f"cannot compare {type_name(left)} with {type_name(right)}", pos)
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    if not (both_numbers or (op == "+" and both_strings)):
        raise ctx.error(f"'{op}' needs numbers, got {type_name(left)} and {type_name(right)}", pos)
    if op in ("/", "//", "%") and right == 0:
        raise ctx.error("division by zero", pos)
    try:
        result = _ARITHMETIC[op](left, right)
    except OverflowError:
        result = math.inf
    problem = value_problem(result)
    if problem:
        raise ctx.error(f"'{op}' gives {problem}", pos)
    return result


_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
               "//": operator.floordiv, "%": operator.mod}


def coerce(value, want: type, what: str, pos: SourcePos, ctx: CheckContext):
    """Check a value against a declared type; an int is a fine float, a float is never an int."""
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is want:
        return value
    hint = None
    if want is int and isinstance(value, float):
        hint = "use // for integer division"
    raise ctx.error(f"{what} must be {TYPE_WORDS[want]}, got {type_name(value)} {value!r}", pos, hint)
