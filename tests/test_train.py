"""resdsl train: recipes, the training loop, the run record, resume, divergence, interrupts,
ensembles, DDP. Tiny nets on synthetic data, so the whole file runs in a couple of minutes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from resdsl.errors import RunError
from resdsl.spec.analysis import summarize
from resdsl.train import TrainConfig, config_hash, resolve, resume, train
from resdsl.train.schedule import Schedule

from cifar_folder import write_cifar

REPO = Path(__file__).resolve().parent.parent
SPEC = str(REPO / "specs" / "cifar_6n2.net")
TINY = {"n": "1", "width": "8"}
TINY_ARGS = ["train", SPEC, "--n", "1", "--width", "8", "--data", "synthetic", "--batch-size", "32"]


def tiny(**kw) -> TrainConfig:
    base = dict(spec=SPEC, overrides=dict(TINY), data="synthetic", iters=120, batch_size=32,
                eval_every=40)
    base.update(kw)
    return TrainConfig(**base)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e["OMP_NUM_THREADS"] = "2"
    return e


def cli(args, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "resdsl", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def run_cli(args, cwd, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resdsl", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended before {path} appeared:\n{proc.stderr.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.01)


def read(path: Path):
    return json.loads(Path(path).read_text())


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


EXACT_KEYS = ("iter", "epoch", "lr", "train_loss", "train_err", "test_err", "test_top5_err",
              "test_loss", "val_err")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny runs (seeds 0 and 1) via the Python API."""
    root = tmp_path_factory.mktemp("runs")
    rows = []
    out = []
    for seed in (0, 1):
        d = root / f"seed{seed}"
        s = train(tiny(seed=seed), d, on_eval=rows.append, progress=False, quiet=True)
        out.append((d, s))
    return out, rows


# --------------------------------------------------------------------------- the record

def test_learns_and_writes_complete_record(runs):
    (run, summary), _ = runs[0][0], runs[1]
    assert summary["status"] == "completed"
    assert summary["final"]["test_err"] < 0.5          # chance is 0.9
    assert summary["final"]["train_err"] < 0.6
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json",
                 "responses.json", "predictions.pt"):
        assert (run / name).is_file(), name
    cfg = read(run / "config.json")
    for key in ("resdsl", "torch", "python", "device", "spec", "recipe", "hash"):
        assert key in cfg
    for key in ("name", "path", "sources", "params", "input_shape", "num_classes", "depth",
                "block", "shortcut"):
        assert key in cfg["spec"]
    assert cfg["spec"]["params"] == {"n": 1, "shortcut": "A", "width": 8}
    assert any("network cifar_resnet" in t for t in cfg["spec"]["sources"].values())
    rec = cfg["recipe"]
    for key in ("name", "data", "iters", "batch_size", "lr", "milestones", "momentum",
                "weight_decay", "warmup", "val_split", "seed", "amp", "compile", "test_mode",
                "subset"):
        assert key in rec
    assert rec["milestones"] == [60, 90] and rec["iters"] == 120 and rec["data"] == "synthetic"
    assert cfg["device"] == "cpu"
    rows = metrics(run)
    assert [r["iter"] for r in rows] == [40, 80, 120]
    for r in rows:
        for key in ("iter", "epoch", "lr", "train_loss", "train_err", "val_err", "test_err",
                    "test_top5_err", "images_per_s", "elapsed_s"):
            assert key in r
        assert 0 <= r["test_err"] <= 1 and 0 <= r["train_err"] <= 1
        assert r["val_err"] is None
    assert rows[0]["lr"] == pytest.approx(0.1) and rows[-1]["lr"] == pytest.approx(0.001)
    s = read(run / "summary.json")
    for key in ("status", "reason", "iters_done", "final", "best", "params", "flops", "wall_s",
                "reduced", "reduced_why"):
        assert key in s
    assert s == summary
    assert s["final"] == rows[-1] and s["iters_done"] == 120
    assert set(s["best"]) >= {"test_err", "val_err", "iter"}
    assert s["best"]["test_err"] == min(r["test_err"] for r in rows)
    assert s["reduced"] and "synthetic" in s["reduced_why"] and "120" in s["reduced_why"]
    assert s["params"] > 0 and s["flops"] > 0
    assert not list(run.glob(".*.tmp"))


def test_checkpoint_loads_weights_only(runs):
    run = runs[0][0][0]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["iter"] == 120
    assert {"model", "optimizer", "schedule", "rng", "data"} <= set(ck)
    assert isinstance(ck["rng"]["torch"], torch.Tensor)
    assert all(isinstance(v, int) for v in ck["data"].values())
    from resdsl.spec.compiler import compile_network
    from resdsl.spec import load_network

    model = compile_network(load_network(SPEC, TINY))
    model.load_state_dict(ck["model"])
    p = torch.load(run / "predictions.pt", weights_only=True)
    assert p["probs"].shape == (1000, 10)
    err = (p["probs"].argmax(1) != p["targets"]).float().mean().item()
    assert err == pytest.approx(read(run / "summary.json")["final"]["test_err"])


def test_responses_one_std_per_3x3_bn_in_layer_order(runs):
    run = runs[0][0][0]
    from resdsl.spec.compiler import compile_network
    from resdsl.spec import load_network

    names = [n for n, _ in compile_network(load_network(SPEC, TINY)).response_layers()]
    resp = read(run / "responses.json")
    assert resp["split"] == "test"
    assert [x["name"] for x in resp["layers"]] == names and len(names) == 7
    assert all(x["std"] > 0 for x in resp["layers"])


def test_response_probe_measures_before_inplace_relu():
    from resdsl.train.evaluate import ResponseProbe

    bn = torch.nn.BatchNorm2d(4).eval()
    seq = torch.nn.Sequential(bn, torch.nn.ReLU(inplace=True))
    x = torch.randn(8, 4, 5, 5)
    with torch.no_grad():
        expected = bn(x).std().item()
        probe = ResponseProbe([("bn", bn)])
        seq(x)
    probe.close()
    assert probe.result()[0]["std"] == pytest.approx(expected, rel=1e-5)


def test_on_eval_sees_rows_and_seeds_differ(runs):
    (r0, s0), (r1, s1) = runs[0]
    rows = runs[1]
    assert [r["iter"] for r in rows] == [40, 80, 120, 40, 80, 120]
    assert rows[2] == s0["final"]
    assert s0["hash"] != s1["hash"]
    assert metrics(r0)[0]["train_loss"] != metrics(r1)[0]["train_loss"]


def test_on_eval_true_prunes(tmp_path):
    s = train(tiny(), tmp_path / "p", on_eval=lambda row: row["iter"] >= 40, quiet=True)
    assert s["status"] == "pruned" and s["iters_done"] == 40
    assert read(tmp_path / "p" / "summary.json")["status"] == "pruned"


def test_val_split_and_epochs(tmp_path):
    s = train(tiny(iters=None, epochs=0.5, val_split=500), tmp_path / "v", quiet=True)
    cfg = read(tmp_path / "v" / "config.json")
    # 4500 training images / 32 = 140 batches per epoch -> 70 iterations
    assert cfg["recipe"]["iters"] == 70 and cfg["recipe"]["val_split"] == 500
    assert s["final"]["val_err"] is not None and 0 <= s["final"]["val_err"] <= 1
    assert s["final"]["epoch"] == pytest.approx(70 * 32 / 4500, abs=1e-3)


def test_refuses_to_overwrite_a_record(runs):
    with pytest.raises(RunError, match="already holds a run record"):
        train(tiny(), runs[0][0][0], quiet=True)


# --------------------------------------------------------------------------- config

def test_resolve_presets_and_scaling():
    r = resolve(TrainConfig(SPEC, {"n": 3}))
    assert (r.iters, r.batch_size, r.lr, r.milestones, r.momentum, r.weight_decay) == \
        (64000, 128, 0.1, [32000, 48000], 0.9, 1e-4)
    assert r.data == "cifar10" and r.warmup is None and r.test_mode == "single"
    r = resolve(TrainConfig(SPEC, {"n": 3}, iters=2000))
    assert r.milestones == [1000, 1500]
    r = resolve(TrainConfig(SPEC, {"n": 3}, iters=2000, milestones=[100, 200], lr=0.05))
    assert r.milestones == [100, 200] and r.lr == 0.05
    # the 110-layer net warms up (section 4.2), ResNet-20 does not
    r = resolve(TrainConfig(SPEC, {"n": 18}))
    assert r.depth == 110 and r.warmup["lr"] == pytest.approx(0.01)
    assert r.warmup["until_err"] == 0.8
    assert resolve(TrainConfig(SPEC, {"n": 18}, warmup="off")).warmup is None
    assert resolve(TrainConfig(SPEC, {"n": 3}, warmup="50")).warmup["max_iters"] == 50
    r = resolve(TrainConfig("resnet18", recipe="imagenet"))
    assert (r.batch_size, r.schedule, r.iters, r.test_mode) == (256, "plateau", 600000, "10crop")


@pytest.mark.parametrize("kw, message", [
    ({"recipe": "cifr"}, "did you mean 'cifar'"),
    ({"data": "cifar100"}, "did you mean 'cifar10'"),
    ({"lr": -0.1}, "positive"),
    ({"iters": -5}, "positive"),
    ({"batch_size": 0}, "positive"),
    ({"milestones": [300, 200]}, "increasing"),
    ({"iters": 100, "milestones": [50, 100]}, "before the end"),
    ({"iters": 10, "epochs": 1}, "not both"),
    ({"momentum": 1.5}, "below 1"),
    ({"test_mode": "10crop"}, "ImageNet"),
    ({"amp": "fp8"}, "amp"),
    ({"warmup": "soon"}, "warmup"),
    ({"device": "tpu"}, "did you mean"),
])
def test_resolve_rejects_nonsense(kw, message):
    with pytest.raises(RunError, match=message):
        resolve(TrainConfig(SPEC, {"n": 3}, **kw))


def test_config_hash_stable_and_sensitive(tmp_path):
    base = dict(spec=SPEC, overrides={"n": "3"}, data="synthetic", iters=100)
    h = config_hash(resolve(TrainConfig(**base)))
    assert h == config_hash(resolve(TrainConfig(**base)))
    # parameters given as strings or values, and the default written out, hash the same
    assert h == config_hash(resolve(TrainConfig(**{**base, "overrides": {"n": 3, "width": 16}})))
    # not: device, paths, evaluation cadence, workers, compile
    same = [{"device": "cpu"}, {"data_dir": "/elsewhere"}, {"eval_every": 7}, {"workers": 3},
            {"compile": True}]
    for kw in same:
        assert config_hash(resolve(TrainConfig(**{**base, **kw}))) == h, kw
    differ = [{"seed": 1}, {"lr": 0.05}, {"iters": 101}, {"batch_size": 64},
              {"overrides": {"n": "5"}}, {"overrides": {"n": "3", "shortcut": "B"}},
              {"milestones": [10, 20]}, {"weight_decay": 0.0}, {"val_split": 500},
              {"data": "cifar10"}, {"amp": "bf16"}, {"warmup": "10"}]
    hashes = {h}
    for kw in differ:
        other = config_hash(resolve(TrainConfig(**{**base, **kw})))
        assert other not in hashes, kw
        hashes.add(other)
    # the spec's text counts, not its path
    copy = tmp_path / "copy.net"
    copy.write_text(Path(SPEC).read_text())
    (tmp_path / "prelude.net").write_text((REPO / "specs" / "prelude.net").read_text())
    assert config_hash(resolve(TrainConfig(**{**base, "spec": str(copy)}))) == h
    copy.write_text(Path(SPEC).read_text().replace("conv(width, 3)", "conv(width, 3, pad=1)"))
    assert config_hash(resolve(TrainConfig(**{**base, "spec": str(copy)}))) != h


def test_schedule_warmup_and_plateau():
    w = {"mode": "auto", "lr": 0.01, "until_err": 0.8, "window": 4, "max_iters": 100}
    s = Schedule(0.1, "multistep", [10, 20], None, w)
    assert s.lr(0) == 0.01
    s.observe_train(3, [1.0, 0.9, 0.9])
    assert s.warming                              # window not full yet
    s.observe_train(4, [0.7])
    assert s.warming                              # mean 0.875
    s.observe_train(6, [0.6, 0.5])
    assert not s.warming and s.warmup_ended_at == 6
    assert s.lr(6) == 0.1 and s.lr(10) == pytest.approx(0.01) and s.lr(25) == pytest.approx(0.001)
    capped = Schedule(0.1, "multistep", [], None, dict(w, max_iters=5))
    capped.observe_train(5, [1.0] * 5)
    assert not capped.warming and capped.warmup_ended_at == 5
    p = Schedule(0.1, "plateau", None, {"patience": 2, "threshold": 0.01, "factor": 0.1,
                                        "max_drops": 3}, None)
    drops = [p.observe_eval(e) for e in (0.5, 0.4, 0.395, 0.41, 0.3, 0.3, 0.3)]
    assert drops == [False, False, False, True, False, False, True]
    assert p.lr(0) == pytest.approx(0.001)
    q = Schedule(0.1, "plateau", None, p.plateau, None)
    q.load_state_dict(p.state_dict())
    assert q.state_dict() == p.state_dict()


# --------------------------------------------------------------------------- resume, kill, interrupt

def _assert_same_run(a: Path, b: Path) -> None:
    ra, rb = metrics(a), metrics(b)
    assert [r["iter"] for r in ra] == [r["iter"] for r in rb]
    for x, y in zip(ra, rb):
        assert {k: x[k] for k in EXACT_KEYS} == {k: y[k] for k in EXACT_KEYS}
    sa, sb = read(a / "summary.json"), read(b / "summary.json")
    assert sa["status"] == sb["status"] == "completed"
    assert sa["best"] == sb["best"]
    wa = torch.load(a / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(b / "checkpoint.pt", weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    args = TINY_ARGS + ["--iters", "240", "--eval-every", "60", "--quiet"]
    ref = run_cli(args + ["--out", "ref"], tmp_path)
    assert ref.returncode == 0, ref.stderr
    proc = cli(args + ["--out", "killed"], tmp_path)
    wait_for(tmp_path / "killed" / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    killed = tmp_path / "killed"
    s = read(killed / "summary.json")
    assert s["status"] == "running" and s["iters_done"] < 240
    res = run_cli(["train", "--resume", "killed", "--quiet"], tmp_path)
    assert res.returncode == 0, res.stderr
    _assert_same_run(tmp_path / "ref", killed)


@pytest.mark.slow
def test_sigint_checkpoints_interrupted_and_resumes(tmp_path):
    args = TINY_ARGS + ["--iters", "100000", "--eval-every", "20", "--quiet"]
    proc = cli(args + ["--out", "int"], tmp_path)
    run = tmp_path / "int"
    wait_for(run / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    s = read(run / "summary.json")
    assert s["status"] == "interrupted" and "--resume" in s["reason"]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["iter"] == s["iters_done"] > 0


def interrupt_before(iteration: int, cfg, out: Path, monkeypatch) -> dict:
    """Train ``cfg`` into ``out`` and stop it as Ctrl-C would just before ``iteration`` (at an
    iteration boundary); returns the interrupted run's summary."""
    from resdsl.train import signals

    class FakeStop(signals.StopFlag):
        """The signal handler's flag, reading "hit" at the iteration-th check."""

        reads = 0

        @property
        def hit(self):
            FakeStop.reads += 1
            return "SIGINT" if FakeStop.reads == iteration else None

        @hit.setter
        def hit(self, value):
            pass

    with monkeypatch.context() as m:
        m.setattr(signals, "StopFlag", FakeStop)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, quiet=True)
    return read(out / "summary.json")


def test_interrupt_and_resume_in_process_is_exact(tmp_path, monkeypatch):
    """A KeyboardInterrupt at an iteration boundary (not at an evaluation) resumes exactly."""
    train(tiny(iters=90, eval_every=30), tmp_path / "ref", quiet=True)
    interrupt_before(45, tiny(iters=90, eval_every=30), tmp_path / "b", monkeypatch)
    s = read(tmp_path / "b" / "summary.json")
    assert s["status"] == "interrupted" and s["iters_done"] == 44
    done = resume(tmp_path / "b", quiet=True)
    _assert_same_run(tmp_path / "ref", tmp_path / "b")
    # summary.json reports the whole run, not the last segment: wall time of both segments,
    # throughput over every image trained (each once)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert done["wall_s"] > s["wall_s"] > 0
    assert ck["images"] == 90 * 32
    assert done["images_per_s"] == pytest.approx(ck["images"] / ck["train_s_total"])
    # ... and which machine trained which iterations, at what speed: one segment per process
    assert [(g["from_iter"], g["to_iter"]) for g in s["segments"]] == [(0, 44)]
    assert [(g["from_iter"], g["to_iter"]) for g in done["segments"]] == [(0, 44), (44, 90)]
    assert done["segments"][0] == s["segments"][0]
    for seg in done["segments"]:
        assert (seg["device"], seg["threads"], seg["world_size"]) == ("cpu", torch.get_num_threads(), 1)
        assert seg["images_per_s"] > 0 and seg["started"] <= done["updated"]
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        assert seg["hardware"] and ("model name" not in cpuinfo or seg["hardware"] in cpuinfo)
    assert read(tmp_path / "ref" / "summary.json")["segments"][0]["to_iter"] == 90


def test_segments_of_a_record_from_before_them_and_of_redone_work(tmp_path, monkeypatch):
    """Resuming a run whose summary has no segments (recorded before they were kept) starts them
    with its iterations so far, hardware unknown; a segment that got past the checkpoint (work
    lost to a kill) is cut back to it, since the resumed process trains those iterations again."""
    from resdsl.report.records import hardware_text

    first = interrupt_before(45, tiny(iters=60, eval_every=30), tmp_path / "a", monkeypatch)
    assert first["iters_done"] == 44
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    del first["segments"]                                  # a -> a record from before segments
    (tmp_path / "a" / "summary.json").write_text(json.dumps(first))
    done = resume(tmp_path / "a", quiet=True)
    unrecorded, this = done["segments"]
    assert unrecorded == {"from_iter": 0, "to_iter": 44, "hardware": None}
    assert (this["from_iter"], this["to_iter"], this["device"]) == (44, 60, "cpu")
    assert hardware_text(done["segments"]) == f"unrecorded + {this['hardware']} ({this['threads']} threads)"

    b = read(tmp_path / "b" / "summary.json")               # b: the process got to 52, then died
    b["segments"][0]["to_iter"] = 52
    b["segments"].append(dict(b["segments"][0], from_iter=52, to_iter=55))
    (tmp_path / "b" / "summary.json").write_text(json.dumps(b))
    done = resume(tmp_path / "b", quiet=True)
    assert [(g["from_iter"], g["to_iter"]) for g in done["segments"]] == [(0, 44), (44, 60)]

    # c: segments begun in the middle of a run (its first process kept none): the rest before them
    c = interrupt_before(21, tiny(iters=60, eval_every=30), tmp_path / "c", monkeypatch)
    c["segments"] = [dict(c["segments"][0], from_iter=12)]
    (tmp_path / "c" / "summary.json").write_text(json.dumps(c))
    done = resume(tmp_path / "c", quiet=True)
    assert [(g["from_iter"], g["to_iter"], g["hardware"] is None) for g in done["segments"]] == [
        (0, 12, True), (12, 20, False), (20, 60, False)]


def test_resume_refuses_finished_and_missing(runs, tmp_path):
    with pytest.raises(RunError, match="completed"):
        resume(runs[0][0][0], quiet=True)
    with pytest.raises(RunError, match="not a run record"):
        resume(tmp_path, quiet=True)


# --------------------------------------------------------------------------- divergence, CLI errors

def test_divergence_is_recorded_with_iteration(tmp_path):
    res = run_cli(TINY_ARGS + ["--iters", "200", "--lr", "1e6", "--eval-every", "100",
                               "--out", "div", "--quiet"], tmp_path)
    assert res.returncode == 1, res.stderr
    assert "diverged" in res.stderr and "Traceback" not in res.stderr
    s = read(tmp_path / "div" / "summary.json")
    assert s["status"] == "diverged"
    assert isinstance(s["diverged_at"], int) and 1 <= s["diverged_at"] <= 200
    assert f"iteration {s['diverged_at']}" in s["reason"] and f"iteration {s['diverged_at']}" in res.stderr


def test_diverged_api_returns_summary(tmp_path):
    s = train(tiny(lr=1e6), tmp_path / "d", quiet=True)
    assert s["status"] == "diverged" and s["diverged_at"] >= 1


def run_main(args, monkeypatch, capsys, cwd):
    from resdsl.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["resdsl", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("extra, message", [
    (["--recipe", "cifr"], "did you mean 'cifar'"),
    (["--amp", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
    (["--iters", "-5"], "must be positive"),
    (["--data", "imagenett"], "did you mean 'imagenet'"),
    (["--milestones", "30,x"], "--milestones"),
    (["--nn", "3"], "nn"),
])
def test_bad_options_exit_2_without_traceback(extra, message, monkeypatch, capsys, tmp_path):
    code, out, err = run_main(["train", SPEC, "--n", "1", "--width", "8", "--data", "synthetic",
                               "--iters", "10", "--out", "o", "--quiet", *extra],
                              monkeypatch, capsys, tmp_path)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err


def test_cli_refuses_nonempty_out(monkeypatch, capsys, tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    code, _, err = run_main([*TINY_ARGS, "--iters", "10", "--out", "o"],
                            monkeypatch, capsys, tmp_path)
    assert code == 2 and "not empty" in err


def test_cli_trains_and_prints_summary(monkeypatch, capsys, tmp_path):
    code, out, err = run_main([*TINY_ARGS, "--iters", "20", "--eval-every", "10",
                               "--quiet"], monkeypatch, capsys, tmp_path)
    assert code in (0, None), err
    assert "completed" in out and "test error" in out and "run record" in out
    runs_dir = list((tmp_path / "reports" / "runs").iterdir())
    assert len(runs_dir) == 1 and runs_dir[0].name.startswith("cifar_resnet-n1_shortcutA_width8-s0-")
    assert err.count("iter ") == 2            # --quiet: one log line per evaluation


# --------------------------------------------------------------------------- CIFAR-10 files

def test_cifar10_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    folder = write_cifar(tmp_path / "data")
    s = train(TrainConfig(SPEC, dict(TINY), data_dir=str(tmp_path / "data"), iters=12,
                          batch_size=16, eval_every=6), tmp_path / "c", quiet=True)
    assert s["status"] == "completed"
    cfg = read(tmp_path / "c" / "config.json")
    assert cfg["recipe"]["data"] == "cifar10" and cfg["data"]["train_images"] == 320
    assert cfg["data"]["test_images"] == 64
    assert "cifar10 with 320 training images" in s["reduced_why"]
    assert folder.exists()


def test_resume_on_another_machine_finds_the_data_where_it_is_now(tmp_path, monkeypatch):
    """A run stopped at an evaluation and resumed with --data-dir pointing at the data set's new
    place ends where the uninterrupted run ends; options that change the run are refused."""
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    write_cifar(tmp_path / "data")
    cfg = dict(data_dir=str(tmp_path / "data"), iters=12, batch_size=16, eval_every=6)
    whole = train(TrainConfig(SPEC, dict(TINY), **cfg), tmp_path / "whole", quiet=True)

    def stop_at_first_evaluation(row):
        raise KeyboardInterrupt       # as Ctrl-C there would: checkpoint, status interrupted

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(SPEC, dict(TINY), **cfg), tmp_path / "part", quiet=True,
              on_eval=stop_at_first_evaluation)
    assert read(tmp_path / "part" / "summary.json")["status"] == "interrupted"
    (tmp_path / "data").rename(tmp_path / "moved")

    refused = run_cli(["train", "--resume", "part", "--lr", "0.5"], tmp_path)
    assert refused.returncode == 2 and "not --lr" in refused.stderr
    assert "Traceback" not in refused.stderr
    res = run_cli(["train", "--resume", "part", "--data-dir", str(tmp_path / "moved"), "--quiet"],
                  tmp_path)
    assert res.returncode == 0, res.stderr
    s = read(tmp_path / "part" / "summary.json")
    assert s["status"] == "completed" and s["iters_done"] == 12
    assert s["final"]["test_err"] == whole["final"]["test_err"]
    assert s["final"]["train_loss"] == whole["final"]["train_loss"]


def test_resume_after_the_spec_changed_uses_the_recorded_spec(tmp_path):
    """The prelude a run imports was edited after it stopped (as a later checkout edits the
    shipped one): the run resumes with the spec texts config.json recorded, says so, and ends
    where the uninterrupted run ends, instead of refusing a checkpoint of "another
    configuration"."""
    specs = tmp_path / "specs"
    specs.mkdir()
    prelude = specs / "prelude.net"
    shutil.copy(REPO / "specs" / "prelude.net", prelude)
    mine = specs / "mine.net"
    mine.write_text(Path(SPEC).read_text())
    cfg = dict(spec=str(mine), iters=12, batch_size=16, eval_every=6)
    whole = train(tiny(**cfg), tmp_path / "whole", quiet=True)

    def stop_at_first_evaluation(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(**cfg), tmp_path / "part", quiet=True, on_eval=stop_at_first_evaluation)
    # a basic block with one more conv: the net the files describe now is another one
    prelude.write_text(prelude.read_text().replace(
        "conv(c, 3); bn\n  add(shortcut)", "conv(c, 3); bn; relu\n  conv(c, 3); bn\n  add(shortcut)", 1))
    assert summarize(resolve(tiny(**cfg)).net).params > whole["params"]
    # as a run started before input_mean.pt was recorded: resuming writes it
    (tmp_path / "part" / "input_mean.pt").unlink()
    res = run_cli(["train", "--resume", "part"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "resuming with the spec texts recorded in its config.json" in res.stderr
    s = read(tmp_path / "part" / "summary.json")
    assert s["status"] == "completed" and s["iters_done"] == 12
    assert s["params"] == whole["params"]
    assert s["final"]["test_err"] == whole["final"]["test_err"]
    assert s["final"]["train_loss"] == whole["final"]["train_loss"]
    part_mean = torch.load(tmp_path / "part" / "input_mean.pt", weights_only=True)
    whole_mean = torch.load(tmp_path / "whole" / "input_mean.pt", weights_only=True)
    assert torch.equal(part_mean["pixel"], whole_mean["pixel"])
    # the record still names the user's spec file, not the temporary copy it was rebuilt from
    assert read(tmp_path / "part" / "config.json")["request"]["spec"] == str(mine)


# --------------------------------------------------------------------------- ensemble, DDP

def test_ensemble_of_two_runs(runs, tmp_path, monkeypatch, capsys):
    (r0, s0), (r1, s1) = runs[0]
    code, out, err = run_main(["ensemble", str(r0), str(r1), "--out", "ens"],
                              monkeypatch, capsys, tmp_path)
    assert code in (0, None), err
    cfg = read(tmp_path / "ens" / "config.json")
    assert cfg["kind"] == "ensemble" and cfg["members"] == [str(r0), str(r1)]
    s = read(tmp_path / "ens" / "summary.json")
    assert s["status"] == "completed"
    p0 = torch.load(r0 / "predictions.pt", weights_only=True)
    p1 = torch.load(r1 / "predictions.pt", weights_only=True)
    expected = ((p0["probs"] + p1["probs"]) / 2).argmax(1).ne(p0["targets"]).float().mean().item()
    assert s["final"]["test_err"] == pytest.approx(expected)
    assert s["member_errs"] == [s0["final"]["test_err"], s1["final"]["test_err"]]
    from resdsl.report.records import load_runs

    frame = load_runs(tmp_path).runs
    assert list(frame["kind"]) == ["ensemble"]


def test_ensemble_recomputes_without_predictions(runs, tmp_path):
    import shutil

    from resdsl.train.ensemble import ensemble

    (r0, _), (r1, _) = runs[0]
    copy = tmp_path / "copy"
    shutil.copytree(r1, copy)
    (copy / "predictions.pt").unlink()
    a = ensemble([r0, r1], tmp_path / "a")
    b = ensemble([r0, copy], tmp_path / "b")
    assert a["final"]["test_err"] == pytest.approx(b["final"]["test_err"])
    with pytest.raises(RunError, match="at least two"):
        ensemble([r0], tmp_path / "c")


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         # torchrun's own parser takes --n for an abbreviation of its options: use --set
         "-m", "resdsl", "train", SPEC, "--set", "n=1", "--set", "width=8", "--data", "synthetic",
         "--batch-size", "32", "--iters", "30", "--eval-every", "15",
         "--out", str(out), "--quiet"],
        cwd=tmp_path, env={**env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    s = read(out / "summary.json")
    assert s["status"] == "completed" and s["iters_done"] == 30
    assert read(out / "config.json")["world_size"] == 2
    assert [r["iter"] for r in metrics(out)] == [15, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert res.stdout.count("run record") == 1


# --------------------------------------------------------------------------- failures, amp, imagenet

def test_exception_in_training_is_recorded_as_failed(tmp_path):
    def boom(row):
        raise ValueError("the callback broke")

    with pytest.raises(ValueError, match="callback broke"):
        train(tiny(), tmp_path / "f", on_eval=boom, quiet=True)
    s = read(tmp_path / "f" / "summary.json")
    assert s["status"] == "failed" and "the callback broke" in s["reason"]
    assert s["iters_done"] == 40
    # a failed run continues from its last checkpoint
    s = resume(tmp_path / "f", quiet=True)
    assert s["status"] == "completed" and s["iters_done"] == 120


def test_setup_error_leaves_no_record(tmp_path, monkeypatch):
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    import resdsl.data.cifar as cifar

    def refuse(url, timeout):
        raise OSError("no network in tests")

    monkeypatch.setattr(cifar, "_urlopen", refuse)
    with pytest.raises(Exception, match=str(tmp_path / "cache")):
        train(TrainConfig(SPEC, dict(TINY), data_dir=str(tmp_path / "nothing"), iters=5),
              tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()


def test_sync_bn_needs_a_distributed_run(tmp_path):
    with pytest.raises(RunError, match="distributed"):
        train(tiny(sync_bn=True), tmp_path / "s", quiet=True)
    assert not (tmp_path / "s").exists()


def test_amp_bf16_on_cpu(tmp_path):
    s = train(tiny(iters=20, eval_every=10, amp="bf16"), tmp_path / "a", quiet=True)
    assert s["status"] == "completed"
    assert read(tmp_path / "a" / "config.json")["recipe"]["amp"] == "bf16"


def write_image_folders(root: Path, classes: int = 3, per_class: int = 4, size=(40, 48)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 2)):
        for c in range(classes):
            d = root / split / f"n{c:04d}"
            d.mkdir(parents=True)
            for i in range(n):
                base = np.full((size[0], size[1], 3), 60 * c, dtype=np.uint8)
                noise = rng.integers(0, 40, base.shape, dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"img{i}.png")


@pytest.mark.parametrize("mode", ["10crop", "multiscale"])
def test_imagenet_recipe_on_small_folders(tmp_path, mode):
    write_image_folders(tmp_path / "img")
    text = Path(SPEC).read_text().replace("classes 10", "classes 3")
    s = train(TrainConfig(text, dict(TINY), recipe="imagenet", data_dir=str(tmp_path / "img"),
                          iters=6, batch_size=4, eval_every=3, workers=0, test_mode=mode),
              tmp_path / "run", quiet=True)
    assert s["status"] == "completed"
    rows = metrics(tmp_path / "run")
    assert [r["view"] for r in rows] == ["center", mode]
    assert rows[-1]["test_top5_err"] is None            # 3 classes: top-5 is meaningless
    cfg = read(tmp_path / "run" / "config.json")
    assert cfg["recipe"]["schedule"] == "plateau" and cfg["recipe"]["test_mode"] == mode
    p = torch.load(tmp_path / "run" / "predictions.pt", weights_only=True)
    assert p["probs"].shape == (6, 3) and p["view"] == mode


def test_resume_at_an_evaluation_point_evaluates_it(runs, tmp_path):
    """A checkpoint taken at the last iteration whose evaluation never finished (stopped during
    the final evaluation): resuming evaluates, writes the final artifacts and completes."""
    import shutil

    run = tmp_path / "r"
    shutil.copytree(runs[0][0][0], run)
    rows = metrics(run)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    (run / "responses.json").unlink()
    s = read(run / "summary.json")
    (run / "summary.json").write_text(json.dumps(dict(s, status="interrupted")))
    out = resume(run, quiet=True)
    assert out["status"] == "completed"
    again = metrics(run)
    assert [r["iter"] for r in again] == [40, 80, 120]
    assert again[-1]["test_err"] == rows[-1]["test_err"]
    assert (run / "responses.json").exists()


# --------------------------------------------------------------------------- ensemble members

def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_ensemble_refuses_members_that_are_not_completed(runs, tmp_path, monkeypatch, capsys):
    (r0, _), (r1, _) = runs[0]
    stopped = _copy_run(r1, tmp_path / "stopped")
    s = read(stopped / "summary.json")
    (stopped / "summary.json").write_text(json.dumps(dict(s, status="interrupted")))
    running = _copy_run(r1, tmp_path / "running")
    (running / "summary.json").write_text(json.dumps(dict(s, status="running")))
    unsummarised = _copy_run(r1, tmp_path / "unsummarised")
    (unsummarised / "summary.json").unlink()
    code, out, err = run_main(["ensemble", str(r0), str(stopped), str(running), str(unsummarised),
                               "--out", "ens"], monkeypatch, capsys, tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "completed runs only" in err
    assert f"{stopped}: interrupted" in err and f"{running}: running" in err
    assert f"{unsummarised}: no readable summary.json" in err
    assert str(r0) + ":" not in err                     # the completed member is not listed
    assert not (tmp_path / "ens").exists()              # nothing written


class _Opaque:
    """Not a tensor nor plain data: torch.load(weights_only=True) refuses it."""


@pytest.mark.parametrize("damage", ["garbage predictions", "code in predictions",
                                    "garbage checkpoint", "predictions of another kind"])
def test_ensemble_member_files_torch_refuses_are_a_message(runs, tmp_path, monkeypatch, capsys,
                                                           damage):
    (r0, _), (r1, _) = runs[0]
    bad = _copy_run(r1, tmp_path / "bad")
    if damage == "garbage predictions":
        (bad / "predictions.pt").write_bytes(b"\x80\x02 not a torch file")
        what = f"{bad / 'predictions.pt'}: cannot read the predictions"
    elif damage == "code in predictions":
        torch.save({"probs": _Opaque()}, bad / "predictions.pt")
        what = f"{bad / 'predictions.pt'}: cannot read the predictions"
    elif damage == "predictions of another kind":
        torch.save({"probs": torch.zeros(3)}, bad / "predictions.pt")
        what = f"{bad / 'predictions.pt'}: not the predictions of a run"
    else:
        (bad / "predictions.pt").unlink()
        (bad / "weights.pt").unlink()          # a record from before weights.pt existed
        (bad / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
        what = f"{bad / 'checkpoint.pt'}: cannot read the checkpoint"
    code, out, err = run_main(["ensemble", str(r0), str(bad), "--out", "ens"],
                              monkeypatch, capsys, tmp_path)
    assert code == 2 and "Traceback" not in err, err
    assert what in err
    assert not (tmp_path / "ens").exists()


# --------------------------------------------------------------------------- a stuck run

# Runs `resdsl ARGS...` with the loss function replaced: at its STUCK_AT-th call it blocks for
# good inside a native call that no signal interrupts (a self-deadlocked pthread mutex, as a
# hung oneDNN barrier would), after writing "stuck" to FLAG.
STUCK_HARNESS = '''
import ctypes, sys
from pathlib import Path

import torch.nn.functional as F

flag, stuck_at, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
real = F.cross_entropy
calls = [0]


def cross_entropy(*a, **kw):
    calls[0] += 1
    if calls[0] == stuck_at:
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)
        libc.pthread_mutex_init(mutex, None)
        libc.pthread_mutex_lock(mutex)
        flag.write_text("stuck")
        libc.pthread_mutex_lock(mutex)
        flag.write_text("returned")
    return real(*a, **kw)


F.cross_entropy = cross_entropy
from resdsl.cli import main

sys.argv = ["resdsl", *args]
main()
'''


def _stuck_run(tmp_path: Path, signals_to_send: int, grace_s: str) -> tuple[Path, float, str]:
    """Start a run that gets stuck at iteration 30 (checkpoint at 20), send SIGTERMs; return the
    run folder, the seconds from the last signal to the exit, and stderr."""
    harness = tmp_path / "harness.py"
    harness.write_text(STUCK_HARNESS)
    flag = tmp_path / "flag"
    args = TINY_ARGS + ["--iters", "60", "--eval-every", "20", "--quiet", "--out", "stuck"]
    e = env()
    e["RESDSL_STOP_GRACE_S"] = grace_s
    proc = subprocess.Popen([sys.executable, str(harness), str(flag), "30", *args], cwd=tmp_path,
                            env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(flag, proc)
    time.sleep(0.5)
    for k in range(signals_to_send):
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0 if k + 1 < signals_to_send else 0)   # two requests, not one Ctrl-C
    t0 = time.time()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("a stuck run did not end after SIGTERM")
    assert proc.returncode == 130, err
    assert flag.read_text() == "stuck"     # ended inside the native call, which never returned
    return tmp_path / "stuck", time.time() - t0, err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the harness blocks on a glibc mutex")
def test_second_sigterm_ends_a_stuck_run_as_interrupted_and_it_resumes(tmp_path):
    run, took, err = _stuck_run(tmp_path, signals_to_send=2, grace_s="600")
    assert took < 10, took
    assert "Traceback" not in err and "second stop signal" in err
    s = read(run / "summary.json")
    assert s["status"] == "interrupted" and s["iters_done"] == 29
    assert "second stop signal" in s["reason"] and "--resume" in s["reason"]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["iter"] == 20                  # the last evaluation's checkpoint, intact
    first_wall = s["wall_s"]
    assert first_wall > ck["elapsed_s"]      # the segment ran on after its last checkpoint
    res = run_cli(["train", "--resume", "stuck", "--quiet"], tmp_path)
    assert res.returncode == 0, res.stderr
    done = read(run / "summary.json")
    assert done["status"] == "completed" and done["iters_done"] == 60
    # the whole run: both segments' wall time, throughput over every image trained
    assert done["wall_s"] >= first_wall
    end = torch.load(run / "checkpoint.pt", weights_only=True)
    assert end["images"] == 60 * 32
    assert done["images_per_s"] == pytest.approx(end["images"] / end["train_s_total"])


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the harness blocks on a glibc mutex")
def test_grace_period_ends_a_stuck_run_after_one_signal(tmp_path):
    run, took, err = _stuck_run(tmp_path, signals_to_send=1, grace_s="1")
    assert 0.5 < took < 10, took
    assert "did not stop within 1 s" in err
    s = read(run / "summary.json")
    assert s["status"] == "interrupted" and "did not stop within 1 s" in s["reason"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iter"] == 20

