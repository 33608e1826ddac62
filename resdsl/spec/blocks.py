"""Block calls to sequences of layers: arguments bound, primitives checked, shapes inferred, joins built."""

from __future__ import annotations

from typing import Callable

from . import ast, ir
from ..errors import SourcePos, did_you_mean
from .expressions import CheckContext, Names, note_reads, check_require, coerce, evaluate, type_name
from .limits import MAX_BLOCK_INSTANCES, MAX_NESTING, value_problem
from .primitives import PRIMITIVES, REQUIRED, Signature, conv_out, spec_primitive, spec_primitive_names

SHORTCUT_OPTIONS = ("none", "identity", "A", "B", "C")
# Module names of join branches, numbered on per op: shortcut, shortcut2, gate, gate2, ...
BRANCH_NAMES = {"add": "shortcut", "mul": "gate", "cat": "branch"}
INPUT_POINT = "input"  # `from input`: the sequence's input
# Names every block body sees beside its formals: the shape of its input, and where it sits
# among the stage blocks (only for blocks a stage repeats, and blocks called inside them).
BLOCK_INPUT_NAMES = ("in_channels", "in_height", "in_width")
STAGE_POSITION_NAMES = ("block_index", "stage_blocks", "stage_index", "net_block_index", "net_blocks")


class Expander:
    """Expands block calls into ir.Seq, checking arguments and shapes on the way."""

    def __init__(self, blocks: dict[str, ast.BlockDef], env: Names, ctx: CheckContext):
        self.blocks = blocks
        self.env = env
        self.ctx = ctx
        self.calling: list[str] = []
        self.depth = 0  # sequences being expanded inside one another: block bodies, join branches
        self.stage_position: dict | None = None  # the STAGE_POSITION_NAMES of the stage block being expanded

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

    def block(self, call: ast.Call, env: Names, shape: ir.Shape, name: str, extra: dict | None = None,
              position: dict | None = None) -> ir.Seq:
        """Expand one call of a block into a sequence; extra holds arguments a stage adds (stride),
        position the block's place among the stage blocks when a stage repeats it."""
        if position is None:
            return self._block(call, env, shape, name, extra)
        outer, self.stage_position = self.stage_position, position
        try:
            return self._block(call, env, shape, name, extra)
        finally:
            self.stage_position = outer

    def _block(self, call: ast.Call, env: Names, shape: ir.Shape, name: str, extra: dict | None) -> ir.Seq:
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
        # Defaults see the globals and the implicit names (c=in_channels), not other formals.
        implicit = self.env.with_locals({**dict(zip(BLOCK_INPUT_NAMES, shape)), **(self.stage_position or {})})
        formals = {}
        for f in bdef.formals:
            if f.name in bound:
                formals[f.name] = bound[f.name][0]
            elif f.default is not None:
                formals[f.name] = evaluate(f.default, implicit, ctx)
            else:
                raise ctx.error(f"block '{call.name}' needs its '{f.name}' argument", call.pos,
                                f"usage: {call.name}({', '.join(names)})")
        local = implicit.with_locals(formals)
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
        points: dict[str, ir.Shape] = {INPUT_POINT: shape}  # what a join's `from NAME` can read
        saved_at: dict[str, SourcePos] = {}
        modules: dict[str, SourcePos] = {}  # module names taken in this sequence
        cur = shape
        pending = list(reversed(body.stmts))  # a stack: the chosen branch of an `if` is pushed in place
        while pending:
            stmt = pending.pop()
            if isinstance(stmt, ast.If):
                pending.extend(reversed(self._chosen(stmt, env)))
                continue
            if isinstance(stmt, ast.Require):
                check_require(stmt, env, ctx)  # with this call's names; it adds no layer
                continue
            if isinstance(stmt, ast.Save):
                if stmt.name == INPUT_POINT:
                    raise ctx.error(f"'{INPUT_POINT}' names the sequence's input", stmt.pos,
                                    "save the point under another name")
                if stmt.name in saved_at:
                    raise ctx.error(f"the point '{stmt.name}' is saved twice in this sequence", stmt.pos,
                                    f"first saved at line {saved_at[stmt.name].line}; give each point its own name")
                points[stmt.name] = cur
                saved_at[stmt.name] = stmt.pos
                items.append(ir.Save(stmt.name, cur, stmt.pos))
                continue
            if isinstance(stmt, ast.Join):
                item = self._join(stmt, env, points, cur, next_name)
                module = item.branch.name if item.branch is not None else None
            elif spec_primitive(stmt.name):
                item = self._primitive(stmt, env, cur, next_name)
                module = item.name
            elif stmt.name in self.blocks:
                item = self.block(stmt, env, cur, next_name(stmt.name))
                module = item.name
            else:
                primitives = spec_primitive_names()
                guess = did_you_mean(stmt.name, primitives + list(self.blocks))
                raise ctx.error(f"unknown primitive or block '{stmt.name}'", stmt.pos,
                                f"did you mean '{guess}'?" if guess else
                                f"primitives: {', '.join(primitives)}; blocks: {', '.join(self.blocks) or 'none'}")
            if module is not None:
                if module in modules:
                    raise ctx.error(f"two modules of this sequence would be named '{module}'", stmt.pos,
                                    f"the other is at line {modules[module].line}; a block named like a join "
                                    f"branch ({', '.join(BRANCH_NAMES.values())}) clashes with their numbering: "
                                    "rename the block")
                modules[module] = stmt.pos
            items.append(item)
            cur = item.out_shape
        return ir.Seq(name, block, items, shape, cur)

    # -- statement-level if
    def _chosen(self, stmt: ast.If, env: Names) -> tuple[ast.Stmt, ...]:
        """The statements of the first case whose test is true (else those of `else`, or none). The
        names the other cases read still count as read: another value takes those branches."""
        for i, (test, body) in enumerate(stmt.cases):
            value = evaluate(test, env, self.ctx)
            if not isinstance(value, bool):
                raise self.ctx.error(f"the condition of 'if' must be true or false, got {type_name(value)} "
                                     f"{value!r}", test.pos, "compare it, e.g. if n > 0 { ... }")
            if value:
                later_tests = [t for t, _ in stmt.cases[i + 1:]]
                others = [b for j, (_, b) in enumerate(stmt.cases) if j != i] + [stmt.otherwise]
                self._note_untaken(later_tests, others, env)
                return body.stmts
        self._note_untaken([], [b for _, b in stmt.cases], env)
        return stmt.otherwise.stmts if stmt.otherwise is not None else ()

    def _note_untaken(self, tests: list[ast.Expr], seqs: list[ast.Seq | None], env: Names) -> None:
        """Note, without evaluating, every global the given tests and statements read, through the
        bodies (and formal defaults) of the blocks they call, each block once."""
        note_reads(tests, env)
        pending = [(stmt, env) for seq in seqs if seq is not None for stmt in seq.stmts]
        visited: set[str] = set()
        while pending:
            stmt, names = pending.pop()
            if isinstance(stmt, ast.Call):
                note_reads([a.value for a in stmt.args], names)
                bdef = self.blocks.get(stmt.name)
                if bdef is None or bdef.name in visited:
                    continue
                visited.add(bdef.name)
                # Only which names are local matters here, not their values.
                body_names = self.env.with_locals(dict.fromkeys(
                    BLOCK_INPUT_NAMES + STAGE_POSITION_NAMES + tuple(f.name for f in bdef.formals)))
                note_reads([f.default for f in bdef.formals if f.default is not None], body_names)
                pending.extend((s, body_names) for s in bdef.body.stmts)
            elif isinstance(stmt, ast.Join):
                note_reads([stmt.option] if stmt.option is not None else [], names)
                if stmt.branch is not None:
                    pending.extend((s, names) for s in stmt.branch.stmts)
            elif isinstance(stmt, ast.If):
                note_reads([t for t, _ in stmt.cases], names)
                for seq in [b for _, b in stmt.cases] + [stmt.otherwise]:
                    if seq is not None:
                        pending.extend((s, names) for s in seq.stmts)

    # -- joins
    def _join(self, stmt: ast.Join, env: Names, points: dict[str, ir.Shape], main: ir.Shape,
              next_name: Callable[[str], str]) -> ir.Join:
        ctx = self.ctx
        name = next_name(stmt.op)
        number = name[len(stmt.op):]
        branch_name = BRANCH_NAMES[stmt.op] + ("" if number == "1" else number)
        if stmt.source is None:
            source = main if stmt.op == "mul" else points[INPUT_POINT]
        elif stmt.source in points:
            source = points[stmt.source]
        else:
            guess = did_you_mean(stmt.source, points)
            raise ctx.error(f"unknown point '{stmt.source}'", stmt.source_pos,
                            (f"did you mean '{guess}'? " if guess else "") +
                            f"points saved before this {stmt.op}: {', '.join(points)}; name one with: save NAME")
        if stmt.op == "add":
            return self._add(stmt, env, source, main, name, branch_name)
        branch = None if stmt.branch is None else self.seq(stmt.branch, env, source, branch_name, None)
        operand = source if branch is None else branch.out_shape
        what = f"its {BRANCH_NAMES[stmt.op]} gives" if branch is not None else \
            f"'{stmt.source}' is" if stmt.source is not None else "the input is"
        if stmt.op == "mul":
            if operand[0] != main[0] or operand[1:] not in ((1, 1), main[1:]):
                raise ctx.error(f"mul: the tensor is {fmt_shape(main)} but {what} {fmt_shape(operand)}", stmt.pos,
                                f"mul needs {main[0]} channels and a 1x1 map (one factor per channel) or the "
                                f"same {main[1]}x{main[2]} map")
            out = main
        else:
            if operand[1:] != main[1:]:
                raise ctx.error(f"cat: the maps differ: the tensor is {fmt_shape(main)} but {what} "
                                f"{fmt_shape(operand)}", stmt.pos,
                                "cat joins along channels: heights and widths must be equal")
            out = (operand[0] + main[0], main[1], main[2])
            problem = value_problem(out[0])
            if problem:
                raise ctx.error(f"cat gives {problem} channels", stmt.pos)
        return ir.Join(name, stmt.op, "identity" if branch is None else "branch", branch, stmt.source,
                       main, out, stmt.pos)

    def _add(self, stmt: ast.Join, env: Names, source: ir.Shape, main: ir.Shape, name: str,
             branch_name: str) -> ir.Join:
        """x + source through a branch, or through a shortcut option: the paper's none, identity, A, B, C."""
        ctx = self.ctx

        def join(option: str, branch: ir.Seq | None) -> ir.Join:
            return ir.Join(name, "add", option, branch, stmt.source, main, main, stmt.pos)

        if stmt.branch is not None:
            branch = self.seq(stmt.branch, env, source, branch_name, None)
            if branch.out_shape != main:
                raise ctx.error(f"add: shapes differ: the block computes {fmt_shape(main)} but its shortcut branch "
                                f"gives {fmt_shape(branch.out_shape)}", stmt.pos)
            return join("branch", branch)
        option = "identity" if stmt.option is None else evaluate(stmt.option, env, ctx)
        if option not in SHORTCUT_OPTIONS:
            guess = did_you_mean(str(option), SHORTCUT_OPTIONS)
            raise ctx.error(f"unknown shortcut option {option!r}", stmt.option.pos if stmt.option else stmt.pos,
                            (f"did you mean '{guess}'? " if guess else "") +
                            "options: none (plain), identity, A (zero-pad), B (project when the shape changes), "
                            "C (project always)")
        if option == "none":
            return join("none", None)
        same = source == main
        if option == "identity" or (same and option in ("A", "B")):
            if not same:
                of = "an input" if stmt.source in (None, INPUT_POINT) else f"the point '{stmt.source}'"
                raise ctx.error(f"add: shapes differ: the block computes {fmt_shape(main)} from {of} of "
                                f"{fmt_shape(source)}", stmt.pos,
                                "an identity shortcut needs equal shapes; use option A, B or C, or an add { ... } "
                                "branch")
            return join(option, None)
        stride = self._shortcut_stride(source, main, stmt.pos)
        if option == "A":
            if main[0] < source[0]:
                raise ctx.error(f"add: option A cannot shrink channels ({source[0]} to {main[0]}): it only "
                                "zero-pads", stmt.pos, "use option B or C")
            pad = ir.Layer("zeropad", "pad1", {"stride": stride, "out": main[0]}, source, main, stmt.pos)
            return join("A", ir.Seq(branch_name, None, [pad], source, main))
        # Options B and C: a 1x1 projection with the shortcut's stride, then BN.
        # The primitives' own defaults, so the projection is what `conv(c, 1, stride=s); bn` gives.
        conv_attrs = {**PRIMITIVES["conv"].signature.defaults, "out": main[0], "k": 1, "stride": stride, "pad": 0}
        conv = ir.Layer("conv", "conv1", conv_attrs, source, main, stmt.pos)
        bn = ir.Layer("bn", "bn1", dict(PRIMITIVES["bn"].signature.defaults), main, main, stmt.pos)
        return join(option, ir.Seq(branch_name, None, [conv, bn], source, main))

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
