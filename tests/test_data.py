"""Tests of the data layer on small files in the real on-disk formats (no network, no shared data)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resdsl.data as data
from resdsl.data import arrays, cifar, imagenet
from resdsl.data.arrays import ImageArrays, mean_image, split_validation
from resdsl.data.cifar import (
    CifarEvalLoader, CifarLoader, augment_cifar, cifar_loaders, find_cifar10, load_cifar10,
    verify_cifar10,
)
from resdsl.data.imagenet import (
    ImageMean, TenCropTransform, CenterCropTransform, TrainTransform, load_image,
    multiscale_scores, open_imagenet, resize_shorter, scan_split, to_uint8_tensor,
)
from resdsl.data.metrics import top1_error, top5_error, topk_correct
from resdsl.data.safe_pickle import safe_load_pickle
from resdsl.data.synthetic import make_synthetic
from resdsl.errors import DataError

PER_BATCH = 20
CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
           b"dog", b"frog", b"horse", b"ship", b"truck"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never look at (or download into) the user's real cache."""
    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    def refuse(url, timeout):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(cifar, "_urlopen", refuse)


def _batch(rng: np.random.Generator, n: int, name: str) -> dict:
    return {b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def write_mini_cifar(parent: Path, n: int = PER_BATCH, seed: int = 0) -> tuple[Path, dict]:
    """A cifar-10-batches-py folder in the real format (protocol 2 pickles, bytes keys)."""
    rng = np.random.default_rng(seed)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in cifar.TRAIN_FILES + (cifar.TEST_FILE,):
        batches[name] = _batch(rng, n, name)
        (folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
    meta = {b"num_cases_per_batch": n, b"label_names": CLASSES, b"num_vis": 3072}
    (folder / cifar.META_FILE).write_bytes(pickle.dumps(meta, protocol=2))
    return folder, batches


@pytest.fixture
def mini_cifar(tmp_path):
    return write_mini_cifar(tmp_path / "data")


# --------------------------------------------------------------------------- restricted unpickler

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_roundtrips_batches(tmp_path, protocol):
    b = _batch(np.random.default_rng(1), 7, "x")
    b[b"scalar"] = np.int64(42)
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps(b, protocol=protocol))
    got = safe_load_pickle(p)
    assert set(got) == set(b)
    assert got[b"data"].dtype == np.uint8 and np.array_equal(got[b"data"], b[b"data"])
    assert got[b"labels"] == b[b"labels"] and got[b"filenames"] == b[b"filenames"]
    assert got[b"scalar"] == 42


def test_restricted_unpickler_reads_numpy1_style_names(tmp_path, mini_cifar):
    # the original files (and the real data here) name numpy.core.multiarray._reconstruct
    folder, batches = mini_cifar
    raw = (folder / "data_batch_1").read_bytes()
    old = raw.replace(b"numpy._core.multiarray\n_reconstruct", b"numpy.core.multiarray\n_reconstruct")
    assert old != raw
    (tmp_path / "old").write_bytes(old)
    got = safe_load_pickle(tmp_path / "old")
    assert np.array_equal(got[b"data"], batches["data_batch_1"][b"data"])
    assert got[b"labels"] == batches["data_batch_1"][b"labels"]


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataError) as e:
        safe_load_pickle(p)
    msg = str(e.value)
    assert "refusing to load" in msg and str(p) in msg
    assert f"{os.system.__module__}.system" in msg
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_codecs_and_garbage(tmp_path):
    # _codecs.encode is admitted only with latin1 (how Python 3 pickles bytes)
    p = tmp_path / "rot"
    p.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load_pickle(p)
    p.write_bytes(pickle.dumps({"a": 1})[:-3])
    with pytest.raises(DataError, match=f"{p}.*truncated"):
        safe_load_pickle(p)


# --------------------------------------------------------------------------- CIFAR folder

def test_load_cifar10_matches_files(mini_cifar):
    folder, batches = mini_cifar
    d = load_cifar10(folder, strict_counts=False)
    assert d.train_x.shape == (5 * PER_BATCH, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (PER_BATCH, 3, 32, 32)
    assert d.train_y.dtype == torch.int64 and d.classes == [c.decode() for c in CLASSES]
    # image 3 of data_batch_2: red plane first, each plane row-major
    row = batches["data_batch_2"][b"data"][3]
    img = d.train_x[PER_BATCH + 3].numpy()
    assert np.array_equal(img[0, 1, :], row[32:64]) and np.array_equal(img[2], row[2048:].reshape(32, 32))
    assert d.train_y.tolist() == sum((batches[f][b"labels"] for f in cifar.TRAIN_FILES), [])
    assert np.array_equal(d.test_x.numpy().reshape(PER_BATCH, -1), batches["test_batch"][b"data"])


def test_find_cifar10_parent_or_folder_and_strict_counts(mini_cifar):
    folder, _ = mini_cifar
    assert find_cifar10(folder.parent, download=False, strict_counts=False) == folder
    assert find_cifar10(folder, download=False, strict_counts=False) == folder
    with pytest.raises(DataError, match=r"data_batch_1: holds 20 images, expected 10000"):
        find_cifar10(folder.parent, download=False)


def test_find_cifar10_uses_cache(tmp_path, monkeypatch):
    folder, _ = write_mini_cifar(tmp_path / "cache")
    assert find_cifar10(None, download=False, strict_counts=False) == folder
    assert find_cifar10(tmp_path / "elsewhere", download=False, strict_counts=False) == folder


def _rewrite(folder: Path, name: str, changes: dict) -> None:
    d = pickle.loads((folder / name).read_bytes())
    d.update(changes)
    (folder / name).write_bytes(pickle.dumps(d, protocol=2))


@pytest.mark.parametrize("change, message", [
    ({b"data": np.zeros((PER_BATCH, 3071), np.uint8)}, r"'data' is a uint8 array of shape \(20, 3071\)"),
    ({b"data": np.zeros((PER_BATCH, 3072), np.float32)}, "'data' is a float32 array"),
    ({b"labels": [10] * PER_BATCH}, r"labels must lie in 0..9, found 10..10"),
    ({b"labels": [0] * (PER_BATCH - 1)}, "'labels' must be 20 integers"),
    ({b"labels": [0.5] * PER_BATCH}, "'labels' must be 20 integers"),
])
def test_verify_names_the_bad_file(mini_cifar, change, message):
    folder, _ = mini_cifar
    _rewrite(folder, "data_batch_3", change)
    with pytest.raises(DataError, match=message) as e:
        verify_cifar10(folder, strict_counts=False)
    assert str(folder / "data_batch_3") in str(e.value)


def test_verify_missing_truncated_and_inconsistent(mini_cifar):
    folder, _ = mini_cifar
    (folder / "data_batch_4").write_bytes((folder / "data_batch_4").read_bytes()[:5000])
    with pytest.raises(DataError, match=f"{folder / 'data_batch_4'} is not a readable pickle"):
        verify_cifar10(folder, strict_counts=False)
    (folder / "data_batch_4").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="missing data_batch_4, test_batch"):
        verify_cifar10(folder, strict_counts=False)


def test_verify_inconsistent_counts(tmp_path):
    folder, _ = write_mini_cifar(tmp_path)
    _rewrite(folder, "data_batch_5", {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 5})
    with pytest.raises(DataError, match="data_batch_5: 5"):
        verify_cifar10(folder, strict_counts=False)


def test_no_network_message(tmp_path):
    with pytest.raises(DataError) as e:
        find_cifar10(tmp_path / "empty", download=True)
    msg = str(e.value)
    cache = tmp_path / "cache"
    assert "downloading it failed (network disabled in tests)" in msg
    assert f"{cache / 'cifar-10-batches-py'}/data_batch_1" in msg and cifar.CIFAR10_URL in msg
    assert not (cache / "cifar-10-batches-py").exists()
    assert [p.name for p in cache.iterdir()] == []  # the partial download was removed
    with pytest.raises(DataError, match="CIFAR-10 not found; looked in"):
        find_cifar10(tmp_path / "empty", download=False)


def _tar_of(folder: Path, extra: tuple[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        if extra:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            tar.addfile(info, io.BytesIO(extra[1]))
    return buf.getvalue()


def test_download_verifies_and_extracts_atomically(tmp_path, monkeypatch):
    src, batches = write_mini_cifar(tmp_path / "src")
    archive = _tar_of(src)
    monkeypatch.setattr(cifar, "_urlopen", lambda url, timeout: io.BytesIO(archive))
    monkeypatch.setattr(cifar, "CIFAR10_MD5", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"has md5 {hashlib.md5(archive).hexdigest()}, expected 0000"):
        find_cifar10(None, strict_counts=False)
    assert list(cache.iterdir()) == []
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    folder = find_cifar10(None, strict_counts=False)
    assert folder == cache / "cifar-10-batches-py"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # no temp leftovers
    d = load_cifar10(folder, strict_counts=False)
    assert np.array_equal(d.test_x.numpy().reshape(PER_BATCH, -1), batches["test_batch"][b"data"])


def test_download_refuses_path_traversal(tmp_path, monkeypatch):
    src, _ = write_mini_cifar(tmp_path / "src")
    archive = _tar_of(src, extra=("../escaped.txt", b"gotcha"))
    monkeypatch.setattr(cifar, "_urlopen", lambda url, timeout: io.BytesIO(archive))
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(archive).hexdigest())
    with pytest.raises(DataError, match="'../escaped.txt' would be written outside"):
        find_cifar10(None, strict_counts=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "escaped.txt").exists()
    assert list((tmp_path / "cache").iterdir()) == []


# --------------------------------------------------------------------------- mean, split

def test_mean_image_equals_numpy(mini_cifar):
    d = load_cifar10(mini_cifar[0], strict_counts=False)
    x = d.train_x.numpy()
    expected = (x.astype(np.int64).sum(0) / len(x)).astype(np.float32)
    m = d.mean_image()
    assert m.dtype == torch.float32 and m.shape == (3, 32, 32)
    assert np.array_equal(m.numpy(), expected)
    np.testing.assert_allclose(m.numpy(), x.mean(0), rtol=1e-6)
    # the chunked sum used for device tensors is exact too (chunk 7 does not divide 100)
    assert np.array_equal(arrays._chunked_sum(d.train_x, 7).numpy(), x.astype(np.int64).sum(0))


def test_split_validation(mini_cifar):
    d = load_cifar10(mini_cifar[0], strict_counts=False)
    s = split_validation(d, 30, seed=3)
    assert len(s.train_x) == 70 and len(s.val_x) == 30 and len(s.val_y) == 30
    # identify images by their bytes: disjoint, and together exactly the original training set
    key = lambda t: {bytes(r) for r in t.reshape(len(t), -1).numpy()}
    assert not key(s.train_x) & key(s.val_x)
    assert key(s.train_x) | key(s.val_x) == key(d.train_x)
    assert torch.equal(split_validation(d, 30, seed=3).val_x, s.val_x)
    assert not torch.equal(split_validation(d, 30, seed=4).val_x, s.val_x)
    assert torch.equal(s.test_x, d.test_x)
    assert split_validation(d, 0, seed=1) is d
    with pytest.raises(DataError, match="between 0 and the number of training images"):
        split_validation(d, 100, seed=0)
    with pytest.raises(DataError, match="already has a validation split"):
        split_validation(s, 5, seed=0)


# --------------------------------------------------------------------------- augmentation

def _windows(x: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Slow reference: every crop of the zero-padded image, and its flip."""
    c, h, w = x.shape
    p = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=x.dtype)
    p[:, pad:pad + h, pad:pad + w] = x
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            win = p[:, dy:dy + h, dx:dx + w]
            out += [win, win.flip(-1)]
    return out


def test_augment_outputs_are_windows_of_the_padded_input():
    g0 = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=g0)  # distinct values: a window match is unique
    out = augment_cifar(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    chosen = []
    for i in range(64):
        matches = [k for k, w in enumerate(_windows(x[i], 4)) if torch.equal(w, out[i])]
        assert len(matches) == 1, f"sample {i} is not a shifted/flipped window"
        chosen.append(matches[0])
    # per-sample choices: many different offsets, both flips (window index parity = flip)
    assert len(set(chosen)) > 30 and {k % 2 for k in chosen} == {0, 1}
    assert (out == 0).any()  # padded border pixels are exactly zero
    many = augment_cifar(torch.randn(512, 1, 4, 4, generator=g0), torch.Generator().manual_seed(1),
                         pad=1)
    assert many.shape == (512, 1, 4, 4)


def test_augment_is_deterministic_and_dtype_preserving():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    a = augment_cifar(x, torch.Generator().manual_seed(5), pad=2)
    b = augment_cifar(x, torch.Generator().manual_seed(5), pad=2)
    c = augment_cifar(x, torch.Generator().manual_seed(6), pad=2)
    assert a.dtype == torch.uint8 and torch.equal(a, b) and not torch.equal(a, c)
    for i in range(16):
        assert any(torch.equal(w, a[i]) for w in _windows(x[i], 2))


def test_augment_flip_and_offsets_cover_all_choices():
    x = torch.arange(9 * 9, dtype=torch.float32).reshape(1, 1, 9, 9) + 1
    x = x.expand(4000, 1, 9, 9).contiguous()
    out = augment_cifar(x, torch.Generator().manual_seed(0), pad=1)
    seen = set()
    for i in range(len(out)):
        for k, w in enumerate(_windows(x[0], 1)):
            if torch.equal(w, out[i]):
                seen.add(k)
                break
    assert seen == set(range(18))  # 3x3 offsets x 2 flips, all reached


# --------------------------------------------------------------------------- loaders

def _toy(n=100, seed=0) -> ImageArrays:
    return make_synthetic(num_train=n, num_test=37, num_classes=10, shape=(3, 8, 8), seed=seed)


def test_train_loader_epochs_and_drop_last():
    d = _toy()
    mean = d.mean_image()
    ld = CifarLoader(d.train_x, d.train_y, 32, mean=mean, seed=1, augment=False)
    assert len(ld) == 3
    seen = []
    for _ in range(3):
        x, y = next(ld)
        assert x.shape == (32, 3, 8, 8) and x.dtype == torch.float32 and y.shape == (32,)
        seen.append(x)
    assert ld.position == (1, 0) and ld.epochs_done == 1.0
    xs = torch.cat(seen)
    norm = (d.train_x.float() - mean) / 255
    # each sample at most once per epoch, each equal to a normalized training image
    idx = [int(torch.nonzero((norm - v).abs().flatten(1).amax(1) < 1e-6)[0]) for v in xs]
    assert len(set(idx)) == 96
    # the next epoch is a different order
    x2, _ = next(ld)
    assert not torch.equal(x2, seen[0])


def test_train_loader_resume_gives_identical_batches(tmp_path):
    d = _toy()
    mean = d.mean_image()
    mk = lambda: CifarLoader(d.train_x, d.train_y, 16, mean=mean, seed=3, augment=True, pad=2)
    ref = mk()
    full = [next(ref) for _ in range(20)]  # 6 batches per epoch: crosses three epoch boundaries
    first = mk()
    for _ in range(8):
        next(first)
    torch.save({"data": first.state_dict()}, tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)["data"]
    assert state["epoch"] == 1 and state["index"] == 2
    resumed = mk()
    resumed.load_state_dict(state)
    for k in range(8, 20):
        x, y = next(resumed)
        assert torch.equal(x, full[k][0]) and torch.equal(y, full[k][1])
    # a different seed gives a different stream
    other = CifarLoader(d.train_x, d.train_y, 16, mean=mean, seed=4, augment=True, pad=2)
    assert not torch.equal(next(other)[0], full[0][0])


def test_train_loader_state_mismatch_and_bad_batch():
    d = _toy()
    mean = d.mean_image()
    ld = CifarLoader(d.train_x, d.train_y, 16, mean=mean, seed=3)
    with pytest.raises(DataError, match="saved with batch_size 32, but this loader has 16"):
        ld.load_state_dict({"epoch": 0, "index": 0, "batch_size": 32})
    with pytest.raises(DataError, match="an epoch has 6 batches"):
        ld.load_state_dict({"epoch": 0, "index": 6})
    with pytest.raises(DataError, match="larger than the training set"):
        CifarLoader(d.train_x, d.train_y, 101, mean=mean)


def test_eval_loader_fixed_order_all_samples():
    d = _toy()
    mean = d.mean_image()
    ev = CifarEvalLoader(d.test_x, d.test_y, 16, mean=mean)
    batches = list(ev)
    assert len(ev) == 3 and [len(b[0]) for b in batches] == [16, 16, 5]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), d.test_y)
    assert torch.allclose(x, (d.test_x.float() - mean) / 255, atol=1e-7, rtol=0)
    assert torch.equal(torch.cat([b[0] for b in ev]), x)


def test_cifar_loaders_use_train_split_mean():
    d = split_validation(_toy(), 20, seed=0)
    ls = cifar_loaders(d, 16, seed=0, eval_batch_size=50)
    assert torch.equal(ls.mean, mean_image(d.train_x))
    assert ls.val is not None and ls.val.num_samples == 20 and ls.test.num_samples == 37
    assert ls.train.num_samples == 80


# --------------------------------------------------------------------------- synthetic

def test_synthetic_deterministic_shapes_balanced():
    a = make_synthetic(num_train=200, num_test=50, seed=1)
    b = make_synthetic(num_train=200, num_test=50, seed=1)
    c = make_synthetic(num_train=200, num_test=50, seed=2)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.train_x.shape == (200, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert torch.bincount(a.train_y).tolist() == [20] * 10 and a.num_classes == 10
    s = make_synthetic(num_train=30, num_test=6, num_classes=3, shape=(1, 12, 10), seed=0)
    assert s.train_x.shape == (30, 1, 12, 10) and s.classes == ["class0", "class1", "class2"]
    with pytest.raises(DataError, match="at least 2 classes"):
        make_synthetic(num_classes=1)


def test_synthetic_is_learnable():
    d = make_synthetic(num_train=1000, num_test=500, seed=0)
    # a nearest-class-mean classifier already separates the classes; and the noise is real
    means = torch.stack([d.train_x[d.train_y == k].float().mean(0) for k in range(10)])
    dist = ((d.test_x.float()[:, None] - means[None]) ** 2).flatten(2).sum(-1)
    assert top1_error(-dist, d.test_y) < 0.05
    assert (d.train_x[d.train_y == 0].float().std(0).mean() > 20)


# --------------------------------------------------------------------------- ImageNet folders

def _img(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def write_image_folder(root: Path, classes=("cat", "dog", "fish"), per_class=4, val_per_class=2,
                       size=(20, 16), fmt="JPEG") -> Path:
    rng = np.random.default_rng(0)
    ext = {"JPEG": ".JPEG", "PNG": ".png"}[fmt]
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                _img(rng, *size).save(d / f"{c}_{i}{ext}", format=fmt)
    return root


@pytest.fixture
def folders(tmp_path):
    return write_image_folder(tmp_path / "imnet")


def test_scan_split_and_labels(folders):
    classes, items = scan_split(folders, "train")
    assert classes == ["cat", "dog", "fish"] and len(items) == 12
    assert items[0] == (folders / "train" / "cat" / "cat_0.JPEG", 0)
    assert items[-1][1] == 2
    (folders / "train" / "dog" / "notes.txt").write_text("x")  # non-images are ignored
    assert len(scan_split(folders, "train")[1]) == 12


def test_layout_errors(tmp_path, folders):
    with pytest.raises(DataError, match="does not exist"):
        open_imagenet(tmp_path / "nope")
    (folders / "val").rename(folders / "vall")
    with pytest.raises(DataError, match=r"has no val/ folder \(it has: train, vall\); did you mean vall/"):
        scan_split(folders, "val")
    (folders / "vall" / "cat").rename(folders / "vall" / "kat")
    with pytest.raises(DataError, match="class 'kat' is not a training class \\(did you mean 'cat'\\?\\)"):
        scan_split(folders, "vall", ["cat", "dog", "fish"])
    for f in (folders / "train" / "fish").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=f"class folder {folders / 'train' / 'fish'} holds no images"):
        scan_split(folders, "train")
    flat = tmp_path / "flat" / "val"
    flat.mkdir(parents=True)
    _img(np.random.default_rng(0), 8, 8).save(flat / "a.JPEG")
    with pytest.raises(DataError, match="has no class folders: 1 images lie directly in it"):
        scan_split(flat.parent, "val")


def test_unreadable_image_is_named(folders):
    bad = folders / "train" / "dog" / "dog_1.JPEG"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=f"cannot read image {bad}"):
        load_image(bad)
    d = open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean="imagenet")
    ld = d.train_loader(12, num_workers=2)  # the error crosses a worker process, cleanly
    with pytest.raises(DataError) as e:
        next(ld)
    assert str(e.value).startswith(f"cannot read image {bad}") and "Traceback" not in str(e.value)
    assert ld.position == (0, 0)  # the failed batch was not consumed
    vbad = folders / "val" / "fish" / "fish_0.JPEG"
    vbad.write_bytes(b"")
    with pytest.raises(DataError, match=f"cannot read image {vbad}"):
        list(d.val_loader(2, num_workers=2))


def test_ten_crop_regions(folders):
    path = folders / "val" / "dog" / "dog_1.JPEG"
    img = load_image(path)
    pixel_mean = torch.rand(3, 12, 12) * 255
    mean = ImageMean(channel=pixel_mean.mean((1, 2)), pixel=pixel_mean)
    crops = TenCropTransform(mean, resize=16, crop=12)(img)
    assert crops.shape == (10, 3, 12, 12)
    assert resize_shorter(img, 16).size == (20, 16)  # already shorter side 16: unchanged
    big = np.asarray(img).transpose(2, 0, 1).astype(np.float32)
    regions = [big[:, :12, :12], big[:, :12, 8:], big[:, 4:, :12], big[:, 4:, 8:], big[:, 2:14, 4:16]]
    regions += [r[:, :, ::-1] for r in regions]
    for k, r in enumerate(regions):
        expected = (r - pixel_mean.numpy()) / 255
        np.testing.assert_allclose(crops[k].numpy(), expected, rtol=0, atol=1e-6, err_msg=f"crop {k}")
    center = CenterCropTransform(mean, resize=16, crop=12)(img)
    assert torch.equal(center, crops[4])


def test_resize_shorter_side():
    img = Image.new("RGB", (40, 30))
    assert resize_shorter(img, 15).size == (20, 15)
    assert resize_shorter(Image.new("RGB", (30, 45)), 20).size == (20, 30)


def test_train_transform_is_a_scaled_crop_and_deterministic(folders):
    img = load_image(folders / "train" / "cat" / "cat_2.JPEG")
    zero = ImageMean(channel=torch.zeros(3))
    t = TrainTransform(zero, crop=12, scale=(16, 20), pca_std=0.0)
    for seed in range(4):
        out = t(img, torch.Generator().manual_seed(seed))
        assert out.shape == (3, 12, 12)
        assert torch.equal(out, t(img, torch.Generator().manual_seed(seed)))
        pix = (out * 255).round().to(torch.uint8)
        found = False
        for s in range(16, 21):
            r = to_uint8_tensor(resize_shorter(img, s))
            _, h, w = r.shape
            for top in range(h - 11):
                for left in range(w - 11):
                    win = r[:, top:top + 12, left:left + 12]
                    found |= torch.equal(win, pix) or torch.equal(win.flip(-1), pix)
        assert found, f"seed {seed}: not a crop of a resized image"
    with pytest.raises(DataError, match="must fit the smallest scale"):
        TrainTransform(zero, crop=20, scale=(16, 24))


def test_pca_colour_augmentation_is_a_constant_shift(folders):
    img = load_image(folders / "train" / "fish" / "fish_0.JPEG")
    mean = ImageMean(channel=torch.tensor([100.0, 110.0, 120.0]), pixel=torch.rand(3, 12, 12) * 255)
    plain = TrainTransform(mean, crop=12, scale=(16, 24), pca_std=0.0)
    coloured = TrainTransform(mean, crop=12, scale=(16, 24), pca_std=0.1)
    shifts = []
    for seed in range(3):
        a = plain(img, torch.Generator().manual_seed(seed))
        b = coloured(img, torch.Generator().manual_seed(seed))
        diff = b - a
        per_channel = diff[:, :1, :1]
        assert torch.allclose(diff, per_channel.expand_as(diff), atol=1e-6)  # one RGB offset per image
        assert per_channel.abs().max() > 1e-4
        shifts.append(per_channel.flatten())
    assert not torch.allclose(shifts[0], shifts[1])
    # the offset lies in the span of the eigenvectors with the AlexNet eigenvalues
    alpha = torch.tensor([1.0, 0.0, 0.0])
    np.testing.assert_allclose(imagenet.pca_shift(alpha).numpy(),
                               0.2175 * np.array([-0.5675, -0.5808, -0.5836]), rtol=1e-6)


def test_mean_computed_and_cached(folders, monkeypatch):
    d = open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean_sample=100, num_workers=0)
    crops = []
    for path, _ in d.train_items:
        r = np.asarray(resize_shorter(load_image(path), 16)).transpose(2, 0, 1).astype(np.float64)
        crops.append(r[:, 2:14, 4:16])
    expected = np.mean(crops, axis=0)
    np.testing.assert_allclose(d.mean.pixel.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(d.mean.channel.numpy(), expected.mean((1, 2)), rtol=1e-5)
    cached = list((folders / ".resdsl").glob("mean-r16-c12-n100-s0.npz"))
    assert len(cached) == 1

    def boom(*a, **k):
        raise AssertionError("mean recomputed despite the cache")
    monkeypatch.setattr(imagenet, "compute_mean", boom)
    again = open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean_sample=100)
    assert torch.equal(again.mean.pixel, d.mean.pixel)
    ch = open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean_sample=100, mean="channel")
    assert ch.mean.pixel is None and torch.equal(ch.mean.channel, d.mean.channel)


def test_mean_cache_falls_back_when_root_read_only(folders, monkeypatch, tmp_path):
    monkeypatch.setattr(imagenet.os, "access", lambda p, mode: False)
    open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean_sample=5, num_workers=0)
    assert not (folders / ".resdsl").exists()
    assert len(list((tmp_path / "cache" / "imagenet").glob("*/mean-r16-c12-n5-s0.npz"))) == 1


def test_imagenet_loader_workers_resume_and_views(folders):
    d = open_imagenet(folders, crop=12, resize=16, scale=(16, 24), mean="imagenet")
    assert d.num_classes == 3 and d.input_shape == (3, 12, 12)
    ref = d.train_loader(4, seed=1, num_workers=0)
    assert len(ref) == 3
    full = [next(ref) for _ in range(7)]
    assert full[0][0].shape == (4, 3, 12, 12) and full[0][1].dtype == torch.int64
    par = d.train_loader(4, seed=1, num_workers=2)
    for _ in range(4):
        next(par)
    state = par.state_dict()
    assert (state["epoch"], state["index"]) == (1, 1)
    resumed = d.train_loader(4, seed=1, num_workers=2)
    resumed.load_state_dict(state)
    for k in range(4, 7):
        x, y = next(resumed)
        assert torch.equal(x, full[k][0]) and torch.equal(y, full[k][1])
    ten = list(d.val_loader(4, mode="10crop", num_workers=0))
    assert [tuple(x.shape) for x, _ in ten] == [(4, 10, 3, 12, 12), (2, 10, 3, 12, 12)]
    ms = list(d.val_loader(4, mode="multiscale", num_workers=0))
    assert len(ms) == 6 and ms[0][0].shape == (1, 3, 16, 20)
    with pytest.raises(DataError, match="did you mean '10crop'"):
        d.val_dataset("10-crop")
    with pytest.raises(DataError, match="image sizes do not fit"):
        open_imagenet(folders, crop=20, resize=16, scale=(16, 24), mean="imagenet")


class _TinyNet(torch.nn.Module):
    """Conv + global average pooling + linear: accepts any image size, like the spec models."""

    def __init__(self, k=4, spatial=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, k, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))
        self.spatial = spatial

    def forward(self, x):
        y = self.conv(x)
        return y if self.spatial else y.mean((2, 3))


def test_multiscale_scores_average_softmax_over_scales_and_flips():
    net = _TinyNet().eval()
    img = torch.randn(1, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    p = multiscale_scores(net, img, scales=[16, 24])
    assert p.shape == (4,) and abs(float(p.sum()) - 1) < 1e-5
    big = torch.nn.functional.interpolate(img, size=(24, 30), mode="bilinear", align_corners=False,
                                          antialias=True)
    views = [img, img.flip(-1), big, big.flip(-1)]
    expected = torch.stack([net(v).softmax(1)[0] for v in views]).mean(0)
    assert torch.allclose(p, expected, atol=1e-6)
    # a score map is averaged over positions after the softmax
    smap = _TinyNet(spatial=True).eval()
    q = multiscale_scores(smap, img, scales=[16], flip=False)
    assert torch.allclose(q, smap(img).softmax(1).mean((2, 3))[0], atol=1e-6)
    # uint8 input is normalized with the channel mean first
    u8 = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    mean = ImageMean(channel=torch.tensor([120.0, 110.0, 100.0]))
    r = multiscale_scores(net, u8, scales=[16], mean=mean)
    assert torch.allclose(r, multiscale_scores(net, mean.normalize(u8), scales=[16]), atol=1e-6)


def test_tencrop_scores():
    net = _TinyNet().eval()
    crops = torch.randn(2, 10, 3, 8, 8)
    p = imagenet.tencrop_scores(net, crops)
    assert torch.allclose(p[1], net(crops[1]).softmax(1).mean(0), atol=1e-6)


# --------------------------------------------------------------------------- metrics

def test_topk_errors():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.0, 0.0, 0.0, 0.3],
                           [0.9, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0],
                           [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
                           [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    y = torch.tensor([1, 2, 0, 2])
    assert topk_correct(scores, y, (1, 2, 5)) == [1, 2, 3]
    assert top1_error(scores, y) == 0.75
    assert top5_error(scores, y) == 0.25
    assert top5_error(scores[:, :5], y) is None


# --------------------------------------------------------------------------- front door

def test_open_dataset(mini_cifar, folders):
    folder, _ = mini_cifar
    c = data.open_dataset("cifar10", folder.parent, download=False, strict_counts=False,
                          val_size=10, seed=0)
    assert isinstance(c, ImageArrays) and len(c.train_x) == 90 and len(c.val_x) == 10
    s = data.open_dataset("synthetic", None, num_train=100, num_test=10, val_size=20)
    assert s.name == "synthetic" and len(s.val_x) == 20
    im = data.open_dataset("imagenet", folders, crop=12, resize=16, scale=(16, 24), mean="imagenet")
    assert im.classes == ["cat", "dog", "fish"]
    with pytest.raises(DataError, match="unknown data set 'cifar'.*did you mean 'cifar10'"):
        data.open_dataset("cifar", None)
    with pytest.raises(DataError, match="has no option 'num_trian' \\(did you mean 'num_train'\\?\\)"):
        data.open_dataset("synthetic", None, num_trian=5)
    with pytest.raises(DataError, match="needs a data folder"):
        data.open_dataset("imagenet", None)
