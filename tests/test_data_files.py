"""Dataset files: one clear DataFileError per kind of damage, and the identity of a dataset's files.

Every file here is a few KB generated in tmp_path; the real datasets are never needed (one optional
check uses them when present).
"""
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from functions.engine import data, datasets
from functions.engine.data import DataFileError
from functions.engine.errors import ConfigError

IDX = dict(zip(("train_x", "train_y", "test_x", "test_y"), datasets.IDX_FILES))
N_TRAIN, N_TEST = 30, 20


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """IDX encoding: magic (0, 0, type, ndim), big-endian dims, raw bytes."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, name: str = "MNIST", seed: int = 0) -> Path:
    """A tiny valid MNIST-layout dataset; returns its raw folder."""
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        (raw / IDX[f"{split}_x"]).write_bytes(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        (raw / IDX[f"{split}_y"]).write_bytes(idx_bytes(np.arange(n) % 10))
    return raw


def rewrite(path: Path, content: bytes) -> None:
    """Replace a file's bytes and move its mtime on, as a later edit would (coarse clocks tie otherwise)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(content)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def load(root, name="MNIST"):
    return data.load_dataset(name, str(root), download=False)


# ----------------------------------------------------------------------------- IDX damage
def _truncate(raw):
    p = raw / IDX["train_x"]
    rewrite(p, p.read_bytes()[:-100])
    return p


def _trailing(raw):
    p = raw / IDX["train_y"]
    rewrite(p, p.read_bytes() + b"\0\0\0")
    return p


def _zero_magic(raw):
    p = raw / IDX["train_x"]
    rewrite(p, b"\0\0\0\0" + p.read_bytes()[4:])
    return p


def _foreign_magic(raw):
    p = raw / IDX["test_x"]
    rewrite(p, b"\x12\x34" + p.read_bytes()[2:])
    return p


def _int_type(raw):
    p = raw / IDX["train_y"]
    rewrite(p, idx_bytes(np.arange(N_TRAIN) % 10, type_code=0x0C))
    return p


def _gzipped(raw):
    p = raw / IDX["test_y"]
    rewrite(p, gzip.compress(p.read_bytes()))
    return p


def _empty_labels(raw):
    p = raw / IDX["train_y"]
    rewrite(p, b"")
    return p


def _zero_labels(raw):
    p = raw / IDX["train_y"]
    rewrite(p, idx_bytes(np.zeros(0)))
    return p


def _short_header(raw):
    p = raw / IDX["train_x"]
    rewrite(p, bytes([0, 0, 8, 3]) + (5).to_bytes(4, "big"))
    return p


def _images_2d(raw):
    p = raw / IDX["train_x"]
    rewrite(p, idx_bytes(np.zeros((N_TRAIN, 784))))
    return p


def _labels_2d(raw):
    p = raw / IDX["test_y"]
    rewrite(p, idx_bytes(np.zeros((N_TEST, 1))))
    return p


def _swap_images_labels(raw):
    x, y = raw / IDX["train_x"], raw / IDX["train_y"]
    bx, by = x.read_bytes(), y.read_bytes()
    rewrite(x, by)
    rewrite(y, bx)
    return x


def _swap_train_test_labels(raw):
    a, b = raw / IDX["train_y"], raw / IDX["test_y"]
    ba, bb = a.read_bytes(), b.read_bytes()
    rewrite(a, bb)
    rewrite(b, ba)
    return raw / IDX["train_x"]


def _label_ten(raw):
    p = raw / IDX["test_y"]
    labels = np.arange(N_TEST) % 10
    labels[7] = 10
    rewrite(p, idx_bytes(labels))
    return p


IDX_DAMAGE = [
    (_truncate, r"truncated IDX file: the header's dims 30×28×28 need 23520 bytes of data, but 23420 follow"),
    (_trailing, r"IDX file has trailing bytes"),
    (_zero_magic, r"IDX magic number 0x00000000: element type 0x00 \(unknown\) is not supported; expected 0x08"),
    (_foreign_magic, r"not an IDX file: magic number 0x12340803"),
    (_int_type, r"IDX magic number 0x00000c01: element type 0x0c \(int\)"),
    (_gzipped, r"is gzip-compressed"),
    (_empty_labels, r"empty file \(0 bytes\)"),
    (_zero_labels, r"holds no labels"),
    (_short_header, r"truncated IDX header: 3 dimensions need 16 header bytes, the file has 8"),
    (_images_2d, r"an images file needs 3 dimensions .* has 2 \(30, 784\)"),
    (_labels_2d, r"a labels file needs 1 dimension .* has 2 \(20, 1\)"),
    (_swap_images_labels, r"needs 3 dimensions .* has 1 \(30,\) — is it a labels file\?"),
    (_swap_train_test_labels, r"holds 30 images but its labels file .*train-labels-idx1-ubyte holds 20 labels"),
    (_label_ten, r"1 label\(s\) outside 0..9, the first is 10 at index 7"),
]


@pytest.mark.parametrize("damage, message", IDX_DAMAGE, ids=[d.__name__.strip("_") for d, _ in IDX_DAMAGE])
def test_damaged_idx_file_raises_one_clear_error(tmp_path, damage, message):
    raw = write_mnist(tmp_path)
    path = damage(raw)
    with pytest.raises(DataFileError, match=message) as info:
        load(tmp_path)
    assert str(info.value).startswith(f"{path}: ")  # the message names the damaged file first
    assert info.value.path == path and isinstance(info.value, ValueError)


def test_valid_tiny_idx_loads(tmp_path):
    write_mnist(tmp_path, "FashionMNIST")
    raw = load(tmp_path, "FashionMNIST")
    assert raw.x_train.shape == (N_TRAIN, 1, 28, 28) and raw.x_test.shape == (N_TEST, 1, 28, 28)
    assert raw.y_train.dtype == torch.int64 and raw.y_train.tolist() == [i % 10 for i in range(N_TRAIN)]


# ----------------------------------------------------------------------------- CIFAR damage
def write_cifar(root: Path, per_batch: int = 4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(datasets.CIFAR_FILES):
        batch = {"data": np.full((per_batch, 3072), i, np.uint8), "labels": list(range(per_batch)),
                 "batch_label": name}
        rewrite(folder / name, pickle.dumps(batch))
    return folder


def _pickle(obj):
    return lambda old: pickle.dumps(obj)


CIFAR_DAMAGE = [
    ("truncated", lambda old: old[: len(old) // 2], r"unreadable CIFAR batch \((EOFError|UnpicklingError)"),
    ("garbage", lambda old: b"not a pickle at all", r"unreadable CIFAR batch"),
    ("empty", lambda old: b"", r"unreadable CIFAR batch \(EOFError"),
    ("no_labels", _pickle({"data": np.zeros((4, 3072), np.uint8)}), r"CIFAR batch lacks \['labels'\]"),
    ("no_data", _pickle({"labels": [1, 2]}), r"CIFAR batch lacks \['data'\]"),
    ("not_dict", _pickle([1, 2, 3]), r"must be a dict, this pickle holds a list"),
    ("wrong_size", _pickle({"data": np.zeros((4, 3000), np.uint8), "labels": [0, 1, 2, 3]}),
     r"wrong size: 'data' holds 12000 bytes \(4, 3000\), but 4 labels need 4 × 3×32×32 = 12288"),
    ("no_images", _pickle({"data": np.zeros((0, 3072), np.uint8), "labels": []}), r"non-empty 1-D label"),
    ("label_range", _pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [3, -1]}),
     r"outside 0..9, the first is -1 at index 1"),
]


@pytest.mark.parametrize("case, corrupt, message", CIFAR_DAMAGE, ids=[c[0] for c in CIFAR_DAMAGE])
def test_damaged_cifar_batch_raises_one_clear_error(tmp_path, case, corrupt, message):
    folder = write_cifar(tmp_path)
    path = folder / "data_batch_3"
    rewrite(path, corrupt(path.read_bytes()))
    with pytest.raises(DataFileError, match=message) as info:
        load(tmp_path, "CIFAR10")
    assert str(info.value).startswith(f"{path}: ")


def test_valid_tiny_cifar_loads(tmp_path):
    write_cifar(tmp_path)
    raw = load(tmp_path, "CIFAR10")
    assert raw.x_train.shape == (20, 3, 32, 32) and raw.x_test.shape == (4, 3, 32, 32)
    assert raw.x_train[4:8].unique().tolist() == [1]  # batches concatenated in order


# ----------------------------------------------------------------------------- caching
def test_errors_are_not_cached_and_fixed_files_are_reread(tmp_path):
    raw = write_mnist(tmp_path)
    good = (raw / IDX["train_y"]).read_bytes()
    _empty_labels(raw)
    with pytest.raises(DataFileError):
        load(tmp_path)
    rewrite(raw / IDX["train_y"], good)  # fixed in place, same root, same process
    assert load(tmp_path).y_train[:3].tolist() == [0, 1, 2]
    assert load(tmp_path) is load(tmp_path)  # unchanged files: the cached tensors
    labels = np.arange(N_TRAIN) % 10
    labels[0] = 9
    rewrite(raw / IDX["train_y"], idx_bytes(labels))  # same size, new content: not the stale copy
    assert load(tmp_path).y_train[:3].tolist() == [9, 1, 2]


def test_damaged_files_fail_the_study_before_any_training(tmp_path, digits_config):
    from functions.engine.study import Study, pretrain

    write_mnist(tmp_path / "data")
    _label_ten(tmp_path / "data" / "MNIST" / "raw")
    cfg = digits_config(tmp_path, source_dataset="MNIST", target_dataset="MNIST",
                        data_root=str(tmp_path / "data"), download=False)
    study = Study(cfg, root=tmp_path, verbose=False)  # the data is read lazily, on first use
    with pytest.raises(DataFileError, match="outside 0..9"):
        study.run(progress=False)
    with pytest.raises(DataFileError, match="outside 0..9"):
        pretrain(cfg, root=tmp_path, verbose=False)
    assert not list(tmp_path.rglob("*.pth")) and len(study.store) == 0


# ----------------------------------------------------------------------------- identity
def test_identity_is_deterministic_and_independent_of_location(tmp_path):
    write_mnist(tmp_path / "a")
    write_mnist(tmp_path / "b")  # the same bytes elsewhere (seeded)
    first = data.dataset_identity("MNIST", tmp_path / "a")
    assert len(first) == 40 and first == data.dataset_identity("MNIST", str(tmp_path / "a"))
    assert first == data.dataset_identity("MNIST", tmp_path / "b")
    assert first != datasets.CANONICAL_IDENTITY["MNIST"] and not data.is_canonical("MNIST", tmp_path / "a")
    write_mnist(tmp_path / "c", seed=1)
    assert data.dataset_identity("MNIST", tmp_path / "c") != first


@pytest.mark.parametrize("edit", [
    lambda b: b[:-1] + bytes([(b[-1] + 1) % 10]),  # one label byte, same size
    lambda b: b + b"\0",  # size only
], ids=["label_byte", "size"])
def test_identity_sees_label_file_changes_through_the_cache(tmp_path, edit):
    raw = write_mnist(tmp_path)
    before = data.dataset_identity("MNIST", tmp_path)
    path = raw / IDX["test_y"]
    rewrite(path, edit(path.read_bytes()))
    assert data.dataset_identity("MNIST", tmp_path) != before


def test_identity_sees_image_changes_of_the_same_size(tmp_path):
    # MNIST and FashionMNIST image files have identical sizes: sizes alone would not tell them apart
    raw = write_mnist(tmp_path)
    before = data.dataset_identity("MNIST", tmp_path)
    path = raw / IDX["train_x"]
    content = bytearray(path.read_bytes())
    content[-1] ^= 0xFF
    rewrite(path, bytes(content))
    assert data.dataset_identity("MNIST", tmp_path) != before


def test_identity_is_cached_while_files_are_unchanged(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    data.dataset_identity("MNIST", tmp_path)
    monkeypatch.setattr(data, "_md5", lambda path: pytest.fail("unchanged files were hashed again"))
    data.dataset_identity("MNIST", tmp_path)


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "CIFAR10"])
def test_missing_files_mean_the_canonical_download(tmp_path, name):
    assert data.dataset_identity(name, tmp_path) == datasets.CANONICAL_IDENTITY[name]
    assert data.is_canonical(name, tmp_path)


def test_partly_missing_files_mean_the_canonical_download(tmp_path):
    raw = write_mnist(tmp_path)
    (raw / IDX["test_x"]).unlink()  # the loader would download (and overwrite) the whole set
    assert data.is_canonical("MNIST", tmp_path)


def test_canonical_identities_match_published_md5s():
    """The literals equal the identity of torchvision's files, from their published MD5s (uncompressed)."""
    from torchvision.datasets import CIFAR10

    raw_md5 = {  # uncompressed IDX files of the MNIST / Fashion-MNIST releases
        "MNIST": ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                  "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        "FashionMNIST": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                         "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
    }
    for name, md5s in raw_md5.items():
        assert data._identity_of_md5s(zip(datasets.IDX_FILES, md5s)) == datasets.CANONICAL_IDENTITY[name]
    cifar = CIFAR10.train_list + CIFAR10.test_list  # MD5s of the extracted batches
    assert [f for f, _ in cifar] == list(datasets.CIFAR_FILES)
    assert data._identity_of_md5s(cifar) == datasets.CANONICAL_IDENTITY["CIFAR10"]


def test_digits_identity_is_canonical():
    assert data.dataset_identity("digits", "/nonexistent") == datasets.CANONICAL_IDENTITY["digits"]
    assert data.is_canonical("digits")


def test_unknown_dataset_identity_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown"):
        data.dataset_identity("SVHN", ".")


REAL = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not (REAL / "MNIST" / "raw" / datasets.IDX_FILES[0]).exists(), reason="real data absent")
def test_real_downloads_are_canonical():
    assert data.is_canonical("MNIST", REAL) and data.is_canonical("FashionMNIST", REAL)
