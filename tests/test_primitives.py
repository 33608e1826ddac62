"""The primitives table: each primitive's shape, parameters and multiply-adds against its torch module
and torch's own FLOP counter; drop_path; register_primitive end to end; init he(zero_last_bn=true);
mistakes at file:line:col."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.errors import SpecError
from resdsl.spec import load_network
from resdsl.spec.analysis import summarize
from resdsl.spec.compiler import compile_network
from resdsl.spec.primitives import PRIMITIVES, PrimitiveArg, ShapeError, register_primitive

from conftest import REPO, assert_reported_at


def one_layer(call: str, shape=(8, 12, 12)):
    """The checked network whose stem is the one primitive `call`, and that layer."""
    c, h, w = shape
    net = load_network(f"network t {{ input {c}x{h}x{w}  classes 10  stem {{ {call} }}  "
                       "head { avgpool; fc(classes) } }")
    return net, net.stem.items[0]


def torch_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


# (call, input shape, output shape, parameters, multiply-adds)
LAYERS = [
    ("conv(16, 3, stride=2)", (8, 12, 12), (16, 6, 6), 1152, 41_472),
    ("conv(16, 3, dilation=2, bias=true)", (8, 12, 12), (16, 12, 12), 1168, 165_888),
    ("conv(8, 3, groups=8)", (8, 12, 12), (8, 12, 12), 72, 10_368),  # depthwise
    ("conv(16, 1, groups=4)", (8, 12, 12), (16, 12, 12), 32, 4608),
    ("conv(4, 5, pad=0)", (8, 12, 12), (4, 8, 8), 800, 51_200),
    ("bn", (8, 12, 12), (8, 12, 12), 16, 0),
    ("bn(eps=1e-3, momentum=0.01)", (8, 12, 12), (8, 12, 12), 16, 0),
    *((act, (8, 12, 12), (8, 12, 12), 0, 0) for act in ("relu", "relu6", "silu", "gelu", "sigmoid", "hardswish",
                                                         "identity")),
    ("dropout(0.2)", (8, 12, 12), (8, 12, 12), 0, 0),
    ("drop_path(0.1)", (8, 12, 12), (8, 12, 12), 0, 0),
    ("groupnorm(4)", (8, 12, 12), (8, 12, 12), 16, 0),
    ("groupnorm(2, eps=1e-3)", (8, 12, 12), (8, 12, 12), 16, 0),
    ("layernorm", (8, 12, 12), (8, 12, 12), 16, 0),
    ("layernorm(eps=1e-5)", (8, 12, 12), (8, 12, 12), 16, 0),
    ("scale", (8, 12, 12), (8, 12, 12), 8, 0),
    ("scale(init=0.5)", (8, 12, 12), (8, 12, 12), 8, 0),
    ("maxpool(3, stride=2, pad=1)", (8, 12, 12), (8, 6, 6), 0, 0),
    ("maxpool(2)", (8, 12, 12), (8, 6, 6), 0, 0),
    ("avgpool(3)", (8, 12, 12), (8, 4, 4), 0, 0),
    ("avgpool(2, stride=2, ceil_mode=true, count_include_pad=false)", (8, 13, 13), (8, 7, 7), 0, 0),
    ("avgpool(2, stride=2, pad=1, ceil_mode=true)", (8, 5, 5), (8, 3, 3), 0, 0),  # last window would start in the pad
    ("avgpool", (8, 12, 12), (8, 1, 1), 0, 0),
    ("fc(10)", (8, 12, 12), (10, 1, 1), 11_530, 11_520),
    ("fc(10, bias=false)", (8, 12, 12), (10, 1, 1), 11_520, 11_520),
]


@pytest.mark.parametrize("call,shape,out,params,macs", LAYERS, ids=[c[0] for c in LAYERS])
def test_each_primitive_counts_as_its_torch_module(call, shape, out, params, macs):
    net, layer = one_layer(call, shape)
    assert layer.out_shape == out
    assert PRIMITIVES[layer.kind].params(layer) == params
    assert PRIMITIVES[layer.kind].macs(layer) == macs
    module = getattr(compile_network(net).eval().stem, layer.name)
    x = torch.randn(2, *shape)
    assert tuple(module(x).shape) == (2, *out)
    assert sum(p.numel() for p in module.parameters()) == params
    assert torch_flops(module, x) == 2 * 2 * macs  # a batch of two; a multiply-add is two FLOPs


def test_arguments_reach_the_modules():
    def module_of(call, shape=(8, 12, 12)):
        net, layer = one_layer(call, shape)
        return getattr(compile_network(net).stem, layer.name)

    bn = module_of("bn(eps=1e-3, momentum=0.01)")
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    gn = module_of("groupnorm(2, eps=1e-3)")
    assert (gn.num_groups, gn.num_channels, gn.eps) == (2, 8, 1e-3)
    assert module_of("layernorm").eps == 1e-6
    assert torch.equal(module_of("scale(init=0.5)").weight, torch.full((8, 1, 1), 0.5))
    assert module_of("dropout(0.2)").p == 0.2
    pool = module_of("avgpool(2, stride=2, ceil_mode=true, count_include_pad=false)", (8, 13, 13))
    assert (pool.kernel_size, pool.stride, pool.ceil_mode, pool.count_include_pad) == (2, 2, True, False)


def test_layernorm_normalizes_each_position_over_its_channels():
    net, layer = one_layer("layernorm")
    module = getattr(compile_network(net).stem, layer.name)
    x = torch.randn(2, 8, 12, 12) * 3 + 5
    y = module(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 12, 12), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 12, 12), atol=1e-3)


MIXED = textwrap.dedent("""\
    block mbv2(c, stride=1, expand=4) {
      conv(expand * in_c, 1); bn; relu6
      conv(expand * in_c, 3, stride=stride, groups=expand * in_c); bn; relu6
      conv(c, 1); bn; drop_path(0.1)
      add("B")
    }
    block next(c) {
      conv(c, 7, groups=c); layernorm
      conv(4 * c, 1); gelu; conv(c, 1); scale
      add
    }
    network mixed {
      input 3x32x32
      classes 10
      stem { conv(16, 3, stride=2); groupnorm(4); silu; maxpool(3, stride=1, pad=1) }
      stage s1: mbv2(24, expand=1) x 1 stride 2
      stage s2: next(24) x 2
      head { avgpool(2, ceil_mode=true, count_include_pad=false); hardswish; avgpool; dropout(0.2); fc(classes) }
    }
    """)


def test_macs_of_a_compiled_net_are_half_torchs_flop_count():
    # in_c stands for the block's input channels, written out while blocks cannot read them
    net = load_network(MIXED.replace("in_c", "16"))
    model = compile_network(net).eval()
    s = summarize(net)
    assert s.params == sum(p.numel() for p in model.parameters()) == 13_754
    assert 2 * s.flops == torch_flops(model, torch.zeros(1, 3, 32, 32)) == 2 * 975_088
    assert s.depth == 1 + 3 + 2 * 3 + 1


def test_drop_path_is_the_identity_at_eval():
    net, layer = one_layer("drop_path(0.25)")
    module = getattr(compile_network(net).stem, layer.name).eval()
    x = torch.randn(64, 8, 12, 12)
    assert torch.equal(module(x), x)


def test_drop_path_drops_whole_samples_with_probability_p_and_rescales():
    net, layer = one_layer("drop_path(0.25)")
    module = getattr(compile_network(net).stem, layer.name).train()
    torch.manual_seed(0)
    y = module(torch.ones(4000, 8, 3, 3)).flatten(1)
    dropped = (y == 0).all(1)
    kept = torch.isclose(y, torch.tensor(4 / 3)).all(1)  # 1 / (1 - p)
    assert bool((dropped ^ kept).all())  # every sample is dropped or kept whole
    assert abs(dropped.float().mean().item() - 0.25) < 0.03  # 4 standard deviations of 4000 draws
    assert abs(y.mean().item() - 1.0) < 0.04  # the expectation is kept


# ---------------------------------------------------------------- register_primitive
@pytest.fixture
def table():
    """PRIMITIVES as it was before the test registered anything."""
    saved = dict(PRIMITIVES)
    yield PRIMITIVES
    PRIMITIVES.clear()
    PRIMITIVES.update(saved)


def register_pwconv(**changes):
    spec = dict(
        args=[PrimitiveArg("out", int, positional=True, ge=1), PrimitiveArg("bias", bool, True)],
        shape=lambda a, s: (a["out"], s[1], s[2]),
        params=lambda l: l.attrs["out"] * l.in_shape[0] + (l.attrs["out"] if l.attrs["bias"] else 0),
        macs=lambda l: l.attrs["out"] * l.in_shape[0] * l.out_shape[1] * l.out_shape[2],
        describe=lambda l: f"1x1 pointwise, {l.attrs['out']}", weighted=True,
        module=lambda l: torch.nn.Conv2d(l.in_shape[0], l.attrs["out"], 1, bias=l.attrs["bias"]))
    return resdsl.register_primitive("pwconv", **{**spec, **changes})


def register_space_to_depth():
    def shape(a, s):
        c, h, w = s
        if h % 2 or w % 2:
            raise ShapeError(f"space_to_depth needs an even map, got {h}x{w}", "pad the map to an even size")
        return 4 * c, h // 2, w // 2

    register_primitive("space_to_depth", shape=shape, module=lambda l: torch.nn.PixelUnshuffle(2))


PW_NET = """network t {
  input 3x8x8
  classes 4
  stem { pwconv(6); bn; relu; space_to_depth }
  head { avgpool; fc(classes) }
}
"""


def test_a_registered_primitive_is_checked_counted_compiled_and_trained(table):
    register_pwconv()
    register_space_to_depth()
    net = load_network(PW_NET)
    assert [l.kind for l in net.stem.items] == ["pwconv", "bn", "relu", "space_to_depth"]
    assert net.stem.out_shape == (24, 4, 4)
    s = summarize(net)
    # pwconv 6*3 + 6, bn 2*6, fc 24*4 + 4; multiply-adds: pwconv 6*3*8*8, fc 24*4
    assert s.params == 24 + 12 + 100 == 136
    assert s.flops == 1152 + 96 == 1248
    assert s.depth == 2
    assert s.rows[0].structure == ["1x1 pointwise, 6"]
    model = resdsl.build(PW_NET)
    assert sum(p.numel() for p in model.parameters()) == 136
    assert model.stem.pwconv1.weight.shape == (6, 3, 1, 1)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    assert torch_flops(model.eval(), x[:1]) == 2 * 1248
    model.train()
    before = model.stem.pwconv1.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert model.stem.pwconv1.weight.grad.abs().sum() > 0
    assert not torch.equal(model.stem.pwconv1.weight, before)


def test_registered_arguments_and_shapes_are_checked_at_their_place(table):
    register_pwconv()
    register_space_to_depth()
    with pytest.raises(SpecError) as info:
        load_network(PW_NET.replace("pwconv(6)", "pwconv(0)"))
    assert (info.value.pos.line, info.value.pos.col) == (4, 17)
    assert "pwconv's 'out' must be >= 1, got 0" in str(info.value)
    with pytest.raises(SpecError) as info:
        load_network(PW_NET.replace("3x8x8", "3x7x7"))
    assert (info.value.pos.line, info.value.pos.col) == (4, 31)
    assert "space_to_depth needs an even map, got 7x7" in str(info.value)
    assert "pad the map to an even size" in str(info.value)


def test_a_block_cannot_take_a_registered_primitives_name(table):
    register_pwconv()
    with pytest.raises(SpecError) as info:
        load_network("block pwconv(c) { conv(c, 1) }\n" + PW_NET)
    assert (info.value.pos.line, info.value.pos.col) == (1, 7)
    assert "block 'pwconv' has the name of a primitive registered from Python" in str(info.value)


@pytest.mark.parametrize("name,error,words", [
    ("conv", ValueError, "'conv' is a built-in primitive"),
    ("gap", ValueError, "'gap' is a built-in primitive"),
    ("add", ValueError, "'add' is a keyword of the spec language"),
    ("init", ValueError, "'init' is a keyword of the spec language"),
    ("2x", ValueError, "a primitive's name must be a name a spec can write"),
])
def test_registered_names_cannot_shadow_the_language(table, name, error, words):
    with pytest.raises(error, match=words):
        register_primitive(name, module=lambda l: torch.nn.Identity())
    assert name not in PRIMITIVES or PRIMITIVES[name].builtin


def test_registering_twice_needs_replace(table):
    register_pwconv()
    with pytest.raises(ValueError, match="a primitive 'pwconv' is already registered; pass replace=True"):
        register_pwconv()
    register_pwconv(replace=True, describe=lambda l: "pointwise")
    assert summarize(load_network(PW_NET.replace("; space_to_depth", ""))).rows[0].structure == ["pointwise"]


def test_bad_registrations_are_refused(table):
    with pytest.raises(TypeError, match="an argument is an int, float, bool or str"):
        register_primitive("p1", module=lambda l: None, args=[PrimitiveArg("xs", list)])
    with pytest.raises(TypeError, match="must be PrimitiveArg"):
        register_primitive("p2", module=lambda l: None, args=[("out", int)])
    with pytest.raises(TypeError, match="module of 'p3' must be a function"):
        register_primitive("p3", module=None)
    assert not {"p1", "p2", "p3"} & set(PRIMITIVES)


def test_the_compiler_refuses_a_wrong_parameter_count(table):
    register_pwconv(params=lambda l: 0)
    with pytest.raises(ValueError, match=r"primitive 'pwconv' counts 0 parameters for pwconv1 .* its module has 24"):
        resdsl.build(PW_NET.replace("; space_to_depth", ""))


def test_checking_and_counting_never_import_torch():
    code = textwrap.dedent("""\
        import sys
        import resdsl
        resdsl.register_primitive("twice", module=lambda layer: None, shape=lambda a, s: (2 * s[0], s[1], s[2]))
        from resdsl.spec.analysis import estimate_memory, summarize
        net = resdsl.load_network(sys.argv[1])
        print(summarize(net).params, estimate_memory(net).params, "torch" in sys.modules)
        """)
    r = subprocess.run([sys.executable, "-c", code, MIXED.replace("in_c", "16").replace("dropout(0.2);", "dropout(0.2); twice;")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["13994", "13994", "False"]


# ---------------------------------------------------------------- init he(zero_last_bn=true)
INIT_NET = textwrap.dedent("""\
    block basic(c, stride=1) { conv(c, 3, stride=stride); bn; relu; conv(c, 3); bn; add("B"); relu }
    block preact(c) { bn; relu; conv(c, 3); bn; relu; conv(c, 3); add }
    block plain(c) { conv(c, 3); bn; add("none"); relu }
    block outer(c) { basic(c); conv(c, 1); bn; add }
    network t {
      input 3x16x16
      classes 4
      init he(zero_last_bn=true)
      stem { conv(8, 3); bn; relu }
      stage s1: basic(8) x 2
      stage s2: basic(16) x 1 stride 2
      stage s3: preact(16) x 1
      stage s4: plain(16) x 1
      stage s5: outer(16) x 1
      head { bn; avgpool; fc(classes) }
    }
    """)
# The last BN on each residual branch: not the projection's BN (s2.b1.shortcut.bn1), not a plain
# net's (s4), not stem or head; a nested block's own addition (s5.b1.basic1) and the outer one.
ZEROED = {"s1.b1.bn2", "s1.b2.bn2", "s2.b1.bn2", "s3.b1.bn2", "s5.b1.basic1.bn2", "s5.b1.bn1"}


def zero_weight_bns(model) -> set[str]:
    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in bns.values())
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) or not m.weight.any() for m in bns.values())
    return {n for n, m in bns.items() if not m.weight.any()}


def test_zero_last_bn_zeroes_exactly_the_last_bn_of_each_residual_branch():
    net = load_network(INIT_NET)
    assert (net.init.name, net.init.options) == ("he", {"zero_last_bn": True})
    model = compile_network(net)
    assert zero_weight_bns(model) == ZEROED
    # So each residual block starts as the identity on its (non-negative) input.
    x = torch.relu(torch.randn(4, 8, 16, 16))
    assert torch.equal(model.s1.b1(x), x)


@pytest.mark.parametrize("line", ["init he", "init he(zero_last_bn=false)", ""])
def test_he_alone_zeroes_nothing(line):
    net = load_network(INIT_NET.replace("init he(zero_last_bn=true)", line))
    assert (net.init.name, net.init.options) == ("he", {"zero_last_bn": False})
    assert zero_weight_bns(compile_network(net)) == set()


def test_zero_last_bn_may_come_from_a_parameter():
    spec = "param zero = false in [true, false]\n" + INIT_NET.replace("zero_last_bn=true", "zero_last_bn=zero")
    assert zero_weight_bns(resdsl.build(spec, zero="true")) == ZEROED
    assert zero_weight_bns(resdsl.build(spec)) == set()


# ---------------------------------------------------------------- mistakes at file:line:col
BASE = textwrap.dedent("""\
    block unit(c) {
      conv(c, 3); bn; relu
      conv(c, 3); groupnorm(4); drop_path(0.1)
      add
      relu
    }
    network t {
      input 3x16x16
      classes 10
      init he(zero_last_bn=true)
      stem { conv(16, 3); bn; relu }
      stage s1: unit(16) x 2
      head { avgpool; dropout(0.2); fc(classes) }
    }
    """)

MISTAKES = [
    ("unknown init", "init he(zero_last_bn=true)", "init xavier", 10, 8, ["unknown init 'xavier'", "inits: he"]),
    ("unknown init option", "zero_last_bn=true", "zero_last=true", 10, 11,
     ["'he' has no parameter 'zero_last'", "did you mean 'zero_last_bn'?"]),
    ("init option type", "zero_last_bn=true", "zero_last_bn=1", 10, 11,
     ["he's 'zero_last_bn' must be true or false, got int 1"]),
    ("init twice", "  init he(zero_last_bn=true)\n", "  init he\n  init he\n", 11, 3,
     ["the network declares 'init' twice"]),
    ("dropout of 1", "dropout(0.2)", "dropout(1.0)", 13, 27, ["dropout's 'p' must be < 1, got 1.0"]),
    ("dropout without p", "dropout(0.2)", "dropout", 13, 19, ["'dropout' needs its 'p' argument"]),
    ("negative drop_path", "drop_path(0.1)", "drop_path(-0.1)", 3, 39, ["drop_path's 'p' must be >= 0, got -0.1"]),
    ("groups not dividing", "groupnorm(4)", "groupnorm(5)", 3, 15,
     ["groupnorm groups=5 must divide its input channels (16)"]),
    ("global pool with a stride", "head { avgpool;", "head { avgpool(stride=2);", 13, 10,
     ["avgpool without a kernel is global average pooling and takes no other argument"]),
    ("activation with an argument", "bn; relu\n", "bn; gelu(1)\n", 2, 24,
     ["'gelu' takes at most 0 positional arguments (none), got 1"]),
    ("eps of 0", "bn; relu }", "bn(eps=0.0); relu }", 11, 26, ["bn's 'eps' must be > 0, got 0.0"]),
    ("internal layer kind", "stem { conv(16, 3); bn; relu }", "stem { gap }", 11, 10,
     ["unknown primitive or block 'gap'"]),
]


@pytest.mark.parametrize("what,old,new,line,col,words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistakes_are_reported_at_their_place(tmp_path, what, old, new, line, col, words):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = tmp_path / "bad.net"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_network(path)
    assert_reported_at(info.value, path, text, line, col, words)


def test_the_base_of_the_mistakes_builds():
    net = load_network(BASE)
    assert [l.kind for l in net.stages[0].blocks[0].layers()] == ["conv", "bn", "relu", "conv", "groupnorm",
                                                                  "drop_path", "relu"]
    assert summarize(net).params == 16 * 27 + 32 + 2 * (2 * 16 * 16 * 9 + 32 + 32) + 16 * 10 + 10


def test_an_fc_gives_the_map_the_checker_says_so_layers_may_follow_it():
    model = resdsl.build("network t { input 3x8x8  classes 4  stem { conv(8, 3) }  "
                         "head { avgpool; fc(32); bn; relu; dropout(0.5); fc(classes) } }").eval()
    assert model.head.fc1(torch.zeros(2, 8, 1, 1)).shape == (2, 32, 1, 1)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
