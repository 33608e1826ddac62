"""Syntax tree to checked model: resolve parameters, evaluate expressions, expand blocks, infer shapes.

Every mistake a spec can hold is reported here as a SpecError at the place it was written.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from . import ast, ir
from .errors import SourcePos, SpecError, did_you_mean
from .spec_limits import MAX_BLOCK_INSTANCES, MAX_NESTING, MAX_REPEAT, value_problem
from .text import parse_value

SHORTCUT_OPTIONS = ("none", "identity", "A", "B", "C")


@dataclass(frozen=True)
class _Sig:
    """A primitive's signature: positional parameter names, then keyword defaults and types."""

    positional: tuple[str, ...]
    defaults: dict
    types: dict


_REQUIRED = object()
PRIMITIVES: dict[str, _Sig] = {
    "conv": _Sig(("out", "k"), {"out": _REQUIRED, "k": _REQUIRED, "stride": 1, "pad": None, "groups": 1,
                                "dilation": 1, "bias": False},
                 {"out": int, "k": int, "stride": int, "pad": int, "groups": int, "dilation": int, "bias": bool}),
    "bn": _Sig((), {"eps": 1e-5, "momentum": 0.1}, {"eps": float, "momentum": float}),
    "relu": _Sig((), {}, {}),
    "maxpool": _Sig(("k",), {"k": _REQUIRED, "stride": None, "pad": 0}, {"k": int, "stride": int, "pad": int}),
    "avgpool": _Sig(("k",), {"k": None, "stride": None, "pad": 0}, {"k": int, "stride": int, "pad": int}),
    "fc": _Sig(("out",), {"out": _REQUIRED, "bias": True}, {"out": int, "bias": bool}),
}
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


class _Ctx:
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
def _type_name(v) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(v), type(v).__name__)


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


def evaluate(expr: ast.Expr, env: Names, ctx: _Ctx):
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
    if isinstance(expr, ast.Cond):
        for i, (value, test) in enumerate(expr.cases):
            t = evaluate(test, env, ctx)
            if not isinstance(t, bool):
                raise ctx.error(f"the condition of 'if' must be true or false, got {_type_name(t)}", test.pos)
            if t:
                _note_reads([other for j, (other, _) in enumerate(expr.cases) if j != i]
                            + [later for _, later in expr.cases[i + 1:]] + [expr.otherwise], env)
                return evaluate(value, env, ctx)
        _note_reads([v for v, _ in expr.cases], env)
        return evaluate(expr.otherwise, env, ctx)
    v = evaluate(expr.operand, env, ctx)
    if expr.op == "not":
        if not isinstance(v, bool):
            raise ctx.error(f"'not' needs true or false, got {_type_name(v)}", expr.pos)
        return v if expr.count % 2 == 0 else not v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ctx.error(f"'-' needs a number, got {_type_name(v)}", expr.pos)
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


def _chain(expr: ast.Chain, env: Names, ctx: _Ctx):
    left = evaluate(expr.first, env, ctx)
    left_pos = expr.first.pos
    for i, (op, operand, pos) in enumerate(expr.rest):
        if op in ("and", "or"):
            if not isinstance(left, bool):
                raise ctx.error(f"'{op}' needs true or false, got {_type_name(left)}", left_pos)
            if (op == "and" and not left) or (op == "or" and left):
                _note_reads([e for _, e, _ in expr.rest[i:]], env)
                return left
            left, left_pos = evaluate(operand, env, ctx), operand.pos
            if not isinstance(left, bool):
                raise ctx.error(f"'{op}' needs true or false, got {_type_name(left)}", left_pos)
            continue
        left = _binop(op, left, evaluate(operand, env, ctx), pos, ctx)
    return left


def _binop(op: str, left, right, pos: SourcePos, ctx: _Ctx):
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    both_numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
    both_strings = isinstance(left, str) and isinstance(right, str)
    if op in ("<", ">", "<=", ">="):
        if not (both_numbers or both_strings):
            raise ctx.error(f"cannot compare {_type_name(left)} with {_type_name(right)}", pos)
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    if not (both_numbers or (op == "+" and both_strings)):
        raise ctx.error(f"'{op}' needs numbers, got {_type_name(left)} and {_type_name(right)}", pos)
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


def _coerce(value, want: type, what: str, pos: SourcePos, ctx: _Ctx):
    """Check a value against a declared type; an int is a fine float, a float is never an int."""
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is want:
        return value
    hint = None
    if want is int and isinstance(value, float):
        hint = "use // for integer division"
    raise ctx.error(f"{what} must be {_TYPE_WORDS[want]}, got {_type_name(value)} {value!r}", pos, hint)


# ---------------------------------------------------------------- parameters
def _space(param: ast.Param, value_type: type, env: Names, ctx: _Ctx) -> ir.ParamSpace | None:
    sp = param.space
    if sp is None:
        return None
    what = f"the search space of '{param.name}'"
    if sp.kind == "choice":
        choices = tuple(_coerce(evaluate(e, env, ctx), value_type, f"a choice of '{param.name}'", e.pos, ctx)
                        for e in sp.values)
        return ir.ParamSpace("choice", choices=choices)
    if value_type not in (int, float):
        raise ctx.error(f"{what} is a range, but '{param.name}' is {_TYPE_WORDS[value_type]}", sp.pos,
                        "use a choice: in [\"a\", \"b\"]")
    low, high = (_coerce(evaluate(e, env, ctx), value_type, what, e.pos, ctx) for e in sp.values[:2])
    if low > high:
        raise ctx.error(f"{what} is empty: {low} > {high}", sp.pos)
    if sp.kind == "log":
        if low <= 0:
            raise ctx.error(f"a log range needs a positive lower bound, got {low}", sp.values[0].pos)
        return ir.ParamSpace("log", low=float(low), high=float(high))
    step = None
    if sp.values[2] is not None:
        step = _coerce(evaluate(sp.values[2], env, ctx), value_type, "a step", sp.values[2].pos, ctx)
        if step <= 0:
            raise ctx.error(f"a step must be positive, got {step}", sp.values[2].pos)
    elif value_type is int:
        step = 1
    return ir.ParamSpace("range", low=low, high=high, step=step)


@dataclass
class ResolvedParams:
    """The spec's parameters and lets, and what each one's value was computed from."""

    params: dict  # parameter values: defaults, then overrides
    spaces: dict[str, ir.ParamSpace]
    types: dict[str, type]
    lets: dict
    values: dict  # parameters and lets: the globals every expression sees
    declared: dict[str, SourcePos]
    reads: dict[str, set[str]]  # name -> the parameters and lets its value was computed from


def resolve_params(files: list[ast.SpecFile], overrides: dict, ctx: _Ctx) -> ResolvedParams:
    """Parameter values (defaults, or the override given for it), their spaces and types, then the lets.

    An override takes the place of its parameter's default where the parameter is declared, so a
    later default or let computed from it sees the value given.
    """
    _check_override_names(files, overrides)
    r = ResolvedParams({}, {}, {}, {}, {}, {}, {})
    for f in files:
        for p in f.params:
            if p.name in r.declared:
                raise ctx.error(f"parameter '{p.name}' is declared twice", p.pos,
                                f"first declared at {r.declared[p.name].path}:{r.declared[p.name].line}")
            r.declared[p.name] = p.pos
            default_reads: set[str] = set()
            default = evaluate(p.default, Names(r.values, read=default_reads), ctx)
            r.types[p.name] = type(default)
            space_reads: set[str] = set()
            space = _space(p, type(default), Names(r.values, read=space_reads), ctx)
            if space is not None:
                r.spaces[p.name] = space
                if not space.contains(default):
                    raise ctx.error(f"the default {ir._show(default)} of '{p.name}' is outside its space "
                                    f"{space.describe()}", p.default.pos)
            if p.name in overrides:
                r.values[p.name] = _override(p.name, overrides[p.name], r.types[p.name], space, p.pos, ctx)
                r.reads[p.name] = space_reads
            else:
                r.values[p.name] = default
                r.reads[p.name] = default_reads | space_reads
    r.params = dict(r.values)
    for f in files:
        for let in f.lets:
            if let.name in r.values:
                raise ctx.error(f"'{let.name}' is already defined", let.pos)
            reads: set[str] = set()
            r.values[let.name] = r.lets[let.name] = evaluate(let.value, Names(r.values, read=reads), ctx)
            r.reads[let.name] = reads
    return r


def _check_override_names(files: list[ast.SpecFile], overrides: dict) -> None:
    declared = {p.name for f in files for p in f.params}
    for name in overrides:
        if name in declared:
            continue
        if any(let.name == name for f in files for let in f.lets):
            raise SpecError(f"'{name}' is computed by a let and cannot be set; set the parameters it uses")
        guess = did_you_mean(name, declared)
        known = ", ".join(sorted(declared)) or "none"
        raise SpecError(f"unknown parameter '{name}'",
                        hint=(f"did you mean '{guess}'? " if guess else "") + f"the spec's parameters: {known}")


def _override(name: str, raw, want: type, space: ir.ParamSpace | None, pos: SourcePos, ctx: _Ctx):
    """The value of `--NAME RAW` for a parameter of type `want`, checked against the limits and its space."""
    try:
        value = parse_value(raw, want)
    except (ValueError, TypeError):
        raise ctx.error(f"--{name} {raw}: '{name}' takes {_TYPE_WORDS[want]}", pos) from None
    problem = value_problem(value)
    if problem:
        raise ctx.error(f"--{name} {raw}: {problem}", pos)
    if space is not None and not space.contains(value):
        raise ctx.error(f"--{name} {ir._show(value)} is outside the declared space {space.describe()}", pos)
    return value


def _used_names(read: set[str], reads: dict[str, set[str]]) -> set[str]:
    """The parameters and lets the network uses: those it reads, and everything their values were
    computed from."""
    used: set[str] = set()
    stack = list(read)
    while stack:
        name = stack.pop()
        if name not in used:
            used.add(name)
            stack.extend(reads.get(name, ()))
    return used


# ---------------------------------------------------------------- sequences
def _conv_out(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


class _Expander:
    """Expands block calls into ir.Seq, checking arguments and shapes on the way."""

    def __init__(self, blocks: dict[str, ast.BlockDef], env: Names, ctx: _Ctx):
        self.blocks = blocks
        self.env = env
        self.ctx = ctx
        self.calling: list[str] = []
        self.depth = 0  # sequences being expanded inside one another: block bodies, shortcut branches

    # -- arguments
    def _bind(self, call: ast.Call, names: tuple[str, ...], defaults: dict, env: Names, what: str) -> dict:
        ctx = self.ctx
        bound: dict = {}
        positional = [a for a in call.args if a.name is None]
        if any(a.name is None for a in call.args[len(positional):]):
            first_kw = next(a for a in call.args if a.name is not None)
            raise ctx.error("a positional argument follows a keyword argument", first_kw.pos)
        if len(positional) > len(names):
            raise ctx.error(f"{what} takes at most {len(names)} positional argument"
                            f"{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}), "
                            f"got {len(positional)}", positional[len(names)].pos)
        for name, arg in zip(names, positional):
            bound[name] = (evaluate(arg.value, env, ctx), arg.pos)
        for arg in call.args[len(positional):]:
            if arg.name not in defaults:
                guess = did_you_mean(arg.name, defaults)
                raise ctx.error(f"{what} has no parameter '{arg.name}'", arg.pos,
                                f"did you mean '{guess}'?" if guess else f"its parameters: {', '.join(defaults)}")
            if arg.name in bound:
                raise ctx.error(f"'{arg.name}' is given twice", arg.pos)
            bound[arg.name] = (evaluate(arg.value, env, ctx), arg.pos)
        return bound

    def _primitive(self, call: ast.Call, env: Names, shape: ir.Shape, name: str) -> ir.Layer:
        ctx = self.ctx
        sig = PRIMITIVES[call.name]
        bound = self._bind(call, sig.positional, sig.defaults, env, f"'{call.name}'")
        attrs = {}
        for pname, default in sig.defaults.items():
            if pname in bound:
                value, pos = bound[pname]
                value = _coerce(value, sig.types[pname], f"{call.name}'s '{pname}'", pos, ctx)
                if sig.types[pname] is int and value < (0 if pname == "pad" else 1):
                    raise ctx.error(f"{call.name}'s '{pname}' must be {'>= 0' if pname == 'pad' else '>= 1'}, "
                                    f"got {value}", pos)
                attrs[pname] = value
            elif default is _REQUIRED:
                raise ctx.error(f"'{call.name}' needs its '{pname}' argument", call.pos,
                                f"usage: {call.name}({', '.join(sig.positional)}, ...)")
            else:
                attrs[pname] = default
        c, h, w = shape
        kind = call.name
        if kind == "conv":
            k, s, g = attrs["k"], attrs["stride"], attrs["groups"]
            if attrs["pad"] is None:
                attrs["pad"] = attrs["dilation"] * (k - 1) // 2
            if c % g or attrs["out"] % g:
                raise ctx.error(f"conv groups={g} must divide both its input channels ({c}) and output "
                                f"channels ({attrs['out']})", call.pos)
            out = (attrs["out"], _conv_out(h, k, s, attrs["pad"], attrs["dilation"]),
                   _conv_out(w, k, s, attrs["pad"], attrs["dilation"]))
        elif kind in ("maxpool", "avgpool"):
            if kind == "avgpool" and attrs["k"] is None:
                kind = "gap"  # no kernel: global average pooling
                out = (c, 1, 1)
            else:
                if attrs["stride"] is None:
                    attrs["stride"] = attrs["k"]
                if attrs["pad"] * 2 > attrs["k"]:
                    raise ctx.error(f"{kind} pad ({attrs['pad']}) must be at most half its kernel "
                                    f"({attrs['k']})", call.pos)
                out = (c, _conv_out(h, attrs["k"], attrs["stride"], attrs["pad"]),
                       _conv_out(w, attrs["k"], attrs["stride"], attrs["pad"]))
        elif kind == "fc":
            out = (attrs["out"], 1, 1)
            attrs["in"] = c * h * w
            problem = value_problem(attrs["in"])
            if problem:
                raise ctx.error(f"fc flattens {_fmt(shape)} to {problem}", call.pos)
        else:
            out = shape
        problem = next(filter(None, map(value_problem, out)), None)
        if problem:
            raise ctx.error(f"{call.name} gives a {_fmt(out)} output, with {problem}", call.pos)
        if out[1] < 1 or out[2] < 1:
            raise ctx.error(f"{call.name} shrinks the {h}x{w} map below 1x1 (to {out[1]}x{out[2]})", call.pos,
                            "use a smaller stride or kernel, more padding, or a larger input")
        return ir.Layer(kind, name, attrs, shape, out, call.pos)

    def block(self, call: ast.Call, env: Names, shape: ir.Shape, name: str, extra: dict | None = None) -> ir.Seq:
        """Expand one call of a block into a sequence; extra holds arguments a stage adds (stride)."""
        ctx = self.ctx
        bdef = self.blocks[call.name]
        if call.name in self.calling:
            chain = " -> ".join(self.calling + [call.name])
            raise ctx.error(f"block '{call.name}' calls itself ({chain})", call.pos)
        ctx.instances += 1
        if ctx.instances > MAX_BLOCK_INSTANCES:
            raise ctx.error(f"the network has more than {MAX_BLOCK_INSTANCES} blocks", call.pos)
        names = tuple(f.name for f in bdef.formals)
        defaults = {f.name: f.default for f in bdef.formals}
        bound = self._bind(call, names, defaults, env, f"block '{call.name}'")
        for k, v in (extra or {}).items():
            if k not in defaults:
                raise ctx.error(f"the stage downsamples, but block '{call.name}' has no '{k}' parameter", call.pos,
                                f"add a '{k}' parameter to the block (defined at line {bdef.pos.line})")
            if k in bound:
                raise ctx.error(f"'{k}' is set both here and by the stage's '{k}'", bound[k][1])
            bound[k] = (v, call.pos)
        formals = {}
        for f in bdef.formals:
            if f.name in bound:
                formals[f.name] = bound[f.name][0]
            elif f.default is not None:
                formals[f.name] = evaluate(f.default, self.env, ctx)
            else:
                raise ctx.error(f"block '{call.name}' needs its '{f.name}' argument", call.pos,
                                f"usage: {call.name}({', '.join(names)})")
        local = self.env.with_locals(formals)
        ctx.trace.append(f"block '{call.name}' called at {call.pos.path}:{call.pos.line}:{call.pos.col}")
        self.calling.append(call.name)
        try:
            return self.seq(bdef.body, local, shape, name, call.name)
        finally:
            self.calling.pop()
            ctx.trace.pop()

    def seq(self, body: ast.Seq, env: Names, shape: ir.Shape, name: str, block: str | None) -> ir.Seq:
        if self.depth >= MAX_NESTING:
            raise self.ctx.error(f"blocks and shortcut branches nest more than {MAX_NESTING} deep", body.pos)
        self.depth += 1
        try:
            return self._seq(body, env, shape, name, block)
        finally:
            self.depth -= 1

    def _seq(self, body: ast.Seq, env: Names, shape: ir.Shape, name: str, block: str | None) -> ir.Seq:
        ctx = self.ctx
        counters: dict[str, int] = {}

        def next_name(kind: str) -> str:
            counters[kind] = counters.get(kind, 0) + 1
            return f"{kind}{counters[kind]}"

        items: list = []
        cur = shape
        for stmt in body.stmts:
            if isinstance(stmt, ast.Add):
                item = self._join(stmt, env, shape, cur, next_name)
            elif stmt.name in PRIMITIVES:
                item = self._primitive(stmt, env, cur, next_name("gap" if stmt.name == "avgpool" and not stmt.args
                                                                 else stmt.name))
            elif stmt.name in self.blocks:
                item = self.block(stmt, env, cur, next_name(stmt.name))
            else:
                guess = did_you_mean(stmt.name, list(PRIMITIVES) + list(self.blocks))
                raise ctx.error(f"unknown primitive or block '{stmt.name}'", stmt.pos,
                                f"did you mean '{guess}'?" if guess else
                                f"primitives: {', '.join(PRIMITIVES)}; blocks: {', '.join(self.blocks) or 'none'}")
            items.append(item)
            cur = item.out_shape
        return ir.Seq(name, block, items, shape, cur)

    def _join(self, stmt: ast.Add, env: Names, block_in: ir.Shape, main: ir.Shape,
              next_name: Callable[[str], str]) -> ir.Join:
        ctx = self.ctx
        name = next_name("add")
        suffix = name[3:]
        sc_name = "shortcut" if suffix == "1" else f"shortcut{suffix}"
        if stmt.branch is not None:
            branch = self.seq(stmt.branch, env, block_in, sc_name, None)
            if branch.out_shape != main:
                raise ctx.error(f"add: shapes differ: the block computes {_fmt(main)} but its shortcut branch "
                                f"gives {_fmt(branch.out_shape)}", stmt.pos)
            return ir.Join(name, "branch", branch, main, main, stmt.pos)
        option = "identity" if stmt.option is None else evaluate(stmt.option, env, ctx)
        if option not in SHORTCUT_OPTIONS:
            guess = did_you_mean(str(option), SHORTCUT_OPTIONS)
            raise ctx.error(f"unknown shortcut option {option!r}", stmt.option.pos if stmt.option else stmt.pos,
                            (f"did you mean '{guess}'? " if guess else "") +
                            "options: none (plain), identity, A (zero-pad), B (project when the shape changes), "
                            "C (project always)")
        if option == "none":
            return ir.Join(name, "none", None, main, main, stmt.pos)
        same = block_in == main
        if option == "identity" or (same and option in ("A", "B")):
            if not same:
                raise ctx.error(f"add: shapes differ: the block computes {_fmt(main)} from an input of "
                                f"{_fmt(block_in)}", stmt.pos,
                                "an identity shortcut needs equal shapes; use option A, B or C, or an add { ... } "
                                "branch")
            return ir.Join(name, option, None, main, main, stmt.pos)
        stride = self._shortcut_stride(block_in, main, stmt.pos)
        if option == "A":
            if main[0] < block_in[0]:
                raise ctx.error(f"add: option A cannot shrink channels ({block_in[0]} to {main[0]}): it only "
                                "zero-pads", stmt.pos, "use option B or C")
            pad = ir.Layer("zeropad", "pad1", {"stride": stride, "out": main[0]}, block_in, main, stmt.pos)
            return ir.Join(name, "A", ir.Seq(sc_name, None, [pad], block_in, main), main, main, stmt.pos)
        # Options B and C: a 1x1 projection with the shortcut's stride, then BN.
        conv = ir.Layer("conv", "conv1", {"out": main[0], "k": 1, "stride": stride, "pad": 0, "groups": 1,
                                          "dilation": 1, "bias": False}, block_in, main, stmt.pos)
        bn = ir.Layer("bn", "bn1", {"eps": 1e-5, "momentum": 0.1}, main, main, stmt.pos)
        return ir.Join(name, option, ir.Seq(sc_name, None, [conv, bn], block_in, main), main, main, stmt.pos)

    def _shortcut_stride(self, block_in: ir.Shape, main: ir.Shape, pos: SourcePos) -> int:
        """The subsampling stride that takes the block input's map to the main path's map."""
        _, h, w = block_in
        _, mh, mw = main
        stride = max(1, -(-h // mh))
        if _conv_out(h, 1, stride, 0) != mh or _conv_out(w, 1, stride, 0) != mw:
            raise self.ctx.error(f"add: the block maps {_fmt(block_in)} to {_fmt(main)}, which no strided "
                                 "shortcut can match", pos)
        return stride


def _fmt(shape: ir.Shape) -> str:
    return f"{shape[0]}x{shape[1]}x{shape[2]}"


# ---------------------------------------------------------------- network
def check_network(files: list[ast.SpecFile], root: ast.SpecFile, overrides: dict,
                  input_shape: ir.Shape | None = None) -> ir.Network:
    """The checked model of the root file's network; files are the root and its imports, imports first."""
    ctx = _Ctx({f.path: f.text for f in files})
    blocks: dict[str, ast.BlockDef] = {}
    for f in files:
        for b in f.blocks:
            if b.name in PRIMITIVES:
                raise ctx.error(f"block '{b.name}' has the name of a primitive", b.pos)
            if b.name in blocks:
                first = blocks[b.name].pos
                raise ctx.error(f"block '{b.name}' is defined twice", b.pos,
                                f"first defined at {first.path}:{first.line}")
            seen = set()
            for formal in b.formals:
                if formal.name in seen:
                    raise ctx.error(f"parameter '{formal.name}' appears twice", formal.pos)
                seen.add(formal.name)
            blocks[b.name] = b
    if not root.networks:
        raise SpecError("the spec has no network", SourcePos(root.path, 1, 1), root.text,
                        "a spec needs: network NAME { input 3x32x32  classes 10  stem {...}  stage ...  head {...} }")
    if len(root.networks) > 1:
        raise ctx.error("a spec holds one network; this file has several", root.networks[1].pos)
    net = root.networks[0]
    resolved = resolve_params(files, overrides, ctx)
    env = Names(resolved.values)
    if net.input is None:
        raise ctx.error("the network has no 'input' shape", net.pos, "add e.g.: input 3x32x32")
    if net.classes is None:
        raise ctx.error("the network has no 'classes' count", net.pos, "add e.g.: classes 10")
    if net.head is None:
        raise ctx.error("the network has no 'head'", net.pos, "add e.g.: head { avgpool; fc(classes) }")
    if input_shape is None:
        dims = []
        for e in net.input:
            d = _coerce(evaluate(e, env, ctx), int, "an input dimension", e.pos, ctx)
            if d < 1:
                raise ctx.error(f"an input dimension must be >= 1, got {d}", e.pos)
            dims.append(d)
        input_shape = tuple(dims)
    classes = _coerce(evaluate(net.classes, env, ctx), int, "classes", net.classes.pos, ctx)
    if classes < 1:
        raise ctx.error(f"classes must be >= 1, got {classes}", net.classes.pos)
    env = env.with_locals({"classes": classes})  # the network's classes, whatever a parameter is named
    expander = _Expander(blocks, env, ctx)
    empty = ast.Seq((), net.pos)
    stem = expander.seq(net.stem or empty, env, input_shape, "stem", None)
    stages = []
    cur = stem.out_shape
    names = {"stem", "head"}
    for sd in net.stages:
        if sd.name in names:
            raise ctx.error(f"a stage is named '{sd.name}' twice (or clashes with stem/head)", sd.pos)
        if sd.name in _MODULE_ATTRS:
            raise ctx.error(f"'{sd.name}' cannot name a stage: it is taken by torch.nn.Module", sd.pos)
        names.add(sd.name)
        if sd.call.name not in blocks:
            guess = did_you_mean(sd.call.name, blocks)
            what = "a primitive; a stage repeats a block" if sd.call.name in PRIMITIVES else "not a known block"
            raise ctx.error(f"'{sd.call.name}' is {what}", sd.call.pos,
                            f"did you mean '{guess}'?" if guess else f"blocks: {', '.join(blocks) or 'none'}")
        count = _coerce(evaluate(sd.count, env, ctx), int, "a repeat count", sd.count.pos, ctx)
        if count < 1:
            raise ctx.error(f"a stage repeats its block at least once, got x {count}", sd.count.pos)
        if count > MAX_REPEAT:
            raise ctx.error(f"repeat count {count} is over the limit of {MAX_REPEAT}", sd.count.pos)
        stride = 1
        if sd.stride is not None:
            stride = _coerce(evaluate(sd.stride, env, ctx), int, "a stage stride", sd.stride.pos, ctx)
            if stride < 1:
                raise ctx.error(f"a stage stride must be >= 1, got {stride}", sd.stride.pos)
        ctx.trace.append(f"stage '{sd.name}' at {sd.pos.path}:{sd.pos.line}")
        stage_in = cur
        blocks_out = []
        for i in range(count):
            extra = {"stride": stride} if (sd.stride is not None and i == 0) else None
            b = expander.block(sd.call, env, cur, f"b{i + 1}", extra)
            blocks_out.append(b)
            cur = b.out_shape
        ctx.trace.pop()
        stages.append(ir.Stage(sd.name, sd.call.name, count, stride, blocks_out, stage_in, cur, sd.pos))
    head = expander.seq(net.head, env, cur, "head", None)
    if head.out_shape != (classes, 1, 1):
        raise ctx.error(f"the head gives {_fmt(head.out_shape)}, but the network has {classes} classes "
                        f"(expected {classes}x1x1)", net.head.pos, "end the head with: avgpool; fc(classes)")
    used = _used_names(env.read, resolved.reads)
    for name, raw in overrides.items():
        if name not in used:
            raise ctx.error(f"--{name} {raw}: the network does not use parameter '{name}'",
                            resolved.declared[name], "nothing the network computes reads it, so the value "
                            "would be ignored; drop the option (or use the parameter in the spec)")
    # A sweep searches the declared spaces; one of an unused parameter would only repeat trials.
    spaces = {k: v for k, v in resolved.spaces.items() if k in used}
    return ir.Network(name=net.name, path=root.path, input_shape=input_shape, num_classes=classes,
                      params=resolved.params, spaces=spaces, param_types=resolved.types,
                      sources=dict(ctx.sources), stem=stem, stem_name=net.stem_name or "stem", stages=stages,
                      head=head, lets=resolved.lets)


# Names an nn.Module already uses; a stage named so would shadow them.
_MODULE_ATTRS = {"training", "forward", "parameters", "modules", "children", "state_dict", "eval", "train",
                 "to", "cuda", "cpu", "type", "float", "half", "double", "apply", "zero_grad", "buffers",
                 "named_modules", "named_parameters", "register_buffer", "load_state_dict", "requires_grad_",
                 "extra_repr", "net", "response_layers"}
