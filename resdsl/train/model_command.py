"""`resdsl eval` and `resdsl export`: the commands on a run's trained model (resdsl.train.trained)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from resdsl import record
from resdsl.errors import DataError, RunError
from resdsl.cli_common import choices_metavar, complete_choices
from resdsl.data.names import TEST_MODES
from resdsl.text import choose
from resdsl.train import options as opt

SPLITS = ("test", "val")


def _run_folder(run_dir: Path) -> Path:
    """A folder that holds a run record (config.json), or a message."""
    if not run_dir.exists():
        raise RunError(f"{run_dir}: no such folder")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a folder (give a run record's folder)")
    record.read_run_config(run_dir)          # "not a run record (no config.json)" and kin
    return run_dir


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def eval_command(
    run_dir: Path = typer.Argument(..., help="A run record: the folder resdsl train (or sweep) wrote."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", metavar="DIR",
                                            help="Where the run's data set is now (default: the folder it "
                                                 "was trained on)."),
    test_mode: Optional[str] = typer.Option(None, "--test-mode", metavar=choices_metavar(TEST_MODES),
                                            autocompletion=complete_choices(TEST_MODES),
                                            help="single (CIFAR-style data); center, 10crop or multiscale "
                                                 "(ImageNet). Default: the run's."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Images per evaluation batch (default 500, ImageNet 250)."),
    device: opt.DeviceOption = "auto",
    split: str = typer.Option("test", "--split", metavar=choices_metavar(SPLITS),
                              autocompletion=complete_choices(SPLITS),
                              help="test, or val: the images the run held out with --val-split."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
):
    """Evaluate a run's trained weights: top-1 and top-5 error on its test (or validation) set.

    Examples:

    \b
      resdsl eval reports/runs/r110-s0
      resdsl eval reports/runs/r50 --data-dir /data/imagenet --test-mode 10crop --json
    """
    from resdsl.spec.analysis import estimate_memory
    from resdsl.machine import check_memory
    from resdsl.train.data import default_eval_batch, open_eval_data
    from resdsl.train.devices import available_memory, device_name
    from resdsl.train.evaluate import evaluate, evaluate_final_view, periodic_view
    from resdsl.train.config import resolve_run
    from resdsl.train.trained import load_trained

    _run_folder(run_dir)
    split = choose("unknown --split", split, SPLITS, RunError)
    if split == "val" and test_mode is not None:
        raise RunError("--test-mode chooses the view of the test set; the validation images are "
                       "evaluated on the single (centre) view")
    if data_dir is not None and not data_dir.expanduser().is_dir():
        raise DataError(f"--data-dir {data_dir}: no such folder")
    changes = {"device": device}
    if data_dir is not None:
        changes["data_dir"] = str(data_dir)
    if test_mode is not None:
        changes["test_mode"] = test_mode
    r, rebuilt = resolve_run(run_dir, **changes)
    if r.data == "synthetic" and data_dir is not None:
        raise RunError(f"{run_dir} was trained on synthetic data, which is generated, not read: "
                       "--data-dir does not apply")
    if r.data != "synthetic" and r.data_dir is not None and not Path(r.data_dir).expanduser().is_dir():
        raise DataError(f"{run_dir} was trained on {r.data} in {r.data_dir}, which is not a folder "
                        "here; give the data's place with --data-dir DIR")
    if split == "val" and r.data == "imagenet":
        raise RunError(f"{run_dir}: an ImageNet run has no validation split of its own: its val/ "
                       "folder is its test set (--split test)")
    if split == "val" and not r.val_split:
        raise RunError(f"{run_dir}: the run held out no validation images (trained without "
                       "--val-split); evaluate --split test")
    run = load_trained(run_dir, r, rebuilt)
    batch = batch_size or default_eval_batch(r.data)
    need = estimate_memory(r.net)
    check_memory(f"evaluating at batch {batch} on {device_name(run.device)}", need.inference(batch),
                 available_memory(run.device), need.params)
    data = open_eval_data(r, run_dir, run.device, eval_batch=batch_size)
    if split == "test":
        result, view = evaluate_final_view(run.model, data, r, run.device), r.test_mode
    else:
        result = evaluate(run.model, data.val, run.device, data.num_classes, r.amp)
        view = periodic_view(r.data)
    # what the run recorded for these weights on the same images and view, to compare with
    final = (record.read_summary(run_dir) or {}).get("final") or {}
    recorded_images = ((record.read_run_config(run_dir).get("data") or {}).get("test_images")
                       if split == "test" else r.val_split)
    recorded = {}
    if run.weights_iter is not None and final.get("iter") == run.weights_iter \
            and recorded_images == result.n:
        if split == "test" and final.get("view") == view:
            recorded = {"top1_err": final.get("test_err"), "top5_err": final.get("test_top5_err")}
        elif split == "val":
            recorded = {"top1_err": final.get("val_err"), "top5_err": final.get("val_top5_err")}
    out = {
        "run_dir": str(run_dir), "network": r.net.name, "status": run.status,
        "weights": run.weights.name, "weights_iter": run.weights_iter, "spec_rebuilt": rebuilt,
        "data": r.data, "split": split, "view": view, "images": result.n,
        "top1_err": result.err, "top5_err": result.top5_err, "loss": result.loss,
        "recorded_top1_err": recorded.get("top1_err"), "recorded_top5_err": recorded.get("top5_err"),
        "device": device_name(run.device),
    }
    if as_json:
        print(json.dumps(out))
        return
    from resdsl.cli_common import console

    at = f", iteration {run.weights_iter}" if run.weights_iter is not None else ""
    console.print(f"{r.net.name}: {run_dir} ({run.status or 'no summary'}{at}; {run.weights.name})",
                  highlight=False, markup=False, soft_wrap=True)
    if rebuilt:
        console.print("note: the spec changed since the run; its network was rebuilt from the spec "
                      "texts in config.json", style="yellow", highlight=False, markup=False, soft_wrap=True)
    console.print(f"{split} set: {result.n:,} images, {view} view, on {device_name(run.device)}",
                  highlight=False, markup=False, soft_wrap=True)
    top5 = f"   top-5 error {_pct(result.top5_err)}" if result.top5_err is not None else ""
    loss = f"   loss {result.loss:.4f}" if result.loss is not None else ""
    console.print(f"top-1 error {_pct(result.err)}{top5}{loss}", highlight=False, markup=False, soft_wrap=True)
    if recorded.get("top1_err") is not None:
        rtop5 = f"   top-5 error {_pct(recorded['top5_err'])}" if recorded.get("top5_err") is not None else ""
        console.print(f"recorded by the run at iteration {run.weights_iter}: top-1 error {_pct(recorded['top1_err'])}{rtop5}",
                      highlight=False, markup=False, soft_wrap=True)


def export_command(
    run_dir: Path = typer.Argument(..., help="A run record: the folder resdsl train (or sweep) wrote."),
    onnx: Path = typer.Option(..., "--onnx", metavar="PATH", help="The ONNX file to write."),
    check: bool = typer.Option(False, "--check",
                               help="Run the file (onnxruntime, else onnx's reference evaluator) and "
                                    "compare its outputs with PyTorch's on a random batch; exit 1 if "
                                    "they differ by more than 1e-4 of the largest output."),
    force: bool = typer.Option(False, "--force", help="Let --onnx replace a file that is not an ONNX model."),
):
    """Export a run's trained network to ONNX (batch size dynamic; input "image", output "logits").

    Example:

    \b
      resdsl export reports/runs/r20 --onnx r20.onnx --check
    """
    from resdsl.cli_common import console, err_console
    from resdsl.onnx_export import (
        check_export_memory, check_onnx, export_onnx, onnxruntime_installed, require_exporter,
    )
    from resdsl.outputs import ONNX_MAGIC, check_output_file
    from resdsl.train.config import resolve_run
    from resdsl.train.trained import load_trained

    _run_folder(run_dir)
    r, rebuilt = resolve_run(run_dir, device="cpu")
    inputs = [p for p in run_dir.iterdir() if p.is_file()] + [Path(p) for p in r.net.sources]
    onnx = check_output_file("--onnx", onnx, inputs=inputs, kind="an ONNX model", magic=ONNX_MAGIC,
                             force=force)
    require_exporter()
    check_export_memory(r.net)
    run = load_trained(run_dir, r, rebuilt)
    export_onnx(run.model, r.net.input_shape, onnx)
    at = f", iteration {run.weights_iter}" if run.weights_iter is not None else ""
    console.print(f"wrote {onnx}: {r.net.name} from {run_dir} ({run.status or 'no summary'}{at}; "
                  f"{run.weights.name})", highlight=False, markup=False, soft_wrap=True)
    if rebuilt:
        console.print("note: the spec changed since the run; its network was rebuilt from the spec "
                      "texts in config.json", style="yellow", highlight=False, markup=False, soft_wrap=True)
    if not check:
        return
    if not onnxruntime_installed():
        err_console.print("onnxruntime is not installed: checking with onnx's reference evaluator "
                          "instead (slower; pip install onnxruntime to check with it)",
                          style="yellow", highlight=False, markup=False, soft_wrap=True)
    result = check_onnx(onnx, run.model, r.net.input_shape)
    line = (f"check ({result.runtime}, random batch of {result.batch}): max abs diff "
            f"{result.max_abs_diff:.3g}, tolerance {result.tolerance:.3g}")
    if result.ok:
        console.print(line + ": ok", highlight=False, markup=False, soft_wrap=True)
        return
    print(f"resdsl: {line}: the ONNX file's outputs differ from PyTorch's (the file is kept, "
          "for inspection)", file=sys.stderr)
    raise typer.Exit(1)
