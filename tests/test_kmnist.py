"""KMNIST, the worked example of adding a dataset (CONTRIBUTING.md, "Adding a dataset"): one record in
``functions/engine/datasets.py``, checked here on a generated fixture in torchvision's KMNIST layout
(digits drawn on 28×28, rotated: 1,438 training and 359 test images) and a tiny Study run end to end."""
import pytest
import torch

from conftest import write_mnist_fixture
from functions.engine.data import dataset_identity, is_canonical, load_dataset
from functions.engine.datasets import IDX_FILES, check_available, class_split
from functions.engine.errors import ConfigError
from functions.engine.pretraining import pretrain_fingerprint
from functions.engine.study import Study, pretrained_path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kmnist")
    write_mnist_fixture(root / "data", "KMNIST")
    return root


def test_the_fixture_loads_in_torchvisions_layout(root):
    assert sorted(p.name for p in (root / "data" / "KMNIST" / "raw").iterdir()) == sorted(IDX_FILES)
    raw = load_dataset("KMNIST", root / "data", download=False)
    assert raw.x_train.shape == (1438, 1, 28, 28) and raw.x_test.shape == (359, 1, 28, 28)
    assert raw.x_train.dtype == torch.uint8 and raw.y_train.dtype == torch.int64
    assert raw.classes == ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
    assert (raw.mean, raw.std) == ((0.1918,), (0.3483,))


def test_without_a_canonical_identity_the_files_identity_counts(root, tmp_path):
    identity = dataset_identity("KMNIST", root / "data")
    assert len(identity) == 40 and not is_canonical("KMNIST", root / "data")
    # nothing there: it would be downloaded, so it counts as the (unknown) canonical release
    assert dataset_identity("KMNIST", tmp_path) == "canonical:KMNIST" and is_canonical("KMNIST", tmp_path)


def test_missing_files_offline_name_the_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"KMNIST is not under .* \(missing train-images-idx3-ubyte\) and "
                                          r"download=False\. .*layout \(KMNIST/raw/\)"):
        check_available("KMNIST", tmp_path, download=False)


def test_a_tiny_kmnist_study_runs_end_to_end(root, digits_config):
    pre, fine = class_split("KMNIST", "regular")
    cfg = digits_config(root, source_dataset="KMNIST", target_dataset="KMNIST", pre_train_classes=pre,
                        fine_tune_classes=fine, data_root=str(root / "data"), download=False, depth=2,
                        num_channels=4, percentages=[0.5], repeats=1)
    study = Study(cfg, root=root, verbose=False)
    df = study.run(("baseline", "FR"), progress=False)
    assert sorted(zip(df.condition, df.cut)) == [("FR", 1), ("FR", 2), ("baseline", -1)]
    assert set(df.study) == {"KMNIST[0-4]->KMNIST[5-9]"} and set(df.target_dataset) == {"KMNIST"}
    assert df.test_acc.between(0, 1).all() and study.pretrain_info["test_acc"] > 0.5  # the fixture is learnable
    model = pretrained_path(cfg, root)
    assert model.exists() and model.name.startswith("KMNIST_01234_d2c4_")
    # the files' identity is part of the names: other KMNIST files never share a model or a store
    assert pretrain_fingerprint(cfg) != pretrain_fingerprint(cfg.replace(data_root=str(root / "elsewhere")))
    assert study.store_path().name.startswith("KMNIST01234_to_KMNIST56789_") and study.store_path().exists()
