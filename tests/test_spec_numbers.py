"""The shipped specs against the paper's (and torchvision's) parameter counts and multiply-adds."""

import pytest
import torch

import resdsl
from resdsl.spec.analysis import summarize
from resdsl.spec.compiler import compile_network
from resdsl.spec import load_network

from conftest import SPECS

# (spec, overrides, params, multiply-adds): the table; ImageNet counts equal torchvision's.
PAPER = [
    ("resnet18", {}, 11_689_512, 1_814_073_344),
    ("resnet34", {}, 21_797_672, 3_663_761_408),
    ("resnet50", {}, 25_557_032, 3_857_973_248),
    ("resnet50", {"stride_at": "3x3"}, 25_557_032, 4_089_184_256),
    ("resnet101", {}, 44_549_160, 7_570_194_432),
    ("resnet152", {}, 60_192_808, 11_282_415_616),
    ("cifar_6n2", {"n": 3}, 269_722, None),
    ("cifar_6n2", {"n": 5}, 464_154, None),
    ("cifar_6n2", {"n": 7}, 658_586, None),
    ("cifar_6n2", {"n": 9}, 853_018, None),
    ("cifar_6n2", {"n": 18}, 1_727_962, None),
    ("cifar_6n2", {"n": 200}, 19_421_274, None),
]
# The rounded figures: (value, unit) as printed there.
ROUNDED_FLOPS = {("resnet18", ""): ("1.814", 1e9), ("resnet34", ""): ("3.664", 1e9),
                 ("resnet50", ""): ("3.858", 1e9), ("resnet50", "3x3"): ("4.089", 1e9),
                 ("resnet101", ""): ("7.570", 1e9), ("resnet152", ""): ("11.282", 1e9),
                 ("cifar_6n2", 3): ("40.6", 1e6), ("cifar_6n2", 9): ("125.5", 1e6), ("cifar_6n2", 18): ("252.9", 1e6)}


@pytest.mark.parametrize("spec,overrides,params,flops", PAPER)
def test_params_and_flops_match_the_paper(spec, overrides, params, flops):
    s = summarize(load_network(SPECS / f"{spec}.net", overrides))
    assert s.params == params
    if flops is not None:
        assert s.flops == flops
    key = (spec, overrides.get("stride_at", overrides.get("n", "")))
    if key in ROUNDED_FLOPS:
        text, unit = ROUNDED_FLOPS[key]
        decimals = len(text.split(".")[1])
        assert f"{s.flops / unit:.{decimals}f}" == text


@pytest.mark.parametrize("spec,depth", [("resnet18", 18), ("resnet34", 34), ("resnet50", 50), ("resnet101", 101),
                                        ("resnet152", 152)])
def test_depth_is_the_papers_layer_count(spec, depth):
    assert summarize(load_network(SPECS / f"{spec}.net")).depth == depth


@pytest.mark.parametrize("n", [3, 5, 7, 9, 18, 200])
def test_cifar_depth_is_6n_plus_2(n):
    net = load_network(SPECS / "cifar_6n2.net", {"n": n})
    assert summarize(net).depth == 6 * n + 2
    assert net.lets["depth"] == 6 * n + 2


def test_compiled_module_has_the_analytic_parameter_count():
    for spec, overrides, params, _ in PAPER[:7]:
        model = resdsl.build(SPECS / f"{spec}.net", **overrides)
        assert sum(p.numel() for p in model.parameters()) == params


def _hooked_multiply_adds(model: torch.nn.Module, shape) -> int:
    """Multiply-adds counted from the real module's forward pass, by hooks on conv and linear layers."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def fc_hook(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(fc_hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return total


@pytest.mark.parametrize("spec,overrides,shape", [
    ("cifar_6n2", {"n": 3}, None),
    ("cifar_6n2", {"n": 3, "shortcut": "C"}, None),
    ("resnet18", {}, (3, 96, 96)),
    ("resnet50", {"stride_at": "3x3"}, (3, 64, 64)),
    ("resnet34", {"shortcut": "B"}, (3, 64, 80)),
])
def test_analytic_flops_equal_a_forward_hook_count(spec, overrides, shape):
    net = load_network(SPECS / f"{spec}.net", overrides, shape)
    model = compile_network(net)
    assert summarize(net).flops == _hooked_multiply_adds(model, net.input_shape)


def test_full_size_resnet50_flops_by_hooks():
    net = load_network(SPECS / "resnet50.net")
    assert _hooked_multiply_adds(compile_network(net), net.input_shape) == 3_857_973_248


def test_shortcut_options_change_parameters_as_the_paper_says():
    count = lambda **o: summarize(load_network(SPECS / "resnet34.net", o)).params  # noqa: E731
    projections = sum(cin * cout + 2 * cout for cin, cout in [(64, 128), (128, 256), (256, 512)])
    assert count(shortcut="B") - count(shortcut="A") == projections
    assert count(shortcut="A") == count(shortcut="none")  # option A is parameter-free
    # C projects on all 16 blocks: B's three, plus 13 square projections (3 + 3 + 5 + 2).
    square = 3 * (64 * 64 + 2 * 64) + 3 * (128 * 128 + 2 * 128) + 5 * (256 * 256 + 2 * 256) + 2 * (512 * 512 + 2 * 512)
    assert count(shortcut="C") - count(shortcut="B") == square


def test_table1_rows_of_resnet50():
    s = summarize(load_network(SPECS / "resnet50.net"))
    rows = {r.name: r for r in s.rows}
    assert [r.name for r in s.rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert [rows[n].output for n in ("conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head")] == [
        "56x56", "56x56", "28x28", "14x14", "7x7", "1x1"]
    assert rows["conv2_x"].structure == ["1x1, 64", "3x3, 64", "1x1, 256"]
    assert rows["conv3_x"].structure == ["1x1, 128, stride 2", "3x3, 128", "1x1, 512"]
    assert [rows[n].count for n in ("conv2_x", "conv3_x", "conv4_x", "conv5_x")] == [3, 4, 6, 3]
    assert rows["conv1"].structure == ["7x7, 64, stride 2", "3x3 max pool, stride 2"]
    assert rows["head"].structure == ["average pool", "1000-d fc"]
    v15 = summarize(load_network(SPECS / "resnet50.net", {"stride_at": "3x3"}))
    assert v15.rows[2].structure == ["1x1, 128", "3x3, 128, stride 2", "1x1, 512"]
