"""Block calls to sequences of layers: arguments bound, primitives checked, shapes inferred, joins built."""

from __future__ import annotations

from typing import Callable

from . import ast, ir
from ..errors import SourcePos, did_you_mean
from .expressions import CheckContext, Names, check_require, coerce, evaluate
from .limits import MAX_BLOCK_INSTANCES, MAX_NESTING, value_problem
from .primitives import PRIMITIVES, REQUIRED, Signature, conv_out, spec_primitive, spec_primitive_names

SHORTCUT_OPTIONS = ("none", "identity", "A", "B", "C")


class Expander:
    """Expands block calls into ir.Seq, checking arguments and shapes on the way."""

    def __init__(self, blocks: dict[str, ast.BlockDef], env: Names, ctx: CheckContext):
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

    def arguments(self, call: ast.Call, signature: Signature, env: Names) -> dict:
        """A primitive's (or an init's) arguments: bound to the signature, typed, within bounds, the
        defaults filled in."""
        ctx = self.ctx
        bound = self._bind(call, signature.positional, signature.defaults, env, f"'{call.name}'")
        values = {}
        for arg in signature.args:
            if arg.name in bound:
                value, pos = bound[arg.name]
                value = coerce(value, arg.type, f"{call.name}'s '{arg.name}'", pos, ctx)
                problem = arg.bound_problem(value)
                if problem:
                    raise ctx.error(f"{call.name}'s '{arg.name}' {problem}, got {value}", pos)
                values[arg.name] = value
            elif arg.default is REQUIRED:
                raise ctx.error(f"'{call.name}' needs its '{arg.name}' argument", call.pos,
                                f"usage: {call.name}({', '.join(signature.positional)}, ...)")
            else:
                values[arg.name] = arg.default
        return values

    def _primitive(self, call: ast.Call, env: Names, shape: ir.Shape,
                   next_name: Callable[[str], str]) -> ir.Layer:
        ctx = self.ctx
        called = PRIMITIVES[call.name]
        attrs = self.arguments(call, called.signature, env)
        kind = called.variant(attrs) if called.variant else call.name
        entry = PRIMITIVES[kind]
        try:
            out = entry.shape(attrs, shape)
        except ValueError as e:  # a ShapeError, or a registered primitive's refusal
            raise ctx.error(str(e), call.pos, getattr(e, "hint", None)) from None
        if not entry.builtin:
            if not (isinstance(out, (tuple, list)) and len(out) == 3 and all(type(d) is int for d in out)):
                raise TypeError(f"the shape function of primitive '{kind}' gave {out!r}, not (channels, height, width)")
            out = tuple(out)
        problem = next(filter(None, map(value_problem, out)), None)
        if problem:
            raise ctx.error(f"{call.name} gives a {fmt_shape(out)} output, with {problem}", call.pos)
        if out[1] < 1 or out[2] < 1:
            raise ctx.error(f"{call.name} shrinks the {shape[1]}x{shape[2]} map below 1x1 (to {out[1]}x{out[2]})",
                            call.pos, "use a smaller stride or kernel, more padding, or a larger input")
        if out[0] < 1:
            raise ctx.error(f"{call.name} gives {out[0]} channels", call.pos)
        return ir.Layer(kind, next_name(kind), attrs, shape, out, call.pos)

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
            if isinstance(stmt, ast.Require):
                check_require(stmt, env, ctx)  # with this call's names; it adds no layer
                continue
            if isinstance(stmt, ast.Add):
                item = self._join(stmt, env, shape, cur, next_name)
            elif spec_primitive(stmt.name):
                item = self._primitive(stmt, env, cur, next_name)
            elif stmt.name in self.blocks:
                item = self.block(stmt, env, cur, next_name(stmt.name))
            else:
                primitives = spec_primitive_names()
                guess = did_you_mean(stmt.name, primitives + list(self.blocks))
                raise ctx.error(f"unknown primitive or block '{stmt.name}'", stmt.pos,
                                f"did you mean '{guess}'?" if guess else
                                f"primitives: {', '.join(primitives)}; blocks: {', '.join(self.blocks) or 'none'}")
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
                raise ctx.error(f"add: shapes differ: the block computes {fmt_shape(main)} but its shortcut branch "
                                f"gives {fmt_shape(branch.out_shape)}", stmt.pos)
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
                raise ctx.error(f"add: shapes differ: the block computes {fmt_shape(main)} from an input of "
                                f"{fmt_shape(block_in)}", stmt.pos,
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
        if conv_out(h, 1, stride, 0) != mh or conv_out(w, 1, stride, 0) != mw:
            raise self.ctx.error(f"add: the block maps {fmt_shape(block_in)} to {fmt_shape(main)}, which no strided "
                                 "shortcut can match", pos)
        return stride


def fmt_shape(shape: ir.Shape) -> str:
    return f"{shape[0]}x{shape[1]}x{shape[2]}"
