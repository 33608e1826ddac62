"""Initializations a network names with `init NAME` or `init NAME(options)`: their options here,
and which layers they touch, read off the checked model (no torch; the compiler applies them)."""

from __future__ import annotations

from . import ir
from .primitives import PrimitiveArg, Signature

DEFAULT_INIT = "he"
# he: the paper's He et al. 2015 init. zero_last_bn: the last BN before each residual addition
# starts at weight 0, so every residual branch starts as zero (Goyal et al. 2017).
INITS: dict[str, Signature] = {"he": Signature((PrimitiveArg("zero_last_bn", bool, False),))}


def zeroed_bns(net: ir.Network) -> list[str]:
    """Dotted module names of the BNs whose weight `zero_last_bn` zeroes: in every sequence (stem,
    block, nested block, branch), the last bn on the main path before each join that adds, with no
    other such join between them."""
    names: list[str] = []
    for prefix, seq in net.seqs():
        _last_bns(seq, prefix, names)
    return names


def _last_bns(seq: ir.Seq, prefix: str, names: list[str]) -> tuple[str | None, bool]:
    """Adds the zeroed BNs of seq (and of the sequences in it) to names. Returns the last bn on
    seq's main path after its last adding join, and whether it has such a join: what a join of the
    enclosing sequence sees through it."""
    last, adds = None, False
    for item in seq.items:
        if isinstance(item, ir.Layer):
            if item.kind == "bn":
                last = f"{prefix}.{item.name}"
        elif isinstance(item, ir.Seq):
            inner_last, inner_adds = _last_bns(item, f"{prefix}.{item.name}", names)
            last = inner_last if inner_adds else inner_last or last
            adds = adds or inner_adds
        elif isinstance(item, ir.Join):
            if item.branch is not None:
                _last_bns(item.branch, f"{prefix}.{item.branch.name}", names)
            if item.op == "add" and item.option != "none":  # a plain net's join adds nothing: its BN must stay
                if last is not None:
                    names.append(last)
                last, adds = None, True
            elif item.op == "cat":  # x is no longer one branch's output: its BN is no residual's last
                last = None
            # mul (a gate such as squeeze-and-excitation) scales the branch: its BN stays the last
    return last, adds
