"""Datasets as in-memory tensors: loading, class splits with relabelling, validation split, subsets, and
the identity of the files read (what the dataset facts in ``datasets`` say about them lives there).

Every dataset is read once into uint8 tensors ``[N, C, H, W]`` and normalised once; subsets are index
tensors. Nothing per item runs in a training loop.
"""
from __future__ import annotations

import functools
import hashlib
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datasets import (CANONICAL_IDENTITY, CIFAR_FILES, CLASS_NAMES, DATASETS, IDX_FILES, NORMALISATION,
                       check_available, dataset_files, default_data_root)
from .errors import ConfigError


@dataclass
class RawDataset:
    """A whole dataset as uint8 images ``[N, C, H, W]`` and int64 labels, train and test splits."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Split:
    """Normalised float tensors of one class group: train / validation / test, labels ``0..C-1``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[int]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device: str) -> "Split":
        """The same split on another device."""
        moved = {k: getattr(self, k).to(device) for k in ("x_train", "y_train", "x_val", "y_val",
                                                          "x_test", "y_test")}
        return Split(**moved, classes=self.classes, class_names=self.class_names)


# ----------------------------------------------------------------------------- identity
def dataset_identity(name: str, root: str | Path | None = None) -> str:
    """A hex identity of the data ``name`` would be read from under ``root`` (cached per file state).

    sha1 over every needed file's name and MD5 (about 0.1 s for MNIST, 0.3 s for CIFAR-10, once per
    process while the files are unchanged). When a file is missing the loader downloads torchvision's
    canonical files, so the identity is the canonical one (``canonical:<name>`` if none is known).
    """
    if name not in DATASETS:
        raise ConfigError(f"dataset {name!r} is unknown; allowed: {list(DATASETS)}")
    if name == "digits":
        return _digits_identity()
    signature = _files_signature(name, default_data_root(root).resolve())
    if any(size is None for _, _, size in signature):
        return CANONICAL_IDENTITY.get(name, f"canonical:{name}")
    return _files_identity(signature)


def is_canonical(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` under ``root`` is (or would be downloaded as) torchvision's canonical release."""
    return dataset_identity(name, root) == CANONICAL_IDENTITY.get(name, f"canonical:{name}")


def _identity_of_md5s(pairs) -> str:
    """sha1 over ``"<file name> <md5>\\n"`` lines, so a published MD5 table yields the same identity."""
    return hashlib.sha1("".join(f"{fname} {md5}\n" for fname, md5 in pairs).encode()).hexdigest()


@functools.lru_cache(maxsize=32)
def _files_identity(signature: tuple) -> str:
    """Identity of the files in a _files_signature; the mtimes/sizes in the key expire stale entries."""
    return _identity_of_md5s((Path(path).name, _md5(Path(path))) for path, _, _ in signature)


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, read in chunks (CIFAR batches are 30 MB each)."""
    digest = hashlib.md5(usedforsecurity=False)  # an identity, not security: FIPS builds allow it
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _digits_identity() -> str:
    """sha1 of scikit-learn's digits images and labels (fixed dtypes: platform-independent)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    digest = hashlib.sha1(repr((bunch.images.shape, bunch.target.shape)).encode())
    digest.update(bunch.images.astype("<f8").tobytes())
    digest.update(bunch.target.astype("<i8").tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- loading
class DataFileError(ValueError):
    """A dataset file exists but cannot be used; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


def load_dataset(name: str, root: str | Path | None = None, download: bool | None = None) -> RawDataset:
    """Read a whole dataset into uint8 tensors (cached per process while its files stay unchanged).

    Raises ConfigError when the files are missing and cannot be downloaded, DataFileError when a file
    is damaged; both happen here, i.e. before any training starts.
    """
    root = default_data_root(root).resolve()
    check_available(name, root, download)
    # The files' mtimes and sizes are part of the key: data fixed or replaced in place is re-read
    # (and agrees with dataset_identity) instead of the stale tensors being served.
    return _load_cached(name, root, _files_signature(name, root))


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: Path, signature: tuple) -> RawDataset:
    """The uncached read behind load_dataset; exceptions propagate and are never cached."""
    if name in ("MNIST", "FashionMNIST"):
        x_train, y_train, x_test, y_test = _load_idx(name, root)
    elif name == "CIFAR10":
        x_train, y_train, x_test, y_test = _load_cifar(root)
    else:
        x_train, y_train, x_test, y_test = _load_digits()
    mean, std = NORMALISATION[name]
    return RawDataset(name, x_train, y_train, x_test, y_test, CLASS_NAMES[name], mean, std)


load_dataset.cache_clear = _load_cached.cache_clear  # the public function used to be the lru_cache


def _files_signature(name: str, root: Path) -> tuple:
    """(path, mtime_ns, size) of every file ``name`` needs; None for a missing file."""
    signature = []
    for path in dataset_files(name, root):
        try:
            st = path.stat()
            signature.append((str(path), st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            signature.append((str(path), None, None))
    return tuple(signature)


# IDX element-type codes (http://yann.lecun.com/exdb/mnist/): only unsigned bytes are MNIST-like.
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int", 0x0D: "float",
              0x0E: "double"}


def _read_idx(path: Path) -> torch.Tensor:
    """One IDX file (big-endian header, uint8 payload) as a tensor; DataFileError when it is damaged."""
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
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


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


def _load_idx(name: str, root: Path):
    """MNIST-format files; downloads through torchvision when they are missing."""
    raw = root / name / "raw"
    if not all((raw / f).exists() for f in IDX_FILES):
        import torchvision

        getattr(torchvision.datasets, name)(str(root), train=True, download=True)
        getattr(torchvision.datasets, name)(str(root), train=False, download=True)
    num_classes = len(CLASS_NAMES[name])
    out = []
    for images_name, labels_name in (IDX_FILES[:2], IDX_FILES[2:]):
        images_path, labels_path = raw / images_name, raw / labels_name
        x, y = _read_idx(images_path), _read_idx(labels_path)
        _check_idx_pair(images_path, labels_path, x, y, num_classes)
        out += [x[:, None], y.long()]
    return tuple(out)


def _check_idx_pair(images_path: Path, labels_path: Path, x: torch.Tensor, y: torch.Tensor,
                    num_classes: int) -> None:
    """Images ``[N, H, W]`` and labels ``[N]`` in ``0..num_classes-1``; DataFileError otherwise."""
    if x.dim() != 3:
        raise DataFileError(images_path, f"an images file needs 3 dimensions (count, height, width), "
                                         f"its IDX header has {x.dim()} {tuple(x.shape)}"
                                         + (" — is it a labels file?" if x.dim() == 1 else ""))
    if y.dim() != 1:
        raise DataFileError(labels_path, f"a labels file needs 1 dimension (count), its IDX header has "
                                         f"{y.dim()} {tuple(y.shape)}"
                                         + (" — is it an images file?" if y.dim() == 3 else ""))
    if len(y) == 0:
        raise DataFileError(labels_path, "holds no labels (count 0)")
    if len(x) != len(y):
        raise DataFileError(images_path, f"holds {len(x)} images but its labels file {labels_path} holds "
                                         f"{len(y)} labels (files swapped or from different datasets?)")
    _check_label_range(labels_path, y, num_classes)


def _check_label_range(path: Path, labels, num_classes: int) -> None:
    """Every label in ``0..num_classes-1``; DataFileError naming the first bad one otherwise."""
    labels = torch.as_tensor(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0])
        raise DataFileError(path, f"{int(bad.sum())} label(s) outside 0..{num_classes - 1}, the first is "
                                  f"{int(labels[first])} at index {first}")


_CIFAR_IMAGE_BYTES = 3 * 32 * 32


def _load_cifar(root: Path):
    """The standard ``cifar-10-batches-py`` pickles; downloads through torchvision when missing."""
    folder = root / "cifar-10-batches-py"
    if not all((folder / f).exists() for f in CIFAR_FILES):
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)

    def read(files):
        batches = [_read_cifar_batch(folder / f) for f in files]
        xs, ys = zip(*batches)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_train, y_train = read(CIFAR_FILES[:5])
    x_test, y_test = read(CIFAR_FILES[5:])
    return x_train, y_train, x_test, y_test


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch as (uint8 ``[N, 3, 32, 32]``, int64 ``[N]``); DataFileError if damaged."""
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
    if x.size != len(y) * _CIFAR_IMAGE_BYTES:
        raise DataFileError(path, f"wrong size: 'data' holds {x.size} bytes {x.shape}, but {len(y)} labels "
                                  f"need {len(y)} × 3×32×32 = {len(y) * _CIFAR_IMAGE_BYTES}")
    _check_label_range(path, y, len(CLASS_NAMES["CIFAR10"]))
    return x.reshape(-1, 3, 32, 32), y


def _load_digits():
    """scikit-learn's embedded 8×8 digits, upsampled to 16×16 so pooling has room; fixed 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().astype(np.uint8))
    images = images.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, None]
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = len(labels) // 5
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


# ----------------------------------------------------------------------------- splits
def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` → float32 normalised per channel."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - mean_t).div_(std_t)


def select_classes(x: torch.Tensor, y: torch.Tensor, classes: list[int]):
    """Keep the given classes and relabel them to ``0..C-1`` in the order of ``classes``."""
    lookup = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    new_y = lookup[y]
    keep = new_y >= 0
    return x[keep], new_y[keep]


def stable_seed(*parts) -> int:
    """A seed that depends only on its arguments (stable across processes and Python versions)."""
    return zlib.crc32("|".join(repr(p) for p in parts).encode()) & 0x7FFFFFFF


def stratified_cut(y: torch.Tensor, n_per_class_fn, seed: int) -> torch.Tensor:
    """Seeded per-class sample of indices; ``n_per_class_fn(count)`` says how many of each class."""
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        take = min(len(idx), n_per_class_fn(len(idx)))
        chosen.append(idx[torch.randperm(len(idx), generator=gen)[:take]])
    return torch.sort(torch.cat(chosen)).values


def make_split(raw: RawDataset, classes: list[int], val_split: float, seed: int,
               train_limit: int | None = None, test_limit: int | None = None) -> Split:
    """Class group of ``raw``: stratified seeded validation split from train, test from the real test set."""
    x, y = select_classes(raw.x_train, raw.y_train, classes)
    val_idx = stratified_cut(y, lambda n: int(round(n * val_split)), stable_seed("val", seed))
    is_val = torch.zeros(len(y), dtype=torch.bool)
    is_val[val_idx] = True
    train_idx = torch.nonzero(~is_val).flatten()
    x_test, y_test = select_classes(raw.x_test, raw.y_test, classes)
    if train_limit is not None:  # smoke runs: a stratified slice keeps every class present
        c = len(classes)
        train_idx = train_idx[stratified_cut(y[train_idx], lambda n: train_limit // c, stable_seed("tl", seed))]
        val_idx = val_idx[stratified_cut(y[val_idx], lambda n: max(1, int(train_limit * val_split) // c),
                                          stable_seed("vl", seed))]
    if test_limit is not None:
        keep = stratified_cut(y_test, lambda n: test_limit // len(classes), stable_seed("te", seed))
        x_test, y_test = x_test[keep], y_test[keep]
    return Split(
        x_train=normalize(x[train_idx], raw.mean, raw.std), y_train=y[train_idx],
        x_val=normalize(x[val_idx], raw.mean, raw.std), y_val=y[val_idx],
        x_test=normalize(x_test, raw.mean, raw.std), y_test=y_test,
        classes=list(classes), class_names=[raw.classes[c] for c in classes])


def subset_size(n_rows: int, fraction: float, n_classes: int) -> int:
    """Images in the balanced subset of ``fraction`` of ``n_rows``: ``int(n_rows·fraction/C)`` per class (at
    least 1), or every row at fraction 1; the one size rule (the task planner estimates costs with it)."""
    if fraction == 1:
        return n_rows
    return max(1, int(n_rows * fraction / n_classes)) * n_classes


def balanced_subset(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a balanced subset: ``int(len(y)·fraction/C)`` per class (at least 1), seeded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    n_classes = len(torch.unique(y))
    per_class = subset_size(len(y), fraction, n_classes) // n_classes
    if fraction == 1:
        return torch.arange(len(y))  # the whole split, imbalance included, as the original did
    return stratified_cut(y, lambda n: per_class, seed)


def subset_seed(generate_dataset_seed: int, fraction: float, repeat: int) -> int:
    """Seed of the subset for (fraction, repeat): every cut and condition sees the same images."""
    return stable_seed("subset", generate_dataset_seed, float(fraction), int(repeat))


def load_split(dataset: str, classes: list[int], root=None, download=None, val_split: float = 0.1,
               seed: int = 42, train_limit=None, test_limit=None) -> Split:
    """Shortcut: load a dataset and take the split of ``classes``."""
    raw = load_dataset(dataset, str(root) if root else None, download)
    return make_split(raw, classes, val_split, seed, train_limit, test_limit)


def carve_validation(labelled: torch.Tensor, y: torch.Tensor, val_fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a labelled subset (rows of ``y``) into (training rows, validation rows), stratified.

    Each class gives ``round(n_c · val_fraction)`` images to validation, at least one and never all of
    them; ``val_fraction = 0`` gives an empty validation set (a fixed-budget run).
    """
    if val_fraction == 0:
        return labelled, labelled[:0]
    gen = torch.Generator().manual_seed(seed)
    train_parts, val_parts = [], []
    labels = y[labelled]
    for c in torch.unique(labels).tolist():
        rows = labelled[labels == c]
        if len(rows) < 2:
            raise ValueError(f"class {c} has {len(rows)} labelled image(s): at least 2 are needed to carve "
                             "a validation image and keep a training one; use a larger fraction or "
                             "subset_val_fraction=0")
        n_val = min(len(rows) - 1, max(1, round(len(rows) * val_fraction)))
        rows = rows[torch.randperm(len(rows), generator=gen)]
        val_parts.append(rows[:n_val])
        train_parts.append(rows[n_val:])
    return torch.sort(torch.cat(train_parts)).values, torch.sort(torch.cat(val_parts)).values


def load_splits(cfg) -> tuple[Split, Split]:
    """(pretraining split, fine-tuning split) of a study's StudyConfig (not imported: config depends on
    this module through conditions)."""
    common = dict(root=cfg.resolved_data_root(), download=cfg.download, val_split=cfg.val_split,
                  seed=cfg.generate_dataset_seed, train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    source = load_split(cfg.source_dataset, cfg.pre_train_classes, **common)
    target = load_split(cfg.target_dataset, cfg.fine_tune_classes, **common)
    if cfg.target_block_shuffle:
        target = block_shuffled(target, cfg.target_block_shuffle, stable_seed("block-shuffle", cfg.seed))
    return source, target


def block_shuffled(split: Split, grid: int, seed: int) -> Split:
    """``split`` with every image's ``grid × grid`` blocks permuted by one fixed permutation."""
    from .transforms import block_shuffle

    images = {k: block_shuffle(getattr(split, k), grid, seed) for k in ("x_train", "x_val", "x_test")}
    return Split(**images, y_train=split.y_train, y_val=split.y_val, y_test=split.y_test,
                 classes=split.classes, class_names=split.class_names)
