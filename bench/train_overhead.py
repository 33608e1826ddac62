"""How much of `resdsl train` is training? Bare training-step throughput vs train() end to end.

Bare: forward + backward + SGD step of the compiled spec on one pre-made batch already on the
device, in the memory format train() uses. End to end: resdsl.train.train() on synthetic data
(data stream, GPU-side augmentation, loss/error read-back, evaluation of the test set, metrics,
checkpoints, responses, predictions), timed from the end of the first evaluation (so start-up
and the first iterations are excluded) to the return of train().

    python3 bench/train_overhead.py [--n 3] [--batch 128] [--iters 400] [--eval-every 100]

Evaluating the 1000 synthetic test images every 100 iterations at batch 128 costs the same
fraction of the work as the cifar recipe's 10000 test images every 1000 iterations.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from resdsl.spec.compiler import compile_network  # noqa: E402
from resdsl.spec import load_network  # noqa: E402
from resdsl.train import TrainConfig, train  # noqa: E402
from resdsl.train.devices import memory_format, pick_device  # noqa: E402


def bare(n: int, batch: int, iters: int, warm: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = compile_network(load_network("cifar_6n2", {"n": n}))
    fmt = memory_format(device, model)
    model = model.to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warm):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        loss = step()
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iters * batch / (time.perf_counter() - t0)


def end_to_end(n: int, batch: int, iters: int, eval_every: int, device: str) -> tuple[float, dict]:
    marks = {}

    def on_eval(row):
        marks.setdefault("start", (time.perf_counter(), row["iter"]))
        return False

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig("cifar_6n2", {"n": n}, data="synthetic", iters=eval_every + iters,
                          batch_size=batch, eval_every=eval_every, device=device)
        summary = train(cfg, Path(tmp) / "run", on_eval=on_eval, progress=False, quiet=True)
        t1 = time.perf_counter()
    t0, it0 = marks["start"]
    return (summary["iters_done"] - it0) * batch / (t1 - t0), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="cifar_6n2 n (3: ResNet-20)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=300, help="measured iterations")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--warm", type=int, default=20, help="bare warm-up iterations")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternate end-to-end and bare measurements this many times and keep the "
                         "best of each (other processes on a shared machine only slow things down)")
    a = ap.parse_args()
    device = pick_device(a.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"ResNet-{6 * a.n + 2}, batch {a.batch}")
    e2es, bares = [], []
    for r in range(a.rounds):
        e2e, summary = end_to_end(a.n, a.batch, a.iters, a.eval_every, a.device)
        b = bare(a.n, a.batch, a.iters, a.warm, device)
        e2es.append(e2e)
        bares.append(b)
        print(f"round {r + 1}: bare {b:7.1f} images/s, end to end {e2e:7.1f} images/s, "
              f"ratio {e2e / b:.3f}  (final test error {100 * summary['final']['test_err']:.1f}%)",
              flush=True)
    b, e2e = max(bares), max(e2es)
    print(f"bare training step : {b:8.1f} images/s (best of {a.rounds})")
    print(f"resdsl train (e2e) : {e2e:8.1f} images/s (best of {a.rounds})")
    print(f"ratio              : {e2e / b:8.3f}")


if __name__ == "__main__":
    main()
