"""ImageNet-style image folders and the paper's ImageNet input pipeline (section 3.4).

Layout: ``root/train/<class>/*.{JPEG,jpg,jpeg,png}`` and ``root/val/<class>/...``; the class
list is the sorted training folder names, and every validation class must be one of them.

Training: shorter side resized to a random s in [256, 480], a random 224x224 crop or its
horizontal flip, per-pixel mean subtracted, AlexNet's PCA colour augmentation. Testing:
``center`` (shorter side 256, centre 224 crop), ``10crop`` (4 corners + centre and their flips)
and ``multiscale`` (fully convolutional: the whole image at shorter side in {224, 256, 384,
480, 640}, with and without flip, softmax averaged; see ``multiscale_scores``).
All sizes are parameters, so tests run the same code on 16x16 images.

Values given to the network are ``(x - mean) / 255 + pca_shift``, the same scale as CIFAR.

Mean image: computed from the centre crops (the test geometry) of a fixed random sample of
training images, and cached as ``<root>/.resdsl/mean-r<resize>-c<crop>-n<sample>-s<seed>.npz``
(numpy arrays, no pickle), or, when the dataset root is read-only, under
``$RESDSL_DATA/imagenet/<hash of the root path>/``. It is subtracted per pixel from every crop of
that size; full images of other sizes (multi-scale testing) use its per-channel average.
``mean="channel"`` uses the per-channel mean throughout, ``mean="imagenet"`` the usual
published ImageNet channel means without reading any image.

Randomness: each sample's augmentation is drawn from a generator seeded by (seed, epoch, index),
and the epoch travels with the index from the sampler into the worker, so results are the same
for any number of workers, and a resumed run sees the same batches (``ImageNetLoader``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from resdsl.errors import DataError, did_you_mean
from resdsl.text import choose
from resdsl.io import atomic_write_bytes
from resdsl.data.arrays import ImageMean
from resdsl.data.cifar import cache_dir
from resdsl.data.names import TEST_MODES
from resdsl.data.stream import ResumableStream, mix_seed

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
MULTISCALE_SIZES = (224, 256, 384, 480, 640)   # shorter sides of multi-scale testing at crop 224
# AlexNet's PCA of ImageNet RGB pixels in [0, 1] (as used by fb.resnet.torch); columns of
# the matrix are the eigenvectors.
PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                           [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]])


def default_num_workers() -> int:
    return min(8, os.cpu_count() or 1)


# --------------------------------------------------------------------------- folder layout

def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def scan_split(root: str | Path, split: str,
               classes: Sequence[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """List ``root/split/<class>/<image>``: (class names, [(path, label)]), sorted.

    ``classes`` fixes the label numbering (the training classes, when scanning ``val``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; expected {root}/train/<class>/ "
                        f"and {root}/val/<class>/ with .JPEG/.jpg/.png images")
    folder = root / split
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        guess = did_you_mean(split, present)
        raise DataError(f"{root} has no {split}/ folder (it has: {', '.join(present) or 'nothing'})"
                        + (f"; did you mean {guess}/?" if guess else "")
                        + f"; expected {folder}/<class>/<images>")
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not class_dirs:
        loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
        what = (f"{len(loose)} images lie directly in it; sort them into one folder per class "
                "(e.g. with the ILSVRC ground-truth file)" if loose else "it is empty")
        raise DataError(f"{folder} has no class folders: {what}; expected {folder}/<class>/<images>")
    names = [e.name for e in class_dirs]
    if classes is None:
        classes = names
    index = {c: i for i, c in enumerate(classes)}
    items: list[tuple[Path, int]] = []
    for e in class_dirs:
        if e.name not in index:
            guess = did_you_mean(e.name, classes)
            raise DataError(f"{folder / e.name}: class {e.name!r} is not a training class"
                            + (f" (did you mean {guess!r}?)" if guess else ""))
        files = sorted(f.name for f in os.scandir(e.path) if f.is_file() and _is_image(f.name))
        if not files:
            raise DataError(f"class folder {folder / e.name} holds no images "
                            f"(looked for {', '.join(IMAGE_EXTENSIONS)}, any case)")
        label = index[e.name]
        items.extend((Path(e.path) / f, label) for f in files)
    return list(classes), items


def load_image(path: str | Path) -> Image.Image:
    """Decode an image as RGB; a ``DataError`` naming the file if it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() loads the pixels, so errors surface here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}. Remove or replace the file.") from None


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> uint8 (3, H, W)."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size``, keeping the aspect ratio (bilinear)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    if w <= h:
        new = (size, max(1, round(h * size / w)))
    else:
        new = (max(1, round(w * size / h)), size)
    return img.resize(new, Image.BILINEAR)


# --------------------------------------------------------------------------- mean

def compute_mean(items: Sequence[tuple[Path, int]], *, resize: int = 256, crop: int = 224,
                 sample: int = 2000, seed: int = 0, num_workers: int | None = None) -> ImageMean:
    """Mean of the centre crops of ``sample`` training images picked at random by ``seed``."""
    if not items:
        raise DataError("cannot compute a mean image from an empty training set")
    n = min(sample, len(items))
    pick = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:n]
    ds = ImageFolder([items[int(i)] for i in pick.sort().values], [], _CenterRaw(resize, crop))
    workers = default_num_workers() if num_workers is None else num_workers
    dl = torch.utils.data.DataLoader(_Guarded(ds), batch_size=64, collate_fn=_collate,
                                     num_workers=workers if n > 64 else 0)
    total = torch.zeros(3, crop, crop, dtype=torch.float64)
    for batch in dl:
        total += _checked(batch)[0].to(torch.float64).sum(0)
    pixel = (total / n).float()
    return ImageMean(channel=pixel.mean(dim=(1, 2)), pixel=pixel)


def _mean_cache_path(root: Path, name: str) -> Path:
    local = root / ".resdsl"
    if os.access(root, os.W_OK) and (not local.exists() or os.access(local, os.W_OK)):
        return local / name
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "imagenet" / key / name


def load_or_compute_mean(root: Path, items: Sequence[tuple[Path, int]], classes: Sequence[str], *,
                         resize: int, crop: int, sample: int, seed: int,
                         num_workers: int | None = None) -> ImageMean:
    """The cached mean for this root and these settings, computing and caching it if needed."""
    path = _mean_cache_path(Path(root), f"mean-r{resize}-c{crop}-n{sample}-s{seed}.npz")
    meta = {"num_train": len(items), "num_classes": len(classes)}
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["meta"])) == meta:
                    return ImageMean(channel=torch.from_numpy(z["channel"]),
                                     pixel=torch.from_numpy(z["pixel"]))
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale cache: recompute and overwrite
    mean = compute_mean(items, resize=resize, crop=crop, sample=sample, seed=seed,
                        num_workers=num_workers)
    buf = io.BytesIO()
    np.savez(buf, channel=mean.channel.numpy(), pixel=mean.pixel.numpy(), meta=json.dumps(meta))
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # caching is an optimization; a read-only place only costs a recomputation
    return mean


# --------------------------------------------------------------------------- transforms

def pca_shift(alpha: torch.Tensor) -> torch.Tensor:
    """AlexNet colour augmentation: the RGB offset ``eigvec @ (alpha * eigval)``, in 0..1 units."""
    return PCA_EIGVEC @ (alpha * PCA_EIGVAL)


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """Uniform integer in [lo, hi] inclusive."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


class TrainTransform:
    """Section 3.4 training view: random-scale resize, random crop, flip, mean, PCA colour.

    Random draws, in this order, from the per-sample generator: scale, top, left, flip, alpha
    (alpha always drawn, so ``pca_std=0`` changes nothing but the colour).
    """

    def __init__(self, mean: ImageMean, crop: int = 224, scale: tuple[int, int] = (256, 480),
                 flip: bool = True, pca_std: float = 0.1):
        if not 0 < crop <= scale[0] <= scale[1]:
            raise DataError(f"training crop {crop} must fit the smallest scale: need "
                            f"0 < crop <= scale_min <= scale_max, got crop {crop}, scale {scale}")
        self.mean, self.crop, self.scale = mean, crop, (int(scale[0]), int(scale[1]))
        self.flip, self.pca_std = flip, pca_std

    def __call__(self, img: Image.Image, g: torch.Generator) -> torch.Tensor:
        img = resize_shorter(img, _randint(*self.scale, g))
        w, h = img.size
        top, left = _randint(0, h - self.crop, g), _randint(0, w - self.crop, g)
        x = to_uint8_tensor(img.crop((left, top, left + self.crop, top + self.crop)))
        if bool(torch.rand(1, generator=g) < 0.5) and self.flip:
            x = x.flip(-1)
        alpha = torch.randn(3, generator=g) * self.pca_std
        return self.mean.normalize(x) + pca_shift(alpha)[:, None, None]


def _center_box(w: int, h: int, crop: int) -> tuple[int, int, int, int]:
    left, top = (w - crop) // 2, (h - crop) // 2
    return left, top, left + crop, top + crop


class _CenterRaw:
    """uint8 centre crop, used to compute the mean."""

    def __init__(self, resize: int, crop: int):
        self.resize, self.crop = resize, crop

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        img = resize_shorter(img, self.resize)
        return to_uint8_tensor(img.crop(_center_box(*img.size, self.crop)))


class CenterCropTransform:
    """Test view: shorter side ``resize``, the centre ``crop`` x ``crop``."""

    def __init__(self, mean: ImageMean, resize: int = 256, crop: int = 224):
        if not 0 < crop <= resize:
            raise DataError(f"test crop {crop} must not exceed the test resize {resize}")
        self.mean, self.raw = mean, _CenterRaw(resize, crop)

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        return self.mean.normalize(self.raw(img))


class TenCropTransform:
    """Standard 10-crop at shorter side ``resize``: (10, 3, crop, crop) in the order top-left,
    top-right, bottom-left, bottom-right, centre, then the horizontal flips of those five."""

    def __init__(self, mean: ImageMean, resize: int = 256, crop: int = 224):
        if not 0 < crop <= resize:
            raise DataError(f"test crop {crop} must not exceed the test resize {resize}")
        self.mean, self.resize, self.crop = mean, resize, crop

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        x = to_uint8_tensor(resize_shorter(img, self.resize))
        _, h, w = x.shape
        c = self.crop
        corners = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), ((h - c) // 2, (w - c) // 2)]
        crops = torch.stack([x[:, t:t + c, l:l + c] for t, l in corners])
        return self.mean.normalize(torch.cat([crops, crops.flip(-1)]))


class FullImageTransform:
    """The whole image (shorter side ``shorter``, or as stored when None), per-channel mean;
    for fully-convolutional testing, one image per batch."""

    def __init__(self, mean: ImageMean, shorter: int | None = None):
        self.mean, self.shorter = ImageMean(channel=mean.channel), shorter

    def __call__(self, img: Image.Image, g: torch.Generator | None = None) -> torch.Tensor:
        if self.shorter is not None:
            img = resize_shorter(img, self.shorter)
        return self.mean.normalize(to_uint8_tensor(img))


# --------------------------------------------------------------------------- dataset

class ImageFolder(torch.utils.data.Dataset):
    """(path, label) items decoded with Pillow and passed through ``transform(img, generator)``.

    An index may be an int or ``(index, epoch)``; the per-sample generator is seeded with
    (seed, epoch, index), so augmentation is reproducible whatever process decodes the image.
    """

    def __init__(self, items: Sequence[tuple[Path, int]], classes: Sequence[str], transform,
                 seed: int = 0):
        self.items, self.classes, self.transform, self.seed = list(items), list(classes), transform, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        i, epoch = key if isinstance(key, tuple) else (key, 0)
        path, label = self.items[i]
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, i))
        return self.transform(load_image(path), g), label


class _Failed:
    """What a worker returns instead of raising: the message of a DataError.

    Raising inside a DataLoader worker would paste the worker's traceback into the message,
    and (torch 2.x) leaves the workers waiting out a 5 s join timeout each on shutdown; so the
    worker reports the failure as data and the main process raises it.
    """

    def __init__(self, message: str):
        self.message = message


class _Guarded(torch.utils.data.Dataset):
    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        try:
            return self.dataset[key]
        except DataError as e:
            return _Failed(str(e))


def _collate(batch: list):
    for item in batch:
        if isinstance(item, _Failed):
            return item
    return torch.utils.data.default_collate(batch)


def _checked(batch):
    if isinstance(batch, _Failed):
        raise DataError(batch.message)
    return batch


def _pin() -> bool:
    return torch.cuda.is_available()


class _EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(index, epoch)`` for one epoch's permutation, from batch ``start`` on."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start

    def __iter__(self):
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(
            mix_seed(self.seed, self.epoch, 0))).tolist()
        bs = self.batch_size
        for b in range(self.start, self.n // bs):
            yield [(i, self.epoch) for i in perm[b * bs:(b + 1) * bs]]


class ImageNetLoader(ResumableStream):
    """Endless stream of training batches from an ``ImageFolder``, with a resumable position.

    Same contract as ``CifarLoader``: ``next()`` gives ``(x, y)``, drop-last epochs follow one
    another, ``state_dict()``/``load_state_dict()`` save and restore (epoch, index) exactly.
    Decoding runs in ``num_workers`` worker processes (default ``min(8, cpu_count)``); memory is
    pinned when CUDA is present and batches are moved to ``device`` if given.
    """

    def __init__(self, dataset: ImageFolder, batch_size: int, *, seed: int = 0,
                 num_workers: int | None = None, device: str | torch.device | None = None):
        if not 0 < batch_size <= len(dataset):
            raise DataError(f"batch size {batch_size} must lie in 1..{len(dataset)} "
                            "(the number of training images)")
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.device = torch.device(device) if device is not None else None
        self.epoch, self.index = 0, 0
        self._sampler = _EpochBatches(len(dataset), self.batch_size, self.seed)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self._dl: torch.utils.data.DataLoader | None = None  # made on first use; see close()
        self._it: Iterator | None = None

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            if self._dl is None:
                self._dl = torch.utils.data.DataLoader(
                    _Guarded(self.dataset), batch_sampler=self._sampler, collate_fn=_collate,
                    num_workers=self.num_workers, pin_memory=_pin(),
                    persistent_workers=self.num_workers > 0)
            self._sampler.epoch, self._sampler.start = self.epoch, self.index
            self._it = iter(self._dl)
        batch = next(self._it)
        if isinstance(batch, _Failed):
            self.close()  # the position stays at the failed batch
            raise DataError(batch.message)
        x, y = batch
        self.index += 1
        if self.index == len(self):
            self.epoch, self.index, self._it = self.epoch + 1, 0, None
        if self.device is not None:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x, y

    def close(self) -> None:
        """Stop the worker processes now (they restart on the next ``next()``).

        Dropping the last reference does the same, but a loader caught in a reference cycle
        (e.g. held by a stored exception) is freed by the cycle collector at a random later
        moment, where torch's worker shutdown can stall for seconds.
        """
        self._it = None
        self._dl = None

    def __enter__(self) -> "ImageNetLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def num_samples(self) -> int:
        return len(self.dataset)

    def _seeked(self) -> None:
        self._it = None  # the next batch comes from the restored position


class _EvalBatches:
    """An evaluation DataLoader whose worker failures reach the user as one DataError."""

    def __init__(self, dl: torch.utils.data.DataLoader):
        self.dl = dl

    def __len__(self) -> int:
        return len(self.dl)

    def __iter__(self):
        it = iter(self.dl)
        try:
            for batch in it:
                yield _checked(batch)
        finally:
            del it  # shut the workers down now, not whenever a stored traceback is freed


# --------------------------------------------------------------------------- the data set

@dataclass
class ImageNetData:
    """An opened image-folder data set: class list, file lists, mean and view sizes."""

    root: Path
    classes: list[str]
    train_items: list[tuple[Path, int]]
    val_items: list[tuple[Path, int]]
    mean: ImageMean
    crop: int = 224
    resize: int = 256
    scale: tuple[int, int] = (256, 480)
    name: str = "imagenet"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def train_dataset(self, seed: int = 0, pca_std: float = 0.1, flip: bool = True) -> ImageFolder:
        t = TrainTransform(self.mean, crop=self.crop, scale=self.scale, flip=flip, pca_std=pca_std)
        return ImageFolder(self.train_items, self.classes, t, seed=seed)

    def val_dataset(self, mode: str = "center") -> ImageFolder:
        """``center``: (3, c, c); ``10crop``: (10, 3, c, c); ``multiscale``: the full image
        (3, H, W) as stored, for ``multiscale_scores``."""
        choose("unknown test mode", mode, TEST_MODES, DataError)
        if mode in ("single", "center"):  # single: the run record's name for the one standard view
            t = CenterCropTransform(self.mean, self.resize, self.crop)
        elif mode == "10crop":
            t = TenCropTransform(self.mean, self.resize, self.crop)
        else:  # multiscale
            t = FullImageTransform(self.mean, None)
        return ImageFolder(self.val_items, self.classes, t)

    def train_loader(self, batch_size: int, *, seed: int = 0, num_workers: int | None = None,
                     device: str | torch.device | None = None, pca_std: float = 0.1) -> ImageNetLoader:
        return ImageNetLoader(self.train_dataset(seed=seed, pca_std=pca_std), batch_size,
                              seed=seed, num_workers=num_workers, device=device)

    def val_loader(self, batch_size: int, mode: str = "center",
                   num_workers: int | None = None) -> _EvalBatches:
        """Validation batches in file order; ``multiscale`` forces batch size 1 (sizes vary)."""
        ds = self.val_dataset(mode)
        workers = default_num_workers() if num_workers is None else num_workers
        bs = 1 if mode == "multiscale" else batch_size
        return _EvalBatches(torch.utils.data.DataLoader(
            _Guarded(ds), batch_size=bs, shuffle=False, collate_fn=_collate,
            num_workers=workers, pin_memory=_pin()))


def open_imagenet(root: str | Path, *, crop: int = 224, resize: int = 256,
                  scale: tuple[int, int] = (256, 480), mean: str = "pixel",
                  mean_sample: int = 2000, seed: int = 0,
                  num_workers: int | None = None) -> ImageNetData:
    """Scan ``root/train`` and ``root/val`` and get the mean (see the module docstring)."""
    root = Path(root).expanduser()
    if not 0 < crop <= min(resize, scale[0]) or scale[0] > scale[1]:
        raise DataError(f"image sizes do not fit: need 0 < crop <= resize and crop <= scale_min "
                        f"<= scale_max; got crop {crop}, resize {resize}, scale {tuple(scale)}")
    classes, train_items = scan_split(root, "train")
    _, val_items = scan_split(root, "val", classes)
    if mean in ("pixel", "channel"):
        m = load_or_compute_mean(root, train_items, classes, resize=resize, crop=crop,
                                 sample=mean_sample, seed=seed, num_workers=num_workers)
        if mean == "channel":
            m = ImageMean(channel=m.channel)
    elif mean == "imagenet":
        m = ImageMean.imagenet()
    else:
        raise DataError(f"unknown mean {mean!r}; choose pixel, channel or imagenet")
    return ImageNetData(root=root, classes=classes, train_items=train_items, val_items=val_items,
                        mean=m, crop=crop, resize=resize, scale=(int(scale[0]), int(scale[1])))


def open_imagenet_val(root: str | Path, classes: Sequence[str], mean: ImageMean, *,
                      crop: int = 224, resize: int = 256) -> ImageNetData:
    """Scan ``root/val`` alone, for evaluating a trained run: the class list and the mean are
    the run's own (recorded when it trained), so no training image is read, and a machine that
    holds only val/ can evaluate."""
    root = Path(root).expanduser()
    if not 0 < crop <= resize:
        raise DataError(f"image sizes do not fit: need 0 < crop <= resize; got crop {crop}, "
                        f"resize {resize}")
    classes, val_items = scan_split(root, "val", list(classes))
    return ImageNetData(root=root, classes=classes, train_items=[], val_items=val_items,
                        mean=mean, crop=crop, resize=resize, scale=(resize, resize))


# --------------------------------------------------------------------------- test-time scoring

def _softmax_scores(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax class scores (B, K); a spatial score map (B, K, h, w) is averaged over positions."""
    out = model(x)
    p = out.float().softmax(dim=1)
    return p.flatten(2).mean(-1) if p.dim() == 4 else p


@torch.no_grad()
def tencrop_scores(model: torch.nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """(B, 10, 3, h, w) from ``TenCropTransform`` -> (B, K) softmax averaged over the crops."""
    b, n = crops.shape[:2]
    return _softmax_scores(model, crops.flatten(0, 1)).view(b, n, -1).mean(1)


def multiscale_sizes(crop: int) -> list[int]:
    """The shorter sides of multi-scale testing for a net trained on ``crop`` x ``crop`` crops:
    the paper's {224, 256, 384, 480, 640} at crop 224, in proportion for other crops."""
    return [round(s * crop / 224) for s in MULTISCALE_SIZES]


@torch.no_grad()
def multiscale_scores(model: torch.nn.Module, image: torch.Tensor,
                      scales: Sequence[int] = MULTISCALE_SIZES,
                      mean: ImageMean | None = None, flip: bool = True) -> torch.Tensor:
    """Fully-convolutional multi-scale testing of one image: softmax averaged over scales,
    flips and (if the model outputs a score map) positions. Returns (K,).

    ``image`` is (1, 3, H, W) or (3, H, W): float32 already normalized (``FullImageTransform``),
    or uint8 with ``mean`` given. It is resized (bilinear, antialiased) so its shorter side is
    each of ``scales``; the models end in global average pooling, so any size is accepted.
    """
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"multiscale_scores takes one image, got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        if mean is None:
            raise ValueError("a uint8 image needs the mean to normalize it")
        image = ImageMean(channel=mean.channel.to(image.device)).normalize(image)
    h, w = image.shape[-2:]
    total, count = None, 0
    for s in scales:
        size = (s, max(1, round(w * s / h))) if h <= w else (max(1, round(h * s / w)), s)
        x = image if (h, w) == size else F.interpolate(image, size=size, mode="bilinear",
                                                       align_corners=False, antialias=True)
        views = torch.cat([x, x.flip(-1)]) if flip else x
        p = _softmax_scores(model, views).sum(0)
        total = p if total is None else total + p
        count += len(views)
    return total / count
