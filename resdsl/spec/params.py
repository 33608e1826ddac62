"""Parameters and lets: defaults, command-line overrides, search spaces, and which names the network reads."""

from __future__ import annotations

from dataclasses import dataclass

from . import ast, ir
from ..errors import SourcePos, SpecError, did_you_mean
from ..text import parse_value
from .expressions import TYPE_WORDS, CheckContext, Names, coerce, evaluate
from .limits import value_problem
from .syntax import parse
from .values import ListValue, make_list


def _space(param: ast.Param, value_type: type, env: Names, ctx: CheckContext) -> ir.ParamSpace | None:
    sp = param.space
    if sp is None:
        return None
    what = f"the search space of '{param.name}'"
    if value_type is ListValue:
        raise ctx.error(f"'{param.name}' is a list: a list parameter has no search space", sp.pos,
                        "search the numbers it is made of: param w = 16 in [16, 32]; let widths = [w, 2 * w]")
    if sp.kind == "choice":
        listed = sp.values[0]
        if isinstance(listed, ast.ListLit):  # each choice where it is written
            values = [(evaluate(e, env, ctx), e.pos) for e in listed.items]
        else:  # a comprehension: its values, all at it
            values = [(v, listed.pos) for v in evaluate(listed, env, ctx)]
        if not values:
            raise ctx.error(f"{what} is an empty choice", sp.pos)
        choices = tuple(coerce(v, value_type, f"a choice of '{param.name}'", pos, ctx) for v, pos in values)
        return ir.ParamSpace("choice", choices=choices)
    if value_type not in (int, float):
        raise ctx.error(f"{what} is a range, but '{param.name}' is {TYPE_WORDS[value_type]}", sp.pos,
                        "use a choice: in [\"a\", \"b\"]")
    low, high = (coerce(evaluate(e, env, ctx), value_type, what, e.pos, ctx) for e in sp.values[:2])
    if low > high:
        raise ctx.error(f"{what} is empty: {low} > {high}", sp.pos)
    if sp.kind == "log":
        if low <= 0:
            raise ctx.error(f"a log range needs a positive lower bound, got {low}", sp.values[0].pos)
        return ir.ParamSpace("log", low=float(low), high=float(high))
    step = None
    if sp.values[2] is not None:
        step = coerce(evaluate(sp.values[2], env, ctx), value_type, "a step", sp.values[2].pos, ctx)
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


def resolve_params(files: list[ast.SpecFile], overrides: dict, ctx: CheckContext) -> ResolvedParams:
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


def _override(name: str, raw, want: type, space: ir.ParamSpace | None, pos: SourcePos, ctx: CheckContext):
    """The value of `--NAME RAW` for a parameter of type `want`, checked against the limits and its space."""
    if want is ListValue:
        return _list_override(name, raw, pos, ctx)
    try:
        value = parse_value(raw, want)
    except (ValueError, TypeError):
        raise ctx.error(f"--{name} {raw}: '{name}' takes {TYPE_WORDS[want]}", pos) from None
    problem = value_problem(value)
    if problem:
        raise ctx.error(f"--{name} {raw}: {problem}", pos)
    if space is not None and not space.contains(value):
        raise ctx.error(f"--{name} {ir._show(value)} is outside the declared space {space.describe()}", pos)
    return value


def _list_override(name: str, raw, pos: SourcePos, ctx: CheckContext) -> ListValue:
    """A list parameter's value: a list (the Python API), or text written as in a spec and
    naming nothing: --widths "[16, 32, 64]" (or 16,32,64)."""
    hint = f'write the list as in a spec, e.g. --{name} "[16, 32, 64]"'
    if isinstance(raw, str):
        text = raw.strip()
        source = text if text.startswith("[") else f"[{text}]"
        try:
            value = evaluate(parse(f"let v = {source}\n").lets[0].value, Names({}), CheckContext({}))
        except SpecError as e:
            raise ctx.error(f"--{name} {raw}: not a list of values ({e.message})", pos, hint) from None
        if type(value) is not ListValue:
            raise ctx.error(f"--{name} {raw}: not a list", pos, hint)
        return value
    if not isinstance(raw, (list, tuple)):
        raise ctx.error(f"--{name} {raw!r}: '{name}' takes a list", pos, hint)
    return _python_list(name, raw, pos, ctx)


def _python_list(name: str, items, pos: SourcePos, ctx: CheckContext) -> ListValue:
    """A list given from Python: every item a value of the language, within the limits."""
    values = []
    for item in items:
        if isinstance(item, (list, tuple)):
            values.append(_python_list(name, item, pos, ctx))
        elif type(item) in (int, float, bool, str) and not value_problem(item):
            values.append(item)
        else:
            raise ctx.error(f"--{name}: the item {item!r} is not a value a spec can hold "
                            "(integers, numbers, true/false, strings and lists, within the limits)", pos)
    try:
        return make_list(values)
    except ValueError as e:
        raise ctx.error(f"--{name}: {e}", pos) from None


def used_names(read: set[str], reads: dict[str, set[str]]) -> set[str]:
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
