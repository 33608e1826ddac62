"""Training-step throughput of a compiled spec against the hand-written PyTorch ResNet, in one process.

    python bench/model_step.py                 # ResNet-20 and ResNet-56, batch 128, both memory formats
    python bench/model_step.py --n 3 --steps 5 --rounds 2

Both models take the same batch, loss, optimizer and memory format; they alternate in ABBA order
round by round, and the ratio is the median of the per-round ratios, so drift in the machine's
speed hits both alike. Also times parsing and
building ResNet-1202 (n=200) after torch is imported.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_resnet
from reference_resnet import CifarResNet  # noqa: E402

import resdsl  # noqa: E402
from resdsl.spec.compiler import compile_network  # noqa: E402
from resdsl.spec import load_network  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "cifar_6n2.net"


def step_time(model, x, y, opt, steps: int) -> float:
    """Seconds per SGD step (forward, backward, update), averaged over `steps`."""
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def compare(n: int, batch: int, steps: int, rounds: int, memory_format) -> dict:
    torch.manual_seed(0)
    models = {"resdsl": resdsl.build(SPEC, n=n), "pytorch": CifarResNet(n)}
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,))
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
    return {"n": n, "format": "channels_last" if memory_format == torch.channels_last else "NCHW",
            "resdsl": ips["resdsl"], "pytorch": ips["pytorch"], "ratio": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="*", default=[3, 9], help="cifar_6n2 n values (3: ResNet-20, 9: ResNet-56)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(f"{'net':<10} {'format':<14} {'resdsl img/s':>12} {'pytorch img/s':>13} {'ratio':>6}")
    for n in args.n:
        for fmt in (torch.channels_last, torch.contiguous_format):
            r = compare(n, args.batch, args.steps, args.rounds, fmt)
            print(f"ResNet-{6 * n + 2:<3} {r['format']:<14} {r['resdsl']:>12.1f} {r['pytorch']:>13.1f} {r['ratio']:>6.3f}",
                  flush=True)
    t0 = time.perf_counter()
    net = load_network(SPEC, {"n": 200})
    t1 = time.perf_counter()
    compile_network(net)
    t2 = time.perf_counter()
    print(f"resnet1202 (n=200): parse+check {t1 - t0:.3f} s, build module {t2 - t1:.3f} s, total {t2 - t0:.3f} s")


if __name__ == "__main__":
    main()
