"""The data layer: CIFAR-10, ImageNet-style folders and synthetic data.

``open_dataset(name, data_dir, **opts)`` is the front door used by training:

- ``"cifar10"`` -> ``ImageArrays`` (uint8 tensors in memory). Options: ``download`` (default
  True), ``strict_counts`` (default True: 10000 images per batch), ``val_size`` and ``seed``
  (hold out a validation split from the training set, see ``split_validation``).
- ``"synthetic"`` -> ``ImageArrays`` generated from a seed (options of ``make_synthetic``, plus
  ``val_size``); ``data_dir`` is ignored.
- ``"imagenet"`` -> ``ImageNetData`` (options of ``open_imagenet``).

CIFAR-like data is then fed through ``cifar_loaders`` (GPU-side augmentation), ImageNet through
``ImageNetData.train_loader`` / ``val_loader`` (worker processes). Both training streams share a
contract: endless ``next()``, drop-last, ``state_dict()``/``load_state_dict()`` for exact resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from resdsl.data.names import DATASETS, TEST_MODES
from resdsl.errors import DataError, did_you_mean
from resdsl.lazy import lazy_exports
from resdsl.text import choose

if TYPE_CHECKING:
    from resdsl.data.arrays import ImageArrays
    from resdsl.data.imagenet import ImageNetData

# Everything else is imported on first use: the names above are read by the command line's
# help, which must not wait for torch.
_HOMES = {
    "resdsl.data.arrays": ("ImageArrays", "ImageMean", "mean_image", "normalize", "split_validation"),
    "resdsl.data.cifar": ("CIFAR10_CLASSES", "CifarEvalLoader", "CifarLoader", "CifarLoaders",
                          "augment_cifar", "cache_dir", "cifar_loaders", "download_cifar10",
                          "find_cifar10", "load_cifar10", "verify_cifar10"),
    "resdsl.data.imagenet": ("ImageFolder", "ImageNetData", "ImageNetLoader",
                             "multiscale_scores", "multiscale_sizes", "open_imagenet",
                             "open_imagenet_val", "tencrop_scores"),
    "resdsl.data.metrics": ("top1_error", "top5_error", "topk_correct"),
    "resdsl.data.safe_pickle": ("safe_load_pickle",),
    "resdsl.data.synthetic": ("make_synthetic",),
}
__getattr__, __dir__ = lazy_exports(globals(), _HOMES)

__all__ = ["DATASETS", "TEST_MODES", "open_dataset", *(n for names in _HOMES.values() for n in names)]


def open_dataset(name: str, data_dir: str | Path | None = None, **opts) -> ImageArrays | ImageNetData:
    """Open a data set by name; see the module docstring for the options of each."""
    from resdsl.data.arrays import split_validation
    from resdsl.data.cifar import find_cifar10, load_cifar10
    from resdsl.data.imagenet import open_imagenet
    from resdsl.data.synthetic import make_synthetic

    choose("unknown data set", name, DATASETS, DataError)  # one of the three below, or an error
    if name == "cifar10":
        val_size, seed = opts.pop("val_size", 0), opts.pop("seed", 0)
        _no_extra(name, opts, {"download", "strict_counts"})
        strict = opts.get("strict_counts", True)
        folder = find_cifar10(data_dir, download=opts.get("download", True), strict_counts=strict)
        return split_validation(load_cifar10(folder, strict_counts=strict), val_size, seed)
    if name == "synthetic":
        val_size = opts.pop("val_size", 0)
        _no_extra(name, opts, {"num_train", "num_test", "num_classes", "shape", "seed", "noise",
                               "contrast", "brightness", "grid"})
        data = make_synthetic(**opts)
        return split_validation(data, val_size, opts.get("seed", 0))
    if name == "imagenet":
        if data_dir is None:
            raise DataError("the imagenet data set needs a data folder holding train/ and val/ "
                            "(one sub-folder per class); pass its path")
        _no_extra(name, opts, {"crop", "resize", "scale", "mean", "mean_sample", "seed",
                               "num_workers"})
        return open_imagenet(data_dir, **opts)


def _no_extra(name: str, opts: dict, allowed: set[str]) -> None:
    for key in opts:
        if key not in allowed:
            guess = did_you_mean(key, allowed)
            raise DataError(f"data set {name} has no option {key!r}"
                            + (f" (did you mean {guess!r}?)" if guess else "")
                            + f"; its options are {', '.join(sorted(allowed))}")
