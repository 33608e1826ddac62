"""Syntax tree to checked model: resolve parameters, evaluate expressions, expand blocks, infer shapes.

Every mistake a spec can hold is reported as a SpecError at the place it was written. The work is
split by concern: expressions.py (values), params.py (parameters and lets), blocks.py (block bodies
and shapes); this module puts the network together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ast, ir
from ..errors import SourcePos, SpecError, did_you_mean
from .blocks import Expander, fmt_shape
from .expressions import CheckContext, Names, check_require, coerce, evaluate, type_name
from .inits import DEFAULT_INIT, INITS
from .limits import MAX_BLOCK_INSTANCES, MAX_LOOP_ITERATIONS, MAX_REPEAT
from .params import resolve_params, used_names
from .values import ListValue
from .primitives import spec_primitive

_STAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_network(files: list[ast.SpecFile], root: ast.SpecFile, overrides: dict,
                  input_shape: ir.Shape | None = None, requires: bool = True) -> ir.Network:
    """The checked model of the root file's network; files are the root and its imports, imports first.

    requires=False: a `require` whose condition is false is no error (its condition and message are
    still checked); a sweep plans so from a design that only some swept values make admissible.
    """
    ctx = CheckContext({f.path: f.text for f in files})
    ctx.enforce_requires = requires
    blocks: dict[str, ast.BlockDef] = {}
    for f in files:
        for b in f.blocks:
            prim = spec_primitive(b.name)
            if prim is not None:
                raise ctx.error(f"block '{b.name}' has the name of a primitive" +
                                ("" if prim.builtin else " registered from Python (resdsl.register_primitive)"),
                                b.pos, "give the block another name")
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
    for f in files:  # imports first, each file's in the order written
        for req in f.requires:
            check_require(req, env, ctx)
    if net.input is None:
        raise ctx.error("the network has no 'input' shape", net.pos, "add e.g.: input 3x32x32")
    if net.classes is None:
        raise ctx.error("the network has no 'classes' count", net.pos, "add e.g.: classes 10")
    if net.head is None:
        raise ctx.error("the network has no 'head'", net.pos, "add e.g.: head { avgpool; fc(classes) }")
    if input_shape is None:
        dims = []
        for e in net.input:
            d = coerce(evaluate(e, env, ctx), int, "an input dimension", e.pos, ctx)
            if d < 1:
                raise ctx.error(f"an input dimension must be >= 1, got {d}", e.pos)
            dims.append(d)
        input_shape = tuple(dims)
    classes = coerce(evaluate(net.classes, env, ctx), int, "classes", net.classes.pos, ctx)
    if classes < 1:
        raise ctx.error(f"classes must be >= 1, got {classes}", net.classes.pos)
    env = env.with_locals({"classes": classes})  # the network's classes, whatever a parameter is named
    for req in net.requires:
        check_require(req, env, ctx)
    expander = Expander(blocks, env, ctx)
    init = _check_init(net.init, expander, env, ctx)
    empty = ast.Seq((), net.pos)
    stem = expander.seq(net.stem or empty, env, input_shape, "stem", None)
    planner = _StagePlanner(blocks, ctx)
    planner.visit(net.stages, env)
    planned, net_blocks = planner.planned, planner.block_count
    stages = []
    cur = stem.out_shape
    net_block_index = 0
    for stage_index, plan in enumerate(planned):
        sd = plan.decl
        ctx.trace.append(f"stage '{plan.name}' at {sd.pos.path}:{sd.pos.line}")
        stage_in = cur
        blocks_out = []
        for i in range(plan.count):
            call = sd.first if (i == 0 and sd.first is not None) else sd.call
            extra = {"stride": plan.stride} if (sd.stride is not None and i == 0) else None
            position = {"block_index": i, "stage_blocks": plan.count, "stage_index": stage_index,
                        "net_block_index": net_block_index, "net_blocks": net_blocks}
            b = expander.block(call, plan.env, cur, f"b{i + 1}", extra, position)
            blocks_out.append(b)
            cur = b.out_shape
            net_block_index += 1
        ctx.trace.pop()
        stages.append(ir.Stage(plan.name, sd.call.name, plan.count, plan.stride, blocks_out, stage_in, cur, sd.pos,
                               first=sd.first.name if sd.first is not None else None))
    head = expander.seq(net.head, env, cur, "head", None)
    if head.out_shape != (classes, 1, 1):
        raise ctx.error(f"the head gives {fmt_shape(head.out_shape)}, but the network has {classes} classes "
                        f"(expected {classes}x1x1)", net.head.pos, "end the head with: avgpool; fc(classes)")
    used = used_names(env.read, resolved.reads)
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
                      head=head, lets=resolved.lets, init=init)


def _check_init(call: ast.Call | None, expander: Expander, env: Names, ctx: CheckContext) -> ir.Init:
    """The network's `init NAME(options)`, or the default init with its default options."""
    if call is None:
        return ir.Init(DEFAULT_INIT, dict(INITS[DEFAULT_INIT].defaults))
    if call.name not in INITS:
        guess = did_you_mean(call.name, INITS)
        raise ctx.error(f"unknown init '{call.name}'", call.pos,
                        f"did you mean '{guess}'?" if guess else f"inits: {', '.join(INITS)}")
    return ir.Init(call.name, expander.arguments(call, INITS[call.name], env))


@dataclass
class _PlannedStage:
    """A stage line with its loop variables bound: its final name, count and stride."""

    decl: ast.StageDecl
    name: str
    env: Names  # the network's names and the enclosing loops' variables
    count: int
    stride: int


class _StagePlanner:
    """The network's stage lines in order, for-loops unrolled, each line's name, count and stride
    checked, before any block is expanded: every block then knows the total (net_blocks)."""

    def __init__(self, blocks: dict[str, ast.BlockDef], ctx: CheckContext):
        self.blocks = blocks
        self.ctx = ctx
        self.planned: list[_PlannedStage] = []
        self.named: dict[str, SourcePos] = {}
        self.iterations = 0
        self.block_count = 0

    def visit(self, items: tuple, env: Names) -> None:
        ctx = self.ctx
        for item in items:
            if isinstance(item, ast.StageDecl):
                self.planned.append(self.stage(item, env))
                continue
            values = evaluate(item.iterable, env, ctx)
            if not isinstance(values, ListValue):
                raise ctx.error(f"'for' loops over a list, got {type_name(values)} {values!r}", item.iterable.pos,
                                "write the values as a list: for c in [64, 128, 256] { ... }")
            for value in values:
                self.iterations += 1
                if self.iterations > MAX_LOOP_ITERATIONS:
                    raise ctx.error(f"the network's for-loops run more than {MAX_LOOP_ITERATIONS} iterations",
                                    item.pos)
                ctx.trace.append(f"for-loop at {item.pos.path}:{item.pos.line} with {item.name} = {ir._show(value)}")
                self.visit(item.body, env.with_locals({item.name: value}))
                ctx.trace.pop()

    def stage(self, sd: ast.StageDecl, env: Names) -> _PlannedStage:
        ctx = self.ctx
        name = sd.name
        if sd.index is not None:
            index = evaluate(sd.index, env, ctx)
            if isinstance(index, bool) or not isinstance(index, (int, str)):
                raise ctx.error(f"a stage name's index must be an integer or a string, got {type_name(index)} "
                                f"{index!r}", sd.index.pos)
            name = f"{sd.name}{index}"
            if not _STAGE_NAME.fullmatch(name):
                raise ctx.error(f"the stage name '{name}' is not a name", sd.index.pos,
                                "a stage name is letters, digits and _, not starting with a digit")
        if name in ("stem", "head"):
            raise ctx.error(f"a stage cannot be named '{name}': the network's {name} is", sd.pos)
        if name in self.named:
            raise ctx.error(f"a stage is named '{name}' twice", sd.pos,
                            f"the other stage named '{name}' is at line {self.named[name].line}")
        if name in _MODULE_ATTRS:
            raise ctx.error(f"'{name}' cannot name a stage: it is taken by torch.nn.Module", sd.pos)
        self.named[name] = sd.pos
        for call, needs in ((sd.call, "a stage repeats a block"), (sd.first, "a stage's first block is a block")):
            if call is not None and call.name not in self.blocks:
                guess = did_you_mean(call.name, self.blocks)
                what = f"a primitive; {needs}" if spec_primitive(call.name) else "not a known block"
                raise ctx.error(f"'{call.name}' is {what}", call.pos,
                                f"did you mean '{guess}'?" if guess else f"blocks: {', '.join(self.blocks) or 'none'}")
        count = coerce(evaluate(sd.count, env, ctx), int, "a repeat count", sd.count.pos, ctx)
        if count < 1:
            raise ctx.error(f"a stage repeats its block at least once, got x {count}", sd.count.pos)
        if count > MAX_REPEAT:
            raise ctx.error(f"repeat count {count} is over the limit of {MAX_REPEAT}", sd.count.pos)
        self.block_count += count
        if self.block_count > MAX_BLOCK_INSTANCES:
            raise ctx.error(f"the network has more than {MAX_BLOCK_INSTANCES} blocks", sd.count.pos)
        stride = 1
        if sd.stride is not None:
            stride = coerce(evaluate(sd.stride, env, ctx), int, "a stage stride", sd.stride.pos, ctx)
            if stride < 1:
                raise ctx.error(f"a stage stride must be >= 1, got {stride}", sd.stride.pos)
        return _PlannedStage(sd, name, env, count, stride)


# Names an nn.Module already uses; a stage named so would shadow them.
_MODULE_ATTRS = {"training", "forward", "parameters", "modules", "children", "state_dict", "eval", "train",
                 "to", "cuda", "cpu", "type", "float", "half", "double", "apply", "zero_grad", "buffers",
                 "named_modules", "named_parameters", "register_buffer", "load_state_dict", "requires_grad_",
                 "extra_repr", "net", "response_layers"}
