"""The training loop (docs/ARCHITECTURE.md, "Run record"; the record's files: resdsl.record).

``train(cfg, out_dir)`` runs a ``TrainConfig`` to the end and returns the summary dict (the
content of summary.json); ``resume(run_dir)`` continues an interrupted or killed run from its
checkpoint, bit-exactly on CPU. A diverged run (NaN/inf loss) is a result, not an exception:
status "diverged". Other exceptions are recorded as "failed" and re-raised; Ctrl-C (SIGINT) or
SIGTERM stops at the next iteration boundary, writes a checkpoint, records "interrupted" and
raises KeyboardInterrupt (a stuck run is ended by a second signal: resdsl.train.signals).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from resdsl import record
from resdsl.errors import ResdslError, RunError
from resdsl.machine import check_memory
from resdsl.train import signals
from resdsl.train.config import (
    RECIPES, ResolvedConfig, TrainConfig, config_hash, resolve, resolve_run,
)
from resdsl.train.devices import (
    Dist, autocast, available_memory, check_amp, device_name, hardware_name, init_distributed,
    memory_format, pick_device,
)
from resdsl.train.evaluate import (
    EvalResult, ResponseProbe, evaluate, evaluate_final_view, periodic_view,
)
from resdsl.train.progress import Listener, Progress
from resdsl.train.schedule import Schedule

CIFAR_TRAIN_IMAGES = 50000
OnEval = Callable[[dict], bool]


# --------------------------------------------------------------------------- helpers

def reduced_reasons(r: ResolvedConfig, n_train: int) -> list[str]:
    """Why a run is not the paper's full budget (empty when it is)."""
    preset = RECIPES[r.recipe]
    return record.reduced_reasons(
        data=r.data, iters=r.iters, batch_size=r.batch_size, full_iters=preset["iters"],
        full_batch=preset["batch_size"], subset=n_train if r.subset is not None else None,
        train_images=n_train + r.val_split,
        full_train_images=CIFAR_TRAIN_IMAGES if r.data == "cifar10" else None)


@dataclass
class _Window:
    """Training statistics since the last evaluation (checkpointed, so resume is exact)."""

    loss_sum: float = 0.0
    err_sum: float = 0.0
    count: int = 0          # images
    iters: int = 0
    train_s: float = 0.0

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum, "err_sum": self.err_sum, "count": self.count,
                "iters": self.iters, "train_s": self.train_s}

    @classmethod
    def load(cls, s: dict) -> "_Window":
        return cls(float(s["loss_sum"]), float(s["err_sum"]), int(s["count"]), int(s["iters"]),
                   float(s["train_s"]))


@dataclass
class _State:
    it: int = 0
    elapsed_s: float = 0.0
    window: _Window = field(default_factory=_Window)
    best: dict = field(default_factory=lambda: {"test_err": None, "val_err": None, "iter": None})
    images: int = 0
    train_s_total: float = 0.0


# --------------------------------------------------------------------------- the trainer

class Trainer:
    def __init__(self, r: ResolvedConfig, out_dir: Path, *, on_eval: OnEval | None,
                 on_progress: Listener | None, progress: bool, quiet: bool, resuming: bool):
        self.r = r
        self.out = Path(out_dir)
        self.on_eval = on_eval
        self.on_progress = on_progress
        # what Progress shows (resdsl.train.progress.SHOW)
        self.show = "nothing" if quiet else "live" if progress else "evaluations"
        self.resuming = resuming
        self.scalars = None
        self.hash = config_hash(r)
        self.dist: Dist = Dist()
        self.state = _State()
        self.summary: dict = {}
        self.segment: dict | None = None       # this process's part of the run (summary's segments)
        self.segments: list[dict] = []         # the run's segments, this one last
        self.in_step = False
        # summary.json is written by the loop and, when a stuck run is ended, by the stop watchdog
        self.summary_lock = threading.Lock()

    # ---------------------------------------------------------------- set-up
    def setup(self) -> None:
        r = self.r
        self.dist = init_distributed(r.device)
        if self.dist.enabled and torch.cuda.is_available() and r.device in ("auto", "cuda"):
            device = torch.device("cuda", self.dist.local_rank)
        else:
            device = pick_device(r.device)
        self.device = device
        check_amp(r.amp, device)
        if r.batch_size % self.dist.world:
            raise RunError(f"batch size {r.batch_size} does not split evenly over "
                           f"{self.dist.world} processes")
        if r.sync_bn and not self.dist.enabled:
            raise RunError("--sync-bn only applies to a distributed run (torchrun)")
        if r.sync_bn and device.type != "cuda":
            raise RunError("--sync-bn needs CUDA devices (torch's SyncBatchNorm runs on GPUs only); "
                           "without it each process normalizes its own shard, as in the paper")
        from resdsl.spec.analysis import estimate_memory, summarize
        from resdsl.spec.compiler import compile_network
        from resdsl.train.data import open_run_data

        self.netsum = summarize(r.net)
        need = estimate_memory(r.net)
        check_memory(f"a training step at batch {r.batch_size // self.dist.world} on {device_name(device)}",
                     need.training_step(r.batch_size // self.dist.world), available_memory(device), need.params)
        torch.manual_seed(r.seed)
        model = compile_network(r.net)
        self.fmt = memory_format(device, model)
        model = model.to(device, memory_format=self.fmt)
        self.data = open_run_data(r, device)
        self.r = r = r.with_iters(len(self.data.train))
        if r.milestones and r.milestones[-1] >= r.iters and r.milestones_given:
            raise RunError(f"milestone {r.milestones[-1]} is not before the end of training "
                           f"({r.iters} iterations)")
        self.base = model                        # the SpecModule: state dict, eval, responses
        if r.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.base = model
        self.model = model
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.step_model = torch.compile(self.model) if r.compile else self.model
        self.opt = torch.optim.SGD(self.base.parameters(), lr=r.lr, momentum=r.momentum,
                                   weight_decay=r.weight_decay)
        self.sched = Schedule(r.lr, r.schedule, r.milestones, r.plateau, r.warmup)
        self.scaler = torch.amp.GradScaler("cuda") if r.amp == "fp16" else None
        # a sync point reads the loss back: every step on CPU (free), in chunks on accelerators
        self.sync_every = 1 if device.type == "cpu" else 20
        self.reduced = reduced_reasons(r, self.data.n_train)

    # ---------------------------------------------------------------- record
    def config_json(self) -> dict:
        from resdsl.spec.analysis import shortcut_option

        r, net = self.r, self.r.net
        ns = self.netsum
        return {
            **record.versions(), "kind": "run", "device": device_name(self.device),
            "world_size": self.dist.world,
            # block and shortcut are facts of the checked network, whatever its parameters' names
            "spec": {"name": net.name, "path": net.path, "sources": dict(net.sources),
                     "params": dict(net.params), "input_shape": list(net.input_shape),
                     "num_classes": net.num_classes, "depth": ns.depth,
                     "block": ",".join(ns.blocks) if ns.blocks else None,
                     "shortcut": shortcut_option(net)},
            "recipe": r.recipe_json(),
            "data": {"name": self.data.name, "dir": r.data_dir, "train_images": self.data.n_train,
                     "test_images": self.data.n_test,
                     # label order of class folders, so evaluation needs val/ alone
                     **({"classes": self.data.classes} if self.data.classes else {})},
            "request": r.request.to_json(),
            "hash": self.hash, "started": record.now(),
        }

    def write_summary(self, status: str, reason: str | None = None, **extra) -> dict:
        st, r = self.state, self.r
        rows = self._rows_cache
        s = {
            "status": status, "reason": reason, "iters_done": st.it, "iters": r.iters,
            "final": rows[-1] if rows else None, "best": dict(st.best),
            "params": self.netsum.params, "flops": self.netsum.flops, "depth": self.netsum.depth,
            "wall_s": round(st.elapsed_s, 3),
            "images_per_s": (st.images / st.train_s_total) if st.train_s_total > 0 else None,
            "reduced": bool(self.reduced), "reduced_why": "; ".join(self.reduced) or None,
            "diverged_at": None, "warmup_ended_at": self.sched.warmup_ended_at,
            "lr_drops": self.sched.drops if r.schedule == "plateau" else None,
            "hash": self.hash, "updated": record.now(),
        }
        if self.segment is not None:
            self._update_segment()
            s["segments"] = [dict(seg) for seg in self.segments]   # a snapshot, as the rest
        s.update(extra)
        with self.summary_lock:
            self.summary = s
            if self.dist.is_main:
                record.write_summary(self.out, s)
        return s

    def checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        st = self.state
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        ck = {
            "hash": self.hash, "iter": st.it,
            "model": self.base.state_dict(), "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict(), "rng": rng,
            "data": {k: int(v) for k, v in self.data.train.state_dict().items()},
            "window": st.window.state(), "best": dict(st.best),
            "elapsed_s": st.elapsed_s, "images": st.images, "train_s_total": st.train_s_total,
        }
        if self.scaler is not None:
            ck["scaler"] = {k: (float(v) if isinstance(v, float) else v)
                            for k, v in self.scaler.state_dict().items()}
        record.save_checkpoint(self.out, ck)

    def load_checkpoint(self) -> None:
        ck = record.load_checkpoint(self.out, self.hash)
        self.base.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["schedule"])
        torch.set_rng_state(ck["rng"]["torch"])
        if "cuda" in ck["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)
        self.data.train.load_state_dict(ck["data"])
        if self.scaler is not None and "scaler" in ck:
            self.scaler.load_state_dict(ck["scaler"])
        st = self.state
        st.it = int(ck["iter"])
        st.window = _Window.load(ck["window"])
        st.best = dict(ck["best"])
        st.elapsed_s = float(ck["elapsed_s"])
        # wall time is the whole run's: a segment ended inside an iteration (a second signal)
        # left no checkpoint, but its summary counted its time
        before = record.read_summary(self.out) or {}
        if before.get("hash") == self.hash and isinstance(before.get("wall_s"), (int, float)):
            st.elapsed_s = max(st.elapsed_s, float(before["wall_s"]))
        st.images = int(ck["images"])
        st.train_s_total = float(ck["train_s_total"])

    # ---------------------------------------------------------------- evaluation
    def _eval_row(self, final: bool = False) -> tuple[dict, EvalResult]:
        r, st, w = self.r, self.state, self.state.window
        probe = None
        view = periodic_view(r.data)
        # on CIFAR-style data the periodic view is the final one: keep its softmax outputs
        keep = final and view == r.test_mode
        if final:
            probe = ResponseProbe(self.base.response_layers())
        try:
            test = evaluate(self.base, self.data.test, self.device, self.data.num_classes,
                            r.amp, keep_probs=keep, view=view)
        finally:
            if probe is not None:
                probe.close()
        self.responses = probe.result() if probe is not None else None
        if final and not keep:
            test = evaluate_final_view(self.base, self.data, r, self.device)
            view = r.test_mode
        self.final_eval = test if final else None
        val = None
        if self.data.val is not None:
            val = evaluate(self.base, self.data.val, self.device, self.data.num_classes, r.amp)
        row = {
            "iter": st.it,
            "epoch": round(st.it * r.batch_size / self.data.n_train, 4),
            "lr": self.sched.lr(max(st.it - 1, 0)),
            "train_loss": (w.loss_sum / w.count) if w.count else None,
            "train_err": (w.err_sum / w.count) if w.count else None,
            "val_err": val.err if val is not None else None,
            "val_top5_err": val.top5_err if val is not None else None,
            "test_err": test.err, "test_top5_err": test.top5_err, "test_loss": record.finite_or_none(test.loss),
            "view": view,
            "images_per_s": (w.count * self.dist.world / w.train_s) if w.train_s > 0 else 0.0,
            "elapsed_s": round(st.elapsed_s + (time.perf_counter() - self.seg0), 3),
            "warmup": self.sched.warming,
        }
        return row, test

    def _update_best(self, row: dict) -> None:
        key = "val_err" if row.get("val_err") is not None else "test_err"
        b = self.state.best
        cur = b.get(key)
        if row.get(key) is not None and (cur is None or row[key] < cur):
            self.state.best = {"test_err": row["test_err"], "val_err": row.get("val_err"),
                               "iter": row["iter"]}

    # ---------------------------------------------------------------- the loop
    def run(self) -> dict:
        r = self.r
        st = self.state
        if self.resuming:
            self.load_checkpoint()
            if self.dist.is_main:
                self._rows_cache = record.metrics_until(self.out, st.it)
            else:
                self._rows_cache = []
        else:
            self._rows_cache = []
            if self.dist.is_main:
                record.start_record(self.out, self.config_json())
        # (a run started before input_mean.pt existed gets it when resumed)
        mean = self.data.mean
        if self.dist.is_main and mean is not None and not (self.out / record.INPUT_MEAN).exists():
            record.save_input_mean(self.out, mean.pixel, mean.channel)
        self._start_segment()
        self.seg0 = time.perf_counter()
        self.write_summary("running")
        bar = Progress(r.iters, st.it, self.show if self.dist.is_main else "nothing",
                       r.net.name, listener=self.on_progress if self.dist.is_main else None)
        self.bar = bar
        try:
            if r.tensorboard is not None and self.dist.is_main:
                from resdsl.train.scalars import ScalarWriter

                self.scalars = ScalarWriter(r.tensorboard,
                                            resumed_at=st.it if self.resuming else None)
            with signals.StopFlag(on_force=self._forced_stop) as stop:
                result = self._loop(stop)
        except KeyboardInterrupt:
            bar.close()
            self._finish_interrupt()
            raise
        except BaseException as e:
            bar.close()
            reason = str(e) if isinstance(e, ResdslError) else f"{type(e).__name__}: {e}"
            self._seg_end()
            self.write_summary("failed", reason)
            raise
        finally:
            bar.close()
            if self.scalars is not None:
                self.scalars.close()
        return result

    def _start_segment(self) -> None:
        """This process's part of the run, added to the segments of those before it (a run
        resumed on other machines has one per machine and per start). Resumed from a checkpoint
        behind where an earlier segment got (a kill, a stop inside an iteration), that segment is
        cut back to the checkpoint: the work after it is done again here. Iterations trained
        before segments were recorded (the first segment does not start at 0) are one segment
        whose hardware is unknown (None)."""
        st = self.state
        before = (record.read_summary(self.out) or {}) if self.resuming else {}
        earlier = before.get("segments") if before.get("hash") == self.hash else None
        kept = []
        for seg in earlier if isinstance(earlier, list) else []:
            if isinstance(seg, dict) and isinstance(seg.get("from_iter"), int) \
                    and seg["from_iter"] < st.it:
                kept.append({**seg, "to_iter": min(int(seg.get("to_iter") or 0), st.it)})
        first = kept[0]["from_iter"] if kept else st.it
        if first > 0:
            kept.insert(0, {"from_iter": 0, "to_iter": first, "hardware": None})
        self.segment = {"from_iter": st.it, "to_iter": st.it, "started": record.now(),
                        "device": device_name(self.device), "hardware": hardware_name(self.device),
                        "threads": torch.get_num_threads(), "world_size": self.dist.world,
                        "images_per_s": None}
        self.segments = [*kept, self.segment]
        self.segment_start = (st.images, st.train_s_total)

    def _update_segment(self) -> None:
        st, seg = self.state, self.segment
        images, train_s = st.images - self.segment_start[0], st.train_s_total - self.segment_start[1]
        seg["to_iter"] = st.it
        seg["images_per_s"] = round(images / train_s, 1) if train_s > 0 else None

    def _seg_end(self) -> None:
        now = time.perf_counter()
        self.state.elapsed_s += now - self.seg0
        self.seg0 = now

    def _finish_interrupt(self) -> None:
        self._seg_end()
        if not self.in_step:
            self.checkpoint()
            self.write_summary("interrupted", f"stopped by the user at iteration {self.state.it}; "
                               f"continue with: resdsl train --resume {self.out}")
        else:
            self.write_summary("interrupted", "stopped in the middle of an iteration; the "
                               "checkpoint of the last evaluation is kept")

    def _forced_stop(self, why: str) -> None:
        """Called by the stop watchdog before it ends a stuck process: record "interrupted"
        (the last checkpoint, taken at an evaluation, stays as it is)."""
        self._seg_end()
        self.write_summary("interrupted", f"{why} at iteration {self.state.it}, inside a "
                           "computation; the checkpoint of the last evaluation is kept; continue "
                           f"with: resdsl train --resume {self.out}")
        # the watchdog ends the process next: no later summary from the loop in between
        self.summary_lock.acquire(timeout=5)

    def _loop(self, stop: signals.StopFlag) -> dict:
        r, st, dist = self.r, self.state, self.dist
        model, opt, sched, data = self.step_model, self.opt, self.sched, self.data
        device, fmt = self.device, self.fmt
        world, rank = dist.world, dist.rank
        local_b = r.batch_size // world
        pending_loss: list[torch.Tensor] = []
        pending_err: list[torch.Tensor] = []
        clock = [time.perf_counter()]

        def flush() -> dict | None:
            """Read the pending losses back: divergence check, training window, warm-up."""
            if not pending_loss:
                return None
            stats = torch.stack([torch.stack(pending_loss).float(),
                                 torch.stack(pending_err).float()])
            if world > 1:
                stats = dist.all_sum(stats.double()) / world
            stats = stats.double().cpu()
            n = len(pending_loss)
            pending_loss.clear()
            pending_err.clear()
            now = time.perf_counter()
            st.window.train_s += now - clock[0]
            st.train_s_total += now - clock[0]
            clock[0] = now
            losses = stats[0]
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                i = int(bad[0])
                return self._diverged(st.it - n + i + 1, float(losses[i]))
            w = st.window
            w.loss_sum += float(losses.sum()) * local_b
            w.err_sum += float(stats[1].sum())
            w.count += n * local_b
            w.iters += n
            st.images += n * local_b * world
            sched.observe_train(st.it, (stats[1] / local_b).tolist())
            return None

        def is_eval_point(it: int) -> bool:
            return it % r.eval_every == 0 or it == r.iters

        # resumed from a checkpoint taken at an evaluation point whose evaluation did not finish
        if st.it > 0 and is_eval_point(st.it) and (
                not self._rows_cache or self._rows_cache[-1]["iter"] != st.it):
            if self._evaluate_and_record(final=st.it == r.iters) and st.it < r.iters:
                return self._finish("pruned", f"stopped early by the caller at iteration {st.it}")
            clock[0] = time.perf_counter()
        cur_lr = None
        while st.it < r.iters:
            if stop.hit is not None:
                diverged = flush()
                if diverged is not None:
                    return diverged
                raise KeyboardInterrupt
            lr = sched.lr(st.it)
            if lr != cur_lr:
                for g in opt.param_groups:
                    g["lr"] = lr
                cur_lr = lr
            self.in_step = True
            x, y = next(data.train)
            if world > 1:
                x, y = x[rank * local_b:(rank + 1) * local_b], y[rank * local_b:(rank + 1) * local_b]
            x = x.contiguous(memory_format=fmt)
            with autocast(r.amp, device):
                out = model(x)
                loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(opt)
                self.scaler.update()
            else:
                loss.backward()
                opt.step()
            st.it += 1
            self.in_step = False
            pending_loss.append(loss.detach())
            pending_err.append((out.detach().argmax(1) != y).sum())
            is_eval = is_eval_point(st.it)
            if len(pending_loss) >= self.sync_every or is_eval:
                diverged = flush()
                if diverged is not None:
                    return diverged
                if st.it % 10 == 0 or is_eval:
                    w = st.window
                    self.bar.step(st.it, w.loss_sum / w.count if w.count else None,
                                  w.err_sum / w.count if w.count else None,
                                  (w.count * world / w.train_s) if w.train_s > 0 else None)
            if is_eval:
                stop_now = self._evaluate_and_record(final=st.it == r.iters)
                clock[0] = time.perf_counter()
                if stop_now and st.it < r.iters:
                    return self._finish("pruned", f"stopped early by the caller at iteration {st.it}")
        return self._finish("completed", None)

    def _evaluate_and_record(self, final: bool) -> bool:
        st, dist = self.state, self.dist
        flag = torch.zeros(1)
        if dist.is_main:
            row, _ = self._eval_row(final=final)
            self._update_best(row)
            sched_err = row.get(self.r.plateau["monitor"]) if self.r.plateau else None
            self.sched.observe_eval(sched_err)
            self._seg_end()
            row["elapsed_s"] = round(st.elapsed_s, 3)
            record.append_metrics(self.out, row)
            self._rows_cache.append(row)
            if self.scalars is not None:
                self.scalars.write(row)
            st.window = _Window()
            self.checkpoint()
            if final:
                self._write_final_artifacts()
            self.write_summary("running")
            self.bar.eval(row)
            if self.on_eval is not None and self.on_eval(row) and not final:
                flag[0] = 1
        else:
            # keep the schedule in step with rank 0 (plateau decisions come from its evaluation)
            st.window = _Window()
        if dist.enabled:
            sched_state = torch.tensor([float(self.sched.drops), flag[0]], dtype=torch.float64)
            dist.broadcast(sched_state)
            self.sched.drops = int(sched_state[0])
            flag[0] = sched_state[1]
        return bool(flag[0])

    def _write_final_artifacts(self) -> None:
        if self.responses is not None:
            record.write_responses(self.out, self.responses, self.state.it)
        fe = getattr(self, "final_eval", None)
        if fe is not None and fe.probs is not None:
            probs = fe.probs
            if probs.numel() > 10_000_000:
                probs = probs.half()
            record.write_predictions(self.out, {"probs": probs, "targets": fe.targets,
                                                "view": self.r.test_mode, "data": self.r.data,
                                                "n": int(fe.n)})

    def _diverged(self, at: int, value: float) -> dict:
        self._seg_end()
        self.state.it = at
        reason = f"the training loss became {value} at iteration {at}"
        self.bar.close()
        return self.write_summary("diverged", reason, diverged_at=at)

    def _finish(self, status: str, reason: str | None) -> dict:
        self._seg_end()
        if status in record.KEEPS_WEIGHTS and self.dist.is_main:
            # before the summary: a run recorded as completed always has its weights.pt
            record.save_weights(self.out, self.base.state_dict())
        return self.write_summary(status, reason)


# --------------------------------------------------------------------------- API

def _run(r: ResolvedConfig, out: Path, on_eval, on_progress, progress, quiet, resuming) -> dict:
    """Set up and run. A run that cannot start (bad data folder, unsupported option) raises
    before anything is written, so the same --out can be used again once it is fixed."""
    trainer = Trainer(r, out, on_eval=on_eval, on_progress=on_progress, progress=progress,
                      quiet=quiet, resuming=resuming)
    try:
        trainer.setup()
        return trainer.run()
    finally:
        trainer.dist.close()


def train(cfg: TrainConfig | ResolvedConfig, out_dir: str | Path, *,
          on_eval: OnEval | None = None, on_progress: Listener | None = None,
          progress: bool = True, quiet: bool = False) -> dict:
    """Train ``cfg`` and write its run record into ``out_dir``; return the summary dict.

    ``cfg`` is a request, or one already resolved (``resolve``), which is not checked again.
    ``on_eval(row)`` gets each metrics.jsonl row, the final one too; returning True before the
    final one stops the run with status "pruned". ``on_progress(snapshot)`` gets, every 10 to
    20 iterations, ``{"iter", "iters", "train_loss", "train_err", "images_per_s", "eta_s"}`` (the
    training window since the last evaluation; None where not known yet).
    On stderr: ``progress``: a rich progress bar on a terminal, else one line per evaluation
    and a progress line every ``$RESDSL_PROGRESS_EVERY_S`` seconds (default 30); without it,
    the evaluation lines only; ``quiet``: nothing.
    """
    r = cfg if isinstance(cfg, ResolvedConfig) else resolve(cfg)
    out = Path(out_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        record.check_fresh(out)
    return _run(r, out, on_eval, on_progress, progress, quiet, resuming=False)


# What a resumed run may be told anew: where things are now, not what the run computes (none
# of these enters the content hash, so the checkpoint still fits)
RESUME_CHANGES = ("data_dir", "device", "workers")


def resume(run_dir: str | Path, *, on_eval: OnEval | None = None,
           on_progress: Listener | None = None, progress: bool = True,
           quiet: bool = False, **changes) -> dict:
    """Continue a run from its checkpoint (``train``'s arguments); on CPU with the same seed
    the result equals an uninterrupted run. ``changes``: new values of RESUME_CHANGES (the data
    folder on this machine, another device), for this segment."""

    run_dir = Path(run_dir)
    for key in changes:
        if key not in RESUME_CHANGES:
            raise RunError(f"a resumed run keeps its recorded {key}; only "
                           f"{', '.join(RESUME_CHANGES)} may change")
    status = (record.read_summary(run_dir) or {}).get("status")
    if status in record.FINISHED:
        raise RunError(f"{run_dir}: the run is {status}; there is nothing to resume")
    # the network the checkpoint belongs to: rebuilt from config.json's spec texts where the
    # spec files have changed since (a prelude edited, another checkout, another machine)
    r, rebuilt = resolve_run(run_dir, **changes)
    if rebuilt and not quiet:
        print(f"resdsl: {r.request.spec} or a file it imports changed (or is gone) since the run "
              "started; resuming with the spec texts recorded in its config.json", file=sys.stderr)
    return _run(r, run_dir, on_eval, on_progress, progress, quiet, resuming=True)
