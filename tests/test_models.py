"""Trained models: weights.pt in every completed run, resdsl.load_run / list_specs / load_runs,
`resdsl eval`, `resdsl export`, `resdsl build --seed`. Tiny real trainings on synthetic data and
on a CIFAR-format folder the tests write."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import resdsl
from resdsl.errors import RunError
from resdsl.spec.compiler import compile_network
from resdsl.spec import load_network
from resdsl.train import TrainConfig, train
from resdsl.train.devices import memory_format

from cifar_folder import write_cifar

REPO = Path(__file__).resolve().parent.parent
SPEC = str(REPO / "specs" / "cifar_6n2.net")
TINY = {"n": "1", "width": "8"}
VAL_SPLIT = 200


def tiny(**kw) -> TrainConfig:
    base = dict(spec=SPEC, overrides=dict(TINY), data="synthetic", iters=20, batch_size=32,
                eval_every=20)
    base.update(kw)
    return TrainConfig(**base)


def read(path: Path):
    return json.loads(Path(path).read_text())


def run_main(args, monkeypatch, capsys, cwd) -> tuple[int, str, str]:
    """`resdsl ARGS` in this process: (exit code, stdout, stderr)."""
    from resdsl.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["resdsl", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def checkpoint_model(run: Path, spec=SPEC, overrides=TINY) -> torch.nn.Module:
    """The network of a run with the weights of its checkpoint.pt, laid out as resdsl evaluates."""
    model = compile_network(load_network(spec, overrides))
    model.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=True)["model"])
    dev = torch.device("cpu")
    return model.to(dev, memory_format=memory_format(dev, model)).eval()


def images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A completed tiny run on synthetic data with a validation split."""
    d = tmp_path_factory.mktemp("models") / "run"
    s = train(tiny(val_split=VAL_SPLIT), d, quiet=True)
    assert s["status"] == "completed"
    return d


@pytest.fixture(scope="module")
def cifar_run(tmp_path_factory) -> tuple[Path, Path]:
    """A completed tiny run on a CIFAR-10 folder written here; returns (run, data folder)."""
    root = tmp_path_factory.mktemp("cifar")
    old = os.environ.get("RESDSL_DATA")
    os.environ["RESDSL_DATA"] = str(root / "cache")      # never the user's cache, never a download
    try:
        write_cifar(root / "data")
        s = train(TrainConfig(SPEC, dict(TINY), data_dir=str(root / "data"), iters=12, batch_size=16,
                              eval_every=12), root / "run", quiet=True)
    finally:
        if old is None:
            del os.environ["RESDSL_DATA"]
        else:
            os.environ["RESDSL_DATA"] = old
    assert s["status"] == "completed"
    return root / "run", root / "data"


# --------------------------------------------------------------------------- weights.pt

def test_a_completed_run_keeps_its_weights_in_weights_pt(run):
    weights = torch.load(run / "weights.pt", weights_only=True)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert isinstance(weights, dict) and list(weights) == list(ck["model"])
    assert all(torch.equal(weights[k], ck["model"][k]) for k in weights)
    assert all(v.device.type == "cpu" and v.is_contiguous() for v in weights.values())
    assert "optimizer" not in weights and "stem.conv1.weight" in weights
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((run / "weights.pt").stat().st_mode) == 0o666 & ~umask
    # the weights alone, without the optimizer's momentum and the rest of the checkpoint
    assert (run / "weights.pt").stat().st_size < (run / "checkpoint.pt").stat().st_size


def test_a_pruned_run_keeps_its_weights_and_a_diverged_one_does_not(tmp_path):
    s = train(tiny(iters=40), tmp_path / "p", on_eval=lambda row: True, quiet=True)
    assert s["status"] == "pruned" and s["iters_done"] == 20
    weights = torch.load(tmp_path / "p" / "weights.pt", weights_only=True)
    ck = torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=True)
    assert ck["iter"] == 20 and all(torch.equal(weights[k], ck["model"][k]) for k in weights)
    s = train(tiny(lr=1e6), tmp_path / "d", quiet=True)
    assert s["status"] == "diverged"
    assert not (tmp_path / "d" / "weights.pt").exists()


# --------------------------------------------------------------------------- the Python API

def test_load_run_gives_the_checkpoints_logits(run):
    torch.manual_seed(5)
    expected_draw = torch.rand(3)
    torch.manual_seed(5)
    model, cfg = resdsl.load_run(run)
    assert torch.equal(torch.rand(3), expected_draw)          # the caller's RNG is left alone
    assert not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert cfg.net.name == "cifar_resnet" and cfg.net.params == {"n": 1, "shortcut": "A", "width": 8}
    assert (cfg.data, cfg.iters, cfg.val_split, cfg.seed) == ("synthetic", 20, VAL_SPLIT, 0)
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), checkpoint_model(run)(x))


def test_an_older_record_without_weights_pt_loads_from_its_checkpoint(run, tmp_path, monkeypatch,
                                                                      capsys):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "weights.pt").unlink()
    model, _ = resdsl.load_run(old)
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), checkpoint_model(run)(x))
    code, out, err = run_main(["eval", old, "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["weights"] == "checkpoint.pt" and result["weights_iter"] == 20
    assert result["top1_err"] == read(run / "summary.json")["final"]["test_err"]


def test_load_run_rebuilds_a_network_whose_spec_changed_since(tmp_path, monkeypatch, capsys):
    """The spec file was edited and its import deleted after the run: the network is rebuilt from
    the spec texts config.json holds, not from what the files say now."""
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(REPO / "specs" / "prelude.net", specs / "prelude.net")
    mine = specs / "mine.net"
    mine.write_text(Path(SPEC).read_text())
    s = train(tiny(spec=str(mine), iters=10, eval_every=10), tmp_path / "r", quiet=True)
    mine.write_text(mine.read_text().replace('param shortcut = "A"', 'param shortcut = "B"'))
    (specs / "prelude.net").unlink()
    model, cfg = resdsl.load_run(tmp_path / "r")
    assert cfg.net.params["shortcut"] == "A" and cfg.request.spec == str(mine)
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), checkpoint_model(tmp_path / "r")(x))
    code, out, err = run_main(["eval", tmp_path / "r", "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["spec_rebuilt"] is True and result["top1_err"] == s["final"]["test_err"]


def _batches(folder: Path, names) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels of CIFAR batch files this test module wrote."""
    import pickle

    xs, ys = [], []
    for name in names:
        d = pickle.loads((folder / name).read_bytes())   # our own test files, not user data
        xs.append(d[b"data"].reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[b"labels"]))
    return np.concatenate(xs), np.concatenate(ys)


def test_load_input_mean_turns_raw_images_into_what_the_run_saw(cifar_run):
    """input_mean.pt holds the training images' per-pixel mean; normalizing the raw test images
    with it and running load_run's module gives the run's own final test error."""
    run, data = cifar_run
    folder = data / "cifar-10-batches-py"
    train_x, _ = _batches(folder, [f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = _batches(folder, ["test_batch"])
    mean = resdsl.load_input_mean(run)
    expected = train_x.astype(np.float64).mean(0)
    assert mean.pixel.shape == (3, 32, 32)
    np.testing.assert_allclose(mean.pixel.numpy(), expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(mean.channel.numpy(), expected.mean((1, 2)), rtol=0, atol=1e-4)
    model, _ = resdsl.load_run(run)
    with torch.no_grad():
        pred = model(mean.normalize(torch.from_numpy(test_x))).argmax(1).numpy()
    assert float((pred != test_y).mean()) == read(run / "summary.json")["final"]["test_err"]


def test_load_input_mean_of_a_run_without_one_says_so(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "input_mean.pt").unlink()
    with pytest.raises(RunError, match="no input_mean.pt"):
        resdsl.load_input_mean(old)


def test_list_specs_lists_the_shipped_networks():
    specs = resdsl.list_specs()
    assert [s.name for s in specs] == ["cifar_6n2", "cifar_preact", "mobilenetv2", "preact_resnet164", "regnet",
                                       "resnet18", "resnet34", "resnet50", "resnet50d", "resnet101", "resnet152",
                                       "resnet200", "resnext50_32x4d", "se_resnet50", "wide_resnet50_2",
                                       "wrn28_10"]   # not the prelude
    by_name = {s.name: s for s in specs}
    r50 = by_name["resnet50"]
    assert (r50.params, r50.macs, r50.depth, r50.input_shape) == (25_557_032, 3_857_973_248, 50, (3, 224, 224))
    assert r50.description == ("ResNet-50 for ImageNet (Table 1): bottleneck blocks (Fig. 5 right), "
                               "option B shortcuts.")
    assert by_name["resnet18"].description == "ResNet-18 for ImageNet (Table 1, Fig. 3): basic blocks (Fig. 5 left)."
    c = by_name["cifar_6n2"]
    assert (c.network, c.params, c.macs) == ("cifar_resnet", 269_722, 40_551_040)
    assert c.description == "The CIFAR-10 nets of section 4.2: 6n+2 weighted layers."
    assert all(s.description and "\n" not in s.description for s in specs)
    assert [s.name for s in resdsl.list_specs("resnet1*")] == ["resnet18", "resnet101", "resnet152"]
    assert resdsl.list_specs("nothing*") == []


def test_import_resdsl_loads_neither_torch_nor_pandas():
    code = ("import sys, resdsl; resdsl.list_specs('resnet50'); "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_load_runs_reads_run_records_into_a_dataframe(run):
    import pandas as pd

    frame = resdsl.load_runs(run.parent)
    assert isinstance(frame, pd.DataFrame)
    summary = read(run / "summary.json")
    assert frame[["run_dir", "name", "status", "dataset"]].to_dict("records") == [
        {"run_dir": "run", "name": "cifar_resnet", "status": "completed", "dataset": "synthetic"}]
    assert frame["test_err"].tolist() == [summary["final"]["test_err"]]


# --------------------------------------------------------------------------- resdsl eval

def test_eval_prints_the_runs_own_test_error(run, monkeypatch, capsys, tmp_path):
    final = read(run / "summary.json")["final"]
    code, out, err = run_main(["eval", run, "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert result["top1_err"] == final["test_err"] and result["top5_err"] == final["test_top5_err"]
    assert result["recorded_top1_err"] == final["test_err"]
    assert (result["split"], result["view"], result["images"], result["weights"], result["status"]) == (
        "test", "single", 1000, "weights.pt", "completed")
    code, out, err = run_main(["eval", run], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    top1 = f"top-1 error {100 * final['test_err']:.2f}%"
    assert f"{top1}   top-5 error {100 * final['test_top5_err']:.2f}%" in out
    assert f"recorded by the run at iteration {final['iter']}: {top1}" in out
    assert "test set: 1,000 images, single view, on cpu" in out


def test_eval_on_the_validation_split_and_another_batch_size(run, monkeypatch, capsys, tmp_path):
    final = read(run / "summary.json")["final"]
    code, out, err = run_main(["eval", run, "--split", "val", "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["split"], result["images"]) == ("val", VAL_SPLIT)
    assert result["top1_err"] == result["recorded_top1_err"] == final["val_err"]
    code, out, err = run_main(["eval", run, "--batch-size", "64", "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    # other batches may round a logit differently: at most one image's verdict may change
    assert result["images"] == 1000
    assert abs(result["top1_err"] - final["test_err"]) <= 1 / 1000 + 1e-12


def test_eval_on_a_cifar_folder_moved_since_the_run(cifar_run, tmp_path, monkeypatch, capsys):
    run, data = cifar_run
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)
    shutil.rmtree(data)
    try:
        code, out, err = run_main(["eval", run], monkeypatch, capsys, tmp_path)
        assert code == 2 and "Traceback" not in err
        assert f"was trained on cifar10 in {data}, which is not a folder here" in err
        assert "--data-dir DIR" in err
        code, out, err = run_main(["eval", run, "--data-dir", moved, "--json"], monkeypatch, capsys,
                                  tmp_path)
    finally:
        shutil.copytree(moved, data)
    assert code == 0, err
    result = json.loads(out)
    final = read(run / "summary.json")["final"]
    assert (result["data"], result["images"]) == ("cifar10", 64)
    assert result["top1_err"] == final["test_err"]
    assert not (tmp_path / "cache").exists()           # nothing downloaded, nothing cached


def test_a_relative_data_dir_is_recorded_as_the_folder_it_meant(tmp_path, monkeypatch, capsys):
    """`--data-dir ../data` is recorded as an absolute path, so `resdsl eval RUN` finds the data
    from any folder, not only from where the training was started."""
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    write_cifar(tmp_path / "data")
    (tmp_path / "work").mkdir()
    code, out, err = run_main(["train", SPEC, "--n", "1", "--width", "8", "--iters", "4",
                               "--batch-size", "16", "--eval-every", "4", "--quiet",
                               "--data-dir", "../data", "--out", "run"], monkeypatch, capsys,
                              tmp_path / "work")
    assert code == 0, err
    run = tmp_path / "work" / "run"
    cfg = read(run / "config.json")
    assert cfg["data"]["dir"] == cfg["request"]["data_dir"] == str(tmp_path / "data")
    code, out, err = run_main(["eval", run, "--json"], monkeypatch, capsys, tmp_path / "data")
    assert code == 0, err
    assert json.loads(out)["top1_err"] == read(run / "summary.json")["final"]["test_err"]
    assert not (tmp_path / "cache").exists()
    # the Python API records the same (resolve makes it absolute, not the command line)
    monkeypatch.chdir(tmp_path / "work")
    s = train(TrainConfig(SPEC, dict(TINY), data_dir="../data", iters=2, batch_size=16,
                          eval_every=2), tmp_path / "api", quiet=True)
    assert s["status"] == "completed"
    assert read(tmp_path / "api" / "config.json")["data"]["dir"] == str(tmp_path / "data")
    code, out, err = run_main(["train", SPEC, "--data-dir", " ", "--out", "x"], monkeypatch, capsys,
                              tmp_path / "work")
    assert code == 2 and "--data-dir is empty; give the data folder" in err
    assert not (tmp_path / "work" / "x").exists()


def test_eval_of_an_imagenet_run_in_its_view_and_another(tmp_path, monkeypatch, capsys):
    from test_train import write_image_folders

    write_image_folders(tmp_path / "img")
    text = Path(SPEC).read_text().replace("classes 10", "classes 3")
    s = train(TrainConfig(text, dict(TINY), recipe="imagenet", data_dir=str(tmp_path / "img"),
                          iters=6, batch_size=4, eval_every=3, workers=0, test_mode="10crop"),
              tmp_path / "run", quiet=True)
    code, out, err = run_main(["eval", tmp_path / "run", "--json"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["view"], result["images"], result["top5_err"]) == ("10crop", 6, None)   # 3 classes
    assert result["top1_err"] == result["recorded_top1_err"] == s["final"]["test_err"]
    code, out, err = run_main(["eval", tmp_path / "run", "--test-mode", "center", "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["view"], result["images"], result["recorded_top1_err"]) == ("center", 6, None)
    code, out, err = run_main(["eval", tmp_path / "run", "--test-mode", "multiscale", "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["view"], result["images"], result["recorded_top1_err"]) == ("multiscale", 6, None)
    assert 6 * result["top1_err"] == pytest.approx(round(6 * result["top1_err"]))   # k of 6 images
    code, out, err = run_main(["eval", tmp_path / "run", "--split", "val"], monkeypatch, capsys, tmp_path)
    assert code == 2 and "its val/ folder is its test set" in err


def test_eval_of_an_imagenet_run_needs_only_val(tmp_path, monkeypatch, capsys):
    """A run records its class list and input mean, so another machine holding only val/ (and
    maybe not every class of it) evaluates it with the labels and mean it trained with."""
    from test_train import write_image_folders

    write_image_folders(tmp_path / "img")
    text = Path(SPEC).read_text().replace("classes 10", "classes 3")
    s = train(TrainConfig(text, dict(TINY), recipe="imagenet", data_dir=str(tmp_path / "img"),
                          iters=6, batch_size=4, eval_every=3, workers=0, test_mode="center"),
              tmp_path / "run", quiet=True)
    assert read(tmp_path / "run" / "config.json")["data"]["classes"] == ["n0000", "n0001", "n0002"]
    val_only = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "img" / "val", val_only / "val")
    code, out, err = run_main(["eval", tmp_path / "run", "--data-dir", val_only, "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["view"], result["images"]) == ("center", 6)
    assert result["top1_err"] == result["recorded_top1_err"] == s["final"]["test_err"]
    assert not (val_only / ".resdsl").exists()          # no mean computed: the run's was used

    # val/ without its first class: the other two keep labels 1 and 2 (a rescan would say 0, 1)
    model, _ = resdsl.load_run(tmp_path / "run")
    mean = resdsl.load_input_mean(tmp_path / "run")
    shutil.rmtree(val_only / "val" / "n0000")
    code, out, err = run_main(["eval", tmp_path / "run", "--data-dir", val_only, "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 0, err
    from resdsl.data.imagenet import CenterCropTransform, load_image
    crop = read(tmp_path / "run" / "config.json")["spec"]["input_shape"][-1]
    view = CenterCropTransform(mean, resize=round(crop * 256 / 224), crop=crop)
    wrong = 0
    for label, cls in ((1, "n0001"), (2, "n0002")):
        for f in sorted((val_only / "val" / cls).iterdir()):
            with torch.no_grad():
                wrong += int(model(view(load_image(f), None)[None]).argmax(1).item() != label)
    assert json.loads(out)["images"] == 4
    assert json.loads(out)["top1_err"] == pytest.approx(wrong / 4)

    (val_only / "val" / "n0009").mkdir()                # a class the run never saw
    shutil.copy(val_only / "val" / "n0001" / "img0.png", val_only / "val" / "n0009" / "x.png")
    code, out, err = run_main(["eval", tmp_path / "run", "--data-dir", val_only], monkeypatch,
                              capsys, tmp_path)
    assert code == 2 and "Traceback" not in err and "class 'n0009' is not a training class" in err


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("case", ["not a run", "no such folder", "no weights", "garbage weights",
                                  "bad test mode",
                                  "test mode of another data set", "no val split", "bad split",
                                  "missing data dir", "data dir of synthetic data", "an ensemble"])
def test_eval_refuses_bad_input_with_one_message(case, run, cifar_run, tmp_path, monkeypatch,
                                                 capsys):
    target, extra = run, []
    if case == "not a run":
        (tmp_path / "notes").mkdir()
        target, message = tmp_path / "notes", f"{tmp_path / 'notes'}: not a run record (no config.json)"
    elif case == "no such folder":
        target, message = tmp_path / "nowhere", f"{tmp_path / 'nowhere'}: no such folder"
    elif case == "no weights":
        target = tmp_path / "stopped"
        shutil.copytree(run, target)
        (target / "weights.pt").unlink()
        (target / "checkpoint.pt").unlink()
        message = f"{target}: no trained weights (neither weights.pt nor checkpoint.pt)"
    elif case == "garbage weights":
        target = tmp_path / "damaged"
        shutil.copytree(run, target)
        (target / "weights.pt").write_bytes(b"PK\x03\x04 truncated")
        message = f"{target / 'weights.pt'}: cannot read the weights"
    elif case == "bad test mode":
        extra, message = ["--test-mode", "tencrop"], "did you mean '10crop'?"
    elif case == "test mode of another data set":
        extra, message = ["--test-mode", "10crop"], "--test-mode 10crop needs ImageNet-style data"
    elif case == "no val split":
        target, extra = cifar_run[0], ["--split", "val"]
        message = "the run held out no validation images"
    elif case == "bad split":
        extra, message = ["--split", "train"], "unknown --split 'train': choose one of test, val"
    elif case == "missing data dir":
        extra, message = ["--data-dir", tmp_path / "gone"], f"--data-dir {tmp_path / 'gone'}: no such folder"
    elif case == "data dir of synthetic data":
        extra, message = ["--data-dir", tmp_path], "synthetic data, which is generated, not read"
    else:
        target = tmp_path / "ens"
        target.mkdir()
        (target / "config.json").write_text(json.dumps({"kind": "ensemble", "members": []}))
        message = "is an ensemble record: it has no network of its own"
    code, out, err = run_main(["eval", target, *extra], monkeypatch, capsys, tmp_path)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err and out == ""


def test_export_refuses_bad_input_before_writing(run, tmp_path, monkeypatch, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    (bare / "weights.pt").unlink()
    (bare / "checkpoint.pt").unlink()
    for target, onnx, message in [
            (tmp_path, tmp_path / "a.onnx", "not a run record (no config.json)"),
            (bare, tmp_path / "b.onnx", "no trained weights"),
            (run, run / "weights.pt", "is an input of this command; it is never overwritten"),
            (run, run / "summary.json", "is an input of this command; it is never overwritten")]:
        code, out, err = run_main(["export", target, "--onnx", onnx, "--force"], monkeypatch, capsys,
                                  tmp_path)
        assert code == 2 and message in err and "Traceback" not in err, (target, err)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*"))
    assert torch.load(run / "weights.pt", weights_only=True)          # untouched
    assert read(run / "summary.json")["status"] == "completed"


# --------------------------------------------------------------------------- ONNX

def test_export_equals_pytorch(run, tmp_path, monkeypatch, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    path = tmp_path / "r.onnx"
    code, out, err = run_main(["export", run, "--onnx", path, "--check"], monkeypatch, capsys, tmp_path)
    assert code == 0, err
    assert f"wrote {path}: cifar_resnet from {run} (completed, iteration 20; weights.pt)" in out
    assert "random batch of 2): max abs diff" in out and out.rstrip().endswith(": ok")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "onnxruntime is not installed: checking with onnx's reference evaluator" in err
        assert "check (onnx reference evaluator, random batch of 2)" in out
    else:                                       # the onnx extra installs it: CI takes this branch
        assert "check (onnxruntime, random batch of 2)" in out and "not installed" not in err
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.onnx"]       # no temporary file left
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"]
    x = images(3, seed=1)                                    # batch 3: the batch axis is dynamic
    (logits,) = ReferenceEvaluator(model).run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = checkpoint_model(run)(x).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


def test_export_check_without_onnxruntime_uses_the_reference_evaluator(run, tmp_path, monkeypatch,
                                                                       capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import resdsl.onnx_export as onnx_export

    monkeypatch.setattr(onnx_export, "onnxruntime_installed", lambda: False)
    code, out, err = run_main(["export", run, "--onnx", tmp_path / "r.onnx", "--check"], monkeypatch,
                              capsys, tmp_path)
    assert code == 0, err
    assert "onnxruntime is not installed: checking with onnx's reference evaluator" in err
    assert "check (onnx reference evaluator, random batch of 2): max abs diff" in out
    assert out.rstrip().endswith(": ok")


def test_export_check_fails_when_the_outputs_differ(run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import resdsl.onnx_export as onnx_export

    real = onnx_export._run_onnx

    def off_by_a_bit(path, x):                  # a runtime that gets the numbers slightly wrong
        got, runtime = real(path, x)
        return got + 0.01, runtime

    monkeypatch.setattr(onnx_export, "_run_onnx", off_by_a_bit)
    code, out, err = run_main(["export", run, "--onnx", tmp_path / "r.onnx", "--check"], monkeypatch,
                              capsys, tmp_path)
    assert code == 1
    assert "max abs diff 0.01" in err and "differ from PyTorch's" in err and "Traceback" not in err


def _outputs(path: Path, x: torch.Tensor) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, {"image": x.numpy()})[0]


def test_build_seed_makes_the_exported_initialization_reproducible(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    paths = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        paths[name] = tmp_path / f"{name}.onnx"
        code, out, err = run_main(["build", "cifar_6n2", "--n", "1", "--width", "4", "--onnx",
                                   paths[name], "--seed", seed], monkeypatch, capsys, tmp_path)
        assert code == 0, err
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    assert paths["a"].read_bytes() != paths["c"].read_bytes()
    # seed 1 is torch.manual_seed(1) and then the module, as the trainer builds it
    torch.manual_seed(1)
    net = resdsl.build("cifar_6n2", n=1, width=4).eval()
    x = images(2)
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(_outputs(paths["a"], x), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(_outputs(paths["c"], x) - expected).max() > 1e-2
    code, out, err = run_main(["build", "cifar_6n2", "--seed", "1"], monkeypatch, capsys, tmp_path)
    assert code == 2 and "--seed seeds the initialization of the exported network" in err


SHIPPED_RESNET20 = REPO / "reports" / "cifar10-full" / "resnet20"
# The real CIFAR-10 beside the checkout, where the development machines keep it (never in CI)
REAL_CIFAR10 = Path(os.environ.get("RESDSL_CIFAR10_DIR",
                                   REPO.parent / "shared" / "data" / "cifar-10-batches-py"))


def test_the_shipped_resnet20_evaluates_through_the_cli(monkeypatch, capsys, tmp_path):
    """`resdsl eval` of the shipped run on a CIFAR-format folder written here: its top-1 error is
    the one counted by argmax over load_run's module on the same raw images."""
    import pickle

    data = write_cifar(tmp_path, n=200, seed=3)
    code, out, err = run_main(["eval", SHIPPED_RESNET20, "--data-dir", data, "--json"], monkeypatch,
                              capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert (result["images"], result["weights"], result["weights_iter"]) == (200, "weights.pt", 64000)
    batch = pickle.loads((data / "test_batch").read_bytes())
    raw = torch.from_numpy(batch[b"data"].reshape(-1, 3, 32, 32))
    labels = torch.tensor(batch[b"labels"])
    model, _ = resdsl.load_run(SHIPPED_RESNET20)
    with torch.no_grad():
        logits = model(resdsl.load_input_mean(SHIPPED_RESNET20).normalize(raw))
    wrong = int((logits.argmax(1) != labels).sum())
    assert result["top1_err"] == pytest.approx(wrong / 200, abs=1e-12)
    assert result["recorded_top1_err"] is None      # 200 images, not the run's 10,000: nothing to set beside


@pytest.mark.skipif(not (REAL_CIFAR10 / "test_batch").exists(),
                    reason=f"the real CIFAR-10 is not at {REAL_CIFAR10} (RESDSL_CIFAR10_DIR)")
def test_the_shipped_resnet20_reproduces_its_test_error_on_the_real_cifar10(monkeypatch, capsys,
                                                                              tmp_path):
    code, out, err = run_main(["eval", SHIPPED_RESNET20, "--data-dir", REAL_CIFAR10, "--json"],
                              monkeypatch, capsys, tmp_path)
    assert code == 0, err
    result = json.loads(out)
    final = read(SHIPPED_RESNET20 / "summary.json")["final"]
    assert result["images"] == 10000
    assert (result["top1_err"], result["top5_err"]) == (final["test_err"], final["test_top5_err"])
    assert round(100 * result["top1_err"], 2) == 8.36                  # the README's figure


def shipped_summaries() -> list[Path]:
    """The summary.json files the repository ships under reports/: those git tracks (a user's own
    runs and sweeps there are not shipped), or every one where this is no git checkout."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", "reports"], cwd=REPO, text=True,
                                capture_output=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return sorted((REPO / "reports").rglob("summary.json"))
    return sorted(REPO / f for f in listed.split("\0") if f.endswith("/summary.json"))


SHIPPED_RUNS = [p.parent for p in shipped_summaries()
                if read(p).get("status") == "completed" and (p.parent / "config.json").exists()
                and read(p.parent / "config.json").get("kind") == "run"]


@pytest.mark.parametrize("run_dir", SHIPPED_RUNS, ids=lambda p: str(p.relative_to(REPO / "reports")))
def test_every_completed_run_shipped_under_reports_is_a_usable_model(run_dir):
    """The issue's rule for the shipped records: a completed run keeps its trained weights in the
    repository (weights.pt; checkpoints stay local), so load_run gives its network."""
    assert (run_dir / "weights.pt").is_file(), f"{run_dir} has no weights.pt"
    summary = read(run_dir / "summary.json")
    model, cfg = resdsl.load_run(run_dir)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == summary["params"]
    state = torch.load(run_dir / "weights.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_the_shipped_records_include_the_full_recipe_and_reduced_runs():
    names = {str(p.relative_to(REPO / "reports")) for p in SHIPPED_RUNS}
    assert {"cifar10-full/resnet20", "cifar10/resnet20-2k", "cifar10/plain20-2k",
            "cifar10/resnet56-2k", "cifar10/plain56-2k"} <= names


def test_the_shipped_resnet20_is_a_usable_model():
    """reports/cifar10-full/resnet20, trained with the full recipe, ships as weights without its
    checkpoint: it loads as the paper's ResNet-20 and its record is complete and consistent."""
    run = SHIPPED_RESNET20
    summary = read(run / "summary.json")
    assert (summary["status"], summary["iters_done"], summary["reduced"]) == ("completed", 64000, False)
    assert not (run / "checkpoint.pt").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == list(range(1000, 64001, 1000))
    assert summary["final"] == rows[-1] and summary["final"]["test_err"] < 0.09   # paper: 8.75%
    assert [r["lr"] for r in rows if r["iter"] in (32000, 48000, 64000)] == \
        pytest.approx([0.1, 0.01, 0.001])            # a row's lr is that of the iterations before it
    model, cfg = resdsl.load_run(run)
    assert not model.training and sum(p.numel() for p in model.parameters()) == 269722   # 0.27M
    assert (cfg.iters, cfg.batch_size, cfg.milestones, cfg.seed) == (64000, 128, [32000, 48000], 0)
    mean = resdsl.load_input_mean(run)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert model(mean.normalize(images)).shape == (2, 10)
