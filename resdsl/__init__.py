"""resdsl: residual network designs as short .net specs, checked, compiled to PyTorch, trained and compared."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["build", "load_network", "summarize", "__version__"]


def build(spec, input_shape=None, **params):
    """Compile a spec (a path, a shipped spec name, or spec text) with parameter overrides to an nn.Module.

    >>> model = build("specs/cifar_6n2.net", n=18)   # ResNet-110
    """
    from .compiler import compile_network
    from .spec import load_network

    return compile_network(load_network(spec, params, input_shape))


def load_network(spec, overrides=None, input_shape=None):
    from .spec import load_network as _load

    return _load(spec, overrides, input_shape)


def summarize(net):
    from .analysis import summarize as _summarize

    return _summarize(net)
