"""StudyConfig: validation names the bad field, profiles, JSON round trip, the original params dict."""
import json

import pytest

from functions.engine.config import ConfigError, StudyConfig, parse_activation

ORIGINAL_PARAMS = {
    "depth": 6, "num_channels": 64, "activation_function": "<class 'torch.nn.modules.activation.ReLU'>",
    "kernel_size": 5, "lr_pretrain": 0.001, "lr_fine_tune": 0.001, "num_train": 40,
    "early_stop_patience": 6, "save_best": False, "save_checkpoints": False, "is_cnn": True,
    "is_debug": False, "classification_report_flag": False, "batch_size": 4096,
    "pre_train_classes": [0, 1, 2, 3, 4], "fine_tune_classes": [5, 6, 7, 8, 9], "val_split": 0.1,
    "num_workers": 0, "generate_dataset_seed": 42, "percentages": [0.001, 0.01, 0.1, 1],
    "use_pooling": False, "freeze": True, "reinit": True, "reinit_both_dense": True, "truncate": None,
}


def valid(**changes):
    settings = dict(source_dataset="digits", target_dataset="digits")
    settings.update(changes)
    return StudyConfig.from_profile("smoke", **settings)


@pytest.mark.parametrize("changes, field", [
    (dict(pre_train_classes=[0, 1, 5], fine_tune_classes=[5, 6]), "overlap"),
    (dict(fine_tune_classes=[5, 12]), "fine_tune_classes"),
    (dict(pre_train_classes=[]), "pre_train_classes"),
    (dict(cuts=[0, 7]), "cuts"),
    (dict(percentages=[0.1, 1.5]), "percentages"),
    (dict(percentages=[0.0]), "percentages"),
    (dict(repeats=0), "repeats"),
    (dict(repeats=[2]), "repeats"),
    (dict(source_dataset="SVHN"), "source_dataset"),
    (dict(activation_function="Swishy"), "activation_function"),
    (dict(device="tpu"), "device"),
    (dict(depth=8, use_pooling=True, pooling_every_n_layers=1), "pooling"),
    (dict(lr_fine_tune=0), "lr_fine_tune"),
    (dict(val_split=1.0), "val_split"),
    (dict(source_dataset="CIFAR10", target_dataset="digits"), "image shape"),
])
def test_validate_rejects_bad_field_with_its_name(changes, field):
    with pytest.raises(ConfigError, match=field):
        valid(**changes).validate(check_data=False)


def test_error_lists_allowed_values():
    with pytest.raises(ConfigError, match=r"allowed: \['ReLU'"):
        valid(activation_function="relu6").validate(check_data=False)


def test_valid_profiles_pass():
    for name in ("smoke", "cpu", "paper"):
        StudyConfig.from_profile(name).validate(check_data=False)
    assert StudyConfig.from_profile("paper", target_dataset="CIFAR10", source_dataset="CIFAR10",
                                    pre_train_classes=[0, 1, 8, 9],
                                    fine_tune_classes=[2, 3, 4, 5, 6, 7]).batch_size == 64


def test_unknown_profile_and_field():
    with pytest.raises(ConfigError, match="profile"):
        StudyConfig.from_profile("huge")
    with pytest.raises(ConfigError, match="lr_finetune"):
        StudyConfig.from_profile("smoke", lr_finetune=0.1)


def test_missing_data_offline_is_a_clear_error(tmp_path):
    cfg = valid(source_dataset="MNIST", target_dataset="MNIST", data_root=str(tmp_path), download=False)
    with pytest.raises(ConfigError, match="data_root"):
        cfg.validate()


def test_json_round_trip(tmp_path):
    cfg = valid(cuts=[0, 2], repeats=[3, 4], activation_function="GELU")
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert StudyConfig.from_json(path) == cfg


def test_reads_original_params_dict_and_results_file(tmp_path):
    cfg = StudyConfig.from_dict(ORIGINAL_PARAMS)
    assert cfg.activation_function == "ReLU" and cfg.kernel_size == 5 and cfg.truncate is False
    path = tmp_path / "cuts_x.json"
    path.write_text(json.dumps([ORIGINAL_PARAMS, {"lr": 0.001, "sampled_percentage": 0.01,
                                                  "sampled_cut_point": 2, "repeat": 0,
                                                  "train_acc": 1.0, "test_acc": 0.9}]))
    assert StudyConfig.from_json(path).depth == 6
    back = StudyConfig.from_dict(cfg.to_original_params())
    assert back.model_fields() == cfg.model_fields()


def test_parse_activation_forms():
    import torch.nn as nn

    assert parse_activation(nn.SiLU) == "SiLU"
    assert parse_activation("<class 'torch.nn.modules.activation.LeakyReLU'>") == "LeakyReLU"
    assert parse_activation("gelu") == "GELU"


def test_condition_names():
    assert valid().condition == "FR"
    assert valid(freeze=False, reinit=False).condition == "U"
    assert valid(truncate=True).condition == "FT"
