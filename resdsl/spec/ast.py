"""Syntax tree of a .net file: what was written, with where it was written. No evaluation here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import SourcePos


# ---- expressions ----
@dataclass(frozen=True)
class Lit:
    value: object
    pos: SourcePos


@dataclass(frozen=True)
class Var:
    name: str
    pos: SourcePos


@dataclass(frozen=True)
class Chain:
    """Operands joined left to right by operators of one level: a + b - c, a * b, a and b, a < b.

    Flat, not nested, so a chain of thousands of terms is a loop, not a recursion.
    """

    first: "Expr"
    rest: tuple[tuple[str, "Expr", SourcePos], ...]  # (operator, operand, where the operator is)
    pos: SourcePos


@dataclass(frozen=True)
class UnaryOp:
    """`op` applied `count` times: - - x, not not x."""

    op: str  # "-" or "not"
    count: int
    operand: "Expr"
    pos: SourcePos  # the innermost operator, next to the operand


@dataclass(frozen=True)
class Cond:
    """`a if c else b if d else e`: the value of the first case whose test is true, else `otherwise`."""

    cases: tuple[tuple["Expr", "Expr"], ...]  # (value, test)
    otherwise: "Expr"
    pos: SourcePos


@dataclass(frozen=True)
class Power:
    """a ** b ** c, right to left: a ** (b ** c). Flat, as Chain is.

    Each later operand may carry minus signs, which apply to the whole power to their right:
    a ** -b ** c is a ** (-(b ** c)), as in Python.
    """

    first: "Expr"
    rest: tuple[tuple[int, "Expr", SourcePos], ...]  # (minus signs, operand, where its '**' is)
    pos: SourcePos


@dataclass(frozen=True)
class ListLit:
    items: tuple["Expr", ...]
    pos: SourcePos


@dataclass(frozen=True)
class Comprehension:
    """[element for name in iterable if condition]"""

    element: "Expr"
    names: tuple[str, ...]  # one name, or several that unpack each item: for w, g in zip(ws, gs)
    iterable: "Expr"
    condition: "Expr | None"
    pos: SourcePos


@dataclass(frozen=True)
class Index:
    """xs[i][j]: the indices applied left to right (flat)."""

    target: "Expr"
    indices: tuple["Expr", ...]
    pos: SourcePos


@dataclass(frozen=True)
class FuncCall:
    """One of the language's fixed functions (min, range, make_divisible, ...); never a block."""

    name: str
    args: tuple["Arg", ...]
    pos: SourcePos


Expr = Union[Lit, Var, Chain, UnaryOp, Cond, Power, ListLit, Comprehension, Index, FuncCall]


Expr = Union[Lit, Var, Chain, UnaryOp, Cond, ListLit]


# ---- statements inside a sequence (block body, stem, head, join branch) ----
@dataclass(frozen=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    pos: SourcePos


@dataclass(frozen=True)
class Call:
    """A primitive (conv, bn, ...) or a block, with its arguments."""

    name: str
    args: tuple[Arg, ...]
    pos: SourcePos


@dataclass(frozen=True)
class Join:
    """x = x OP f(source): `add`, `mul` or `cat`, with an optional shortcut option (add only),
    an optional `from NAME` source and an optional branch f."""

    op: str  # "add", "mul", "cat"
    option: Expr | None
    source: str | None  # None: the op's default source
    source_pos: SourcePos | None
    branch: "Seq | None"
    pos: SourcePos


@dataclass(frozen=True)
class Require:
    """require CONDITION, MESSAGE: the design is admissible only where the condition holds."""

    condition: Expr
    message: Expr
    pos: SourcePos


@dataclass(frozen=True)
class Save:
    """`save NAME`: the current tensor, named for a later join's `from NAME`."""

    name: str
    pos: SourcePos


@dataclass(frozen=True)
class If:
    """`if c { ... } else if d { ... } else { ... }`: the first case whose test is true, else `otherwise`."""

    cases: tuple[tuple["Expr", "Seq"], ...]  # (test, statements)
    otherwise: "Seq | None"
    pos: SourcePos


Stmt = Union[Call, Join, Save, If, Require]


@dataclass(frozen=True)
class Seq:
    stmts: tuple[Stmt, ...]
    pos: SourcePos


# ---- top-level items ----
@dataclass(frozen=True)
class Space:
    kind: str  # "choice", "range", "log"
    values: tuple[Expr, ...]  # choice: (the list,); range: (low, high, step|None); log: (low, high)
    pos: SourcePos


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr
    space: Space | None
    pos: SourcePos


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    pos: SourcePos


@dataclass(frozen=True)
class Formal:
    name: str
    default: Expr | None
    pos: SourcePos


@dataclass(frozen=True)
class BlockDef:
    name: str
    formals: tuple[Formal, ...]
    body: Seq
    pos: SourcePos


@dataclass(frozen=True)
class StageDecl:
    name: str
    index: Expr | None  # `stage s[i]:` appends the value of i to the name
    call: Call
    count: Expr
    stride: Expr | None
    first: Call | None  # `first CALL`: the stage's first block, counted in `count`
    pos: SourcePos


@dataclass(frozen=True)
class StageFor:
    """`for NAME in LIST { stage ... }`: the stage lines once per value of the list."""

    name: str
    iterable: Expr
    body: tuple[Union[StageDecl, "StageFor"], ...]
    pos: SourcePos


@dataclass(frozen=True)
class NetworkDef:
    name: str
    input: tuple[Expr, Expr, Expr] | None
    classes: Expr | None
    stem: Seq | None
    stem_name: str | None
    stages: tuple[Union[StageDecl, StageFor], ...]
    head: Seq | None
    pos: SourcePos
    init: Call | None = None  # `init he(zero_last_bn=true)`; None: the default init
    requires: tuple[Require, ...] = ()


@dataclass(frozen=True)
class Import:
    target: str
    pos: SourcePos


@dataclass
class SpecFile:
    path: str
    text: str
    imports: list[Import] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    lets: list[Let] = field(default_factory=list)
    blocks: list[BlockDef] = field(default_factory=list)
    networks: list[NetworkDef] = field(default_factory=list)
    requires: list[Require] = field(default_factory=list)
