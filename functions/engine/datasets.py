"""Every fact about the supported datasets, torch-free: names, shapes, classes, named class splits,
normalisation, file layout, canonical identities, where the data lives and whether it can be read.

``config`` validates against these facts and ``data`` loads with them, so neither needs the other.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from .errors import ConfigError

DATASETS = ("MNIST", "FashionMNIST", "CIFAR10", "digits")

# Shape (channels, height, width) and class count of every supported dataset.
DATASET_SHAPES = {
    "MNIST": (1, 28, 28),
    "FashionMNIST": (1, 28, 28),
    "CIFAR10": (3, 32, 32),
    "digits": (1, 16, 16),
}
NUM_CLASSES = {"MNIST": 10, "FashionMNIST": 10, "CIFAR10": 10, "digits": 10}

# Named class splits of the original study: name → (pretraining classes, fine-tuning classes).
CLASS_SPLITS = {
    "MNIST": {"regular": ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])},
    "FashionMNIST": {"regular": ([0, 1, 2, 3, 4, 6, 8], [5, 7, 9]),
                     "random": ([0, 1, 2, 4, 6, 7, 9], [3, 5, 8])},
    "CIFAR10": {"regular": ([0, 1, 8, 9], [2, 3, 4, 5, 6, 7]),
                "reverse": ([2, 3, 4, 5, 6, 7], [0, 1, 8, 9]),
                "random": ([5, 6, 7, 8, 9], [0, 1, 2, 3])},
    "digits": {"regular": ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])},
    "cross": {"all": (list(range(10)), list(range(10)))},
}

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

# The files of torchvision's layout under the data root.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

# dataset_identity() (functions.engine.data) of the files a torchvision download produces (its canonical
# MNIST/FashionMNIST raw files and CIFAR-10 python batches). A fingerprint adds the identity only when it
# differs from these, so result stores written before identities existed keep their hashes. The values
# equal the identity of the published MD5s of the uncompressed files (tests check this); the
# MNIST/FashionMNIST ones were also computed from verified copies of the real files; digits is the copy
# embedded in scikit-learn (its labels and pixels).
CANONICAL_IDENTITY = {
    "MNIST": "d7d0b933fbb4754c8f1852e980283a942878370f",
    "FashionMNIST": "cfea3122e830470b97d24b2ac58c123c74689c90",
    "CIFAR10": "d80450a5bf5d01e5f8fc91b8dbc994dd338feff2",
    "digits": "592509b9128ea130b9ab8783bda8d7351bfb17c2",
}


def class_split(dataset: str, name: str) -> tuple[list[int], list[int]]:
    """(pretraining classes, fine-tuning classes) of a named split of the original study."""
    if dataset not in CLASS_SPLITS:
        raise ConfigError(f"dataset {dataset!r} has no named class splits; allowed: {list(CLASS_SPLITS)}")
    if name not in CLASS_SPLITS[dataset]:
        raise ConfigError(f"class_split {name!r} is unknown for {dataset}; allowed: {list(CLASS_SPLITS[dataset])}")
    pre, fine = CLASS_SPLITS[dataset][name]
    return list(pre), list(fine)


def default_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit``, else ``$TL_STUDY_DATA``, else ``data/`` at the repository root."""
    chosen = explicit or os.environ.get("TL_STUDY_DATA")
    return Path(chosen).expanduser() if chosen else Path(__file__).resolve().parents[2] / "data"


def dataset_files(name: str, root: Path) -> list[Path]:
    """The files a dataset needs under ``root`` (torchvision's layout)."""
    if name in ("MNIST", "FashionMNIST"):
        return [root / name / "raw" / f for f in IDX_FILES]
    if name == "CIFAR10":
        return [root / "cifar-10-batches-py" / f for f in CIFAR_FILES]
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
