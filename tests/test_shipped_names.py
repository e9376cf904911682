"""The shipped pretrained models and results stores keep their names.

Their names hash the config and the data's identity (``pretraining.pretrain_fingerprint``,
``Study.results_fingerprint``), so any change to a dataset record, a profile or the hashing rules that
would move them — and orphan the shipped files — fails here. Each name is recomputed from the cpu profile
and the folder's class split, as the folder's notebooks build them, and the file must exist.
"""
from pathlib import Path

import pytest

from functions.engine.config import StudyConfig
from functions.engine.data import is_canonical
from functions.engine.datasets import class_split, default_data_root
from functions.engine.study import Study, pretrained_path

REPO = Path(__file__).resolve().parents[1]

# folder, source, target, class split → (pretrained model, results store) shipped in the folder
SHIPPED = {
    ("MNIST", "MNIST", "MNIST", "regular"):
        ("MNIST_01234_d4c16_eb6996569b.pth", "MNIST01234_to_MNIST56789_4689190009.jsonl"),
    ("FashionMNIST", "FashionMNIST", "FashionMNIST", "regular"):
        ("FashionMNIST_0123468_d4c16_ff324b9cd8.pth", "FashionMNIST0123468_to_FashionMNIST579_d9b76426e3.jsonl"),
    ("cross_domain", "FashionMNIST", "MNIST", "all"):
        ("FashionMNIST_0123456789_d4c16_327f6bf6f5.pth", "FashionMNIST0123456789_to_MNIST0123456789_4dbd53c8c4.jsonl"),
    ("cross_domain", "MNIST", "FashionMNIST", "all"): ("MNIST_0123456789_d4c16_6e0f956412.pth", None),
}


def cpu_config(source: str, target: str, split: str, data_root: Path) -> StudyConfig:
    pre, fine = class_split(source, split)
    return StudyConfig.from_profile("cpu", source_dataset=source, target_dataset=target, pre_train_classes=pre,
                                    fine_tune_classes=fine, data_root=str(data_root))


def data_roots() -> list:
    """A root without files (the canonical identity: what would be downloaded), and the test data root
    when it holds the real MNIST and FashionMNIST (their identity must then be the canonical one too)."""
    roots = [pytest.param(REPO / "no-data-here", id="no-files")]
    real = default_data_root()
    if is_canonical("MNIST", real) and is_canonical("FashionMNIST", real) and (real / "MNIST").exists():
        roots.append(pytest.param(real, id="real-files"))
    return roots


@pytest.mark.parametrize("data_root", data_roots())
@pytest.mark.parametrize("key", list(SHIPPED), ids=["/".join(k[:3]) for k in SHIPPED])
def test_shipped_models_and_stores_keep_their_names(key, data_root):
    folder, source, target, split = key
    model, store = SHIPPED[key]
    cfg = cpu_config(source, target, split, data_root)
    path = pretrained_path(cfg, REPO / folder)
    assert path == REPO / folder / "pretrained_models" / model and path.exists()
    if store is not None:
        store_path = Study(cfg, root=REPO / folder, verbose=False).store_path()
        assert store_path == REPO / folder / "results" / store and store_path.exists()
