"""Test environment: smoke profile, quiet progress bars, and a data root every test and notebook can read.

The data root (``tests/_data``, git-ignored) links the real MNIST/FashionMNIST when they are available
(``$TL_STUDY_DATA`` or ``../shared/data``) and otherwise holds small generated files in the same IDX
format. CIFAR-10 is never reachable here, so a small CIFAR-format fixture (``cifar-10-batches-py``
pickles of class-coloured patterns) is always generated. Set before collection, so notebook kernels
started by nbval inherit it.

It sits at the repository root, not in ``tests/``, so that ``pytest MNIST/empirical_experiment.ipynb`` on its
own also runs in the smoke profile (and writes to the git-ignored ``results/smoke/``) instead of the ``cpu``
profile, whose shipped results and figures it would otherwise touch.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from functions.engine.datasets import dataset_spec

REPO = Path(__file__).resolve().parent
FIXTURE_ROOT = REPO / "tests" / "_data"


def _has_files(root: Path, name: str) -> bool:
    """Whether every file of dataset ``name`` (its record's layout) is under ``root``."""
    return all(p.exists() for p in dataset_spec(name).files_under(root))


def _real_data_root() -> Path | None:
    for candidate in (os.environ.get("TL_STUDY_DATA"), REPO.parent / "shared" / "data"):
        if candidate and _has_files(Path(candidate), "MNIST"):
            return Path(candidate).resolve()
    return None


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _digits_as_28px(seed: int):
    """scikit-learn's digits placed on a 28×28 canvas (learnable stand-in for MNIST)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    img = (bunch.images * 255 / 16).astype(np.uint8).repeat(3, axis=1).repeat(3, axis=2)  # 24×24
    canvas = np.zeros((len(img), 28, 28), np.uint8)
    canvas[:, 2:26, 2:26] = img
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(img))
    return canvas[order], bunch.target[order].astype(np.uint8)


# how each IDX-layout fixture differs from MNIST's: another domain with the same shapes and classes
FIXTURE_DOMAINS = {"MNIST": lambda x: x, "FashionMNIST": lambda x: 255 - x,
                   "KMNIST": lambda x: x.transpose(0, 2, 1)[:, ::-1]}  # digits rotated: another "script"


def write_mnist_fixture(root: Path, name: str, seed: int = 0) -> None:
    """Files in the IDX layout of dataset ``name`` (its record's files) under ``root``, made from the
    digits dataset: 1,438 training and 359 test images of 28×28."""
    paths = dataset_spec(name).files_under(root)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    x, y = _digits_as_28px(seed)
    x = np.ascontiguousarray(FIXTURE_DOMAINS[name](x))
    n_test = len(y) // 5
    for path, arr in zip(paths, (x[n_test:], y[n_test:], x[:n_test], y[:n_test])):
        _write_idx(path, arr)


def write_cifar_fixture(root: Path, per_batch: int = 200, seed: int = 0) -> Path:
    """A small ``cifar-10-batches-py`` folder: class-specific colour and stripe pattern plus noise."""
    paths = dataset_spec("CIFAR10").files_under(root)
    folder = paths[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(10, 3))
    for name in (p.name for p in paths):
        labels = rng.integers(0, 10, size=per_batch)
        yy, xx = np.mgrid[0:32, 0:32]
        images = np.empty((per_batch, 3, 32, 32), np.float32)
        for i, c in enumerate(labels):
            stripes = ((xx * (c % 4 + 1) + yy * (c // 4)) % 8 < 4).astype(np.float32)
            images[i] = palette[c][:, None, None] * (0.5 + 0.5 * stripes)
        images += rng.normal(0, 20, images.shape)
        data = np.clip(images, 0, 255).astype(np.uint8).reshape(per_batch, -1)
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels.tolist(), "batch_label": name}, fh)
    return folder


def build_data_root() -> Path:
    """Create (once) the test data root and return it."""
    FIXTURE_ROOT.mkdir(parents=True, exist_ok=True)
    real = _real_data_root()
    for name in ("MNIST", "FashionMNIST"):
        target = FIXTURE_ROOT / name
        if target.exists() or target.is_symlink():
            continue
        if real is not None and _has_files(real, name):
            target.symlink_to(real / name, target_is_directory=True)
        else:
            write_mnist_fixture(FIXTURE_ROOT, name)
    if not _has_files(FIXTURE_ROOT, "CIFAR10"):
        write_cifar_fixture(FIXTURE_ROOT)
    return FIXTURE_ROOT


def pytest_configure(config):
    os.environ["TL_STUDY_DATA"] = str(build_data_root())
    os.environ["TL_STUDY_PROFILE"] = "smoke"
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # Grids train in the test's own process (patched methods apply, no worker start-up per test); the
    # tests of the worker pool ask for it explicitly.
    os.environ.setdefault("TL_STUDY_WORKERS", "1")


def make_digits_config(root, **overrides):
    """A study that trains in seconds: scikit-learn's digits, 3 blocks × 6 channels, the smoke profile
    under the original protocol with one learning rate (a test of another protocol names it)."""
    from functions.engine.config import StudyConfig

    settings = dict(protocol="original", lr_grid=None, source_dataset="digits", target_dataset="digits",
                    depth=3, num_channels=6,
                    pooling_every_n_layers=2, num_train=6, early_stop_patience=3, batch_size=64,
                    lr_pretrain=3e-3, lr_fine_tune=3e-3, percentages=[0.1, 0.5], repeats=2,
                    train_limit=None, test_limit=None, results_dir=str(Path(root) / "results"),
                    pretrained_dir=str(Path(root) / "pretrained"))
    settings.update(overrides)
    return StudyConfig.from_profile("smoke", **settings)


@pytest.fixture(scope="session")
def digits_config():
    """``digits_config(root, **overrides)``: the tests' seconds-fast StudyConfig (see make_digits_config)."""
    return make_digits_config


@pytest.fixture(scope="module")
def one_torch_thread():
    """One PyTorch thread in the test's process, like each pool worker: the intra-op thread count changes
    the order of float reductions, so bit-for-bit comparisons with workers are made at equal thread counts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

