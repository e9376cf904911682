"""Datasets as in-memory tensors: loading, class splits with relabelling, validation split, subsets, and
the identity of the files read (the facts about each dataset are its record in ``datasets``; the file
formats are read by ``readers``).

Every dataset is read once into uint8 tensors ``[N, C, H, W]`` and normalised once; subsets are index
tensors. Nothing per item runs in a training loop.
"""
from __future__ import annotations

import functools
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from . import readers
from .datasets import DatasetSpec, check_available, dataset_spec, default_data_root

DataFileError = readers.DataFileError  # where callers have always caught it; raised by the readers


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
    canonical files, so the identity is the canonical one (``canonical:<name>`` if none is known). Data
    without files (digits) has the identity its record's ``identity`` function gives.
    """
    spec = dataset_spec(name)
    if spec.identity is not None:
        return spec.identity()
    signature = _files_signature(spec, default_data_root(root).resolve())
    if any(size is None for _, _, size in signature):
        return spec.canonical
    return _files_identity(signature)


def is_canonical(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` under ``root`` is (or would be downloaded as) torchvision's canonical release."""
    return dataset_identity(name, root) == dataset_spec(name).canonical


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


def _files_signature(spec: DatasetSpec, root: Path) -> tuple:
    """(path, mtime_ns, size) of every file the dataset needs; None for a missing file."""
    signature = []
    for path in spec.files_under(root):
        try:
            st = path.stat()
            signature.append((str(path), st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            signature.append((str(path), None, None))
    return tuple(signature)


# ----------------------------------------------------------------------------- loading
def load_dataset(name: str, root: str | Path | None = None, download: bool | None = None) -> RawDataset:
    """Read a whole dataset into uint8 tensors (cached per process while its files stay unchanged).

    Raises ConfigError when the files are missing and cannot be downloaded, DataFileError when a file
    is damaged; both happen here, i.e. before any training starts.
    """
    root = default_data_root(root).resolve()
    check_available(name, root, download)
    # The files' mtimes and sizes are part of the key: data fixed or replaced in place is re-read
    # (and agrees with dataset_identity) instead of the stale tensors being served.
    return _load_cached(name, root, _files_signature(dataset_spec(name), root))


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: Path, signature: tuple) -> RawDataset:
    """The uncached read behind load_dataset (the record's loader); exceptions are never cached."""
    spec = dataset_spec(name)
    x_train, y_train, x_test, y_test = (torch.as_tensor(a) for a in spec.loader(spec, root))
    for part, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        _check_loaded(spec, part, x, y)
    return RawDataset(name, x_train, y_train.long(), x_test, y_test.long(), list(spec.class_names),
                      spec.mean, spec.std)


def _check_loaded(spec: DatasetSpec, part: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """What a loader returns agrees with its record (a new record's loader is checked here, once)."""
    where = f"dataset {spec.name!r}: its loader's {part} split"
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != spec.shape:
        raise ValueError(f"{where} has images {x.dtype} {tuple(x.shape)}; the record says uint8 [N, "
                         f"{', '.join(map(str, spec.shape))}]")
    if y.dim() != 1 or len(y) != len(x) or y.is_floating_point():
        raise ValueError(f"{where} has labels {y.dtype} {tuple(y.shape)} for {len(x)} images; "
                         "expected integer labels [N]")
    if len(y) and not 0 <= int(y.min()) <= int(y.max()) < spec.num_classes:
        raise ValueError(f"{where} has labels outside 0..{spec.num_classes - 1} (the record's "
                         f"{spec.num_classes} class_names)")


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
