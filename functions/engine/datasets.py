"""Every fact about the supported datasets, torch-free, in one registry: one :class:`DatasetSpec` per dataset.

A record holds the dataset's shape, classes and their names, normalisation, files (torchvision's layout)
and canonical identity, named class splits, loader and profile overrides. Everything else reads the
registry: ``config`` validates against it, ``data`` loads with it, ``analysis.results`` reads dataset
names out of paths with it, and the notebooks' titles come from :func:`splits_title` / :func:`study_title`.
Adding a dataset is one :func:`register_dataset` call (CONTRIBUTING.md, "Adding a dataset").

The old tables (``DATASETS``, ``DATASET_SHAPES``, ``NUM_CLASSES``, ``CLASS_SPLITS``, ``NORMALISATION``,
``CLASS_NAMES``, ``CANONICAL_IDENTITY``) are read-only views of the registry, current after every
registration. The loaders live in ``readers`` (numpy; torchvision to download) and are imported on first
use, so importing this module imports neither torch nor numpy.
"""
from __future__ import annotations

import copy
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ConfigError

ALL_CLASSES = "all"  # the class split every dataset has: all its classes on both sides (cross-domain)
CROSS = "cross"  # notebooks ask for class_split("cross", "all") before they know the pair


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: what the engine, the analysis and the notebooks need to know about it.

    ``loader(spec, root)`` returns ``(x_train, y_train, x_test, y_test)``: uint8 images ``[N, *shape]`` and
    integer labels ``[N]`` in ``0..num_classes-1`` (numpy arrays or tensors), downloading when it can.
    A dataset read from files lists them (``folder`` under the data root, ``files`` in it); one without
    files (scikit-learn's digits) gives an ``identity`` function instead.
    """

    name: str  # the StudyConfig value, e.g. "MNIST"
    title: str  # how titles write it, e.g. "CIFAR-10"
    shape: tuple[int, int, int]  # (channels, height, width) as loaded
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of pixel values scaled to [0, 1] (the training split's)
    std: tuple[float, ...]
    loader: Callable[["DatasetSpec", Path], tuple]
    folder: str | None = None  # under the data root, e.g. "MNIST/raw"
    files: tuple[str, ...] = ()
    # dataset_identity() (functions.engine.data) of the files torchvision downloads; None = unknown, so
    # every copy counts as non-canonical and fingerprints add its identity
    canonical_identity: str | None = None
    identity: Callable[[], str] | None = None  # the identity of data without files
    download: str | None = None  # the torchvision.datasets class that downloads the files
    mirror: str | None = None  # the host that download needs (checked before trying)
    # named class splits: name → (pretraining classes, fine-tuning classes); "all" is implied
    class_splits: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    # profile → StudyConfig fields that profile sets when this dataset is the study's target
    profile_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other spellings in paths of the original study's results ("cifar")

    def __post_init__(self) -> None:
        _check_record(self)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def canonical(self) -> str:
        """The identity fingerprints treat as canonical (``canonical:<name>`` when none is known)."""
        return self.canonical_identity or f"canonical:{self.name}"

    def files_under(self, root: str | os.PathLike) -> list[Path]:
        """The files this dataset needs under the data root ``root``."""
        return [Path(root) / self.folder / f for f in self.files] if self.folder else []

    def split(self, name: str) -> tuple[list[int], list[int]]:
        """(pretraining classes, fine-tuning classes) of the named split (``"all"``: every class twice)."""
        if name == ALL_CLASSES:
            every = list(range(self.num_classes))
            return every, list(every)
        if name not in self.class_splits:
            raise ConfigError(f"class_split {name!r} is unknown for {self.name}; allowed: {self.split_names()}")
        pre, fine = self.class_splits[name]
        return list(pre), list(fine)

    def split_names(self) -> list[str]:
        """The named splits of this dataset, ``"all"`` last."""
        return [*self.class_splits, ALL_CLASSES]


def _check_record(spec: DatasetSpec) -> None:
    """ConfigError naming the first inconsistent field of a record."""
    where = f"dataset {spec.name!r}"
    if len(spec.shape) != 3 or not all(isinstance(d, int) and d > 0 for d in spec.shape):
        raise ConfigError(f"{where}: shape must be (channels, height, width) of positive ints, got {spec.shape!r}")
    if len(spec.mean) != spec.shape[0] or len(spec.std) != spec.shape[0]:
        raise ConfigError(f"{where}: mean and std need one value per channel ({spec.shape[0]}), "
                          f"got {len(spec.mean)} and {len(spec.std)}")
    if spec.num_classes < 2:
        raise ConfigError(f"{where}: class_names must name at least 2 classes, got {list(spec.class_names)}")
    if not callable(spec.loader):
        raise ConfigError(f"{where}: loader must be a function (spec, root) -> arrays, got {spec.loader!r}")
    if bool(spec.files) != bool(spec.folder):
        raise ConfigError(f"{where}: files and folder go together (files in that folder of the data root)")
    if not spec.files and spec.identity is None:
        raise ConfigError(f"{where}: a dataset without files needs an identity function (what fingerprints hash)")
    for split_name, sides in spec.class_splits.items():
        _check_split(where, split_name, sides, spec.num_classes)


def _check_split(where: str, name: str, sides, n: int) -> None:
    if name == ALL_CLASSES:
        raise ConfigError(f"{where}: class split {ALL_CLASSES!r} is implied for every dataset; name it otherwise")
    pre, fine = sides
    for side, classes in (("pretraining", pre), ("fine-tuning", fine)):
        bad = [c for c in classes if not isinstance(c, int) or not 0 <= c < n]
        if bad or len(classes) < 2 or len(set(classes)) != len(classes):
            raise ConfigError(f"{where}: class split {name!r} needs at least 2 distinct {side} classes in "
                              f"0..{n - 1}, got {list(classes)}")
    if set(pre) & set(fine):
        raise ConfigError(f"{where}: class split {name!r} uses {sorted(set(pre) & set(fine))} on both sides")


# ----------------------------------------------------------------------------- the registry
DATASET_SPECS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry (``replace=True`` to overwrite a record of the same name)."""
    if not isinstance(spec, DatasetSpec):
        raise ConfigError(f"register_dataset needs a DatasetSpec, got {type(spec).__name__}")
    taken = {alias.lower(): name for name, s in DATASET_SPECS.items() for alias in (name, *s.aliases)
             if not (replace and name == spec.name)}
    clash = [a for a in (spec.name, *spec.aliases) if a.lower() in taken]
    if clash:
        raise ConfigError(f"dataset {spec.name!r}: name or alias {clash[0]!r} is already used by "
                          f"{taken[clash[0].lower()]!r} (pass replace=True to overwrite a record)")
    DATASET_SPECS[spec.name] = spec
    return spec


def dataset_spec(name: str) -> DatasetSpec:
    """The record of ``name``; ConfigError naming the allowed datasets otherwise."""
    if not isinstance(name, str) or name not in DATASET_SPECS:
        raise ConfigError(f"dataset {name!r} is unknown; allowed: {list(DATASET_SPECS)}")
    return DATASET_SPECS[name]


def class_split(dataset: str, name: str) -> tuple[list[int], list[int]]:
    """(pretraining classes, fine-tuning classes) of a named split (``"all"`` for every dataset)."""
    if dataset == CROSS and name == ALL_CLASSES:
        return list(range(10)), list(range(10))
    if dataset not in DATASET_SPECS:
        raise ConfigError(f"dataset {dataset!r} has no named class splits; allowed: {list(DATASET_SPECS)}")
    return DATASET_SPECS[dataset].split(name)


def profile_overrides(dataset: Any, profile: str) -> dict[str, Any]:
    """The fields ``profile`` sets for a study whose target is ``dataset`` ({} for an unknown one, which
    validation reports later)."""
    spec = DATASET_SPECS.get(dataset) if isinstance(dataset, str) else None
    return copy.deepcopy(dict(spec.profile_overrides.get(profile, {}))) if spec else {}


def path_names() -> dict[str, str]:
    """Lower-case spelling → dataset name, for every name and alias (folders and files of results)."""
    return {alias.lower(): name for name, s in DATASET_SPECS.items() for alias in (name, *s.aliases)}


# ----------------------------------------------------------------------------- titles
def classes_text(classes: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 4, 6, 8]`` → ``0–4,6,8``: runs of three or more as ranges."""
    cs, parts, i = list(classes), [], 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        parts += [f"{cs[i]}–{cs[j]}"] if j - i >= 2 else [str(c) for c in cs[i:j + 1]]
        i = j + 1
    return ",".join(parts)


def study_title(source: str, target: str, split: str = ALL_CLASSES) -> str:
    """A dataset pair and class split in words, e.g. ``MNIST 0–4 → 5–9`` or ``MNIST → FashionMNIST, all 10
    classes``; ``split`` is a named split of the source dataset."""
    src, tgt = dataset_spec(source), dataset_spec(target)
    if split == ALL_CLASSES and source != target:
        both = f", all {src.num_classes} classes" if src.num_classes == tgt.num_classes else ", all classes"
        return f"{src.title} → {tgt.title}{both}"
    pre, fine = src.split(split)
    if source == target:
        return f"{src.title} {classes_text(pre)} → {classes_text(fine)}"
    return f"{src.title} {classes_text(pre)} → {tgt.title} {classes_text(fine)}"


def splits_title(dataset: str) -> str:
    """Every named split of one dataset in words, e.g. ``FashionMNIST 0–4,6,8 → 5,7,9 (regular) or
    0–2,4,6,7,9 → 3,5,8 (random)``; a single split goes without its name."""
    spec = dataset_spec(dataset)
    texts = [f"{classes_text(pre)} → {classes_text(fine)}" for pre, fine in spec.class_splits.values()]
    if len(texts) > 1:
        texts = [f"{t} ({name})" for t, name in zip(texts, spec.class_splits)]
    listed = ", ".join(texts[:-1]) + f" or {texts[-1]}" if len(texts) > 1 else "".join(texts)
    return f"{spec.title} {listed}".rstrip()


# ----------------------------------------------------------------------------- the old tables, as views
class _Column(Mapping):
    """A read-only view of one field of every record, by dataset name (current as datasets register)."""

    def __init__(self, get: Callable[[DatasetSpec], Any], only: Callable[[DatasetSpec], bool] | None = None):
        self._get, self._only = get, only or (lambda spec: True)

    def _names(self) -> list[str]:
        return [name for name, spec in DATASET_SPECS.items() if self._only(spec)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._names():
            raise KeyError(name)
        return self._get(DATASET_SPECS[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(dict(self))


class _Names(Sequence):
    """The registered dataset names, in registration order (a read-only, current view)."""

    def __getitem__(self, index):
        return tuple(DATASET_SPECS)[index]

    def __len__(self) -> int:
        return len(DATASET_SPECS)

    def __repr__(self) -> str:
        return repr(tuple(DATASET_SPECS))


DATASETS = _Names()
DATASET_SHAPES = _Column(lambda s: s.shape)
NUM_CLASSES = _Column(lambda s: s.num_classes)
CLASS_SPLITS = _Column(lambda s: {k: (list(pre), list(fine)) for k, (pre, fine) in s.class_splits.items()})
NORMALISATION = _Column(lambda s: (s.mean, s.std))
CLASS_NAMES = _Column(lambda s: list(s.class_names))
CANONICAL_IDENTITY = _Column(lambda s: s.canonical_identity, only=lambda s: s.canonical_identity is not None)


# ----------------------------------------------------------------------------- where the data lives
def default_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit``, else ``$TL_STUDY_DATA``, else ``data/`` at the repository root."""
    chosen = explicit or os.environ.get("TL_STUDY_DATA")
    return Path(chosen).expanduser() if chosen else Path(__file__).resolve().parents[2] / "data"


def dataset_files(name: str, root: Path) -> list[Path]:
    """The files a dataset needs under ``root`` (torchvision's layout)."""
    return dataset_spec(name).files_under(root)


def _online(host: str, timeout: float = 3.0) -> bool:
    """Whether the dataset mirror answers (used only when files are missing)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_available(name: str, root: Path, download: bool | None = None) -> None:
    """Raise ConfigError before any training when ``name`` cannot be read or downloaded."""
    spec = dataset_spec(name)
    missing = [p for p in spec.files_under(root) if not p.exists()]
    if not missing:
        return
    if spec.download is None:
        reason = f"{name} cannot be downloaded"
    elif download is False:
        reason = "download=False"
    elif download is None and spec.mirror and not _online(spec.mirror):
        reason = "there is no network to download it"
    else:
        return
    raise ConfigError(
        f"data_root: {name} is not under {Path(root).resolve()} (missing {missing[0].name}) and {reason}. "
        f"Put the files there in torchvision's layout ({missing[0].parent.relative_to(root)}/), "
        "or set TL_STUDY_DATA / data_root to the folder that holds them.")


# ----------------------------------------------------------------------------- the records
def _from_readers(function: str) -> Callable:
    """``readers.<function>``, imported on its first call: the readers need numpy (and torchvision to
    download), the registry must not."""
    def call(*args):
        from . import readers

        return getattr(readers, function)(*args)

    call.__name__ = call.__qualname__ = function
    return call


# torchvision's file names: MNIST-style IDX files, CIFAR-10 python batches
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
TORCHVISION_MIRROR = "ossci-datasets.s3.amazonaws.com"
DIGITS = tuple(str(i) for i in range(10))
FIRST_FIVE = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))

# The canonical identities equal the identity of the published MD5s of the uncompressed files (tests check
# this); the MNIST/FashionMNIST ones were also computed from verified copies of the real files; digits is
# the copy embedded in scikit-learn (its labels and pixels). A fingerprint adds a dataset's identity only
# when it differs from these, so result stores written before identities existed keep their names.
register_dataset(DatasetSpec(
    name="MNIST", title="MNIST", shape=(1, 28, 28), class_names=DIGITS, mean=(0.1307,), std=(0.3081,),
    loader=_from_readers("read_idx"), folder="MNIST/raw", files=IDX_FILES,
    canonical_identity="d7d0b933fbb4754c8f1852e980283a942878370f", download="MNIST",
    mirror=TORCHVISION_MIRROR, class_splits={"regular": FIRST_FIVE}))
register_dataset(DatasetSpec(
    name="FashionMNIST", title="FashionMNIST", shape=(1, 28, 28),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    mean=(0.2860,), std=(0.3530,), loader=_from_readers("read_idx"), folder="FashionMNIST/raw",
    files=IDX_FILES, canonical_identity="cfea3122e830470b97d24b2ac58c123c74689c90", download="FashionMNIST",
    mirror=TORCHVISION_MIRROR,
    class_splits={"regular": ((0, 1, 2, 3, 4, 6, 8), (5, 7, 9)), "random": ((0, 1, 2, 4, 6, 7, 9), (3, 5, 8))}))
register_dataset(DatasetSpec(
    name="CIFAR10", title="CIFAR-10", shape=(3, 32, 32),
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), loader=_from_readers("read_cifar"),
    folder="cifar-10-batches-py", files=CIFAR_FILES,
    canonical_identity="d80450a5bf5d01e5f8fc91b8dbc994dd338feff2", download="CIFAR10",
    mirror="www.cs.toronto.edu", aliases=("cifar",),
    class_splits={"regular": ((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)), "reverse": ((2, 3, 4, 5, 6, 7), (0, 1, 8, 9)),
                  "random": ((5, 6, 7, 8, 9), (0, 1, 2, 3))},
    profile_overrides={"paper": {"batch_size": 64}}))  # the original study's batch for CIFAR
# scikit-learn's embedded 8×8 digits, upsampled to 16×16 so pooling has room: the tests' dataset
register_dataset(DatasetSpec(
    name="digits", title="digits", shape=(1, 16, 16), class_names=DIGITS, mean=(0.3,), std=(0.37,),
    loader=_from_readers("read_digits"), identity=_from_readers("digits_identity"),
    canonical_identity="592509b9128ea130b9ab8783bda8d7351bfb17c2", class_splits={"regular": FIRST_FIVE}))
# Kuzushiji-MNIST (Clanuwat et al. 2018): ten cursive hiragana in MNIST's layout, named as torchvision
# names them. Its canonical identity is left unknown, so its stores and models hash its files' identity:
# have the files in place (load_dataset("KMNIST") downloads them) before building a Study, whose store is
# named when it is built — with no files yet it would be named as the unknown canonical release's.
# Mean and std are those commonly quoted for its training split.
register_dataset(DatasetSpec(
    name="KMNIST", title="KMNIST", shape=(1, 28, 28),
    class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), mean=(0.1918,), std=(0.3483,),
    loader=_from_readers("read_idx"), folder="KMNIST/raw", files=IDX_FILES, download="KMNIST",
    mirror="codh.rois.ac.jp", class_splits={"regular": FIRST_FIVE}))
