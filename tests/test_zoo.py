"""The residual family after 2015 as shipped specs (issue 9): exact parameter counts at each
family's standard input, outputs equal to plain-PyTorch references with the same weights, and the
RegNetX design space against pycls's generation rule."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from resdsl.errors import ConstraintError
from resdsl.spec import load_network
from resdsl.spec.analysis import summarize
from resdsl.spec.compiler import compile_network

sys.path.insert(0, str(Path(__file__).parent))
from reference_nets import REFERENCES, regnet_adjust, regnet_widths_depths  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_shipped_spec_has_the_published_parameter_count(name):
    make, shape, params = REFERENCES[name]
    net = load_network(SPECS / f"{name}.net")
    assert net.input_shape == shape
    assert summarize(net).params == params
    assert sum(p.numel() for p in make().parameters()) == params  # the reference agrees


def _randomize(model: torch.nn.Module) -> None:
    """Weights and BN statistics away from their initial values, so a wrong pairing shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
                elif name.endswith("weight") and t.dim() == 1:  # BN scale
                    t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * (1.0 / math.sqrt(max(1, t[0].numel()))))


def _copy_by_position(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Both register their tensors in the order the network computes them: pair them one to one."""
    src_state, dst_state = list(src.state_dict().items()), list(dst.state_dict().items())
    assert len(src_state) == len(dst_state)
    with torch.no_grad():
        for (src_name, s), (dst_name, d) in zip(src_state, dst_state):
            assert s.shape == d.shape, (src_name, dst_name)
            d.copy_(s)


# ImageNet nets at 64x64: every layer still runs (the last stage on 2x2 maps), at 1/12 of the cost.
SMALL = {(3, 224, 224): (3, 64, 64), (3, 32, 32): (3, 32, 32)}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_shipped_spec_computes_what_the_reference_computes(name):
    make, shape, _ = REFERENCES[name]
    small = SMALL[shape]
    net = load_network(SPECS / f"{name}.net", input_shape=small)
    spec_model = compile_network(net).double().eval()
    reference = make().double().eval()
    _randomize(reference)
    _copy_by_position(reference, spec_model)
    x = torch.randn(2, *small, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        got = spec_model(x)
    with torch.no_grad():
        want = reference(x)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert got.abs().max() > 1e-3  # not a degenerate all-zero output
    assert counter.get_total_flops() == 2 * 2 * summarize(net).flops  # batch 2, a multiply-add is 2 FLOPs


# ---- RegNetX: the spec's generation rule is pycls's ----
def _regnet_point(rng: random.Random) -> dict:
    return {"w0": 8 * rng.randint(1, 32), "wa": math.exp(rng.uniform(math.log(8.0), math.log(256.0))),
            "wm": rng.uniform(1.5, 3.0), "depth": rng.randint(12, 28), "group_width": rng.choice([1, 2, 4, 8, 16, 32])}


def test_regnet_spec_generates_pycls_widths_depths_and_groups():
    rng = random.Random(0)
    built = rejected = 0
    for _ in range(150):
        p = _regnet_point(rng)
        widths, depths = regnet_widths_depths(p["w0"], p["wa"], p["wm"], p["depth"])
        widths, groups = regnet_adjust(widths, p["group_width"])
        overrides = {k: repr(v) for k, v in p.items()}
        if len(widths) != 4:
            with pytest.raises(ConstraintError) as e:
                load_network(SPECS / "regnet.net", overrides)
            assert e.value.message == f"a RegNetX has 4 stages; this w0, wa, wm and depth give {len(widths)}"
            assert e.value.pos.path.endswith("regnet.net") and e.value.pos.line == _line_of("require")
            rejected += 1
            continue
        net = load_network(SPECS / "regnet.net", overrides)
        assert [s.out_shape[0] for s in net.stages] == widths
        assert [s.count for s in net.stages] == depths
        assert [s.name for s in net.stages] == ["s1", "s2", "s3", "s4"]
        for stage, w, g in zip(net.stages, widths, groups):
            grouped = [l for l in stage.blocks[0].layers() if l.kind == "conv" and l.attrs["k"] == 3]
            assert [l.attrs["groups"] for l in grouped] == [w // g]
        built += 1
    assert built >= 20 and rejected >= 20  # both kinds of points were met


def _line_of(word: str) -> int:
    lines = (SPECS / "regnet.net").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(word))


def test_regnet_defaults_are_regnetx_200mf():
    net = load_network(SPECS / "regnet.net")
    assert [s.out_shape[0] for s in net.stages] == [24, 56, 152, 368]
    assert [s.count for s in net.stages] == [1, 1, 4, 7]
    s = summarize(net)
    assert s.params == 2_684_792
    assert s.flops == 199_039_872  # what torch.utils.flop_counter counts on the reference: pycls's "0.2 GF"
