"""resdsl: residual network designs as short .net specs, checked, compiled to PyTorch, trained and compared."""

from __future__ import annotations

__version__ = "0.1.0"

from .lazy import lazy_exports

__all__ = ["PrimitiveArg", "build", "list_specs", "load_input_mean", "load_network", "load_run", "load_runs",
           "register_primitive", "summarize", "__version__"]

# Every function imports what it needs when called: `import resdsl` loads neither torch nor pandas.
# register_primitive and PrimitiveArg come from resdsl.spec.primitives on first use (no torch there).
__getattr__, __dir__ = lazy_exports(globals(), {"resdsl.spec.primitives": ("PrimitiveArg", "register_primitive")})


def build(spec, input_shape=None, **params):
    """Compile a spec (a path, a shipped spec name, or spec text) with parameter overrides to an nn.Module.

    >>> model = build("specs/cifar_6n2.net", n=18)   # ResNet-110
    """
    from .spec.compiler import compile_network
    from .spec import load_network

    return compile_network(load_network(spec, params, input_shape))


def load_network(spec, overrides=None, input_shape=None):
    from .spec import load_network as _load

    return _load(spec, overrides, input_shape)


def summarize(net):
    from .spec.analysis import summarize as _summarize

    return _summarize(net)


def list_specs(pattern=None):
    """The shipped specs (as ``timm.list_models``): a list of ``SpecInfo`` with ``name``, ``params``,
    ``macs`` (multiply-adds), ``depth``, ``input_shape`` and a one-line ``description``;
    ``pattern`` filters names shell-style.

    >>> [(s.name, s.params) for s in list_specs("resnet5*")]
    [('resnet50', 25557032)]
    """
    from .catalog import list_specs as _list

    return _list(pattern)


def load_run(run_dir, device="cpu"):
    """A run record's trained module (eval mode, weights from weights.pt, or checkpoint.pt for
    older records, on ``device``) and its resolved config (``resdsl.train.ResolvedConfig``).

    >>> model, cfg = load_run("reports/runs/r20")   # doctest: +SKIP
    >>> logits = model(images)                       # doctest: +SKIP
    """
    from .train.trained import load_run as _load

    return _load(run_dir, device)


def load_input_mean(run_dir):
    """What a run subtracted from its inputs (its training images' per-pixel mean, in 0..255), as
    an ``ImageMean`` whose ``normalize(x)`` turns images (N, 3, H, W) in 0..255 into the
    network's input, bit for bit as in training and ``resdsl eval``.

    >>> model, cfg = load_run("reports/runs/r20")                 # doctest: +SKIP
    >>> logits = model(load_input_mean("reports/runs/r20").normalize(uint8_images))  # doctest: +SKIP
    """
    from .record import load_input_mean as _load

    return _load(run_dir)


def load_runs(folder):
    """Every run record under ``folder`` as one pandas DataFrame, one row per usable run (the
    columns of ``resdsl report``'s runs table; errors are fractions). Records that cannot be read
    or are still running are left out: ``resdsl.report.load_runs(folder).bad`` lists them, with why.
    """
    from .report.records import load_runs as _load

    return _load(folder).runs
