"""Fine-tuning protocols (original / steps / realistic), common-random-number pairing and FT at cut 0."""
import copy

import pytest
import torch

from functions.engine.conditions import RunSpec
from functions.engine.errors import ConfigError
import functions.engine.study as study_module
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


@pytest.mark.parametrize("protocol", ["original", "steps", "realistic"])
@pytest.mark.parametrize("field, other", [
    ("min_steps", 40), ("max_steps", 300), ("max_epochs", 7), ("eval_every", 7), ("evals_per_epoch", 2),
    ("subset_val_fraction", 0.3), ("lr_grid", [1e-3, 3e-3]), ("early_stop_patience", 9), ("num_train", 11)])
def test_every_protocol_field_names_its_own_store(root, digits_config, protocol, field, other):
    """A store name means one kind of run: changing any one protocol field, under any protocol, moves it."""
    cfg = digits_config(root, protocol=protocol, lr_grid=None)
    a = Study(cfg, root=root, verbose=False).store_path()
    b = Study(cfg.replace(**{field: other}), root=root, verbose=False).store_path()
    assert a != b


def test_the_init_scheme_is_part_of_the_store_name(root, digits_config, monkeypatch):
    import functions.engine.study as study_module

    cfg = digits_config(root)
    crn = Study(cfg, root=root, verbose=False).store_path()
    monkeypatch.setattr(study_module, "INIT_SCHEME", "independent")
    assert Study(cfg, root=root, verbose=False).store_path() != crn


def test_rows_carry_the_variant_and_every_protocol_field(root, digits_config):
    from functions.engine.protocols import PROTOCOL_VARIANTS

    cfg = PROTOCOL_VARIANTS["realistic, tuned lr"].config(digits_config(root, min_steps=20, max_steps=30,
                                                                           eval_every=10))
    study = make_study(root, digits_config, **{f: getattr(cfg, f) for f in ("protocol", "lr_grid", "min_steps",
                                                                              "max_steps", "eval_every")})
    row = study.run_one(RunSpec("FR", 0.1, 2, 0))
    assert row["protocol_variant"] == "realistic, tuned lr" and row["init"] == "crn"
    expected = dict(protocol="realistic", min_steps=20, max_steps=30, max_epochs=cfg.max_epochs, eval_every=10,
                    evals_per_epoch=cfg.evals_per_epoch, subset_val_fraction=cfg.subset_val_fraction,
                    lr_grid=sorted(cfg.lr_grid), patience=cfg.early_stop_patience, batch_size=cfg.batch_size,
                    config_hash=study.results_fingerprint())
    assert {k: row[k] for k in expected} == expected


def test_each_registered_variant_is_recognised_from_its_config(root, digits_config):
    from functions.engine.protocols import PROTOCOL_VARIANTS, variant_of

    base = digits_config(root)
    for label, variant in PROTOCOL_VARIANTS.items():
        assert variant_of(variant.config(base)).label == label
    assert variant_of(base.replace(protocol="realistic", lr_grid=None, subset_val_fraction=0.0)).label == "fixed budget"


def test_the_profiles_default_to_the_fair_protocol():
    from functions.engine.config import StudyConfig
    from functions.engine.protocols import DEFAULT_VARIANT, PROTOCOL_VARIANTS, variant_of

    for profile in ("smoke", "cpu"):
        variant = variant_of(StudyConfig.from_profile(profile))
        assert variant.label == DEFAULT_VARIANT and variant.fair and variant.tuned
    assert variant_of(StudyConfig.from_profile("paper")).label == "original"  # replicates the seed study
    assert not PROTOCOL_VARIANTS["original"].fair


def test_the_fair_default_keeps_the_shipped_store_names():
    """The cpu profile's default grid names the shipped stores (the quick start reads them, no training)."""
    from functions.notebook import study_config
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for folder, source, target, split in (("MNIST", "MNIST", "MNIST", "regular"),
                                          ("cross_domain", "FashionMNIST", "MNIST", "all")):
        cfg = study_config("cpu", source_dataset=source, target_dataset=target, class_split=split,
                           data_root=str(repo / "no-data-here"))
        study = Study(cfg, root=repo / folder, verbose=False)
        assert study.store_path().exists(), study.store_path()
        assert not study.pending(study.plan(("baseline", None)))  # the quick start's grid is complete


def test_a_loader_never_pairs_rows_of_different_init_or_variant():
    import pandas as pd

    from functions.analysis.results import with_settings

    rows = []
    for init, variant in ((None, "original"), ("crn", "original"), ("crn", "realistic, tuned lr")):
        for cut, acc in ((-1, 0.5), (1, 0.6)):
            rows.append(dict(study="s", condition="baseline" if cut == -1 else "FR", freeze=True, reinit=True,
                             truncate=False, fraction=0.1, cut=cut, repeat=0, lr=1e-3, test_acc=acc,
                             train_acc=acc, init=init, protocol_variant=variant, config_hash=f"{init}{variant}"))
    settings = with_settings(pd.DataFrame(rows))
    assert settings.groupby("setting").size().to_dict() == {
        "FR · original · independent init": 2, "FR · original": 2, "FR · realistic, tuned lr": 2}


def test_the_step_budget_scales_only_where_max_steps_is_too_small():
    from functions.engine.training import step_budget

    # the shipped small fractions: unchanged (max_steps, eval_every)
    assert step_budget(20, 64, 2000, 25, 20, 4) == (2000, 25)
    assert step_budget(2116, 64, 2000, 25, 20, 4) == (2000, 25)
    # 100 % of MNIST 5-9 (23,523 training images): 20 passes of 368 steps, validation every 92 steps
    assert step_budget(23523, 64, 2000, 25, 20, 4) == (7360, 92)
    assert step_budget(23523, 64, 2000, 25, None, None) == (2000, 25)


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


@pytest.mark.parametrize("outcomes, chosen", [
    ({1e-4: (0.6, 0.9), 1e-3: (0.8, 0.9), 3e-3: (0.7, 0.1)}, 1e-3),   # best validation accuracy wins
    ({1e-4: (0.8, 0.9), 1e-3: (0.8, 0.4), 3e-3: (0.6, 0.1)}, 1e-3),   # a tie goes to the lower loss
    ({1e-4: (0.8, 0.5), 1e-3: (0.8, 0.5), 3e-3: (0.2, 0.5)}, 1e-4)])  # a full tie keeps the earlier rate
def test_lr_grid_keeps_the_rate_that_validates_best(root, digits_config, monkeypatch, outcomes, chosen):
    from functions.engine.training import FitResult

    study = make_study(root, digits_config, protocol="realistic", min_steps=20, max_steps=20, eval_every=10,
                       lr_grid=list(outcomes))
    tried, rate_of_net = [], {}

    def fake_fit(net, tensors, lr, spec, scores=True):
        tried.append(lr)
        rate_of_net[id(net)] = lr
        assert not scores  # with a grid, no rate's own fit is scored on train and test
        val_acc, val_loss = outcomes[lr]
        return FitResult(train_acc=1.0, val_acc=val_acc, test_acc=float("nan"), epochs=1, best_epoch=1,
                         seconds=1.5, steps=20, best_step=20, val_loss=val_loss)

    monkeypatch.setattr(study, "fit_run", fake_fit)
    # the scores name the network they were measured on: it must be the kept rate's network
    monkeypatch.setattr(study_module, "final_scores", lambda net, *args: (1.0, rate_of_net[id(net)]))
    row = study.run_one(RunSpec("FR", 0.5, 2, 0))
    assert tried == list(outcomes)  # every rate trained, from the same spec
    assert row["lr"] == chosen and row["test_acc"] == chosen  # the kept run's own test accuracy
    assert row["seconds"] == pytest.approx(1.5 * len(outcomes), abs=0.05)  # the run cost every rate it tried


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
