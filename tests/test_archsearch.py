"""Architecture search: a 3-trial search on digits runs, reproduces with its seed, exports a valid config."""
import json

import optuna
import pytest
import torch

from functions.related import archsearch
from functions.engine.config import StudyConfig
from functions.engine.networks import CustomCNN

torch.set_num_threads(2)
SEARCH = dict(dataset="digits", n_trials=3, epochs=2, train_limit=500, max_depth=3, widths=[4, 8],
              kernels=[3, 5], batch_size=128, seed=7, progress=False)


@pytest.fixture(scope="module")
def search():
    return archsearch.run_search(**SEARCH)


def test_three_trial_search_runs(search):
    study, split = search
    table = archsearch.trials_table(study)
    assert len(table) == 3 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert table["val_acc"].between(0, 1).all() and table["val_acc"].max() > 0.2  # above chance (0.1)
    assert (table["n_params"] > 0).all()
    assert set(table["depth"]) <= {2, 3} and set(table["width"]) <= {4, 8}
    best = archsearch.spec_from_params(study.best_params)
    assert len(best["kernels"]) == best["depth"]


def test_search_is_reproducible_with_its_seed(search):
    study, _ = search
    again, _ = archsearch.run_search(**SEARCH)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    other, _ = archsearch.run_search(**{**SEARCH, "n_trials": 1, "seed": 8})
    assert other.trials[0].params != study.trials[0].params


def test_exported_config_validates_and_builds(search, tmp_path):
    study, split = search
    spec = archsearch.spec_from_params(study.best_params)
    cfg, notes = archsearch.to_study_config(spec, "digits")
    path = tmp_path / "best_config.json"
    cfg.to_json(path)
    loaded = StudyConfig.from_dict(json.loads(path.read_text())).validate(check_data=False)
    assert (loaded.depth, loaded.activation_function) == (spec["depth"], spec["activation"])
    assert loaded.lr_fine_tune == pytest.approx(spec["lr"])
    assert isinstance(notes, list)
    model = CustomCNN.from_config(loaded, 1, 16, 10)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


def test_to_study_config_notes_what_it_cannot_express():
    spec = dict(depth=5, width=8, organisation="doubling", kernels=[3, 5, 5, 3, 5], pooling="max",
                pool_every=1, activation="Mish", batch_norm=True, dropout=0.2, lr=3e-3)
    cfg, notes = archsearch.to_study_config(spec, "MNIST")
    # channels 8,16,32,64,128 → median 32; kernels → most common 5
    assert (cfg.num_channels, cfg.kernel_size, cfg.activation_function) == (32, 5, "Mish")
    text = " ".join(notes)
    for word in ("doubling", "kernels per layer", "max", "batch norm", "dropout"):
        assert word in text
    # 28 px pooled after every one of 5 layers reaches 1 px before the 5th pool → pool less often
    assert cfg.pooling_every_n_layers == 2 and "pooling every 1" in text
    cfg.validate(check_data=False)
    plain = dict(spec, organisation="constant", kernels=[3] * 5, pooling="avg", pool_every=2,
                 batch_norm=False, dropout=0.0)
    assert archsearch.to_study_config(plain, "MNIST")[1] == []


def test_channel_plan_and_model_shapes():
    assert archsearch.channel_plan(4, 16, "constant") == [16, 16, 16, 16]
    assert archsearch.channel_plan(4, 16, "doubling") == [16, 32, 64, 128]
    assert archsearch.channel_plan(4, 16, "halving") == [16, 8, 4, 4]
    with pytest.raises(ValueError, match="organisation"):
        archsearch.channel_plan(2, 8, "random")
    for pooling in archsearch.POOLINGS:
        spec = dict(depth=3, width=4, organisation="doubling", kernels=[3, 5, 7], pooling=pooling,
                    pool_every=1, activation="GELU", batch_norm=True, dropout=0.1, lr=1e-3)
        net = archsearch.SearchCNN(spec, 1, 28, 10)
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
        expected_side = 28 if pooling == "none" else 4  # 28 → 14 → 7 → 4 (strided) or 3 (pooling)
        side = net.features(torch.zeros(1, 1, 28, 28)).shape[-1]
        assert side == expected_side or (pooling in ("max", "avg") and side == 3)


def test_importances_and_bad_arguments(search):
    study, _ = search
    imp = archsearch.param_importances(study)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) >= 2:
        assert imp.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dataset"):
        archsearch.run_search("SVHN", 1, 1)
    with pytest.raises(ValueError, match="profile"):
        archsearch.profile_settings("huge")
