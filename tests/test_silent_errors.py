"""No silent wrong results: degenerate settings, data identity, corrupt models, read-only folders, and two
processes running one grid into one results folder."""
import json
import multiprocessing
import os
from pathlib import Path

import pytest
import torch

from conftest import make_digits_config, write_mnist_fixture
from functions.engine.config import ConfigError, StudyConfig
from functions.engine.study import RunSpec, Study, pretrain, pretrained_path
from functions.engine.training import evaluate


@pytest.mark.parametrize("changes, field", [
    (dict(cuts=[2, 2]), "cuts"), (dict(cuts=[]), "cuts"), (dict(lr_fine_tune=float("inf")), "lr_fine_tune"),
    (dict(lr_fine_tune="inf"), "lr_fine_tune"), (dict(train_limit=3), "train_limit"),
    (dict(test_limit=4), "test_limit"), (dict(seed="abc"), "seed"), (dict(seed=1.5), "seed"),
    (dict(freeze="maybe"), "freeze"), (dict(download="perhaps"), "download")])
def test_degenerate_settings_are_rejected_with_the_field_named(tmp_path, changes, field):
    with pytest.raises(ConfigError, match=field):
        make_digits_config(tmp_path, **changes).validate(check_data=False)


def test_papermill_strings_select_the_intended_condition(tmp_path):
    cfg = make_digits_config(tmp_path, freeze="false", reinit="true", percentages="[0.05]", repeats="3",
                             val_split="0.1", cuts="[1, 2]")
    assert (cfg.condition, cfg.percentages, cfg.repeats, cfg.val_split, cfg.cuts) == ("UR", [0.05], 3, 0.1, [1, 2])
    assert StudyConfig.from_profile("smoke", percentages=0.5).percentages == [0.5]


def test_no_accuracy_is_made_up_for_zero_images():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="zero images"):
        evaluate(net, torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long))


def _mnist_study(tmp_path, data_root):
    cfg = StudyConfig.from_profile("smoke", data_root=str(data_root), results_dir=str(tmp_path / "results"),
                                   pretrained_dir=str(tmp_path / "pretrained"))
    return Study(cfg, root=tmp_path, verbose=False)


def test_other_data_files_never_share_a_store_or_a_pretrained_model(tmp_path):
    """Pointing data_root at other files gives another fingerprint; the canonical files (or none) do not."""
    for seed in (0, 1):
        write_mnist_fixture(tmp_path / f"data{seed}", "MNIST", seed=seed)
    fixtures = [_mnist_study(tmp_path, tmp_path / f"data{seed}") for seed in (0, 1)]
    missing = _mnist_study(tmp_path, tmp_path / "no-data")  # missing files = the canonical download
    paths = {s.store_path() for s in fixtures + [missing]}
    models = {pretrained_path(s.cfg, tmp_path) for s in fixtures + [missing]}
    assert len(paths) == len(models) == 3


@pytest.fixture()
def pretrained_study(tmp_path, digits_config):
    study = Study(digits_config(tmp_path), root=tmp_path, verbose=False)
    _ = study.pretrained
    return study, pretrained_path(study.cfg, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "empty", "other_shape"])
def test_a_corrupt_pretrained_model_is_named_with_the_way_out(pretrained_study, damage):
    study, path = pretrained_study
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"blocks.0.conv.weight": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="delete the file to pretrain again") as info:
        pretrain(study.cfg, root=study.root, verbose=False)
    assert str(path) in str(info.value)


def test_a_model_without_its_info_file_says_so(pretrained_study, capsys):
    study, path = pretrained_study
    path.with_suffix(".json").unlink()
    pretrain(study.cfg, root=study.root, verbose=True)
    assert "unknown" in capsys.readouterr().out


def test_read_only_results_fail_before_pretraining(tmp_path, digits_config, monkeypatch):
    import functions.engine.study as study_module

    def refuse(folder):
        raise PermissionError(f"cannot write results to {folder}")

    monkeypatch.setattr(study_module, "check_writable", refuse)
    study = Study(digits_config(tmp_path), root=tmp_path, verbose=False)
    with pytest.raises(PermissionError, match="cannot write results"):
        _ = study.pretrained
    assert not pretrained_path(study.cfg, tmp_path).exists()


def _run_grid(root: str, log: str) -> None:
    """One process of the concurrency test: run the whole grid, record the keys it trained."""
    torch.set_num_threads(1)
    study = Study(make_digits_config(root, percentages=[0.1], repeats=3, cuts=[1, 2, 3]), root=root,
                  verbose=False)
    before = set(study.store.rows)
    trained = []
    original = study.run_one

    def counting(spec, cache=None):
        trained.append(spec.key)
        return original(spec, cache)

    study.run_one = counting
    study.run(("baseline", "FR"), progress=False)
    Path(log).write_text(json.dumps({"trained": trained, "before": sorted(before)}))


def test_two_processes_on_one_grid_train_and_store_every_run_once(tmp_path, digits_config):
    Study(digits_config(tmp_path, percentages=[0.1], repeats=3, cuts=[1, 2, 3]), root=tmp_path,
          verbose=False).pretrained  # pretrain once, before the race
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_run_grid, args=(str(tmp_path), str(tmp_path / f"log{i}.json"))) for i in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    study = Study(digits_config(tmp_path, percentages=[0.1], repeats=3, cuts=[1, 2, 3]), root=tmp_path,
                  verbose=False)
    expected = {s.key for s in study.plan(("baseline", "FR"))}
    lines = [json.loads(line) for line in study.store.path.read_text().splitlines()]
    assert sorted(r["key"] for r in lines) == sorted(expected)  # 12 runs, 12 lines: none lost, none twice
    trained = [k for i in (0, 1) for k in json.loads((tmp_path / f"log{i}.json").read_text())["trained"]]
    assert sorted(trained) == sorted(expected)  # claims: no run was trained by both processes
