"""Datasets as in-memory tensors: loading, class splits with relabelling, validation split, subsets.

Every dataset is read once into uint8 tensors ``[N, C, H, W]`` and normalised once; subsets are index
tensors. Nothing per item runs in a training loop.
"""
from __future__ import annotations

import functools
import pickle
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import DATASETS, ConfigError, default_data_root

# Per-channel mean/std of each training split (pixel values scaled to [0, 1]).
NORMALISATION = {
    "MNIST": ((0.1307,), (0.3081,)),
    "FashionMNIST": ((0.2860,), (0.3530,)),
    "CIFAR10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "digits": ((0.3,), (0.37,)),
}
CLASS_NAMES = {
    "MNIST": [str(i) for i in range(10)],
    "digits": [str(i) for i in range(10)],
    "FashionMNIST": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"],
    "CIFAR10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


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


# ----------------------------------------------------------------------------- availability
def dataset_files(name: str, root: Path) -> list[Path]:
    """The files a dataset needs under ``root`` (torchvision's layout)."""
    if name in ("MNIST", "FashionMNIST"):
        return [root / name / "raw" / f for f in _IDX_FILES]
    if name == "CIFAR10":
        return [root / "cifar-10-batches-py" / f for f in _CIFAR_FILES]
    return []  # digits ships inside scikit-learn


def _online(host: str = "ossci-datasets.s3.amazonaws.com", timeout: float = 3.0) -> bool:
    """Whether the dataset mirror answers (used only when files are missing)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_available(name: str, root: Path, download: bool | None = None) -> None:
    """Raise ConfigError before any training when ``name`` cannot be read or downloaded."""
    if name not in DATASETS:
        raise ConfigError(f"dataset {name!r} is unknown; allowed: {list(DATASETS)}")
    missing = [p for p in dataset_files(name, Path(root)) if not p.exists()]
    if not missing:
        return
    if download is False or (download is None and not _online()):
        raise ConfigError(
            f"data_root: {name} is not under {Path(root).resolve()} (missing {missing[0].name}) and "
            f"{'download=False' if download is False else 'there is no network to download it'}. "
            f"Put the files there in torchvision's layout ({missing[0].parent.relative_to(root)}/), "
            "or set TL_STUDY_DATA / data_root to the folder that holds them.")


# ----------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=8)
def load_dataset(name: str, root: str | Path | None = None, download: bool | None = None) -> RawDataset:
    """Read a whole dataset into uint8 tensors (cached per process)."""
    root = default_data_root(root)
    check_available(name, root, download)
    if name in ("MNIST", "FashionMNIST"):
        x_train, y_train, x_test, y_test = _load_idx(name, root)
    elif name == "CIFAR10":
        x_train, y_train, x_test, y_test = _load_cifar(root)
    else:
        x_train, y_train, x_test, y_test = _load_digits()
    mean, std = NORMALISATION[name]
    return RawDataset(name, x_train, y_train, x_test, y_test, CLASS_NAMES[name], mean, std)


def _read_idx(path: Path) -> torch.Tensor:
    """One IDX file (big-endian header, uint8 payload) as a tensor."""
    data = path.read_bytes()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(array.copy())


def _load_idx(name: str, root: Path):
    """MNIST-format files; downloads through torchvision when they are missing."""
    raw = root / name / "raw"
    if not all((raw / f).exists() for f in _IDX_FILES):
        import torchvision

        getattr(torchvision.datasets, name)(str(root), train=True, download=True)
        getattr(torchvision.datasets, name)(str(root), train=False, download=True)
    x_train, y_train, x_test, y_test = (_read_idx(raw / f) for f in _IDX_FILES)
    return x_train[:, None], y_train.long(), x_test[:, None], y_test.long()


def _load_cifar(root: Path):
    """The standard ``cifar-10-batches-py`` pickles; downloads through torchvision when missing."""
    folder = root / "cifar-10-batches-py"
    if not all((folder / f).exists() for f in _CIFAR_FILES):
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)

    def read(files):
        xs, ys = [], []
        for f in files:
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    x_train, y_train = read(_CIFAR_FILES[:5])
    x_test, y_test = read(_CIFAR_FILES[5:])
    return x_train, y_train, x_test, y_test


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


def _stratified_cut(y: torch.Tensor, n_per_class_fn, seed: int) -> torch.Tensor:
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
    val_idx = _stratified_cut(y, lambda n: int(round(n * val_split)), stable_seed("val", seed))
    is_val = torch.zeros(len(y), dtype=torch.bool)
    is_val[val_idx] = True
    train_idx = torch.nonzero(~is_val).flatten()
    x_test, y_test = select_classes(raw.x_test, raw.y_test, classes)
    if train_limit is not None:  # smoke runs: a stratified slice keeps every class present
        c = len(classes)
        train_idx = train_idx[_stratified_cut(y[train_idx], lambda n: train_limit // c, stable_seed("tl", seed))]
        val_idx = val_idx[_stratified_cut(y[val_idx], lambda n: max(1, int(train_limit * val_split) // c),
                                          stable_seed("vl", seed))]
    if test_limit is not None:
        keep = _stratified_cut(y_test, lambda n: test_limit // len(classes), stable_seed("te", seed))
        x_test, y_test = x_test[keep], y_test[keep]
    return Split(
        x_train=normalize(x[train_idx], raw.mean, raw.std), y_train=y[train_idx],
        x_val=normalize(x[val_idx], raw.mean, raw.std), y_val=y[val_idx],
        x_test=normalize(x_test, raw.mean, raw.std), y_test=y_test,
        classes=list(classes), class_names=[raw.classes[c] for c in classes])


def balanced_subset(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of a balanced subset: ``int(len(y)·fraction/C)`` per class (at least 1), seeded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    n_classes = len(torch.unique(y))
    per_class = max(1, int(len(y) * fraction / n_classes))
    if fraction == 1:
        return torch.arange(len(y))  # the whole split, imbalance included, as the original did
    return _stratified_cut(y, lambda n: per_class, seed)


def subset_seed(generate_dataset_seed: int, fraction: float, repeat: int) -> int:
    """Seed of the subset for (fraction, repeat): every cut and condition sees the same images."""
    return stable_seed("subset", generate_dataset_seed, float(fraction), int(repeat))


def load_split(dataset: str, classes: list[int], root=None, download=None, val_split: float = 0.1,
               seed: int = 42, train_limit=None, test_limit=None) -> Split:
    """Shortcut: load a dataset and take the split of ``classes``."""
    raw = load_dataset(dataset, str(root) if root else None, download)
    return make_split(raw, classes, val_split, seed, train_limit, test_limit)
