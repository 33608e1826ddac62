"""CIFAR-10: finding, checking and loading the python batches, and the paper's training input.

He et al. (2016), section 4.2: 45k/5k train/val split (optional), per-pixel mean subtracted,
4 pixels padded on each side, a random 32x32 crop of the padded image or its horizontal flip;
testing uses the single original 32x32 view.

Design:
- The whole data set fits in memory, so it lives as uint8 tensors (``ImageArrays``), and the
  training loader keeps the normalized float32 copy on the training device and augments whole
  batches there with one gather, instead of decoding and cropping image by image in workers.
- Pixel values fed to the network are ``(x - mean_image) / 255`` (``normalize``): the paper's
  per-pixel mean subtraction; the 1/255 only sets the scale (BN follows the first conv anyway).
- Every random choice of the loader is drawn from a generator seeded by (seed, epoch, batch), so
  a run resumed from a saved position sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from resdsl.errors import DataError
from resdsl.data.safe_pickle import safe_load_pickle
from resdsl.data.arrays import ImageArrays, normalize
from resdsl.data.stream import ResumableStream, mix_seed

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ALL_FILES = TRAIN_FILES + (TEST_FILE, META_FILE)
IMAGES_PER_BATCH = 10000
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


# --------------------------------------------------------------------------- finding the folder

def cache_dir() -> Path:
    """Where downloaded data sets live: ``$RESDSL_DATA`` or ``~/.cache/resdsl``."""
    env = os.environ.get("RESDSL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resdsl"


def _candidates(data_dir: str | Path | None) -> list[Path]:
    out = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        # data_dir may be the batches folder itself (any name) or a folder that holds it
        if (d / TRAIN_FILES[0]).exists() or (d / META_FILE).exists() or d.name == CIFAR10_FOLDER:
            out.append(d)
        out.append(d / CIFAR10_FOLDER)
    out.append(cache_dir() / CIFAR10_FOLDER)
    return out


def find_cifar10(data_dir: str | Path | None = None, download: bool = True,
                 strict_counts: bool = True) -> Path:
    """The ``cifar-10-batches-py`` folder, checked; downloaded into the cache if allowed.

    Looks in ``data_dir`` (the folder itself or its parent), then in ``cache_dir()``. A folder
    found there is checked for structure (``verify_cifar10``), not checksums, so a lossless
    rebuild of the data is accepted. ``strict_counts=False`` accepts batches of any (equal) size,
    for small test copies in the same format.
    """
    seen = []
    for cand in _candidates(data_dir):
        if cand.is_dir() and cand not in seen:
            verify_cifar10(cand, strict_counts=strict_counts)
            return cand
        seen.append(cand)
    target = cache_dir()
    if not download:
        raise DataError(
            "CIFAR-10 not found; looked in " + ", ".join(str(p) for p in seen) + ".\n"
            + _fill_hint(target))
    folder = download_cifar10(target)
    verify_cifar10(folder, strict_counts=strict_counts)
    return folder


def _fill_hint(target: Path) -> str:
    return (f"To provide it by hand, download {CIFAR10_URL} (md5 {CIFAR10_MD5}) on a machine "
            f"with network access and extract it so that {target / CIFAR10_FOLDER}/data_batch_1 "
            f"exists (`tar xzf cifar-10-python.tar.gz -C {target}`), or pass a data folder "
            f"that contains {CIFAR10_FOLDER}/.")


# --------------------------------------------------------------------------- download

def _urlopen(url: str, timeout: float):
    """Indirection so tests can simulate the network without touching it."""
    return urllib.request.urlopen(url, timeout=timeout)


def download_cifar10(target: Path, url: str | None = None, md5: str | None = None) -> Path:
    """Download the official archive into ``target``, verify its md5, extract atomically.

    The archive is extracted into a temporary folder next to the destination and renamed into
    place, so an interrupted download never leaves a half-filled ``cifar-10-batches-py``.
    """
    url = url or CIFAR10_URL
    md5 = md5 or CIFAR10_MD5
    target = Path(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data cache {target}: {e.strerror or e}; set "
                        "RESDSL_DATA to a writable folder or pass a data folder") from None
    fd, part = tempfile.mkstemp(dir=target, prefix=".cifar-10-python.", suffix=".part")
    extract_dir = None
    try:
        print(f"resdsl: downloading CIFAR-10 (about 163 MB) from {url} into {target}",
              file=sys.stderr)
        digest = hashlib.md5()
        try:
            with os.fdopen(fd, "wb") as out, _urlopen(url, timeout=60) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(f"CIFAR-10 is not in {target} and downloading it failed "
                            f"({reason}).\n" + _fill_hint(target)) from None
        if digest.hexdigest() != md5:
            raise DataError(f"the archive downloaded from {url} has md5 {digest.hexdigest()}, "
                            f"expected {md5}: the download is corrupt or the file changed. Try "
                            "again.\n" + _fill_hint(target))
        extract_dir = Path(tempfile.mkdtemp(dir=target, prefix=".extract-"))
        _safe_extract(Path(part), extract_dir)
        src = extract_dir / CIFAR10_FOLDER
        if not src.is_dir():
            raise DataError(f"the archive from {url} has no {CIFAR10_FOLDER}/ folder")
        dest = target / CIFAR10_FOLDER
        try:
            os.replace(src, dest)
        except OSError:
            if not dest.is_dir():  # someone else finished first: keep theirs; else it's real
                raise
        return dest
    finally:
        Path(part).unlink(missing_ok=True)
        if extract_dir is not None:
            shutil.rmtree(extract_dir, ignore_errors=True)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar.gz, refusing anything but plain files and folders inside ``dest``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or Path(m.name).is_absolute():
                    raise DataError(f"refusing to extract {archive}: member {m.name!r} would be "
                                    "written outside the destination folder")
                if not (m.isfile() or m.isdir()):
                    raise DataError(f"refusing to extract {archive}: member {m.name!r} is a link "
                                    "or device, not a plain file")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot extract {archive}: {e}") from None


# --------------------------------------------------------------------------- reading and checking

def _as_str_keys(d: dict) -> dict:
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _read_batch(path: Path, strict_counts: bool) -> tuple[np.ndarray, np.ndarray]:
    d = safe_load_pickle(path)
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(d).__name__}")
    d = _as_str_keys(d)
    for key in ("data", "labels"):
        if key not in d:
            hint = " (this looks like CIFAR-100, which is not supported)" if "fine_labels" in d else ""
            raise DataError(f"{path}: no {key!r} entry{hint}; keys are {sorted(d)}")
    x = d["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        what = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: 'data' is a {what}; expected a uint8 array of shape (N, 3072)")
    try:
        y = np.asarray(d["labels"])
    except Exception:
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or len(y) != len(x) or (len(y) and y.dtype.kind not in "iu"):
        raise DataError(f"{path}: 'labels' must be {len(x)} integers (one per image), found "
                        f"{len(y) if y.ndim == 1 else 'shape ' + str(y.shape)} of type {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found {y.min()}..{y.max()}")
    if len(x) == 0:
        raise DataError(f"{path}: holds no images")
    if strict_counts and len(x) != IMAGES_PER_BATCH:
        raise DataError(f"{path}: holds {len(x)} images, expected {IMAGES_PER_BATCH}; the file is "
                        "incomplete. Delete the folder and get the data set again.")
    return x, y.astype(np.int64)


def _read_classes(path: Path) -> list[str]:
    d = safe_load_pickle(path)
    names = _as_str_keys(d).get("label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(
            isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path}: expected 'label_names', a list of {NUM_CLASSES} class names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def _read_folder(folder: Path, strict_counts: bool):
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    missing = [f for f in ALL_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder} is not a complete {CIFAR10_FOLDER} folder: missing "
                        + ", ".join(missing) + ". " + _fill_hint(folder.parent))
    classes = _read_classes(folder / META_FILE)
    train = [_read_batch(folder / f, strict_counts) for f in TRAIN_FILES]
    sizes = {len(x) for x, _ in train}
    if len(sizes) != 1:  # with strict counts this cannot happen; without, catch a truncated file
        raise DataError(f"{folder}: the training batches hold different numbers of images ("
                        + ", ".join(f"{f}: {len(x)}" for f, (x, _) in zip(TRAIN_FILES, train))
                        + "); one of them is incomplete")
    test = _read_batch(folder / TEST_FILE, strict_counts)
    return train, test, classes


def verify_cifar10(folder: str | Path, strict_counts: bool = True) -> None:
    """Check a ``cifar-10-batches-py`` folder's structure; raise ``DataError`` naming the bad file.

    All six batches and ``batches.meta`` present and loadable with the restricted unpickler;
    ``data`` uint8 (N, 3072); labels N integers in 0..9; with ``strict_counts`` N == 10000 per
    batch, otherwise the five training batches must at least agree in size.
    """
    _read_folder(Path(folder), strict_counts)


def load_cifar10(root: str | Path, strict_counts: bool = True) -> ImageArrays:
    """Load the batches into uint8 (N, 3, 32, 32) tensors; checks structure as it reads."""
    root = Path(root)
    train, (tx, ty), classes = _read_folder(root, strict_counts)
    # the 3072 bytes of a row are the R, G, B planes, each row-major 32x32: a plain reshape
    train_x = np.concatenate([x for x, _ in train]).reshape(-1, *IMAGE_SHAPE)
    train_y = np.concatenate([y for _, y in train])
    return ImageArrays(
        train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy(np.ascontiguousarray(tx).reshape(-1, *IMAGE_SHAPE)),
        test_y=torch.from_numpy(ty), classes=classes, name="cifar10", root=root)


# --------------------------------------------------------------------------- augmentation

def augment_cifar(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of a ``pad``-zero-padded image, then a random horizontal flip, per sample.

    ``x`` is a batch (B, C, H, W) of any dtype on any device; the output has the same shape,
    dtype and device. Call it on mean-subtracted data so the padding is zero in normalized space,
    as in the paper. Vectorized: one zero-pad of the batch and one gather whose per-sample row
    and column indices encode the offsets and the flip. The random draws (offsets, then flips)
    are made on ``generator``'s device, so a CPU generator gives the same crops on any device.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_cifar expects (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    g_dev = generator.device
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=g_dev)
    flips = torch.randint(0, 2, (b,), generator=generator, device=g_dev).bool()
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    padded = x.new_zeros((b, c, h + 2 * pad, w + 2 * pad))
    padded[:, :, pad:pad + h, pad:pad + w] = x
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)            # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)            # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


# --------------------------------------------------------------------------- loaders

class CifarLoader(ResumableStream):
    """Endless stream of shuffled, augmented training batches from a set held on the device.

    ``next(loader)`` returns ``(x, y)``: float32 (B, C, H, W) normalized and augmented, int64 (B,),
    both on ``device``. Epochs follow one another without end (training counts iterations);
    each epoch is a fresh permutation drawn from (seed, epoch), and the last ``N % batch_size``
    images of that permutation are skipped (drop-last), so every batch has full size. The
    position (epoch, index) is ``state_dict()``; ``load_state_dict`` restores it and the batches
    that follow are the same as those of an uninterrupted run, augmentation included.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 mean: torch.Tensor, seed: int = 0, augment: bool = True, pad: int = 4,
                 device: str | torch.device = "cpu", scale: float = 1 / 255):
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        if len(x) < batch_size:
            raise DataError(f"batch size {batch_size} is larger than the training set "
                            f"({len(x)} images); use a smaller batch size or more data")
        self.device = torch.device(device)
        self.x = normalize(x.to(self.device), mean, scale).contiguous()
        self.y = y.to(self.device, torch.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.pad = pad
        self.epoch = 0
        self.index = 0
        self._perm: torch.Tensor | None = None
        self._perm_epoch = -1

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0))
            self._perm = torch.randperm(len(self.x), generator=g).to(self.device)
            self._perm_epoch = epoch
        return self._perm  # type: ignore[return-value]

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = self.epoch, self.index
        idx = self._order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        xb, yb = self.x[idx], self.y[idx]
        if self.augment:
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, index + 1))
            xb = augment_cifar(xb, g, self.pad)
        self.index += 1
        if self.index == len(self):  # normalize (e, len) to (e + 1, 0): one spelling per position
            self.epoch, self.index = epoch + 1, 0
        return xb, yb


class CifarEvalLoader:
    """Batches of a test or validation set in fixed order, no augmentation, last batch partial."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                 mean: torch.Tensor, device: str | torch.device = "cpu", scale: float = 1 / 255):
        if batch_size <= 0:
            raise DataError(f"batch size must be positive, got {batch_size}")
        self.device = torch.device(device)
        self.x = normalize(x.to(self.device), mean, scale).contiguous()
        self.y = y.to(self.device, torch.int64)
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]


@dataclass
class CifarLoaders:
    train: CifarLoader
    test: CifarEvalLoader
    val: CifarEvalLoader | None
    mean: torch.Tensor = field(repr=False)


def cifar_loaders(data: ImageArrays, batch_size: int, *, seed: int = 0,
                  device: str | torch.device = "cpu", augment: bool = True,
                  eval_batch_size: int | None = None, pad: int = 4) -> CifarLoaders:
    """The training stream and evaluation loaders, all normalized by the TRAIN split's mean."""
    mean = data.mean_image()
    eb = eval_batch_size or max(batch_size, 256)
    train = CifarLoader(data.train_x, data.train_y, batch_size, mean=mean, seed=seed,
                        augment=augment, pad=pad, device=device)
    test = CifarEvalLoader(data.test_x, data.test_y, eb, mean=mean, device=device)
    val = None
    if data.val_x is not None:
        val = CifarEvalLoader(data.val_x, data.val_y, eb, mean=mean, device=device)
    return CifarLoaders(train=train, test=test, val=val, mean=mean)
