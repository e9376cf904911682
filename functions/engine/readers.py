"""Dataset file formats as numpy arrays: the loaders the dataset records (``datasets``) name.

A loader takes ``(spec, root)`` — the dataset's record and the data root — and returns ``(x_train,
y_train, x_test, y_test)``: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``. A damaged file raises
:class:`DataFileError` naming the file and what is wrong; missing files are downloaded through the
torchvision class the record names. ``data`` turns the arrays into tensors. Only numpy is imported with
the module; torchvision when a download is needed, torch only for digits' seeded split.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class DataFileError(ValueError):
    """A dataset file exists but cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


def download(spec, root: Path) -> None:
    """Fetch the dataset's files through ``torchvision.datasets.<spec.download>`` (train and test)."""
    if spec.download is None:
        raise FileNotFoundError(f"{spec.name}: files are missing under {root} and it cannot be downloaded")
    import torchvision

    maker = getattr(torchvision.datasets, spec.download)
    for train in (True, False):
        maker(str(root), train=train, download=True)


def _download_missing(spec, root: Path) -> list[Path]:
    """The dataset's files, downloaded first when any is missing."""
    paths = spec.files_under(root)
    if not all(p.exists() for p in paths):
        download(spec, root)
    return paths


def check_label_range(path: Path, labels: np.ndarray, num_classes: int) -> None:
    """Every label in ``0..num_classes-1``; DataFileError naming the first bad one otherwise."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataFileError(path, f"{int(bad.sum())} label(s) outside 0..{num_classes - 1}, the first is "
                                  f"{int(labels[first])} at index {first}")


# ----------------------------------------------------------------------------- IDX (MNIST's layout)
# IDX element-type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes are MNIST-like.
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float",
              0x0E: "double"}


def read_idx(spec, root: Path) -> Arrays:
    """Four IDX files (train images, train labels, test images, test labels) in torchvision's MNIST
    layout, as MNIST, FashionMNIST and KMNIST ship them."""
    paths = _download_missing(spec, root)
    out = []
    for images_path, labels_path in (paths[:2], paths[2:]):
        x, y = read_idx_file(images_path), read_idx_file(labels_path)
        _check_idx_pair(images_path, labels_path, x, y, spec.num_classes)
        out += [x[:, None], y.astype(np.int64)]
    return tuple(out)


def read_idx_file(path: Path) -> np.ndarray:
    """One IDX file (big-endian header, uint8 payload); DataFileError when it is damaged."""
    data = path.read_bytes()
    ndim = _check_idx_magic(path, data)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(path, f"truncated IDX header: {ndim} dimensions need {header} header bytes, "
                                  f"the file has {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected, actual = int(np.prod(shape)), len(data) - header
    if actual != expected:
        what = "truncated IDX file" if actual < expected else "IDX file has trailing bytes"
        raise DataFileError(path, f"{what}: the header's dims {'×'.join(map(str, shape))} need {expected} "
                                  f"bytes of data, but {actual} follow the {header}-byte header")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()  # writable


def _check_idx_magic(path: Path, data: bytes) -> int:
    """The number of dimensions from an IDX magic number ``00 00 08 ndim``; DataFileError otherwise."""
    if not data:
        raise DataFileError(path, "empty file (0 bytes); expected an IDX file")
    if len(data) < 4:
        raise DataFileError(path, f"truncated IDX header: {len(data)} bytes, the magic number alone needs 4")
    if data[:2] == b"\x1f\x8b":  # torchvision keeps the .gz next to the raw file; easy to mix up
        raise DataFileError(path, "is gzip-compressed; expected the uncompressed IDX file (gunzip it)")
    if data[:2] != b"\0\0":
        raise DataFileError(path, f"not an IDX file: magic number 0x{data[:4].hex()} does not start "
                                  "with two zero bytes (expected 0x000008 followed by the number of dims)")
    if data[2] != 0x08:
        kind = _IDX_TYPES.get(data[2], "unknown")
        raise DataFileError(path, f"IDX magic number 0x{data[:4].hex()}: element type 0x{data[2]:02x} "
                                  f"({kind}) is not supported; expected 0x08 (unsigned byte)")
    if data[3] == 0:
        raise DataFileError(path, "IDX header says 0 dimensions")
    return data[3]


def _check_idx_pair(images_path: Path, labels_path: Path, x: np.ndarray, y: np.ndarray,
                    num_classes: int) -> None:
    """Images ``[N, H, W]`` and labels ``[N]`` in ``0..num_classes-1``; DataFileError otherwise."""
    if x.ndim != 3:
        raise DataFileError(images_path, f"an images file needs 3 dimensions (count, height, width), "
                                         f"its IDX header has {x.ndim} {tuple(x.shape)}"
                                         + (" — is it a labels file?" if x.ndim == 1 else ""))
    if y.ndim != 1:
        raise DataFileError(labels_path, f"a labels file needs 1 dimension (count), its IDX header has "
                                         f"{y.ndim} {tuple(y.shape)}"
                                         + (" — is it an images file?" if y.ndim == 3 else ""))
    if len(y) == 0:
        raise DataFileError(labels_path, "holds no labels (count 0)")
    if len(x) != len(y):
        raise DataFileError(images_path, f"holds {len(x)} images but its labels file {labels_path} holds "
                                         f"{len(y)} labels (files swapped or from different datasets?)")
    check_label_range(labels_path, y, num_classes)


# ----------------------------------------------------------------------------- CIFAR-10 python batches
def read_cifar(spec, root: Path) -> Arrays:
    """The ``cifar-10-batches-py`` pickles: every file but the last is a training batch, in order."""
    paths = _download_missing(spec, root)

    def read(files):
        xs, ys = zip(*(read_cifar_batch(p, spec.shape, spec.num_classes) for p in files))
        return np.concatenate(xs), np.concatenate(ys)

    return (*read(paths[:-1]), *read(paths[-1:]))


def read_cifar_batch(path: Path, shape: tuple[int, int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch as (uint8 ``[N, *shape]``, int64 ``[N]``); DataFileError if damaged."""
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="latin1")
    except Exception as exc:  # a damaged pickle raises almost any type (EOFError, UnpicklingError, ...)
        raise DataFileError(path, f"unreadable CIFAR batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(batch, dict):
        raise DataFileError(path, f"a CIFAR batch must be a dict, this pickle holds a {type(batch).__name__}")
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataFileError(path, f"CIFAR batch lacks {missing}; its keys are {sorted(map(str, batch))}")
    try:
        x = np.asarray(batch["data"], dtype=np.uint8)
        y = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFileError(path, f"CIFAR batch data/labels are not numeric arrays ({exc})") from exc
    if y.ndim != 1 or len(y) == 0:
        raise DataFileError(path, f"CIFAR batch needs a non-empty 1-D label list, got shape {y.shape}")
    image_bytes = int(np.prod(shape))
    if x.size != len(y) * image_bytes:
        raise DataFileError(path, f"wrong size: 'data' holds {x.size} bytes {x.shape}, but {len(y)} labels "
                                  f"need {len(y)} × {'×'.join(map(str, shape))} = {len(y) * image_bytes}")
    check_label_range(path, y, num_classes)
    return x.reshape(-1, *shape), y


# ----------------------------------------------------------------------------- scikit-learn's digits
def read_digits(spec, root: Path) -> Arrays:
    """scikit-learn's embedded 8×8 digits, upsampled to 16×16 so pooling has room; fixed 80/20 split
    (the permutation is torch's seeded one, as it always was, so the split never moves)."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)
    images = images.repeat(2, axis=1).repeat(2, axis=2)[:, None]
    labels = bunch.target.astype(np.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).numpy()
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


@functools.lru_cache(maxsize=1)
def digits_identity() -> str:
    """sha1 of scikit-learn's digits images and labels (fixed dtypes: platform-independent)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digest = hashlib.sha1(repr((bunch.images.shape, bunch.target.shape)).encode())
    digest.update(bunch.images.astype("<f8").tobytes())
    digest.update(bunch.target.astype("<i8").tobytes())
    return digest.hexdigest()
