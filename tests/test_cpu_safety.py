"""Training is safe on every x86 CPU: oneDNN's AVX2 backward of a strided 1x1 convolution on a few
channels in channels_last crashes, hangs or returns wrong gradients (torch 2.13.0+cpu), so resdsl
picks NCHW for such models there. AVX2-only CPUs are emulated on any x86 CPU by capping oneDNN's
ISA (ONEDNN_MAX_CPU_ISA=AVX2), in subprocesses, so a crash is a test result."""

import importlib.util
import json
import os
import platform
import subprocess
import sys

import pytest
import torch

from resdsl.spec.compiler import compile_network
from resdsl.spec import load_network
from resdsl.train.devices import channels_last_hazards, memory_format, onednn_below_avx512

from conftest import REPO

X86 = platform.machine().lower() in ("x86_64", "amd64")
needs_x86 = pytest.mark.skipif(not X86, reason="oneDNN's x86 kernels only")

# ResNet blocks on 4 channels with option-B projections: a 1x1 stride-2 conv on 4 channels.
NARROW = """import "prelude"
network narrow {
  input 3x16x16
  classes 4
  stem conv1 { conv(4, 3); bn; relu }
  stage s1: basic(4, shortcut="B") x 1
  stage s2: basic(8, shortcut="B") x 1 stride 2
  head { avgpool; fc(classes) }
}
"""
CPU = torch.device("cpu")


def _probe():
    spec = importlib.util.spec_from_file_location("onednn_conv_probe", REPO / "bench" / "onednn_conv_probe.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod        # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), **extra)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    env.update(extra)
    return env


def test_rule_flags_strided_1x1_convs_on_channels_not_a_multiple_of_8():
    m = torch.nn.ModuleDict({
        "proj4": torch.nn.Conv2d(4, 8, 1, stride=2),
        "proj16": torch.nn.Conv2d(16, 32, 1, stride=2),
        "same4": torch.nn.Conv2d(4, 8, 1, stride=1),
        "k3s2": torch.nn.Conv2d(4, 8, 3, stride=2),
        "grouped": torch.nn.Conv2d(24, 24, 1, stride=2, groups=2),   # 12 per group
    })
    assert channels_last_hazards(m) == ["proj4", "grouped"]
    # the paper's nets have none: option-B/C projections start at 16 (CIFAR) or 64 channels
    for spec, params in (("cifar_6n2", {"shortcut": "B"}), ("cifar_6n2", {"shortcut": "C"}), ("resnet50", {})):
        assert channels_last_hazards(compile_network(load_network(spec, params))) == []
    assert channels_last_hazards(compile_network(load_network(NARROW))) == ["s2.b1.shortcut.conv1"]


def test_layout_choice_follows_the_isa_and_the_model(monkeypatch):
    risky = compile_network(load_network(NARROW))
    safe = compile_network(load_network("cifar_6n2", {"shortcut": "B"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    if X86:
        assert onednn_below_avx512()
        assert memory_format(CPU, risky) == torch.contiguous_format
    assert memory_format(CPU, safe) == torch.channels_last
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert not onednn_below_avx512()
    assert memory_format(CPU, risky) == torch.channels_last            # AVX-512 kernels are right
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert onednn_below_avx512() == X86
    # CUDA keeps channels_last, other devices the default layout, whatever the model
    assert memory_format(torch.device("cuda"), risky) == torch.channels_last
    assert memory_format(torch.device("mps"), risky) == torch.contiguous_format


@needs_x86
def test_every_failing_case_of_the_probe_is_run_in_nchw():
    probe = _probe()
    Case = probe.Case
    cases = [Case(1, 4, 2, "channels_last"), Case(1, 7, 2, "channels_last"), Case(2, 7, 2, "channels_last"),
             Case(1, 8, 2, "channels_last"), Case(1, 4, 1, "channels_last"), Case(1, 4, 2, "nchw"),
             Case(2, 7, 2, "nchw")]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(cases, pool.map(lambda c: probe.run_case(c, "AVX2", 60)["result"], cases)))
    failing = [c for c, r in results.items() if r != "ok"]
    if torch.__version__.startswith("2.13.0"):
        # the emulation reproduces the bug, or this test would prove nothing. With one thread it
        # crashes every time; with two the gradients come out wrong only when the threads race
        # (seen often on an idle machine, not always on a loaded one), so that case is not required.
        assert results[Case(1, 4, 2, "channels_last")] == "crash", results
        assert results[Case(1, 7, 2, "channels_last")] == "crash", results
    assert results[Case(1, 4, 2, "nchw")] == "ok" and results[Case(2, 7, 2, "nchw")] == "ok", results
    for c in failing:
        assert c.layout == "channels_last" and probe.resdsl_layout(c, "AVX2") == "NCHW", (c, results[c])
    for c in (Case(1, 8, 2, "channels_last"), Case(1, 4, 1, "channels_last")):
        assert results[c] == "ok" and probe.resdsl_layout(c, "AVX2") == "channels_last"


GRADS = r"""
import json, sys, torch
from resdsl.spec.compiler import compile_network
from resdsl.spec import load_network
from resdsl.train.devices import memory_format
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
model = compile_network(load_network(sys.argv[1]))
ref = compile_network(load_network(sys.argv[1])).double()
ref.load_state_dict(model.state_dict())
fmt = memory_format(torch.device("cpu"), model)
model = model.to(memory_format=fmt)
x = torch.randn(32, 3, 16, 16)
for _ in range(3):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)), torch.arange(32) % 4).backward()
torch.nn.functional.cross_entropy(ref(x.double()), torch.arange(32) % 4).backward()
rp = dict(ref.named_parameters())
worst = max(((p.grad.double() - rp[n].grad).abs().max() / rp[n].grad.abs().max().clamp_min(1e-12)).item()
            for n, p in model.named_parameters())
print(json.dumps({"format": str(fmt), "worst": worst}))
"""


@needs_x86
@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_net_gets_right_gradients_on_an_avx2_cpu(tmp_path, threads):
    spec = tmp_path / "narrow.net"
    spec.write_text(NARROW)
    p = subprocess.run([sys.executable, "-c", GRADS, str(spec), str(threads)], capture_output=True, text=True,
                       env=_env(ONEDNN_MAX_CPU_ISA="AVX2"), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["format"] == "torch.contiguous_format"
    assert out["worst"] < 1e-3, out


@needs_x86
def test_resdsl_train_completes_on_an_avx2_cpu_with_one_thread(tmp_path):
    spec = tmp_path / "narrow.net"
    spec.write_text(NARROW)
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "resdsl", "train", str(spec), "--data", "synthetic",
                        "--device", "cpu", "--batch-size", "32", "--iters", "8", "--eval-every", "4",
                        "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=300,
                       env=_env(ONEDNN_MAX_CPU_ISA="AVX2", OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iters_done"] == 8
