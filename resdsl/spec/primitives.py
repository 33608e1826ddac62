"""The primitives of the language, in one table.

Each entry of PRIMITIVES says everything about one primitive: the arguments a spec may give
(types, defaults, bounds), its output shape from its input shape (with the checks), its
parameter count, its multiply-adds, its line in Table 1 and its torch module. The checker
(blocks.py), the analysis and the compiler read only this table, so a primitive is one entry,
written here or added from Python with register_primitive.

Nothing here imports torch: the module factories import it when the compiler calls them, so
checking a spec and counting its parameters never load it.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from .limits import value_problem

if TYPE_CHECKING:
    from torch import nn

    from .ir import Layer, Shape


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()  # the default of an argument a spec must give
ARG_TYPES = (int, float, bool, str)
_BOUNDS = (("ge", ">=", operator.ge), ("gt", ">", operator.gt), ("le", "<=", operator.le), ("lt", "<", operator.lt))


@dataclass(frozen=True)
class PrimitiveArg:
    """One argument of a primitive.

    default: REQUIRED when a spec must give it; None when the shape function derives it (conv's
    pad from its kernel). positional: it may be given without its name, in the order of the
    primitive's arguments. ge, gt, le, lt: bounds on a number (value >= ge, > gt, <= le, < lt).
    """

    name: str
    type: type
    default: object = REQUIRED
    positional: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    _bounds: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_bounds", tuple((word, getattr(self, attr), holds) for attr, word, holds in _BOUNDS
                                                  if getattr(self, attr) is not None))

    def bound_problem(self, value) -> str | None:
        """'must be >= 1' when the value breaks a bound, else None."""
        for word, bound, holds in self._bounds:
            if not holds(value, bound):
                return f"must be {word} {bound}"
        return None


@dataclass(frozen=True)
class Signature:
    """The arguments a call takes (a primitive's, an init's), with what binding them reads."""

    args: tuple[PrimitiveArg, ...]
    positional: tuple[str, ...] = field(init=False)  # the names that may be given without their name, in order
    defaults: dict = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "positional", tuple(a.name for a in self.args if a.positional))
        object.__setattr__(self, "defaults", {a.name: a.default for a in self.args})


class ShapeError(ValueError):
    """A shape function's refusal of its input or arguments; the checker reports the message at the
    call, as written (so it names the primitive), with the hint under it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def _same_shape(attrs: dict, shape: Shape) -> Shape:
    return shape


def _zero(layer: Layer) -> int:
    return 0


def _no_description(layer: Layer) -> str | None:
    return None


@dataclass(frozen=True)
class Primitive:
    """Everything about one primitive. `shape` makes the output shape from the arguments and the
    input shape (and may fill in the arguments it derives, such as conv's pad); the other functions
    take the checked layer (ir.Layer: its attrs, in_shape and out_shape)."""

    name: str
    args: tuple[PrimitiveArg, ...]
    module: Callable[[Layer], nn.Module]  # the torch module; imports torch itself
    shape: Callable[[dict, Shape], Shape] = _same_shape
    params: Callable[[Layer], int] = _zero
    macs: Callable[[Layer], int] = _zero  # multiply-adds, as torch.utils.flop_counter counts them (FLOPs / 2)
    buffers: Callable[[Layer], int] = _zero  # elements of state that is not a parameter (BN running statistics)
    describe: Callable[[Layer], str | None] = _no_description  # its line in Table 1; None leaves it out
    weighted: bool = False  # one of the weighted layers the network's depth counts (the paper's convs and fcs)
    # The entry a call makes, from its arguments, when not this one (avgpool with no kernel: gap).
    variant: Callable[[dict], str] | None = None
    in_specs: bool = True  # False: made by the checker itself, never written in a spec (gap, zeropad)
    builtin: bool = True
    signature: Signature = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "signature", Signature(self.args))


def spec_primitive(name: str) -> Primitive | None:
    """The primitive a spec calls by this name, or None."""
    entry = PRIMITIVES.get(name)
    return entry if entry is not None and entry.in_specs else None


def spec_primitive_names() -> list[str]:
    return [name for name, entry in PRIMITIVES.items() if entry.in_specs]


# ---------------------------------------------------------------------------- shapes
def conv_out(size: int, k: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """A conv's or pool's output size along one axis, as torch computes it."""
    span = size + 2 * pad - dilation * (k - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad:  # torch: the last window must start inside the input or its left pad
        out -= 1
    return out


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _conv_shape(a: dict, shape: Shape) -> Shape:
    c, h, w = shape
    k, d, g = a["k"], a["dilation"], a["groups"]
    if a["pad"] is None:
        a["pad"] = d * (k - 1) // 2  # keeps the map's size for odd kernels at stride 1
    if c % g or a["out"] % g:
        raise ShapeError(f"conv groups={g} must divide both its input channels ({c}) and output "
                         f"channels ({a['out']})", "a depthwise conv has groups = its channels")
    return a["out"], conv_out(h, k, a["stride"], a["pad"], d), conv_out(w, k, a["stride"], a["pad"], d)


def _pool_shape(kind: str) -> Callable[[dict, Shape], Shape]:
    def shape(a: dict, in_shape: Shape) -> Shape:
        c, h, w = in_shape
        if a["stride"] is None:
            a["stride"] = a["k"]
        if a["pad"] * 2 > a["k"]:
            raise ShapeError(f"{kind} pad ({a['pad']}) must be at most half its kernel ({a['k']})")
        ceil = a.get("ceil_mode", False)
        return c, conv_out(h, a["k"], a["stride"], a["pad"], 1, ceil), conv_out(w, a["k"], a["stride"], a["pad"], 1, ceil)
    return shape


def _gap_shape(a: dict, shape: Shape) -> Shape:
    if a["stride"] is not None or a["pad"] or a["ceil_mode"] or not a["count_include_pad"]:
        raise ShapeError("avgpool without a kernel is global average pooling and takes no other argument",
                         "give the kernel of a windowed pool: avgpool(k, stride=...)")
    return shape[0], 1, 1


def _groupnorm_shape(a: dict, shape: Shape) -> Shape:
    if shape[0] % a["groups"]:
        raise ShapeError(f"groupnorm groups={a['groups']} must divide its input channels ({shape[0]})")
    return shape


def _fc_shape(a: dict, shape: Shape) -> Shape:
    a["in"] = shape[0] * shape[1] * shape[2]
    problem = value_problem(a["in"])
    if problem:
        raise ShapeError(f"fc flattens {_fmt(shape)} to {problem}")
    return a["out"], 1, 1


# ---------------------------------------------------------------------------- counts
def _conv_params(layer: Layer) -> int:
    a = layer.attrs
    return a["out"] * (layer.in_shape[0] // a["groups"]) * a["k"] ** 2 + (a["out"] if a["bias"] else 0)


def _conv_macs(layer: Layer) -> int:
    cout, h, w = layer.out_shape
    return cout * h * w * (layer.in_shape[0] // layer.attrs["groups"]) * layer.attrs["k"] ** 2


def _fc_params(layer: Layer) -> int:
    a = layer.attrs
    return a["in"] * a["out"] + (a["out"] if a["bias"] else 0)


def _per_channel(factor: int) -> Callable[[Layer], int]:
    return lambda layer: factor * layer.in_shape[0]


# ---------------------------------------------------------------------------- Table 1
def _describe_conv(layer: Layer) -> str:
    a = layer.attrs
    stride = f", stride {a['stride']}" if a["stride"] != 1 else ""
    groups = f", groups {a['groups']}" if a["groups"] != 1 else ""
    return f"{a['k']}x{a['k']}, {a['out']}{stride}{groups}"


def _describe_pool(layer: Layer) -> str:
    a = layer.attrs
    stride = f", stride {a['stride']}" if a["stride"] != 1 else ""
    return f"{a['k']}x{a['k']} {layer.kind[:3]} pool{stride}"


# ---------------------------------------------------------------------------- modules
def _nn():
    from torch import nn
    return nn


def _ours():
    from . import modules
    return modules


def _torch_module(class_name: str, **kwargs) -> Callable[[Layer], nn.Module]:
    """A factory of torch.nn.CLASS_NAME(**kwargs), the same for every layer (activations)."""
    return lambda layer: getattr(_nn(), class_name)(**kwargs)


def _conv_module(layer: Layer) -> nn.Module:
    a = layer.attrs
    return _nn().Conv2d(layer.in_shape[0], a["out"], a["k"], stride=a["stride"], padding=a["pad"],
                        dilation=a["dilation"], groups=a["groups"], bias=a["bias"])


def _avgpool_module(layer: Layer) -> nn.Module:
    a = layer.attrs
    return _nn().AvgPool2d(a["k"], stride=a["stride"], padding=a["pad"], ceil_mode=a["ceil_mode"],
                           count_include_pad=a["count_include_pad"])


# ---------------------------------------------------------------------------- the table
def _eps(default: float) -> PrimitiveArg:
    return PrimitiveArg("eps", float, default, gt=0)


def _probability() -> PrimitiveArg:
    return PrimitiveArg("p", float, positional=True, ge=0, lt=1)


# name: (torch.nn class, whether it may work in place, as torchvision's models build them)
_ACTIVATIONS = {"relu": ("ReLU", True), "relu6": ("ReLU6", True), "silu": ("SiLU", True), "gelu": ("GELU", False),
                "sigmoid": ("Sigmoid", False), "hardswish": ("Hardswish", True), "identity": ("Identity", False)}

_BUILTINS = [
    Primitive("conv", (PrimitiveArg("out", int, positional=True, ge=1), PrimitiveArg("k", int, positional=True, ge=1),
                       PrimitiveArg("stride", int, 1, ge=1), PrimitiveArg("pad", int, None, ge=0),
                       PrimitiveArg("groups", int, 1, ge=1), PrimitiveArg("dilation", int, 1, ge=1),
                       PrimitiveArg("bias", bool, False)),
              module=_conv_module, shape=_conv_shape, params=_conv_params, macs=_conv_macs,
              describe=_describe_conv, weighted=True),
    Primitive("bn", (_eps(1e-5), PrimitiveArg("momentum", float, 0.1, ge=0, le=1)),
              module=lambda l: _nn().BatchNorm2d(l.in_shape[0], eps=l.attrs["eps"], momentum=l.attrs["momentum"]),
              params=_per_channel(2), buffers=_per_channel(2)),  # weight, bias; running mean, variance
    *(Primitive(name, (), module=_torch_module(cls, **({"inplace": True} if inplace else {})))
      for name, (cls, inplace) in _ACTIVATIONS.items()),
    Primitive("dropout", (_probability(),), module=lambda l: _nn().Dropout(l.attrs["p"])),
    Primitive("drop_path", (_probability(),), module=lambda l: _ours().DropPath(l.attrs["p"])),
    Primitive("groupnorm", (PrimitiveArg("groups", int, positional=True, ge=1), _eps(1e-5)),
              module=lambda l: _nn().GroupNorm(l.attrs["groups"], l.in_shape[0], eps=l.attrs["eps"]),
              shape=_groupnorm_shape, params=_per_channel(2)),
    Primitive("layernorm", (_eps(1e-6),), module=lambda l: _ours().LayerNorm2d(l.in_shape[0], eps=l.attrs["eps"]),
              params=_per_channel(2)),
    Primitive("scale", (PrimitiveArg("init", float, 1e-6),),
              module=lambda l: _ours().LayerScale(l.in_shape[0], l.attrs["init"]), params=_per_channel(1)),
    Primitive("maxpool", (PrimitiveArg("k", int, positional=True, ge=1), PrimitiveArg("stride", int, None, ge=1),
                          PrimitiveArg("pad", int, 0, ge=0)),
              module=lambda l: _nn().MaxPool2d(l.attrs["k"], stride=l.attrs["stride"], padding=l.attrs["pad"]),
              shape=_pool_shape("maxpool"), describe=_describe_pool),
    Primitive("avgpool", (PrimitiveArg("k", int, None, positional=True, ge=1), PrimitiveArg("stride", int, None, ge=1),
                          PrimitiveArg("pad", int, 0, ge=0), PrimitiveArg("ceil_mode", bool, False),
                          PrimitiveArg("count_include_pad", bool, True)),
              module=_avgpool_module, shape=_pool_shape("avgpool"), describe=_describe_pool,
              variant=lambda a: "gap" if a["k"] is None else "avgpool"),
    Primitive("gap", (), module=lambda l: _nn().AdaptiveAvgPool2d(1), shape=_gap_shape,
              describe=lambda l: "average pool", in_specs=False),
    Primitive("fc", (PrimitiveArg("out", int, positional=True, ge=1), PrimitiveArg("bias", bool, True)),
              module=lambda l: _ours().FlatLinear(l.attrs["in"], l.attrs["out"], bias=l.attrs["bias"]),
              shape=_fc_shape, params=_fc_params, macs=lambda l: l.attrs["in"] * l.attrs["out"],
              describe=lambda l: f"{l.attrs['out']}-d fc", weighted=True),
    # Shortcut option A: strided subsampling and zero channels appended; blocks.py builds its layer.
    Primitive("zeropad", (), module=lambda l: _ours().ZeroPadShortcut(l.attrs["stride"], l.in_shape[0], l.attrs["out"]),
              in_specs=False),
]

PRIMITIVES: dict[str, Primitive] = {p.name: p for p in _BUILTINS}


# ---------------------------------------------------------------------------- from Python
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register_primitive(name: str, *, module: Callable[[Layer], nn.Module], args: Sequence[PrimitiveArg] = (),
                       shape: Callable[[dict, Shape], Shape] = _same_shape, params: Callable[[Layer], int] = _zero,
                       macs: Callable[[Layer], int] = _zero, buffers: Callable[[Layer], int] = _zero,
                       describe: Callable[[Layer], str | None] = _no_description, weighted: bool = False,
                       replace: bool = False) -> Primitive:
    """Add a primitive that specs can call by `name`; it is counted and compiled like a built-in one.

    module(layer) -> torch.nn.Module builds it, from the checked ``layer`` (``layer.attrs``: its
    arguments; ``layer.in_shape``, ``layer.out_shape``: (channels, height, width)). args: its
    arguments, as ``PrimitiveArg(name, type, default, positional=..., ge=..., lt=...)`` (type int,
    float, bool or str; no default: required). shape(attrs, in_shape) -> out_shape (default: the
    input's shape) may raise ValueError (or ShapeError, with a hint): the spec's error at the call
    shows its message. params, macs (multiply-adds, as torch.utils.flop_counter counts them),
    buffers (elements of non-parameter state): functions of the layer, 0 by default; the compiler
    refuses a module whose parameter count differs from params. describe(layer): its line in
    Table 1, or None. weighted: it counts in the network's depth. replace: replace an earlier
    registration of the same name (never a built-in primitive).

    A registration lives in this Python process: specs built here see it; the ``resdsl``
    command, sweep workers and a later process do not.

    >>> register_primitive("pwconv", args=[PrimitiveArg("out", int, positional=True, ge=1)],
    ...     shape=lambda a, s: (a["out"], s[1], s[2]),
    ...     params=lambda l: l.attrs["out"] * l.in_shape[0],
    ...     macs=lambda l: l.attrs["out"] * l.in_shape[0] * l.out_shape[1] * l.out_shape[2],
    ...     module=lambda l: torch.nn.Conv2d(l.in_shape[0], l.attrs["out"], 1, bias=False))  # doctest: +SKIP
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"a primitive's name must be a name a spec can write (letters, digits, '_'), got {name!r}")
    existing = PRIMITIVES.get(name)
    if existing is not None and existing.builtin:
        raise ValueError(f"'{name}' is a built-in primitive (or a layer the checker makes); choose another name")
    if existing is not None and not replace:
        raise ValueError(f"a primitive '{name}' is already registered; pass replace=True to replace it")
    if name in _keywords():
        raise ValueError(f"'{name}' is a keyword of the spec language; choose another name")
    args = tuple(args)
    seen = set()
    for arg in args:
        if not isinstance(arg, PrimitiveArg):
            raise TypeError(f"the args of '{name}' must be PrimitiveArg(...), got {arg!r}")
        if arg.type not in ARG_TYPES:
            raise TypeError(f"argument '{arg.name}' of '{name}' has type {arg.type!r}; "
                            "an argument is an int, float, bool or str")
        if not _NAME.fullmatch(arg.name) or arg.name in seen:
            raise ValueError(f"argument name {arg.name!r} of '{name}' is not a name or is given twice")
        seen.add(arg.name)
    for what, fn in (("module", module), ("shape", shape), ("params", params), ("macs", macs),
                     ("buffers", buffers), ("describe", describe)):
        if not callable(fn):
            raise TypeError(f"{what} of '{name}' must be a function, got {fn!r}")
    entry = Primitive(name, args, module=module, shape=shape, params=params, macs=macs, buffers=buffers,
                      describe=describe, weighted=weighted, builtin=False)
    PRIMITIVES[name] = entry
    return entry


def _keywords() -> set[str]:
    """Every word the grammar reserves somewhere (add, stage, init, ...)."""
    from .syntax import grammar_text

    return set(re.findall(r'"([A-Za-z_]+)"', grammar_text()))
