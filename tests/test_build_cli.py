"""`resdsl build` as a user runs it, the Python API, names in the state_dict, ONNX export."""

import json
import os
import stat

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import resdsl
from resdsl.cli import app
from resdsl.spec.modules import ZeroPadShortcut

from conftest import SPECS

runner = CliRunner()


def test_build_prints_table1_and_counts():
    r = runner.invoke(app, ["build", str(SPECS / "resnet50.net"), "--flops"], terminal_width=160)
    assert r.exit_code == 0, r.output
    for text in ("conv1", "conv2_x", "conv5_x", "7x7, 64, stride 2", "1x1, 2048]  x 3", "25,557,032",
                 "3,857,973,248", "3.858 G", "depth 50", "1000-d fc"):
        assert text in r.output, text


def test_build_json_with_overrides_both_ways():
    a = runner.invoke(app, ["build", str(SPECS / "cifar_6n2.net"), "--n", "18", "--json"])
    b = runner.invoke(app, ["build", str(SPECS / "cifar_6n2.net"), "--set", "n=18", "--json"])
    c = runner.invoke(app, ["build", "cifar_6n2", "--n=18", "--json"])
    assert a.exit_code == b.exit_code == c.exit_code == 0
    out = json.loads(a.output)
    assert out == json.loads(b.output) == json.loads(c.output)
    assert (out["params"], out["flops"], out["depth"]) == (1_727_962, 252_887_680, 110)
    assert [(s["name"], s["output"], s["count"]) for s in out["stages"]] == [
        ("conv1", "32x32", 1), ("conv2_x", "32x32", 18), ("conv3_x", "16x16", 18), ("conv4_x", "8x8", 18),
        ("head", "1x1", 1)]


def test_input_override_changes_flops_not_params():
    r = runner.invoke(app, ["build", "resnet50", "--input", "3x448x448", "--json"])
    out = json.loads(r.output)
    assert out["params"] == 25_557_032
    assert out["stages"][1]["output"] == "112x112"
    # Every conv output grows 4x; the fc does not.
    assert out["flops"] == (3_857_973_248 - 2048 * 1000) * 4 + 2048 * 1000
    bad = runner.invoke(app, ["build", "resnet50", "--input", "3x224"])
    assert bad.exit_code != 0


def test_state_dict_reads_like_the_spec():
    model = resdsl.build(SPECS / "resnet18.net")
    keys = list(model.state_dict())
    assert keys[0] == "stem.conv1.weight"
    assert "conv3_x.b1.conv1.weight" in keys
    assert "conv3_x.b1.shortcut.conv1.weight" in keys  # option B projection where the shape changes
    assert "conv3_x.b2.shortcut.conv1.weight" not in keys
    assert keys[-2:] == ["head.fc1.weight", "head.fc1.bias"]
    assert model.conv2_x.b1.conv1.weight.shape == (64, 64, 3, 3)


def test_build_accepts_spec_text_and_kwargs():
    text = (SPECS / "prelude.net").read_text() + (SPECS / "cifar_6n2.net").read_text().replace('import "prelude"', "")
    model = resdsl.build(text, n=2, width=8)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == resdsl.summarize(
        resdsl.load_network(text, {"n": 2, "width": 8})).params


def test_option_a_shortcut_is_strided_subsampling_with_zero_channels():
    x = torch.arange(2 * 4 * 6 * 6, dtype=torch.float32).reshape(2, 4, 6, 6)
    y = ZeroPadShortcut(stride=2, in_channels=4, out_channels=8)(x)
    assert y.shape == (2, 8, 3, 3)
    assert torch.equal(y[:, :4], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 4:]) == 0


def test_plain_net_has_no_additions():
    plain = resdsl.build(SPECS / "cifar_6n2.net", n=1, shortcut="none").eval()
    # Zero every second conv's output scale: a residual block would still pass its input on, a plain one cannot.
    for block in (plain.conv2_x.b1, plain.conv3_x.b1, plain.conv4_x.b1):
        torch.nn.init.zeros_(block.bn2.weight)
        torch.nn.init.zeros_(block.bn2.bias)
    out = plain.conv4_x(plain.conv3_x(plain.conv2_x(plain.stem(torch.randn(1, 3, 32, 32)))))
    assert torch.count_nonzero(out) == 0


def test_he_initialization():
    model = resdsl.build(SPECS / "resnet50.net")
    w = model.conv4_x.b2.conv2.weight  # 3x3, 256 -> 256: fan_out = 256 * 9
    assert abs(w.std().item() - (2 / (256 * 9)) ** 0.5) < 0.02 * (2 / (256 * 9)) ** 0.5 * 10
    assert torch.all(model.conv4_x.b2.bn1.weight == 1) and torch.all(model.conv4_x.b2.bn1.bias == 0)


def test_response_layers_are_bn_after_each_3x3_conv():
    model = resdsl.build(SPECS / "cifar_6n2.net", n=3)
    names = [n for n, _ in model.response_layers()]
    assert len(names) == 19  # the stem's 3x3 plus two per block
    assert names[:3] == ["stem.bn1", "conv2_x.b1.bn1", "conv2_x.b1.bn2"]
    bottleneck = [n for n, _ in resdsl.build(SPECS / "resnet50.net").response_layers()]
    assert len(bottleneck) == 16 and bottleneck[0] == "conv2_x.b1.bn2"  # only the 3x3 of each bottleneck


def test_onnx_export_matches_torch(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    from resdsl.onnx_export import export_onnx

    r = runner.invoke(app, ["build", "cifar_6n2", "--n", "1", "--width", "4", "--onnx", str(tmp_path / "cli.onnx")])
    assert r.exit_code == 0, r.output
    onnx.checker.check_model(onnx.load(str(tmp_path / "cli.onnx")))

    torch.manual_seed(0)
    net = resdsl.build(SPECS / "cifar_6n2.net", n=1, width=4, shortcut="B")
    with torch.no_grad():  # non-trivial BN statistics, so folding them is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    export_onnx(net, (3, 32, 32), tmp_path / "net.onnx")
    model = onnx.load(str(tmp_path / "net.onnx"))
    assert [i.name for i in model.graph.input] == ["image"]
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)  # batch 3: dynamic axis
    (logits,) = ReferenceEvaluator(model).run(None, {"image": x})
    expected = net.eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_onnx_file_has_the_usual_mode_and_no_temp_file_is_left(tmp_path):
    """The export goes through a temporary file renamed into place; the file keeps the mode a
    plain open() gives (0666 less the umask), not the temporary file's 0600."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from resdsl.onnx_export import export_onnx

    old = os.umask(0o002)
    try:
        export_onnx(resdsl.build(SPECS / "cifar_6n2.net", n=1, width=4), (3, 32, 32), tmp_path / "m.onnx")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.onnx").stat().st_mode) == 0o666 & ~0o002 == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_a_new_block_design_is_spec_text_only():
    net = resdsl.load_network(SPECS / "cifar_preact.net", {"n": 3})
    model = resdsl.build(SPECS / "cifar_preact.net", n=3)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    s = resdsl.summarize(net)
    assert s.params == sum(p.numel() for p in model.parameters()) == 272_474
    assert s.depth == 20
    # The downsampling shortcut is the spec's own branch: average pool, 1x1 conv, BN.
    branch = model.conv3_x.b1.shortcut
    assert [type(m).__name__ for m in branch.children()] == ["AvgPool2d", "Conv2d", "BatchNorm2d"]
