"""Syntax tree of a .net file: what was written, with where it was written. No evaluation here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .errors import SourcePos


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
class BinOp:
    op: str
    left: "Expr"
    right: "Expr"
    pos: SourcePos


@dataclass(frozen=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: "Expr"
    pos: SourcePos


@dataclass(frozen=True)
class Cond:
    then: "Expr"
    test: "Expr"
    otherwise: "Expr"
    pos: SourcePos


Expr = Union[Lit, Var, BinOp, UnaryOp, Cond]


# ---- statements inside a sequence (block body, stem, head, shortcut branch) ----
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
class Add:
    """Join the enclosing block's input: through an option expression, a branch, or identity."""

    option: Expr | None
    branch: "Seq | None"
    pos: SourcePos


@dataclass(frozen=True)
class Seq:
    stmts: tuple[Union[Call, Add], ...]
    pos: SourcePos


# ---- top-level items ----
@dataclass(frozen=True)
class Space:
    kind: str  # "choice", "range", "log"
    values: tuple[Expr, ...]  # choice: the values; range: (low, high, step|None); log: (low, high)
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
    call: Call
    count: Expr
    stride: Expr | None
    pos: SourcePos


@dataclass(frozen=True)
class NetworkDef:
    name: str
    input: tuple[Expr, Expr, Expr] | None
    classes: Expr | None
    stem: Seq | None
    stem_name: str | None
    stages: tuple[StageDecl, ...]
    head: Seq | None
    pos: SourcePos


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
