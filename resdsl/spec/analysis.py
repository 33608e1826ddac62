"""Counts read off the checked model: parameters, multiply-adds (the paper's "FLOPs"), depth, Table-1 rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from .primitives import PRIMITIVES


def layer_params(layer: ir.Layer) -> int:
    return PRIMITIVES[layer.kind].params(layer)


def layer_flops(layer: ir.Layer) -> int:
    """Multiply-adds (convs and fcs; BN, activations, pooling and additions count zero, as in the paper)."""
    return PRIMITIVES[layer.kind].macs(layer)


def seq_params(seq: ir.Seq) -> int:
    return sum(layer_params(l) for l in seq.layers())


def seq_flops(seq: ir.Seq) -> int:
    return sum(layer_flops(l) for l in seq.layers())


def weighted_depth(seq: ir.Seq) -> int:
    """Weighted layers on the main path (convs and fcs, not shortcut projections): the paper's depth."""
    return sum(1 for l in seq.layers(shortcuts=False) if PRIMITIVES[l.kind].weighted)


@dataclass
class StageRow:
    """One row of Table 1: a stage's name, output size, block structure and repeat count."""

    name: str
    output: str
    structure: list[str]
    count: int
    params: int
    flops: int
    block: str | None = None


@dataclass
class NetSummary:
    name: str
    params: int
    flops: int
    depth: int
    input_shape: tuple
    rows: list[StageRow] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "name": self.name, "params": self.params, "flops": self.flops, "depth": self.depth,
            "input": list(self.input_shape), "blocks": self.blocks,
            "stages": [{"name": r.name, "output": r.output, "structure": r.structure, "count": r.count,
                        "block": r.block, "params": r.params, "flops": r.flops} for r in self.rows],
        }


def _structure(seq: ir.Seq, main_only: bool) -> list[str]:
    return [d for d in (PRIMITIVES[l.kind].describe(l) for l in seq.layers(shortcuts=not main_only)) if d]


def _size(shape: ir.Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def summarize(net: ir.Network) -> NetSummary:
    rows = [StageRow(net.stem_name, _size(net.stem.out_shape), _structure(net.stem, True), 1,
                     seq_params(net.stem), seq_flops(net.stem))]
    depth = weighted_depth(net.stem) + weighted_depth(net.head)
    for stage in net.stages:
        # The stage's first block shows the structure with its stride, like the paper's conv3_1.
        rows.append(StageRow(stage.name, _size(stage.out_shape), _structure(stage.blocks[0], True), stage.count,
                             sum(seq_params(b) for b in stage.blocks), sum(seq_flops(b) for b in stage.blocks),
                             stage.block))
        depth += sum(weighted_depth(b) for b in stage.blocks)
    rows.append(StageRow("head", _size(net.head.out_shape), _structure(net.head, True), 1,
                         seq_params(net.head), seq_flops(net.head)))
    return NetSummary(
        name=net.name, params=sum(r.params for r in rows), flops=sum(r.flops for r in rows), depth=depth,
        input_shape=net.input_shape, rows=rows,
        blocks=sorted({s.block for s in net.stages} | {s.first for s in net.stages if s.first is not None}))


def shortcut_option(net: ir.Network) -> str | None:
    """The shortcut option of the network's stage blocks, read from their add joins: "none" for a
    plain net, "A"/"B"/"C" for the paper's options, "identity"/"branch" otherwise; several
    kinds joined with "+". Identity joins beside option A or B joins are what those options do
    where the shape stays, so they do not count. None when the stages have no blocks."""
    options = set()
    for stage in net.stages:
        for block in stage.blocks:
            options |= {j.option for j in _joins(block) if j.op == "add"}
    if not net.stages:
        return None
    if not options:
        return "none"
    if options & {"A", "B"}:
        options.discard("identity")
    return "+".join(sorted(options))


def _joins(seq: ir.Seq):
    for item in seq.items:
        if isinstance(item, ir.Join):
            yield item
        elif isinstance(item, ir.Seq):
            yield from _joins(item)


# ----------------------------------------------------------------------------- memory

FLOAT_BYTES = 4


def _elements(shape: ir.Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass
class MemoryEstimate:
    """Bytes a network needs, read off the checked model before any tensor exists (fp32).

    A lower bound in spirit: what cannot be avoided, not what an allocator adds on top, so a
    refusal based on it is never a false alarm."""

    params: int
    weight_bytes: int          # parameters and BN running statistics
    activation_bytes: int      # per image: every layer's output, as autograd keeps them for backward
    peak_layer_bytes: int      # per image: the largest single layer output (inference needs two)
    input_bytes: int           # per image

    def training_step(self, batch: int) -> int:
        """Weights, their gradients and SGD momentum, plus one batch's kept activations."""
        return 3 * self.weight_bytes + batch * (self.activation_bytes + self.input_bytes)

    def inference(self, batch: int = 1) -> int:
        return self.weight_bytes + batch * (2 * self.peak_layer_bytes + self.input_bytes)

    def onnx_export(self) -> int:
        """The exporter traces a forward and holds the weights again in the serialized graph."""
        return 2 * self.weight_bytes + self.inference(1)


def estimate_memory(net: ir.Network) -> MemoryEstimate:
    layers = [l for _, seq in net.seqs() for l in seq.layers()]
    params = sum(layer_params(l) for l in layers)
    buffers = sum(PRIMITIVES[l.kind].buffers(l) for l in layers)
    outputs = [_elements(l.out_shape) * FLOAT_BYTES for l in layers]
    return MemoryEstimate(
        params=params, weight_bytes=(params + buffers) * FLOAT_BYTES,
        activation_bytes=sum(outputs), peak_layer_bytes=max(outputs, default=0),
        input_bytes=_elements(net.input_shape) * FLOAT_BYTES)
