"""Fine-tuning protocols (original / steps / realistic), common-random-number pairing and FT at cut 0."""
import copy

import pytest
import torch

from functions.engine.conditions import RunSpec
from functions.engine.errors import ConfigError
from functions.engine.study import Study
from functions.engine.training import Tensors, fit_steps


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("protocols")


def make_study(root, digits_config, **overrides):
    study = Study(digits_config(root, **overrides), root=root, verbose=False)
    _ = study.pretrained  # every protocol shares one pretrained model (pretraining is protocol-free)
    return study


def test_steps_protocol_trains_at_least_min_steps(root, digits_config):
    study = make_study(root, digits_config, protocol="steps", min_steps=60, max_steps=120, eval_every=10,
                       early_stop_patience=1)
    for spec in (RunSpec("baseline", 0.1, -1, 0), RunSpec("FR", 0.1, 2, 0)):
        row = study.run_one(spec)
        assert 60 <= row["steps"] <= 120
        assert 0 < row["best_step"] <= row["steps"]
        assert row["protocol"] == "steps" and row["n_val"] == len(study.target.y_val)
        # ~115 training images at batch 64: an epoch is 2 steps, so 60 steps are ~30 passes
        assert row["epochs"] >= 60 * 64 // row["n_train"]


def test_realistic_validation_is_carved_from_the_subset(root, digits_config):
    study = make_study(root, digits_config, protocol="realistic", subset_val_fraction=0.2, min_steps=20,
                       max_steps=40, eval_every=10)
    for fraction in (0.1, 0.5):
        for repeat in (0, 1):
            labelled = study.subset(fraction, repeat)
            train, val = study.run_rows(fraction, repeat)
            assert set(train.tolist()).isdisjoint(val.tolist())
            assert set(train.tolist()) | set(val.tolist()) == set(labelled.tolist())
            per_class = torch.bincount(study.target.y_train[val], minlength=study.target.num_classes)
            assert per_class.min() >= 1
            assert len(val) <= 0.2 * len(labelled) + study.target.num_classes
    row = study.run_one(RunSpec("FR", 0.1, 1, 0))
    train, val = study.run_rows(0.1, 0)
    assert (row["n_train"], row["n_val"]) == (len(train), len(val))
    assert row["n_train"] + row["n_val"] == len(study.subset(0.1, 0))


def test_cached_realistic_run_matches_uncached(root, digits_config):
    study = make_study(root, digits_config, protocol="realistic", min_steps=20, max_steps=40, eval_every=10)
    spec = RunSpec("FR", 0.5, 2, 1)
    (_, cached), = list(study.iter_group([spec]))
    plain = study.run_one(spec, cache=None)
    assert cached["n_val"] == plain["n_val"]
    assert cached["test_acc"] == pytest.approx(plain["test_acc"], abs=0.02)


def test_fixed_budget_keeps_the_last_state(root, digits_config):
    study = make_study(root, digits_config, protocol="realistic", subset_val_fraction=0.0, min_steps=30)
    row = study.run_one(RunSpec("baseline", 0.1, -1, 0))
    assert (row["steps"], row["best_step"], row["n_val"], row["val_acc"]) == (30, 30, 0, None)
    assert row["n_train"] == len(study.subset(0.1, 0))
    # fit_steps without validation ends on the state after exactly min_steps steps: the same state a
    # validated run reaches when its only evaluation is that step.
    net = study.build_model(RunSpec("baseline", 0.1, -1, 0))
    x, y = study.target.x_train[:100], study.target.y_train[:100]
    no_val = Tensors(x, y, x[:0], y[:0], x, y)
    one_eval = Tensors(x, y, x, y, x, y)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    fit_steps(a, no_val, 3e-3, min_steps=30, max_steps=30, eval_every=30, patience=1, batch_size=32, seed=1)
    fit_steps(b, one_eval, 3e-3, min_steps=30, max_steps=30, eval_every=30, patience=1, batch_size=32, seed=1)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


def test_protocols_never_share_a_store(root, digits_config):
    variants = [dict(protocol="original"), dict(protocol="steps"), dict(protocol="realistic"),
                dict(protocol="realistic", subset_val_fraction=0.0), dict(protocol="steps", min_steps=40),
                dict(protocol="original", lr_grid=[1e-3, 3e-3])]
    paths = {Study(digits_config(root, **v), root=root, verbose=False).store_path() for v in variants}
    assert len(paths) == len(variants)


def test_original_protocol_keeps_the_shipped_store_names(digits_config):
    """Fingerprints made before protocols and data identity existed still name the same stores."""
    from functions.notebook import study_config
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cfg = study_config("cpu", source_dataset="MNIST", target_dataset="MNIST", class_split="regular",
                       data_root=str(repo / "no-data-here"))
    study = Study(cfg, root=repo / "MNIST", verbose=False)
    assert study.store_path().exists(), study.store_path()


def test_common_random_numbers_across_cuts(root, digits_config):
    study = make_study(root, digits_config)
    depth = study.cfg.depth
    models = {k: study.build_model(RunSpec("FR", 0.5, k, 1)) for k in range(1, depth + 1)}
    models[0] = study.build_model(RunSpec("baseline", 0.5, -1, 1))
    for j in range(depth):  # every arm that re-initialises block j starts it from the same tensor
        fresh = [k for k in models if k <= j]
        ref = models[fresh[0]].blocks[j].state_dict()
        for k in fresh[1:]:
            for name, value in models[k].blocks[j].state_dict().items():
                assert torch.equal(value, ref[name]), (j, k, name)
    heads = [m.head.state_dict() for m in models.values()]
    for head in heads[1:]:
        for name, value in head.items():
            assert torch.equal(value, heads[0][name])
    other_repeat = study.build_model(RunSpec("FR", 0.5, 1, 0))
    assert not torch.equal(other_repeat.head.fc.weight, models[1].head.fc.weight)


def test_truncation_runs_cut_zero_as_its_own_arm(root, digits_config):
    study = make_study(root, digits_config)
    ft = study.plan(["FT"])
    assert any(s.cut == 0 for s in ft)
    assert not any(s.cut == 0 for s in study.plan(["FR"]))
    row = study.run_one(RunSpec("FT", 0.5, 0, 0))
    assert row["condition"] == "FT" and row["cut"] == 0
    assert len(study.build_model(RunSpec("FT", 0.5, 0, 0)).blocks) == 0


def test_lr_grid_picks_each_arms_rate_on_its_own_validation(root, digits_config):
    study = make_study(root, digits_config, protocol="realistic", min_steps=20, max_steps=20, eval_every=10,
                       lr_grid=[1e-4, 3e-3])
    row = study.run_one(RunSpec("FR", 0.5, 2, 0))
    assert row["lr"] in (1e-4, 3e-3) and row["lr_grid"] == [1e-4, 3e-3]


@pytest.mark.parametrize("outcomes, chosen", [
    ({1e-4: (0.6, 0.9), 1e-3: (0.8, 0.9), 3e-3: (0.7, 0.1)}, 1e-3),   # best validation accuracy wins
    ({1e-4: (0.8, 0.9), 1e-3: (0.8, 0.4), 3e-3: (0.6, 0.1)}, 1e-3),   # a tie goes to the lower loss
    ({1e-4: (0.8, 0.5), 1e-3: (0.8, 0.5), 3e-3: (0.2, 0.5)}, 1e-4)])  # a full tie keeps the earlier rate
def test_lr_grid_keeps_the_rate_that_validates_best(root, digits_config, monkeypatch, outcomes, chosen):
    from functions.engine.training import FitResult

    study = make_study(root, digits_config, protocol="realistic", min_steps=20, max_steps=20, eval_every=10,
                       lr_grid=list(outcomes))
    tried = []

    def fake_fit(net, tensors, lr, spec):
        tried.append(lr)
        val_acc, val_loss = outcomes[lr]
        return FitResult(train_acc=1.0, val_acc=val_acc, test_acc=lr, epochs=1, best_epoch=1, seconds=1.5,
                         steps=20, best_step=20, val_loss=val_loss)

    monkeypatch.setattr(study, "fit", fake_fit)
    row = study.run_one(RunSpec("FR", 0.5, 2, 0))
    assert tried == list(outcomes)  # every rate trained, from the same spec
    assert row["lr"] == chosen and row["test_acc"] == chosen  # the kept run's own test accuracy
    assert row["seconds"] == pytest.approx(1.5 * len(outcomes))  # the run cost every rate it tried


@pytest.mark.parametrize("field, value, words", [
    ("protocol", "fair", "allowed"), ("min_steps", 0, "min_steps"), ("subset_val_fraction", 1.0, "[0, 1)"),
    ("eval_every", "often", "eval_every"), ("lr_grid", [], "lr_grid"), ("lr_grid", [1e-3, "inf"], "lr_grid")])
def test_protocol_fields_are_validated(root, digits_config, field, value, words):
    with pytest.raises(ConfigError, match=field) as info:
        digits_config(root, **{field: value}).validate(check_data=False)
    assert words in str(info.value)


def test_max_steps_below_min_steps_is_rejected(root, digits_config):
    with pytest.raises(ConfigError, match="max_steps"):
        digits_config(root, min_steps=100, max_steps=50).validate(check_data=False)
