"""The structure of a spec beyond one path of layers: statement-level if/else, the names a block
sees (in_channels, ...), save/from and the joins add/mul/cat. Shapes and counts are exact; compiled
joins are checked against the same computation written by hand with torch.nn.functional (float64,
eval mode, the module's weights)."""

import textwrap

import pytest
import torch
import torch.nn.functional as F

from resdsl.errors import SpecError
from resdsl.spec import ir, load_network
from resdsl.spec.analysis import summarize
from resdsl.spec.compiler import compile_network


def spec(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def net_of(tmp_path, text: str, overrides=None) -> ir.Network:
    p = tmp_path / "s.net"
    p.write_text(spec(text))
    return load_network(p, overrides)


def error_of(tmp_path, text: str, overrides=None) -> SpecError:
    with pytest.raises(SpecError) as info:
        net_of(tmp_path, text, overrides)
    return info.value


def layer_names(seq: ir.Seq) -> list[str]:
    return [item.name for item in seq.items]


def params_of(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compiled(net: ir.Network) -> torch.nn.Module:
    """The compiled network in float64 and eval mode, every weight and BN statistic random, so a
    wrong wiring cannot hide behind BN's identity initialization."""
    model = compile_network(net).double().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.5)
    return model


def random_input(shape) -> torch.Tensor:
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


class Hand:
    """Layers of one compiled block, computed by hand from its state_dict."""

    def __init__(self, module: torch.nn.Module):
        self.w = module.state_dict()

    def conv(self, x, name, stride=1, pad=0):
        return F.conv2d(x, self.w[f"{name}.weight"], self.w.get(f"{name}.bias"), stride, pad)

    def bn(self, x, name):
        w = self.w
        return F.batch_norm(x, w[f"{name}.running_mean"], w[f"{name}.running_var"], w[f"{name}.weight"],
                            w[f"{name}.bias"], False, 0.0, 1e-5)


HEAD = "head { avgpool; fc(classes) }"


# ---------------------------------------------------------------- statement-level if/else
IF_SPEC = """
    param mode = "a" in ["a", "b", "c"]
    block b(c) {
      conv(c, 1)
      if mode == "a" { conv(c, 3); bn } else if mode == "b" { bn; relu; bn } else { relu }
      conv(c, 1)
      bn
    }
    network n {
      input 3x8x8
      classes 4
      stem { conv(8, 3); if mode != "c" { bn } }
      stage s: b(8) x 1
      head { if mode == "c" { relu }; avgpool; fc(classes) }
    }
    """


@pytest.mark.parametrize("mode,block,stem,head", [
    ("a", ["conv1", "conv2", "bn1", "conv3", "bn2"], ["conv1", "bn1"], ["gap1", "fc1"]),
    ("b", ["conv1", "bn1", "relu1", "bn2", "conv2", "bn3"], ["conv1", "bn1"], ["gap1", "fc1"]),
    ("c", ["conv1", "relu1", "conv2", "bn1"], ["conv1"], ["relu1", "gap1", "fc1"]),
])
def test_if_splices_the_chosen_statements_and_names_number_on(tmp_path, mode, block, stem, head):
    net = net_of(tmp_path, IF_SPEC, {"mode": mode})
    assert layer_names(net.stages[0].blocks[0]) == block
    assert layer_names(net.stem) == stem
    assert layer_names(net.head) == head
    model = compile_network(net)
    assert [n for n, _ in model.s.b1.named_children()] == block


def test_if_inside_a_join_branch(tmp_path):
    net = net_of(tmp_path, f"""
        param project = true
        block b(c) {{ conv(c, 3, stride=2); add {{ if project {{ conv(c, 1, stride=2) }} else {{ maxpool(2) }} }} }}
        network n {{ input 8x8x8  classes 4  stage s: b(8) x 1  {HEAD} }}
        """)
    join = net.stages[0].blocks[0].items[1]
    assert layer_names(join.branch) == ["conv1"]
    assert join.branch.out_shape == (8, 4, 4)
    assert summarize(net).params == 8 * 8 * 9 + 8 * 8 + 8 * 4 + 4


def test_parameters_read_only_in_the_branch_not_taken_still_count(tmp_path):
    text = """
        param use_gate = false
        param ratio = 4 in [2, 4, 8]
        param unread = 1 in [1, 2]
        block squeeze(c) { avgpool; conv(c // ratio, 1); relu; conv(c, 1) }
        block b(c) {
          conv(c, 3)
          if use_gate { mul { squeeze(c) } }
        }
        network n { input 3x8x8  classes 4  stage s: b(8) x 2  head { avgpool; fc(classes) } }
        """
    net = net_of(tmp_path, text)
    assert set(net.spaces) == {"ratio"}  # read through the untaken branch and the block it calls
    assert net_of(tmp_path, text, {"ratio": "8"}).params["ratio"] == 8
    with pytest.raises(SpecError, match="the network does not use parameter 'unread'"):
        net_of(tmp_path, text, {"unread": "2"})
    gated = net_of(tmp_path, text, {"use_gate": "true", "ratio": "2"})
    # 3x3 conv 3->8, then 8x8x9 and the gate's 8->4->8 1x1 convs.
    assert summarize(gated).params == 3 * 8 * 9 + 8 * 8 * 9 + 2 * (8 * 4 + 4 * 8) + 8 * 4 + 4


# ---------------------------------------------------------------- names a block sees
def test_a_formal_wins_over_an_implicit_name_and_defaults_see_the_input(tmp_path):
    net = net_of(tmp_path, f"""
        block keep(c=in_channels, in_width=5) {{ conv(c, 3); conv(in_width, 1) }}
        network n {{ input 3x8x8  classes 4  stem {{ conv(6, 3) }}  stage s: keep x 2  {HEAD} }}
        """)
    assert [[l.attrs["out"] for l in b.items] for b in net.stages[0].blocks] == [[6, 5], [5, 5]]


def test_block_input_names_are_unknown_in_stem_and_head(tmp_path):
    err = error_of(tmp_path, f"network n {{ input 3x8x8  classes 4  stem {{ conv(in_channels, 3) }}  {HEAD} }}")
    assert (err.pos.line, err.pos.col) == (1, 49)
    assert "unknown name 'in_channels'" in str(err)


# ---------------------------------------------------------------- save / from, pre-activation
PREACT = """
    block preact(c, stride=1) {
      bn; relu
      save pre
      conv(c, 1); bn; relu
      conv(c, 3, stride=stride); bn; relu
      conv(4 * c, 1)
      if stride != 1 or in_channels != 4 * c {
        add from pre { conv(4 * c, 1, stride=stride) }
      } else {
        add
      }
    }
    network n {
      input 3x16x16
      classes 10
      stem { conv(16, 3) }
      stage s: preact(8) x 2 stride 2
      head { bn; relu; avgpool; fc(classes) }
    }
    """


def test_preactivation_bottleneck_with_save_and_from(tmp_path):
    net = net_of(tmp_path, PREACT)
    b1, b2 = net.stages[0].blocks
    assert isinstance(b1.items[2], ir.Save) and (b1.items[2].name, b1.items[2].shape) == ("pre", (16, 16, 16))
    j1, j2 = b1.items[-1], b2.items[-1]
    assert (j1.op, j1.option, j1.source, j1.branch.name, j1.branch.in_shape) == \
        ("add", "branch", "pre", "shortcut", (16, 16, 16))
    assert (j2.op, j2.option, j2.source, j2.branch) == ("add", "identity", None, None)
    assert [b.out_shape for b in (b1, b2)] == [(32, 8, 8), (32, 8, 8)]
    block1 = 2 * 16 + 16 * 8 + 2 * 8 + 8 * 8 * 9 + 2 * 8 + 8 * 32 + 16 * 32
    block2 = 2 * 32 + 32 * 8 + 2 * 8 + 8 * 8 * 9 + 2 * 8 + 8 * 32
    total = 3 * 16 * 9 + block1 + block2 + 2 * 32 + 32 * 10 + 10
    s = summarize(net)
    assert (s.params, total) == (3546, 3546)
    assert s.depth == 1 + 2 * 3 + 1  # the shortcut's projection is not on the main path
    model = compiled(net)
    assert params_of(model) == total

    x = random_input((16, 16, 16))
    h = Hand(model.s.b1)
    pre = F.relu(h.bn(x, "bn1"))
    y = F.relu(h.bn(h.conv(pre, "conv1"), "bn2"))
    y = F.relu(h.bn(h.conv(y, "conv2", stride=2, pad=1), "bn3"))
    expected1 = h.conv(y, "conv3") + h.conv(pre, "shortcut.conv1", stride=2)
    torch.testing.assert_close(model.s.b1(x), expected1, rtol=1e-12, atol=1e-12)

    x2 = expected1
    h = Hand(model.s.b2)
    y = F.relu(h.bn(h.conv(F.relu(h.bn(x2, "bn1")), "conv1"), "bn2"))
    y = F.relu(h.bn(h.conv(y, "conv2", pad=1), "bn3"))
    torch.testing.assert_close(model.s.b2(x2), h.conv(y, "conv3") + x2, rtol=1e-12, atol=1e-12)


def test_add_with_an_option_from_a_point(tmp_path):
    net = net_of(tmp_path, f"""
        block b(c) {{ bn; relu; save p; conv(c, 3, stride=2); add("B") from p }}
        network n {{ input 4x8x8  classes 4  stage s: b(8) x 1  {HEAD} }}
        """)
    join = net.stages[0].blocks[0].items[-1]
    assert (join.option, join.source, join.branch.in_shape, join.branch.out_shape) == ("B", "p", (4, 8, 8), (8, 4, 4))
    model = compiled(net)
    x = random_input((4, 8, 8))
    h = Hand(model.s.b1)
    p = F.relu(h.bn(x, "bn1"))
    expected = h.conv(p, "conv1", stride=2, pad=1) + h.bn(h.conv(p, "shortcut.conv1", stride=2), "shortcut.bn1")
    torch.testing.assert_close(model.s.b1(x), expected, rtol=1e-12, atol=1e-12)


def test_in_place_layers_never_overwrite_a_tensor_read_later(tmp_path):
    """relu runs in place after a conv or bn; on a block's input or a saved point it must not."""
    net = net_of(tmp_path, f"""
        block first_relu(c) {{ relu; conv(c, 1); add }}
        block saved(c) {{ conv(c, 1); save p; relu; conv(c, 1); add from p }}
        block gated(c) {{ conv(c, 1); mul {{ relu }} }}
        network n {{
          input 4x4x4
          classes 4
          stage a: first_relu(4) x 1
          stage b: saved(4) x 1
          stage c: gated(4) x 1
          {HEAD}
        }}
        """)
    model = compiled(net)
    x = random_input((4, 4, 4))
    h = Hand(model.a.b1)
    torch.testing.assert_close(model.a.b1(x.clone()), h.conv(F.relu(x), "conv1") + x)
    h = Hand(model.b.b1)
    p = h.conv(x, "conv1")
    torch.testing.assert_close(model.b.b1(x.clone()), h.conv(F.relu(p), "conv2") + p)
    h = Hand(model.c.b1)
    y = h.conv(x, "conv1")
    torch.testing.assert_close(model.c.b1(x.clone()), y * F.relu(y))
    assert model.a.b1.relu1.inplace is False
    assert model.b.b1.relu1.inplace is False
    assert model.c.b1.gate.relu1.inplace is False
    # Where nothing else reads the tensor, in place as before: bn then relu.
    assert compile_network(net_of(tmp_path, PREACT)).s.b1.relu1.inplace is True


# ---------------------------------------------------------------- mul: squeeze-and-excitation
SE = f"""
    block se_basic(c, r=4) {{
      conv(c, 3); bn; relu
      conv(c, 3); bn
      mul {{ avgpool; conv(c // r, 1, bias=true); relu; conv(c, 1, bias=true) }}
      add
      relu
    }}
    network n {{ input 16x8x8  classes 4  stage s: se_basic(16) x 2  {HEAD} }}
    """


def test_se_block_with_mul(tmp_path):
    net = net_of(tmp_path, SE)
    block = net.stages[0].blocks[0]
    gate = block.items[5]
    assert (gate.op, gate.option, gate.source, gate.branch.name) == ("mul", "branch", None, "gate")
    assert (gate.branch.in_shape, gate.branch.out_shape, gate.out_shape) == ((16, 8, 8), (16, 1, 1), (16, 8, 8))
    per_block = 2 * (16 * 16 * 9 + 2 * 16) + (16 * 4 + 4) + (4 * 16 + 16)
    s = summarize(net)
    assert s.params == 2 * per_block + 16 * 4 + 4
    assert s.rows[1].flops == 2 * (2 * 16 * 64 * 16 * 9 + 16 * 4 + 4 * 16)
    assert s.depth == 2 * 2 + 1  # the gate's convs are not on the main path
    model = compiled(net)
    assert [n for n, _ in model.s.b1.named_children()] == ["conv1", "bn1", "relu1", "conv2", "bn2", "gate", "relu2"]
    x = random_input((16, 8, 8))
    h = Hand(model.s.b1)
    y = F.relu(h.bn(h.conv(x, "conv1", pad=1), "bn1"))
    y = h.bn(h.conv(y, "conv2", pad=1), "bn2")
    g = h.conv(F.relu(h.conv(y.mean((2, 3), keepdim=True), "gate.conv1")), "gate.conv2")
    torch.testing.assert_close(model.s.b1(x), F.relu(y * g + x), rtol=1e-12, atol=1e-12)


def test_mul_by_a_full_map_and_from_a_point(tmp_path):
    net = net_of(tmp_path, f"""
        block attend(c) {{ save a; conv(c, 3); mul {{ conv(c, 1) }}; mul from a }}
        network n {{ input 4x6x6  classes 4  stage s: attend(4) x 1  {HEAD} }}
        """)
    model = compiled(net)
    x = random_input((4, 6, 6))
    h = Hand(model.s.b1)
    y = h.conv(x, "conv1", pad=1)
    torch.testing.assert_close(model.s.b1(x), y * h.conv(y, "gate.conv1") * x, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- cat: DenseNet
DENSE = f"""
    block dense_layer(growth) {{ bn; relu; conv(4 * growth, 1); bn; relu; conv(growth, 3); cat }}
    network n {{ input 16x8x8  classes 4  stage d: dense_layer(12) x 3  {HEAD} }}
    """


def test_densenet_layer_with_cat(tmp_path):
    net = net_of(tmp_path, DENSE)
    assert [b.out_shape for b in net.stages[0].blocks] == [(28, 8, 8), (40, 8, 8), (52, 8, 8)]
    join = net.stages[0].blocks[0].items[-1]
    assert (join.op, join.option, join.source, join.in_shape, join.out_shape) == \
        ("cat", "identity", None, (12, 8, 8), (28, 8, 8))

    def layer(cin):
        return 2 * cin + cin * 48 + 2 * 48 + 48 * 12 * 9

    s = summarize(net)
    assert [layer(c) for c in (16, 28, 40)] == [6080, 6680, 7280]
    assert s.params == 6080 + 6680 + 7280 + 52 * 4 + 4
    model = compiled(net)
    assert params_of(model) == s.params
    x = random_input((16, 8, 8))
    h = Hand(model.d.b1)
    y = h.conv(F.relu(h.bn(x, "bn1")), "conv1")
    y = h.conv(F.relu(h.bn(y, "bn2")), "conv2", pad=1)
    out = model.d.b1(x)
    torch.testing.assert_close(out, torch.cat([x, y], 1), rtol=1e-12, atol=1e-12)


def test_cat_with_a_branch_and_from_a_point(tmp_path):
    net = net_of(tmp_path, f"""
        block mixed(c) {{ conv(c, 3); save a; conv(c, 1); cat {{ conv(2, 1) }}; cat from a }}
        network n {{ input 4x6x6  classes 4  stage s: mixed(4) x 1  {HEAD} }}
        """)
    assert net.stages[0].out_shape == (4 + 2 + 4, 6, 6)
    model = compiled(net)
    assert [n for n, _ in model.s.b1.named_children()] == ["conv1", "conv2", "branch"]
    x = random_input((4, 6, 6))
    h = Hand(model.s.b1)
    a = h.conv(x, "conv1", pad=1)
    y = torch.cat([h.conv(x, "branch.conv1"), h.conv(a, "conv2")], 1)
    torch.testing.assert_close(model.s.b1(x), torch.cat([a, y], 1), rtol=1e-12, atol=1e-12)


def test_join_branches_number_on_per_op(tmp_path):
    net = net_of(tmp_path, f"""
        block many(c) {{
          conv(c, 1)
          mul {{ conv(c, 1) }}; mul {{ avgpool; conv(c, 1) }}
          add; add {{ conv(c, 1) }}
          cat {{ conv(4, 1) }}
        }}
        network n {{ input 4x4x4  classes 4  stage s: many(4) x 1  {HEAD} }}
        """)
    block = net.stages[0].blocks[0]
    assert [(i.name, i.op, i.branch and i.branch.name) for i in block.items[1:]] == [
        ("mul1", "mul", "gate"), ("mul2", "mul", "gate2"), ("add1", "add", None), ("add2", "add", "shortcut2"),
        ("cat1", "cat", "branch")]
    assert block.out_shape == (8, 4, 4)
    names = [n for n, _ in compile_network(net).s.b1.named_children()]
    assert names == ["conv1", "gate", "gate2", "shortcut2", "branch"]


# ---------------------------------------------------------------- every misuse, at file:line:col
BASE = spec(f"""
    param flag = true
    block core(c, stride=1) {{
      bn; relu
      save pre
      conv(c, 3, stride=stride); bn
      if flag {{ mul {{ avgpool; conv(c, 1) }} }}
      add from pre {{ conv(c, 1, stride=stride) }}
    }}
    block entry(c, stride=1) {{ conv(c, 3, stride=stride); bn; relu }}
    block grow(g) {{ conv(g, 3); cat }}
    network n {{
      input 3x16x16
      classes 4
      stem {{ conv(8, 3) }}
      stage s1: entry(8) x 1
      stage s1b: core(8) x 1
      stage s2: entry(16) x 1 stride 2
      stage s2b: core(16) x 1
      stage d: grow(4) x 2
      {HEAD}
    }}
    """)

# (description, replace this, with that, expected line, expected col, words the message must hold)
MISUSES = [
    ("unknown point", "add from pre", "add from prex", 7, 12, ["unknown point 'prex'", "did you mean 'pre'?"]),
    ("point saved later", "save pre\n", "", 6, 12,
     ["unknown point 'pre'", "points saved before this add: input; name one with: save NAME"]),
    ("saved twice", "save pre\n", "save pre; save pre\n", 4, 18,
     ["the point 'pre' is saved twice", "first saved at line 4"]),
    ("save input", "save pre\n", "save input\n", 4, 8, ["'input' names the sequence's input"]),
    ("mul channels", "conv(c, 1) }", "conv(2 * c, 1) }", 6, 13,
     ["mul: the tensor is 8x16x16 but its gate gives 16x1x1", "mul needs 8 channels and a 1x1 map"]),
    ("mul map", "mul { avgpool; conv(c, 1) }", "mul { maxpool(2); conv(c, 1) }", 6, 13,
     ["mul: the tensor is 8x16x16 but its gate gives 8x8x8", "or the same 16x16 map"]),
    ("cat map", "conv(g, 3); cat", "conv(g, 3, stride=2); cat", 10, 39,
     ["cat: the maps differ: the tensor is 4x4x4 but the input is 16x8x8", "heights and widths must be equal"]),
    ("add branch shape", "conv(c, 1, stride=stride) }", "conv(2 * c, 1) }", 7, 3,
     ["add: shapes differ: the block computes 8x16x16 but its shortcut branch gives 16x16x16"]),
    ("if not bool", "if flag {", "if 1 {", 6, 6, ["the condition of 'if' must be true or false, got int 1"]),
    ("option on mul", "mul { avgpool; conv(c, 1) }", "mul(\"B\")", 6, 17, ["only add takes a shortcut option"]),
    ("option and branch", "add from pre {", "add(\"B\") from pre {", 7, 21,
     ["add takes a shortcut option or a branch, not both"]),
    ("module names clash", "block grow(g) { conv(g, 3); cat }",
     "block gate(g) { relu }\nblock grow(g) { gate(g); gate(g); mul { relu }; mul { relu } }", 11, 49,
     ["two modules of this sequence would be named 'gate2'"]),
]


def test_base_spec_checks(tmp_path):
    net = net_of(tmp_path, BASE)
    assert [(s.name, s.out_shape) for s in net.stages] == [
        ("s1", (8, 16, 16)), ("s1b", (8, 16, 16)), ("s2", (16, 8, 8)), ("s2b", (16, 8, 8)), ("d", (24, 8, 8))]


@pytest.mark.parametrize("what,old,new,line,col,words", MISUSES, ids=[m[0] for m in MISUSES])
def test_each_misuse_is_reported_at_its_place(tmp_path, what, old, new, line, col, words):
    assert old in BASE
    bad = BASE.replace(old, new, 1)
    err = error_of(tmp_path, bad)
    text = str(err)
    assert (err.pos.line, err.pos.col) == (line, col), text
    assert text.startswith(f"{tmp_path / 's.net'}:{line}:{col}: error: ")
    for w in words:
        assert w in text, text
    lines = text.splitlines()
    assert lines[1].endswith(bad.splitlines()[line - 1])
    assert lines[2].index("^") - lines[2].index("|") - 2 == col - 1
