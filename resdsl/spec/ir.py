"""The checked model of a spec: every value resolved, every block expanded, every shape known.

Plain data with no torch in it; analysis and the compiler both read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Union

from ..errors import SourcePos

Shape = tuple[int, int, int]  # (channels, height, width)


@dataclass
class Layer:
    """One primitive; kind names its entry in primitives.PRIMITIVES (gap: avgpool with no kernel;
    zeropad: shortcut option A)."""

    kind: str
    name: str
    attrs: dict
    in_shape: Shape
    out_shape: Shape
    pos: SourcePos | None = None


@dataclass
class Join:
    """x = x OP branch(source), or x OP source when branch is None.

    op "add": x + ..., "mul": x * ... (a Cx1x1 factor broadcasts over the map), "cat": the
    branch's channels, then x's, concatenated. The source is the sequence's input for add and
    cat and the current tensor x for mul, unless `source` names a saved point (or "input").
    option: add's shortcut option (none: no sum at all, identity, A, B, C) or "branch"; mul and
    cat: "identity" or "branch". in_shape is x's shape before the join.
    """

    name: str
    op: str
    option: str
    branch: "Seq | None"
    source: str | None
    in_shape: Shape
    out_shape: Shape
    pos: SourcePos | None = None


@dataclass
class Save:
    """`save NAME`: the current tensor at this point of the sequence, read by a later join."""

    name: str
    shape: Shape
    pos: SourcePos | None = None


@dataclass
class Seq:
    """A sequence of items whose joins refer to the sequence's own input or its saved points
    (a block, stem, head, or a join's branch)."""

    name: str
    block: str | None
    items: list[Union[Layer, Join, Save, "Seq"]]
    in_shape: Shape
    out_shape: Shape

    def layers(self, shortcuts: bool = True) -> Iterator[Layer]:
        """All primitives in order; with shortcuts=False only the main path (no join branches)."""
        for item in self.items:
            if isinstance(item, Layer):
                yield item
            elif isinstance(item, Seq):
                yield from item.layers(shortcuts)
            elif shortcuts and isinstance(item, Join) and item.branch is not None:
                yield from item.branch.layers(shortcuts)


@dataclass
class Stage:
    name: str
    block: str  # the repeated block
    count: int  # blocks in the stage, the first one included
    stride: int
    blocks: list[Seq]
    in_shape: Shape
    out_shape: Shape
    pos: SourcePos | None = None
    first: str | None = None  # the first block, when `first` makes it differ from the rest


@dataclass
class ParamSpace:
    """A parameter's declared search space: a choice, an int/float range with optional step, or a log range."""

    kind: str  # "choice", "range", "log"
    choices: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None

    def contains(self, value) -> bool:
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) or (
                isinstance(c, float) and isinstance(value, int) and value == c) for c in self.choices)
        if not (self.low <= value <= self.high):
            return False
        if self.kind == "range" and self.step is not None:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-9)
        return True

    def describe(self) -> str:
        if self.kind == "choice":
            return "[" + ", ".join(_show(c) for c in self.choices) + "]"
        if self.kind == "log":
            return f"log {_show(self.low)}..{_show(self.high)}"
        step = f" step {_show(self.step)}" if self.step is not None else ""
        return f"{_show(self.low)}..{_show(self.high)}{step}"


def _show(v) -> str:
    return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)


@dataclass
class Init:
    """How the compiled module's weights start: an init of inits.INITS and its options."""

    name: str = "he"
    options: dict = field(default_factory=dict)


@dataclass
class Network:
    name: str
    path: str | None
    input_shape: Shape
    num_classes: int
    params: dict
    spaces: dict[str, ParamSpace]
    param_types: dict[str, type]
    sources: dict[str, str]
    stem: Seq
    stem_name: str
    stages: list[Stage]
    head: Seq
    lets: dict = field(default_factory=dict)
    init: Init = field(default_factory=Init)

    def seqs(self) -> Iterator[tuple[str, Seq]]:
        """(dotted module path, sequence) for the stem, every block and the head, in forward order."""
        yield "stem", self.stem
        for stage in self.stages:
            for block in stage.blocks:
                yield f"{stage.name}.{block.name}", block
        yield "head", self.head

    @property
    def output_shape(self) -> Shape:
        return self.head.out_shape
