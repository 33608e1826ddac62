"""The run record on disk (docs/ARCHITECTURE.md, "Run record"): one folder per run.

The one place that knows the record's files and how to write and read them; training writes
through it, and ensembles, sweeps and the report read through it. It sits below them all and
imports none of them. Every file is written atomically (``resdsl.io``).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from resdsl.errors import RunError
from resdsl.io import append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text, read_jsonl

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"
SUMMARY = "summary.json"
RESPONSES = "responses.json"
PREDICTIONS = "predictions.pt"
INPUT_MEAN = "input_mean.pt"
RECORD_FILES = (CONFIG, METRICS, CHECKPOINT, SUMMARY)
CHECKPOINT_FORMAT = 1
COMPLETED = "completed"
FINISHED = ("completed", "diverged", "pruned")   # nothing left to resume
# Runs that end with usable trained weights keep them in weights.pt: a completed run, and one a
# sweep stopped early (its weights at that point). A diverged run's weights are not finite; an
# interrupted or failed one is not over (its checkpoint.pt is there to resume from).
KEEPS_WEIGHTS = ("completed", "pruned")


def versions() -> dict:
    """The versions a record is written with (config.json's first keys)."""
    import torch

    from resdsl import __version__

    return {"resdsl": __version__, "torch": torch.__version__,
            "python": platform.python_version()}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- reading

def read_json(path: Path) -> Any | None:
    """A JSON file's content, or None when it is missing, unreadable or not JSON (a record
    being written, or a folder that is no record)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class UnreadableFile(Exception):
    """A record file that is missing, unreadable, empty or not JSON; the message says which."""


def read_json_explained(path: Path, what: str) -> Any:
    """A JSON file's content, or ``UnreadableFile`` saying why not (for listing bad records)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise UnreadableFile(f"no {what}") from None
    except OSError as e:
        raise UnreadableFile(f"cannot read {what}: {e.strerror or e}") from None
    if not text.strip():
        raise UnreadableFile(f"{what} is empty (half-written?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UnreadableFile(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column "
                             f"{e.colno}; half-written or corrupt)") from None


def read_summary(run_dir: Path) -> dict | None:
    """summary.json of a run, or None when there is none (yet) or it cannot be read."""
    s = read_json(Path(run_dir) / SUMMARY)
    return s if isinstance(s, dict) else None


def read_run_config(run_dir: Path) -> dict:
    """config.json of a run record, or a RunError saying why it cannot be read."""
    path = Path(run_dir) / CONFIG
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{run_dir}: not a run record (no config.json)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: cannot read it ({e})") from None
    if not isinstance(cfg, dict):
        raise RunError(f"{path}: not a run record (not a JSON object)")
    return cfg


def read_request(run_dir: Path) -> dict:
    """The training request (``TrainConfig`` as JSON) a run record was started with."""
    cfg = read_run_config(run_dir)
    if cfg.get("kind") == "ensemble":
        raise RunError(f"{run_dir} is an ensemble record; there is nothing to resume")
    if not isinstance(cfg.get("request"), dict):
        raise RunError(f"{Path(run_dir) / CONFIG} has no 'request' entry; it was not written by "
                       "resdsl train")
    return cfg["request"]


def read_metrics(run_dir: Path) -> list[dict]:
    """The evaluations of a run (metrics.jsonl); [] when absent. A torn last line is dropped."""
    f = Path(run_dir) / METRICS
    return read_jsonl(f) if f.exists() else []


def is_completed(run_dir: str | Path | None, config_hash: str) -> bool:
    """Whether a folder holds a completed run of the configuration with this content hash."""
    if not run_dir:
        return False
    s = read_summary(Path(run_dir))
    return s is not None and s.get("status") == COMPLETED and s.get("hash") == config_hash


def load_torch_file(path: Path, what: str) -> Any:
    """A .pt file of a record, loaded with ``weights_only=True`` (no code runs). A file torch
    refuses (corrupt, truncated, or holding objects other than tensors and plain data) is a
    RunError naming the file, never a traceback."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise RunError(f"{path}: cannot read the {what} ({first_line(e)}); it is corrupt, or was "
                       "not written by resdsl (only tensors and plain data load)") from None


@dataclass
class Weights:
    """The trained weights of a run: ``state`` (the module's state_dict), the file they were read
    from, and the iteration they were taken at (None when the record does not say)."""

    state: dict
    path: Path
    iter: int | None


def load_weights(run_dir: Path) -> Weights:
    """The trained weights of a run: weights.pt, or for a run that has none (written before
    weights.pt existed, or not over yet) the "model" entry of checkpoint.pt."""
    import torch

    run_dir = Path(run_dir)
    path = run_dir / WEIGHTS
    if path.exists():
        state = load_torch_file(path, "weights")
        done = (read_summary(run_dir) or {}).get("iters_done")
        it = done if isinstance(done, int) else None
    elif (run_dir / CHECKPOINT).exists():
        path = run_dir / CHECKPOINT
        ck = load_torch_file(path, "checkpoint")
        ck = ck if isinstance(ck, dict) else {}
        state = ck.get("model")
        it = ck["iter"] if isinstance(ck.get("iter"), int) else None
    else:
        raise RunError(f"{run_dir}: no trained weights (neither {WEIGHTS} nor {CHECKPOINT}); the "
                       "run was stopped before its first evaluation, or they were deleted")
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise RunError(f"{path}: holds no weights of a network (expected a state_dict: names to "
                       "tensors)")
    return Weights(state=state, path=path, iter=it)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (torch's run over many lines)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# --------------------------------------------------------------------------- writing

def check_fresh(out: Path) -> None:
    """Refuse an --out folder that already holds a run record (never overwrite one)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder")
    present = [f for f in RECORD_FILES if (out / f).exists()]
    if present:
        raise RunError(f"{out} already holds a run record ({', '.join(present)}); choose another "
                       f"--out, or continue it with: resdsl train --resume {out}")


def start_record(out: Path, config: dict) -> None:
    """A new record: config.json and an empty metrics.jsonl."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / CONFIG, config)
    atomic_write_text(out / METRICS, "")


def write_config(run_dir: Path, config: dict) -> None:
    atomic_write_json(Path(run_dir) / CONFIG, config)


def write_summary(run_dir: Path, summary: dict) -> None:
    atomic_write_json(Path(run_dir) / SUMMARY, summary)


def append_metrics(run_dir: Path, row: dict) -> None:
    append_jsonl(Path(run_dir) / METRICS, row)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


def metrics_until(run_dir: Path, it: int) -> list[dict]:
    """The evaluations up to iteration ``it`` (a checkpoint's), rewriting metrics.jsonl without
    the later ones: a resumed run makes those again."""
    rows = read_metrics(run_dir)
    keep = [r for r in rows if r["iter"] <= it]
    if len(keep) != len(rows) or not (Path(run_dir) / METRICS).exists():
        write_metrics(run_dir, keep)
    return keep


def write_responses(run_dir: Path, layers: list[dict], it: int) -> None:
    atomic_write_json(Path(run_dir) / RESPONSES,
                      {"layers": layers, "split": "test",
                       "where": "after BN, before the nonlinearity (3x3 layers)", "iter": it})


def write_predictions(run_dir: Path, predictions: dict) -> None:
    atomic_torch_save(Path(run_dir) / PREDICTIONS, predictions)


def save_checkpoint(run_dir: Path, checkpoint: dict) -> None:
    atomic_torch_save(Path(run_dir) / CHECKPOINT, {"format": CHECKPOINT_FORMAT, **checkpoint})


def save_weights(run_dir: Path, state_dict: dict) -> None:
    """weights.pt: the trained module's state_dict only, on the CPU, in the default layout, so it
    loads anywhere with ``torch.load(weights_only=True)``."""
    atomic_torch_save(Path(run_dir) / WEIGHTS,
                      {k: v.detach().cpu().contiguous() for k, v in state_dict.items()})


def save_input_mean(run_dir: Path, pixel, channel) -> None:
    """input_mean.pt: what the run subtracts from its inputs, in 0..255 pixel units: ``pixel``
    (C, H, W) (None where only a channel mean is used) and ``channel`` (C,); the network sees
    ``(x - mean) * (1/255)`` (``resdsl.load_input_mean``)."""
    atomic_torch_save(Path(run_dir) / INPUT_MEAN, {
        "pixel": None if pixel is None else pixel.detach().cpu().float().contiguous(),
        "channel": channel.detach().cpu().float().contiguous(), "scale": 1 / 255})


def load_input_mean(run_dir: Path):
    """The ``ImageMean`` of a run's input_mean.pt (``normalize(x)`` gives the network's input)."""
    import torch

    from resdsl.data.arrays import ImageMean

    path = Path(run_dir) / INPUT_MEAN
    try:
        saved = load_torch_file(path, "input mean")
    except FileNotFoundError:
        raise RunError(f"{run_dir}: no {INPUT_MEAN} (the run was started before resdsl recorded "
                       "its input mean; resuming it writes one, or compute it from the training "
                       "images)") from None
    pixel = saved.get("pixel") if isinstance(saved, dict) else None
    channel = saved.get("channel") if isinstance(saved, dict) else None
    ok = (isinstance(channel, torch.Tensor) and channel.dim() == 1
          and (pixel is None or isinstance(pixel, torch.Tensor) and pixel.dim() == 3
               and pixel.shape[0] == channel.shape[0]))
    if not ok:
        raise RunError(f"{path}: expected a channel mean (C,) and an optional pixel mean "
                       "(C, H, W)")
    return ImageMean(channel=channel, pixel=pixel)


def load_checkpoint(run_dir: Path, config_hash: str) -> dict:
    """The checkpoint of a run, checked against its format and the configuration's hash."""
    path = Path(run_dir) / CHECKPOINT
    try:
        ck = load_torch_file(path, "checkpoint")
    except FileNotFoundError:
        raise RunError(f"{run_dir}: no checkpoint.pt to resume from (the run was stopped "
                       "before its first evaluation); start it again") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        fmt = ck.get("format") if isinstance(ck, dict) else None
        raise RunError(f"{path}: checkpoint format {fmt} is not {CHECKPOINT_FORMAT}")
    if ck.get("hash") != config_hash:
        raise RunError(f"{path}: the checkpoint belongs to another configuration (hash "
                       f"{ck.get('hash')}, now {config_hash}); did the spec file change?")
    return ck


# --------------------------------------------------------------------------- rules

def reduced_reasons(*, data: str | None, iters: int | None, batch_size: int | None,
                    full_iters: int | None, full_batch: int | None, subset: int | None = None,
                    train_images: int | None = None, full_train_images: int | None = None,
                    basis: str = "recipe") -> list[str]:
    """Why a run is not the paper's full budget (empty when it is): fewer images seen than
    ``full_iters`` batches of ``full_batch`` (what ``basis`` prescribes), synthetic data, a
    subset, or fewer training images than the full set."""
    why = []
    if iters is not None and full_iters is not None and full_batch is not None:
        batch = batch_size if batch_size is not None else full_batch
        if iters * batch < full_iters * full_batch:
            if batch == full_batch:
                why.append(f"{iters} of {full_iters} iterations")
            else:
                why.append(f"{iters} iterations at batch {batch} "
                           f"({basis}: {full_iters} at batch {full_batch})")
    if data == "synthetic":
        why.append("synthetic data")
    if subset:
        why.append(f"subset of {subset} training images")
    elif full_train_images and train_images is not None and train_images < full_train_images:
        why.append(f"{data} with {train_images} training images")
    return why


def finite_or_none(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return float(v)
