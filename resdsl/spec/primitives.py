"""The primitives of the language, in one table."""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class _Sig:
    """A primitive's signature: positional parameter names, then keyword defaults and types."""

    positional: tuple[str, ...]
    defaults: dict
    types: dict


_REQUIRED = object()
PRIMITIVES: dict[str, _Sig] = {
    "conv": _Sig(("out", "k"), {"out": _REQUIRED, "k": _REQUIRED, "stride": 1, "pad": None, "groups": 1,
                                "dilation": 1, "bias": False},
                 {"out": int, "k": int, "stride": int, "pad": int, "groups": int, "dilation": int, "bias": bool}),
    "bn": _Sig((), {"eps": 1e-5, "momentum": 0.1}, {"eps": float, "momentum": float}),
    "relu": _Sig((), {}, {}),
    "maxpool": _Sig(("k",), {"k": _REQUIRED, "stride": None, "pad": 0}, {"k": int, "stride": int, "pad": int}),
    "avgpool": _Sig(("k",), {"k": None, "stride": None, "pad": 0}, {"k": int, "stride": int, "pad": int}),
    "fc": _Sig(("out",), {"out": _REQUIRED, "bias": True}, {"out": int, "bias": bool}),
}
