"""Training-step throughput of compiled specs against the same networks written in plain PyTorch,
in one process.

    python bench/model_step.py                       # every case, batch 128 (32 for the ImageNet nets)
    python bench/model_step.py --nets resnet20 se_resnet50 --steps 3 --rounds 4

Cases: ResNet-20 and ResNet-56 (specs/cifar_6n2.net against bench/reference_resnet.py), and the
SE-ResNet-50 and MobileNetV2 blocks (specs/se_resnet50.net and specs/mobilenetv2.net at 64x64
against tests/reference_nets.py, the references the tests check the specs' outputs against).
Both models of a case take the same batch, loss, optimizer and memory format; they alternate in
ABBA order round by round, and the ratio is the median of the per-round ratios, so drift in the
machine's speed hits both alike. Also times checking specs/regnet.net (its generation rule in
spec text) and parsing, checking and building ResNet-1202 (n=200).
"""

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))   # reference_resnet
sys.path.insert(0, str(ROOT / "tests"))   # reference_nets
from reference_nets import MobileNetV2, se_resnet50  # noqa: E402
from reference_resnet import CifarResNet  # noqa: E402

from resdsl.spec import load_network  # noqa: E402
from resdsl.spec.compiler import compile_network  # noqa: E402

SPECS = ROOT / "specs"


@dataclass(frozen=True)
class Case:
    spec: str
    overrides: dict
    input_shape: tuple
    reference: Callable[[], torch.nn.Module]
    batch: int


CASES = {
    "resnet20": Case("cifar_6n2", {"n": 3}, (3, 32, 32), lambda: CifarResNet(3), 128),
    "resnet56": Case("cifar_6n2", {"n": 9}, (3, 32, 32), lambda: CifarResNet(9), 128),
    "se_resnet50": Case("se_resnet50", {}, (3, 64, 64), se_resnet50, 32),
    "mobilenetv2": Case("mobilenetv2", {}, (3, 64, 64), MobileNetV2, 32),
}


def step_time(model, x, y, opt, steps: int) -> float:
    """Seconds per SGD step (forward, backward, update), averaged over `steps`."""
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def compare(case: Case, batch: int, steps: int, rounds: int, memory_format) -> dict:
    torch.manual_seed(0)
    net = load_network(SPECS / f"{case.spec}.net", case.overrides, case.input_shape)
    models = {"resdsl": compile_network(net), "pytorch": case.reference()}
    x = torch.randn(batch, *case.input_shape).contiguous(memory_format=memory_format)
    y = torch.randint(0, net.num_classes, (batch,))
    opts = {}
    for name, m in models.items():
        m.to(memory_format=memory_format).train()
        opts[name] = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        step_time(m, x, y, opts[name], 2)  # warm-up: allocator, kernels
    times = {name: [] for name in models}
    order = list(models)
    for r in range(rounds):
        # ABBA order: whichever model runs second in a round is not favoured on average.
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(step_time(models[name], x, y, opts[name], steps))
    ips = {name: batch / statistics.median(t) for name, t in times.items()}
    # Paired per-round ratios: drift in the machine's speed cancels within a round.
    ratio = statistics.median(p / r for r, p in zip(times["resdsl"], times["pytorch"]))
    return {"format": "channels_last" if memory_format == torch.channels_last else "NCHW",
            "resdsl": ips["resdsl"], "pytorch": ips["pytorch"], "ratio": ratio}


def check_time(spec: Path, repeats: int = 20, **overrides) -> float:
    """Median seconds to parse and check a spec (no torch), after one warm-up."""
    load_network(spec, overrides)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_network(spec, overrides)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--formats", nargs="*", default=["channels_last", "NCHW"], choices=["channels_last", "NCHW"])
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: 128 CIFAR, 32 ImageNet nets)")
    ap.add_argument("--steps", type=int, default=5, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    formats = {"channels_last": torch.channels_last, "NCHW": torch.contiguous_format}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'net':<12} {'input':<9} {'batch':>5} {'format':<14} {'resdsl img/s':>12} {'pytorch img/s':>13} "
          f"{'ratio':>6}")
    for name in args.nets:
        case = CASES[name]
        batch = args.batch or case.batch
        for fmt in args.formats:
            r = compare(case, batch, args.steps, args.rounds, formats[fmt])
            size = "x".join(map(str, case.input_shape[1:]))
            print(f"{name:<12} {size:<9} {batch:>5} {r['format']:<14} {r['resdsl']:>12.1f} {r['pytorch']:>13.1f} "
                  f"{r['ratio']:>6.3f}", flush=True)
    print(f"check specs/regnet.net (RegNetX-200MF): {1000 * check_time(SPECS / 'regnet.net'):.1f} ms (median of 20)")
    t0 = time.perf_counter()
    net = load_network(SPECS / "cifar_6n2.net", {"n": 200})
    t1 = time.perf_counter()
    compile_network(net)
    t2 = time.perf_counter()
    print(f"resnet1202 (n=200): parse+check {t1 - t0:.3f} s, build module {t2 - t1:.3f} s, total {t2 - t0:.3f} s")


if __name__ == "__main__":
    main()
