"""The shipped specs as a catalog (``resdsl.list_specs``): name, size, cost and what each one is."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from .spec.analysis import summarize
from .spec import SPEC_SUFFIX, load_network, specs_dir
from .spec.syntax import parse

# A sentence ends at a full stop before a capital or a non-letter, not before a digit or a
# lower-case word ("Fig. 5", "et al., ").
_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[^a-z0-9\s])")


@dataclass(frozen=True)
class SpecInfo:
    """One shipped spec: ``name`` is what build/train/sweep take; the counts are at its defaults."""

    name: str
    network: str              # the name the spec gives its network
    params: int
    macs: int                 # multiply-adds of conv and fc layers (the paper's "FLOPs")
    depth: int                # weighted layers
    input_shape: tuple
    description: str          # the first sentence of the spec file's leading comment
    path: Path


def leading_comment(text: str) -> str:
    """The comment lines at the top of a spec file, joined into one line ('' when there are none)."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped and not lines:
            continue
        if not stripped.startswith("#"):
            break
        lines.append(stripped.lstrip("#").strip())
    return " ".join(part for part in lines if part)


def describe(text: str) -> str:
    """A spec's one-line description: the first sentence of its leading comment."""
    return _SENTENCE_END.split(leading_comment(text), maxsplit=1)[0]


def _natural(path: Path) -> list:
    """resnet18 before resnet101: numbers in a name compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path.stem) if t]


def list_specs(pattern: str | None = None) -> list[SpecInfo]:
    """The shipped specs that define a network (not the prelude of blocks they import), in natural
    order of their names; ``pattern``: a shell-style filter on the name, e.g. "resnet*"."""
    out = []
    for path in sorted(specs_dir().glob("*" + SPEC_SUFFIX), key=_natural):
        name = path.stem
        if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
            continue
        text = path.read_text(encoding="utf-8")
        if not parse(text, str(path)).networks:
            continue
        net = load_network(path)
        s = summarize(net)
        out.append(SpecInfo(name=name, network=net.name, params=s.params, macs=s.flops, depth=s.depth,
                            input_shape=tuple(net.input_shape), description=describe(text), path=path))
    return out
