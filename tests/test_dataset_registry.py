"""The dataset registry: one DatasetSpec per dataset, and every older table, title and rule read from it."""
import subprocess
import sys

import pytest

from functions.engine import datasets
from functions.engine.config import StudyConfig
from functions.engine.datasets import DatasetSpec, class_split, dataset_spec, register_dataset
from functions.engine.errors import ConfigError


def test_the_old_tables_are_views_of_the_records():
    """The values every module read before the registry, unchanged (config, networks, archsearch,
    clustering and the data loaders still import these names)."""
    assert list(datasets.DATASETS)[:4] == ["MNIST", "FashionMNIST", "CIFAR10", "digits"]
    assert datasets.DATASET_SHAPES["CIFAR10"] == (3, 32, 32) and datasets.DATASET_SHAPES["digits"] == (1, 16, 16)
    assert all(datasets.NUM_CLASSES[name] == 10 for name in datasets.DATASETS)
    assert datasets.NORMALISATION["MNIST"] == ((0.1307,), (0.3081,))
    assert datasets.CLASS_NAMES["FashionMNIST"][9] == "Ankle boot" and datasets.CLASS_NAMES["CIFAR10"][0] == "airplane"
    assert datasets.CLASS_SPLITS["CIFAR10"]["reverse"] == ([2, 3, 4, 5, 6, 7], [0, 1, 8, 9])
    assert datasets.CANONICAL_IDENTITY["CIFAR10"] == "d80450a5bf5d01e5f8fc91b8dbc994dd338feff2"
    assert "KMNIST" in datasets.DATASETS and "KMNIST" not in datasets.CANONICAL_IDENTITY  # unknown: not listed
    assert datasets.NUM_CLASSES.get("nope", -1) == -1 and "nope" not in datasets.DATASET_SHAPES


def test_named_class_splits_and_all():
    assert class_split("FashionMNIST", "random") == ([0, 1, 2, 4, 6, 7, 9], [3, 5, 8])
    assert class_split("KMNIST", "all") == (list(range(10)), list(range(10)))
    assert class_split("cross", "all") == (list(range(10)), list(range(10)))  # the notebooks' spelling
    with pytest.raises(ConfigError, match=r"class_split 'reverse' is unknown for MNIST; allowed: \['regular', 'all'\]"):
        class_split("MNIST", "reverse")
    with pytest.raises(ConfigError, match="dataset 'SVHN' has no named class splits; allowed: .*'KMNIST'"):
        class_split("SVHN", "regular")


def test_titles_come_from_the_records():
    assert datasets.study_title("MNIST", "MNIST", "regular") == "MNIST 0–4 → 5–9"
    assert datasets.study_title("FashionMNIST", "MNIST") == "FashionMNIST → MNIST, all 10 classes"
    assert datasets.splits_title("MNIST") == "MNIST 0–4 → 5–9"
    assert datasets.splits_title("FashionMNIST") == "FashionMNIST 0–4,6,8 → 5,7,9 (regular) or 0–2,4,6,7,9 → 3,5,8 (random)"
    assert datasets.splits_title("CIFAR10") == ("CIFAR-10 0,1,8,9 → 2–7 (regular), 2–7 → 0,1,8,9 (reverse) or "
                                                "5–9 → 0–3 (random)")


def test_profile_overrides_are_the_records():
    """The original study's batch of 64 for CIFAR-10 comes from its record, at the paper profile only."""
    assert StudyConfig.from_profile("paper", source_dataset="CIFAR10", target_dataset="CIFAR10").batch_size == 64
    assert StudyConfig.from_profile("paper").batch_size == 4096
    assert StudyConfig.from_profile("cpu", source_dataset="CIFAR10", target_dataset="CIFAR10").batch_size == 64
    assert StudyConfig.from_profile("paper", target_dataset="CIFAR10", batch_size=32).batch_size == 32  # overrides win
    assert datasets.profile_overrides("nope", "paper") == {} and datasets.profile_overrides(None, "paper") == {}


def test_dataset_names_in_paths_come_from_the_records():
    from functions.analysis.results import datasets_from_path

    assert datasets.path_names()["cifar"] == "CIFAR10" and datasets.path_names()["kmnist"] == "KMNIST"
    assert datasets_from_path("x/CIFAR/results/cuts_1.json") == ("CIFAR10", "CIFAR10")
    assert datasets_from_path("x/KMNIST_to_MNIST/cuts.json") == ("KMNIST", "MNIST")
    assert datasets_from_path("x/FashionMNIST_to_MNIST/cuts.json") == ("FashionMNIST", "MNIST")


@pytest.fixture
def registered():
    """Register records for one test and remove them afterwards (the registry is global)."""
    names = []

    def register(spec, **kwargs):
        registered = register_dataset(spec, **kwargs)
        names.append(spec.name)  # only what this test added: a clash must not remove the older record
        return registered

    yield register
    for name in names:
        datasets.DATASET_SPECS.pop(name, None)


def test_a_new_record_is_a_new_dataset_everywhere(registered):
    spec = registered(DatasetSpec(
        name="Letters", title="EMNIST letters", shape=(1, 28, 28), class_names=tuple("abcdefghijklmnopqrstuvwxyz"),
        mean=(0.17,), std=(0.33,), loader=dataset_spec("MNIST").loader, folder="Letters/raw",
        files=datasets.IDX_FILES, class_splits={"vowels": ((0, 4, 8, 14, 20), (1, 2, 3))},
        aliases=("emnist_letters",)))
    assert "Letters" in datasets.DATASETS and datasets.NUM_CLASSES["Letters"] == 26
    assert datasets.path_names()["emnist_letters"] == "Letters"
    cfg = StudyConfig.from_profile("smoke", source_dataset="Letters", target_dataset="Letters",
                                   pre_train_classes=[0, 4, 8], fine_tune_classes=[24, 25])
    assert cfg.validate(check_data=False) is cfg
    with pytest.raises(ConfigError, match=r"fine_tune_classes has class ids \[26\] outside the allowed range 0..25"):
        cfg.replace(fine_tune_classes=[25, 26]).validate(check_data=False)
    assert spec.split("vowels") == ([0, 4, 8, 14, 20], [1, 2, 3])


@pytest.mark.parametrize("change, words", [
    (dict(name="MNIST"), "already used by 'MNIST'"),
    (dict(aliases=("cifar",)), "already used by 'CIFAR10'"),
    (dict(shape=(28, 28)), "shape must be"),
    (dict(mean=(0.1, 0.2)), "one value per channel"),
    (dict(class_names=("only",)), "at least 2 classes"),
    (dict(folder=None), "files and folder go together"),
    (dict(class_splits={"bad": ((0, 1), (1, 2))}), r"uses \[1\] on both sides"),
    (dict(class_splits={"bad": ((0, 10), (1, 2))}), r"classes in 0..9"),
    (dict(class_splits={"all": ((0, 1), (2, 3))}), "implied for every dataset"),
])
def test_a_bad_record_is_rejected_naming_the_field(registered, change, words):
    base = dict(name="Tiny", title="Tiny", shape=(1, 28, 28), class_names=tuple("0123456789"), mean=(0.5,),
                std=(0.5,), loader=dataset_spec("MNIST").loader, folder="Tiny/raw", files=datasets.IDX_FILES)
    with pytest.raises(ConfigError, match=words):
        registered(DatasetSpec(**{**base, **change}))


def test_replacing_a_record_needs_replace(registered):
    first = DatasetSpec(name="Tiny", title="Tiny", shape=(1, 8, 8), class_names=("a", "b"), mean=(0.5,),
                        std=(0.5,), loader=lambda spec, root: None, identity=lambda: "tiny")
    registered(first)
    with pytest.raises(ConfigError, match="replace=True"):
        registered(first)
    registered(first, replace=True)
    assert dataset_spec("Tiny") is first


def test_the_registry_imports_neither_torch_nor_numpy():
    code = ("import sys, functions.engine.datasets as d; d.dataset_spec('KMNIST'); "
            "bad = [m for m in ('torch', 'numpy', 'pandas') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
