"""The data a run trains and evaluates on, opened from a resolved config via resdsl.data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from resdsl.data import (
    ImageArrays, ImageMean, ImageNetData, cifar_loaders, open_dataset, open_imagenet_val,
)
from resdsl.errors import RunError
from resdsl.train.config import SYNTHETIC_BYTES, SYNTHETIC_TEST, SYNTHETIC_TRAIN, ResolvedConfig

CIFAR_TRAIN_IMAGES = 50000
EVAL_BATCH = 500
DATA_SEED = 0  # the val split and synthetic images do not change with the run's seed


@dataclass
class RunData:
    """Training stream, evaluation sets (single/centre view) and the final test-time view."""

    name: str
    train: Any                       # CifarLoader | ImageNetLoader: next(), state_dict, len
    test: Iterable                   # (x, y) batches, single or centre view
    val: Iterable | None
    num_classes: int
    input_shape: tuple
    n_train: int
    n_test: int
    mean: ImageMean | None = None    # what the inputs have subtracted (recorded: input_mean.pt)
    imagenet: ImageNetData | None = None
    classes: list[str] | None = None  # ImageNet's class folders in label order (recorded too)
    eval_batch: int = EVAL_BATCH

    def final_test(self, mode: str, workers: int | None):
        """Loader for the final test-time view (10crop or multiscale, ImageNet only)."""
        assert self.imagenet is not None
        return self.imagenet.val_loader(max(1, self.eval_batch // 10), mode=mode, num_workers=workers)


def synthetic_sizes(shape: tuple, classes: int) -> tuple[int, int]:
    pixels = max(1, shape[0] * shape[1] * shape[2])
    n_train = max(4 * classes, min(SYNTHETIC_TRAIN, SYNTHETIC_BYTES // pixels))
    n_test = max(classes, min(SYNTHETIC_TEST, n_train // 5))
    return n_train, n_test


def _subset(data: ImageArrays, n: int, seed: int) -> ImageArrays:
    if n >= len(data.train_x):
        return data
    idx = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return dataclasses.replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx])


def default_eval_batch(data: str) -> int:
    """Images per evaluation batch: EVAL_BATCH, half that for ImageNet's larger images."""
    return EVAL_BATCH // 2 if data == "imagenet" else EVAL_BATCH


def open_run_data(r: ResolvedConfig, device: torch.device, eval_batch: int | None = None) -> RunData:
    """The run's data; ``eval_batch``: images per evaluation batch (single/centre view; default
    ``default_eval_batch``)."""
    eval_batch = eval_batch or default_eval_batch(r.data)
    net = r.net
    shape = tuple(net.input_shape)
    if r.data in ("cifar10", "synthetic"):
        if r.data == "cifar10":
            data = open_dataset("cifar10", r.data_dir, val_size=r.val_split, seed=DATA_SEED,
                                strict_counts=False)
            if tuple(data.input_shape) != shape:
                raise RunError(f"spec {net.name} takes {'x'.join(map(str, shape))} inputs but the "
                               f"CIFAR-10 images are {'x'.join(map(str, data.input_shape))}")
        else:
            n_train, n_test = synthetic_sizes(shape, net.num_classes)
            data = open_dataset("synthetic", None, num_train=n_train, num_test=n_test,
                                num_classes=net.num_classes, shape=shape, seed=DATA_SEED,
                                val_size=r.val_split)
        if data.num_classes != net.num_classes:
            raise RunError(f"spec {net.name} has {net.num_classes} classes but {r.data} has "
                           f"{data.num_classes}")
        if r.subset is not None:
            data = _subset(data, r.subset, DATA_SEED)
        loaders = cifar_loaders(data, r.batch_size, seed=r.seed, device=device,
                                eval_batch_size=eval_batch)
        return RunData(name=r.data, train=loaders.train, test=loaders.test, val=loaders.val,
                       num_classes=data.num_classes, input_shape=shape,
                       n_train=loaders.train.num_samples, n_test=loaders.test.num_samples,
                       mean=ImageMean(channel=loaders.mean.mean((1, 2)), pixel=loaders.mean))
    # ImageNet-style folders
    crop, resize = imagenet_sizes(r)
    data = open_dataset("imagenet", r.data_dir, crop=crop, resize=resize,
                        scale=(resize, round(crop * 480 / 224)), seed=DATA_SEED,
                        num_workers=r.workers)
    if data.num_classes != net.num_classes:
        raise RunError(f"spec {net.name} has {net.num_classes} classes but {r.data_dir} has "
                       f"{data.num_classes} class folders; set the spec's classes to match")
    if r.subset is not None and r.subset < len(data.train_items):
        g = torch.Generator().manual_seed(DATA_SEED)
        pick = torch.randperm(len(data.train_items), generator=g)[:r.subset].sort().values
        data = dataclasses.replace(data, train_items=[data.train_items[int(i)] for i in pick])
    train = data.train_loader(r.batch_size, seed=r.seed, num_workers=r.workers, device=device)
    test = data.val_loader(eval_batch, mode="center", num_workers=r.workers)
    return RunData(name="imagenet", train=train, test=test, val=None,
                   num_classes=data.num_classes, input_shape=shape,
                   n_train=len(data.train_items), n_test=len(data.val_items), mean=data.mean,
                   imagenet=data, eval_batch=eval_batch, classes=list(data.classes))


def imagenet_sizes(r: ResolvedConfig) -> tuple[int, int]:
    """(crop, resize) of an ImageNet-style run: the spec's input size, and the shorter side of
    the test view in the paper's proportion (224 of 256)."""
    _, h, w = r.net.input_shape
    if h != w:
        raise RunError(f"ImageNet training crops are square; spec {r.net.name} takes {h}x{w}")
    return h, round(h * 256 / 224)


def open_eval_data(r: ResolvedConfig, run_dir: Path, device: torch.device,
                   eval_batch: int | None = None) -> RunData:
    """The data to evaluate a trained run on. An ImageNet run that recorded its class list
    (config.json) and input mean (input_mean.pt) is evaluated from val/ alone with them; any
    other run opens its data as training did (``open_run_data``)."""
    from resdsl import record

    classes = (record.read_run_config(run_dir).get("data") or {}).get("classes")
    if r.data != "imagenet" or not classes or not (Path(run_dir) / record.INPUT_MEAN).exists():
        return open_run_data(r, device, eval_batch)
    eval_batch = eval_batch or default_eval_batch(r.data)
    crop, resize = imagenet_sizes(r)
    data = open_imagenet_val(r.data_dir, classes, record.load_input_mean(run_dir), crop=crop,
                             resize=resize)
    test = data.val_loader(eval_batch, mode="center", num_workers=r.workers)
    return RunData(name="imagenet", train=None, test=test, val=None, num_classes=data.num_classes,
                   input_shape=tuple(r.net.input_shape), n_train=0, n_test=len(data.val_items),
                   mean=data.mean, imagenet=data, eval_batch=eval_batch, classes=list(data.classes))
