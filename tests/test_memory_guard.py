"""Networks too big for the machine are stopped before anything is allocated: the estimate read
off the checked model equals what the real module holds, and build/train/--onnx refuse (or warn)
with params, bytes needed and bytes available, never a traceback from torch.empty."""

import os
import subprocess
import sys

import pytest
import torch

from resdsl.spec.analysis import estimate_memory
from resdsl.spec.compiler import compile_network
from resdsl.errors import ResdslError
from resdsl.machine import available_host_memory, check_memory
from resdsl.spec import load_network

from conftest import REPO

HUGE = """network huge {
  input 3x32x32
  classes 10
  stem conv1 { conv(100000000, 3); bn; relu }
  head { avgpool; fc(classes) }
}
"""


@pytest.mark.parametrize("spec,params", [("cifar_6n2", {}), ("cifar_6n2", {"shortcut": "B"}),
                                         ("resnet50", {}), ("cifar_preact", {})])
def test_estimate_equals_the_modules_weights_and_layer_outputs(spec, params):
    net = load_network(spec, params)
    est = estimate_memory(net)
    model = compile_network(net).eval()
    weights = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert est.weight_bytes == 4 * weights
    outputs = []
    for m in model.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda mod, i, o: outputs.append(o.numel()))
    model(torch.randn(1, *net.input_shape))
    assert est.activation_bytes == 4 * sum(outputs)
    assert est.peak_layer_bytes == 4 * max(outputs)
    c, h, w = net.input_shape
    assert est.training_step(128) == 3 * est.weight_bytes + 128 * (est.activation_bytes + 4 * c * h * w)


def test_resnet20_numbers():
    est = estimate_memory(load_network("cifar_6n2"))
    assert est.params == 269_722
    assert est.weight_bytes == 4 * (269_722 + 2 * 688)        # BN running mean and var: 688 channels
    assert est.activation_bytes == 4 * 577_610


def test_check_memory_names_params_needed_and_available():
    with pytest.raises(ResdslError) as e:
        check_memory("a training step at batch 128 on cpu", 3 * 2**30, 2**30, 1234)
    msg = str(e.value)
    assert "3.0 GiB (3,221,225,472 bytes)" in msg and "1.0 GiB (1,073,741,824 bytes)" in msg
    assert "1,234 parameters" in msg
    check_memory("fits", 10, 11, 1)
    check_memory("unknown machine", 10, None, 1)


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "resdsl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


@pytest.mark.skipif(available_host_memory() is None, reason="this system does not say how much memory is free")
def test_too_big_for_this_machine_is_refused_before_allocating(tmp_path):
    spec = tmp_path / "huge.net"
    spec.write_text(HUGE)
    r = _cli("build", spec, cwd=tmp_path)                # build allocates nothing: a warning
    assert r.returncode == 0 and "warning: a training step at batch 1 needs" in r.stderr
    assert "3,900,000,010 parameters" in r.stderr
    onnx = tmp_path / "huge.onnx"
    r = _cli("build", spec, "--onnx", onnx, cwd=tmp_path)
    assert r.returncode == 2 and "exporting this network to ONNX needs" in r.stderr and "available" in r.stderr
    assert "Traceback" not in r.stderr and not onnx.exists()
    out = tmp_path / "run"
    r = _cli("train", spec, "--data", "synthetic", "--iters", "2", "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and "a training step at batch 128 on cpu needs" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    # an input far too large for a training step, same rule
    r = _cli("train", "cifar_6n2", "--input", "3x20000x20000", "--data", "synthetic", "--iters", "2",
             "--out", out, cwd=tmp_path)
    assert r.returncode == 2 and "needs about" in r.stderr and "269,722 parameters" in r.stderr
    assert not out.exists()
