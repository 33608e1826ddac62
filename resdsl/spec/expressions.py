"""Expressions of a spec: the names an expression sees, its value, and the types values must have.

Values are ints, floats, bools, strings and lists (values.py); the only functions are the fixed
table in functions.py. Nothing is evaluated as Python.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping

from . import ast
from ..errors import ConstraintError, SourcePos, SpecError, did_you_mean
from .functions import FUNCTIONS, Function, FunctionError, power
from .limits import MAX_LIST_WORK, value_problem
from .values import TYPE_WORDS, ListValue, is_number, make_list, show, type_name


class CheckContext:
    """Where the checker is: the source of each file (for carets), the chain of block calls, and
    the work spent on lists so far."""

    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        self.trace: list[str] = []
        self.instances = 0
        self.list_work = 0
        self.enforce_requires = True  # False: a require that does not hold is no error

    def error(self, message: str, pos: SourcePos | None, hint: str | None = None,
              kind: type[SpecError] = SpecError) -> SpecError:
        if self.trace:
            chain = "\n".join(f"  in {t}" for t in reversed(self.trace))
            hint = f"{hint}\n{chain}" if hint else chain
        source = self.sources.get(pos.path) if pos else None
        return kind(message, pos, source, hint)

    def list_items(self, count: int, pos: SourcePos) -> None:
        """Count list items built or walked; a spec that needs more than MAX_LIST_WORK of them stops."""
        self.list_work += count
        if self.list_work > MAX_LIST_WORK:
            raise self.error(f"the spec builds or walks more than {MAX_LIST_WORK:,} list items", pos,
                             "lists in a spec describe a network: a few numbers per stage or block")

    def new_list(self, items, what: str, pos: SourcePos) -> ListValue:
        try:
            result = make_list(items)
        except ValueError as e:
            raise self.error(f"{what} gives {e}", pos) from None
        self.list_items(len(result), pos)
        return result


# ---------------------------------------------------------------- expressions
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
    """Value of an expression; names come from env. Chains are loops, so only brackets, lists and
    calls recurse, and the parser bounds how deep they nest."""
    return _EVALUATE[type(expr)](expr, env, ctx)


def _lit(expr: ast.Lit, env: Names, ctx: CheckContext):
    return expr.value


def _var(expr: ast.Var, env: Names, ctx: CheckContext):
    if expr.name not in env:
        guess = did_you_mean(expr.name, env)
        hint = f"did you mean '{guess}'?" if guess else None
        if expr.name in FUNCTIONS:
            hint = f"'{expr.name}' is a function: call it, e.g. {FUNCTIONS[expr.name].usage}"
        raise ctx.error(f"unknown name '{expr.name}'", expr.pos, hint)
    return env[expr.name]


def _cond(expr: ast.Cond, env: Names, ctx: CheckContext):
    for i, (value, test) in enumerate(expr.cases):
        t = evaluate(test, env, ctx)
        if not isinstance(t, bool):
            raise ctx.error(f"the condition of 'if' must be true or false, got {type_name(t)}", test.pos)
        if t:
            note_reads([other for j, (other, _) in enumerate(expr.cases) if j != i]
                        + [later for _, later in expr.cases[i + 1:]] + [expr.otherwise], env)
            return evaluate(value, env, ctx)
    note_reads([v for v, _ in expr.cases], env)
    return evaluate(expr.otherwise, env, ctx)


def _unary(expr: ast.UnaryOp, env: Names, ctx: CheckContext):
    v = evaluate(expr.operand, env, ctx)
    if expr.op == "not":
        if not isinstance(v, bool):
            raise ctx.error(f"'not' needs true or false, got {type_name(v)}", expr.pos)
        return v if expr.count % 2 == 0 else not v
    return _negate(v, expr.count, expr.pos, ctx)


def _negate(v, count: int, pos: SourcePos, ctx: CheckContext):
    if not is_number(v):
        raise ctx.error(f"'-' needs a number, got {type_name(v)}", pos)
    return v if count % 2 == 0 else -v


def _power(expr: ast.Power, env: Names, ctx: CheckContext):
    """p0 ** s1 p1 ** ... ** sn pn is p0 ** s1(p1 ** s2(... sn(pn))): operands are evaluated left
    to right, the powers taken right to left, each run of signs applied to the power on its right."""
    values = [evaluate(expr.first, env, ctx)] + [evaluate(e, env, ctx) for _, e, _ in expr.rest]
    minus, operand, _ = expr.rest[-1]
    acc = _negate(values[-1], minus, operand.pos, ctx) if minus else values[-1]
    for k in range(len(expr.rest) - 1, -1, -1):
        op_pos = expr.rest[k][2]
        try:
            acc = power(values[k], acc)
        except FunctionError as e:
            raise ctx.error(f"'**' {e.message}", op_pos, e.hint) from None
        problem = value_problem(acc)
        if problem:
            raise ctx.error(f"'**' gives {problem}", op_pos)
        if k and expr.rest[k - 1][0]:
            acc = _negate(acc, expr.rest[k - 1][0], expr.rest[k - 1][1].pos, ctx)
    return acc


def _list_lit(expr: ast.ListLit, env: Names, ctx: CheckContext):
    return ctx.new_list([evaluate(e, env, ctx) for e in expr.items], "the list", expr.pos)


def _comprehension(expr: ast.Comprehension, env: Names, ctx: CheckContext):
    items = evaluate(expr.iterable, env, ctx)
    names = expr.names
    if type(items) is not ListValue:
        raise ctx.error(f"'for {', '.join(names)} in' needs a list, got {type_name(items)} {show(items)}",
                        expr.iterable.pos, "range(n) is the list [0, 1, ..., n - 1]")
    ctx.list_items(len(items), expr.pos)
    inner = env.with_locals(dict.fromkeys(names))
    out = []
    for item in items:
        if len(names) == 1:
            inner.local[names[0]] = item
        elif type(item) is not ListValue or len(item) != len(names):
            raise ctx.error(f"'for {', '.join(names)} in' unpacks each item into {len(names)} values, got "
                            f"{type_name(item)} {show(item)}", expr.iterable.pos,
                            "zip(a, b) gives the pairs [a[0], b[0]], [a[1], b[1]], ...")
        else:
            inner.local.update(zip(names, item))
        if expr.condition is not None:
            keep = evaluate(expr.condition, inner, ctx)
            if not isinstance(keep, bool):
                raise ctx.error(f"the condition of 'if' must be true or false, got {type_name(keep)}",
                                expr.condition.pos)
            if not keep:
                continue
        out.append(evaluate(expr.element, inner, ctx))
    if not out:
        # As with an 'if' branch not taken: what the element (or the condition) reads is read.
        note_reads([expr.element] if items else [expr.element, expr.condition], inner)
    return ctx.new_list(out, "the comprehension", expr.pos)


def _index(expr: ast.Index, env: Names, ctx: CheckContext):
    value = evaluate(expr.target, env, ctx)
    for index_expr in expr.indices:
        i = evaluate(index_expr, env, ctx)
        if type(value) is not ListValue:
            raise ctx.error(f"only a list has items to index, not {type_name(value)} {show(value)}", index_expr.pos)
        if type(i) is not int:
            raise ctx.error(f"an index must be an integer, got {type_name(i)} {show(i)}", index_expr.pos,
                            "use // for integer division" if type(i) is float else None)
        if not -len(value) <= i < len(value):
            raise ctx.error(f"index {i} is out of range for a list of {len(value)} items", index_expr.pos,
                            f"indices run 0..{len(value) - 1}, or -{len(value)}..-1 from the end"
                            if value else "the list is empty")
        value = value[i]
    return value


def _call(expr: ast.FuncCall, env: Names, ctx: CheckContext):
    fn = FUNCTIONS.get(expr.name)
    if fn is None:
        guess = did_you_mean(expr.name, FUNCTIONS)
        raise ctx.error(f"unknown function '{expr.name}'", expr.pos,
                        f"did you mean '{guess}'?" if guess else f"the functions: {', '.join(FUNCTIONS)}")
    values, places = _bind(fn, expr, env, ctx)
    for v in values:
        if type(v) is ListValue:
            ctx.list_items(len(v), expr.pos)
    try:
        result = fn.apply(*values)
    except FunctionError as e:
        raise ctx.error(f"'{expr.name}' {e.message}", expr.pos if e.arg is None else places[e.arg],
                        e.hint) from None
    problem = value_problem(result)
    if problem:
        raise ctx.error(f"'{expr.name}' gives {problem}", expr.pos)
    return result


def _bind(fn: Function, call: ast.FuncCall, env: Names, ctx: CheckContext) -> tuple[list, list[SourcePos]]:
    """The values of a call's parameters (defaults filled in) and where each was given."""
    name, usage = call.name, f"usage: {fn.usage}"
    positional = [a for a in call.args if a.name is None]
    named = call.args[len(positional):]
    if any(a.name is None for a in named):
        raise ctx.error("a positional argument follows a keyword argument",
                        next(a for a in call.args if a.name is not None).pos)
    if named and not fn.keywords:
        raise ctx.error(f"'{name}' takes no keyword arguments", named[0].pos, usage)
    most = len(fn.params) if fn.params else len(positional)
    if len(positional) > most:
        exactly = "" if fn.required == most else "at most "
        raise ctx.error(f"'{name}' takes {exactly}{most} argument{'s' if most != 1 else ''}, got {len(positional)}",
                        positional[most].pos, usage)
    given = {p: (evaluate(a.value, env, ctx), a.pos) for p, a in zip(fn.params, positional)}
    if fn.variadic:
        if len(positional) < fn.required:
            raise ctx.error(f"'{name}' needs at least {fn.required} argument{'s' if fn.required != 1 else ''}",
                            call.pos, usage)
        if not fn.params:  # min, max: any number
            given = {i: (evaluate(a.value, env, ctx), a.pos) for i, a in enumerate(positional)}
        return [v for v, _ in given.values()], [p for _, p in given.values()]
    for a in named:
        if a.name not in fn.params:
            guess = did_you_mean(a.name, fn.params)
            raise ctx.error(f"'{name}' has no parameter '{a.name}'", a.pos,
                            f"did you mean '{guess}'?" if guess else usage)
        if a.name in given:
            raise ctx.error(f"'{a.name}' is given twice", a.pos)
        given[a.name] = (evaluate(a.value, env, ctx), a.pos)
    values, places = [], []
    for i, p in enumerate(fn.params):
        if p in given:
            values.append(given[p][0])
            places.append(given[p][1])
        elif i < fn.required:
            raise ctx.error(f"'{name}' needs its '{p}' argument", call.pos, usage)
        else:
            values.append(fn.defaults[i - fn.required])
            places.append(call.pos)
    return values, places


def note_reads(exprs: list, env: Names) -> None:
    """Look up, without evaluating, the names in the branches not taken: a parameter that only an
    untaken branch reads is still a parameter the network reads (another value takes that branch).
    A comprehension's own name is not a read inside it."""
    stack = [(e, frozenset()) for e in exprs if e is not None]
    while stack:
        e, bound = stack.pop()
        kind = type(e)
        if kind is ast.Var:
            if e.name not in bound:
                env.note_read(e.name)
        elif kind is ast.Comprehension:
            inner = bound | set(e.names)
            stack.append((e.iterable, bound))
            stack.extend((x, inner) for x in (e.element, e.condition) if x is not None)
        else:
            stack.extend((x, bound) for x in _children(e))


def _children(e) -> list:
    kind = type(e)
    if kind is ast.Chain or kind is ast.Power:
        return [e.first, *(operand for _, operand, _ in e.rest)]
    if kind is ast.Cond:
        return [x for case in e.cases for x in case] + [e.otherwise]
    if kind is ast.UnaryOp:
        return [e.operand]
    if kind is ast.ListLit:
        return list(e.items)
    if kind is ast.Index:
        return [e.target, *e.indices]
    if kind is ast.FuncCall:
        return [a.value for a in e.args]
    return []


def _chain(expr: ast.Chain, env: Names, ctx: CheckContext):
    left = evaluate(expr.first, env, ctx)
    left_pos = expr.first.pos
    for i, (op, operand, pos) in enumerate(expr.rest):
        if op in ("and", "or"):
            if not isinstance(left, bool):
                raise ctx.error(f"'{op}' needs true or false, got {type_name(left)}", left_pos)
            if (op == "and" and not left) or (op == "or" and left):
                note_reads([e for _, e, _ in expr.rest[i:]], env)
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
    if op in ("in", "not in"):
        if type(right) is ListValue:
            ctx.list_items(len(right), pos)
        elif not (isinstance(right, str) and isinstance(left, str)):
            raise ctx.error(f"'{op}' needs a list on its right (or strings on both sides), got "
                            f"{type_name(right)} {show(right)}", pos)
        return (left in right) == (op == "in")
    both_numbers = is_number(left) and is_number(right)
    both_strings = isinstance(left, str) and isinstance(right, str)
    if op in ("<", ">", "<=", ">="):
        if not (both_numbers or both_strings):
            raise ctx.error(f"cannot compare {type_name(left)} with {type_name(right)}", pos)
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    if op == "+" and type(left) is ListValue and type(right) is ListValue:
        return ctx.new_list(left + right, "'+'", pos)
    if not (both_numbers or (op == "+" and both_strings)):
        wanted = "two numbers, two strings or two lists" if op == "+" else "numbers"
        raise ctx.error(f"'{op}' needs {wanted}, got {type_name(left)} and {type_name(right)}", pos)
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

_EVALUATE = {ast.Lit: _lit, ast.Var: _var, ast.Chain: _chain, ast.Cond: _cond, ast.UnaryOp: _unary,
             ast.Power: _power, ast.ListLit: _list_lit, ast.Comprehension: _comprehension, ast.Index: _index,
             ast.FuncCall: _call}


def check_require(req: ast.Require, env: Names, ctx: CheckContext) -> None:
    """A ConstraintError with the spec's message, at the require, when its condition is false."""
    holds = evaluate(req.condition, env, ctx)
    if not isinstance(holds, bool):
        raise ctx.error(f"the condition of 'require' must be true or false, got {type_name(holds)} {show(holds)}",
                        req.condition.pos)
    message = evaluate(req.message, env, ctx)
    if not isinstance(message, str):
        raise ctx.error(f"the message of 'require' must be a string, got {type_name(message)} {show(message)}",
                        req.message.pos, 'str(x) makes a string: "width " + str(w) + " is too wide"')
    if not holds and ctx.enforce_requires:
        raise ctx.error(message, req.pos, kind=ConstraintError)


def coerce(value, want: type, what: str, pos: SourcePos, ctx: CheckContext):
    """Check a value against a declared type; an int is a fine float, a float is never an int."""
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is want:
        return value
    hint = None
    if want is int and isinstance(value, float):
        hint = "use // for integer division"
    raise ctx.error(f"{what} must be {TYPE_WORDS[want]}, got {type_name(value)} {show(value)}", pos, hint)
