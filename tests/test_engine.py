"""The grid engine on digits: determinism, cache equivalence, resume after a crash, original export."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from functions.engine.conditions import RunSpec
from functions.engine.config import StudyConfig
from functions.engine.store import ResultsStore
from functions.engine.study import Study


@pytest.fixture(scope="module")
def study(tmp_path_factory, digits_config):
    tmp = tmp_path_factory.mktemp("engine")
    s = Study(digits_config(tmp), root=tmp, verbose=False)
    _ = s.pretrained
    return s


def test_same_seed_same_accuracies(study):
    spec = RunSpec("FR", 0.1, 2, 0)
    a, b = study.run_one(spec), study.run_one(spec)
    assert (a["train_acc"], a["val_acc"], a["test_acc"], a["epochs"]) == \
        (b["train_acc"], b["val_acc"], b["test_acc"], b["epochs"])
    base = study.run_one(RunSpec("baseline", 0.1, -1, 0))
    assert base == {**base, "cut": -1, "condition": "baseline"}


def test_cached_prefix_matches_uncached(study):
    for k in (1, 2, 3):
        group = [RunSpec("FR", 0.5, k, 1)]
        (_, cached), = list(study.iter_group(group))
        plain = study.run_one(group[0], cache=None)
        for metric in ("train_acc", "val_acc", "test_acc"):
            assert cached[metric] == pytest.approx(plain[metric], abs=0.02), (k, metric)


def test_same_subset_for_every_cut_and_condition(study):
    a = study.subset(0.1, 1)
    assert torch.equal(a, study.subset(0.1, 1))
    assert not torch.equal(a, study.subset(0.1, 0))


def test_plan_uses_baseline_for_cut0_with_reinit(study):
    specs = study.plan(("baseline", "FR"))
    assert not any(s.condition == "FR" and s.cut == 0 for s in specs)
    assert sum(s.condition == "baseline" for s in specs) == 4
    assert sum(s.condition == "FR" for s in specs) == 4 * 3


def test_grid_resumes_without_duplicates_after_truncated_line(tmp_path, digits_config):
    cfg = digits_config(tmp_path, depth=2, percentages=[0.1], repeats=2)
    s = Study(cfg, root=tmp_path, verbose=False)
    df = s.run(("baseline", "FR"), progress=False)
    assert len(df) == 2 + 2 * 2
    path = s.store_path()
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    with pytest.warns(RuntimeWarning, match="truncated"):
        s2 = Study(cfg, root=tmp_path, verbose=False)
    assert len(s2.store) == len(lines) - 1
    df2 = s2.run(("baseline", "FR"), progress=False)
    keys = [json.loads(l)["key"] for l in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 6 and len(df2) == 6


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        ResultsStore(path)


def test_kill_9_then_rerun_redoes_nothing(tmp_path, digits_config):
    """A real SIGKILL during a grid: rerunning completes it with every key exactly once."""
    script = textwrap.dedent(f"""
        import torch; torch.set_num_threads(1)
        from functions.engine.config import StudyConfig
        from functions.engine.study import Study
        cfg = StudyConfig.from_json({json.dumps(digits_config(tmp_path, repeats=3).to_json())})
        Study(cfg, root={str(tmp_path)!r}, verbose=False).run(("baseline", "FR"), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    cfg = digits_config(tmp_path, repeats=3)
    store = Study(cfg, root=tmp_path, verbose=False).store_path()
    deadline = time.time() + 120
    while time.time() < deadline and (not store.exists() or len(store.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [json.loads(l) for l in store.read_text().splitlines() if l.strip().endswith("}")]
    assert 3 <= len(before) < 24, "the kill should land mid-grid"
    s = Study(cfg, root=tmp_path, verbose=False)
    s.run(("baseline", "FR"), progress=False)
    rows = [json.loads(l) for l in store.read_text().splitlines()]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == 6 + 6 * 3
    for old in before:  # finished runs were not redone
        assert next(r for r in rows if r["key"] == old["key"])["finished_at"] == old["finished_at"]


def test_export_original_round_trip(study, tmp_path):
    study.run(("baseline", "FR"), progress=False)
    base_path, cuts_path = study.export_original(tmp_path)
    base, cuts = json.loads(open(base_path).read()), json.loads(open(cuts_path).read())
    assert base[0]["depth"] == 3 and cuts[0]["freeze"] is True
    assert {r["sampled_cut_point"] for r in base[1:]} == {-1}
    assert {r["sampled_cut_point"] for r in cuts[1:]} == {1, 2, 3}
    assert set(cuts[1]) == {"lr", "sampled_percentage", "sampled_cut_point", "repeat", "train_acc", "test_acc"}
    assert StudyConfig.from_json(cuts_path).depth == 3


def test_exports_go_to_their_own_folder_and_are_never_read_as_runs(study):
    from functions.analysis.results import load_results

    study.run(("baseline", "FR"), progress=False)
    base_path, cuts_path = study.export_original()
    results_dir = study.store_path().parent
    assert base_path.parent == cuts_path.parent == results_dir / "original_format"
    df = load_results(results_dir)  # the store only: exports, .lock and .claims are not runs
    assert len(df) == len(study.store) and set(df["source"]) == {str(study.store_path())}
    assert len(load_results(results_dir, study.store_path())) == len(df)  # a store named twice: once


def test_row_follows_the_schema(study):
    from functions.engine.schema import ENGINE_COLUMNS, ROW_COLUMNS, results_row

    row = study.run_one(RunSpec("FR", 0.1, 1, 0))
    assert set(row) == (set(ROW_COLUMNS) | set(ENGINE_COLUMNS)) - {"history"}
    with pytest.raises(ValueError, match="unknown columns \\['colour'\\]"):
        results_row(**row, colour="red")



def test_the_shipped_mnist_store_and_model_keep_their_names():
    """Refactoring the engine must never move a shipped store or pretrained model (their names hash the config)."""
    from pathlib import Path

    from functions.notebook import study_config
    from functions.engine.study import pretrained_path

    mnist = Path(__file__).resolve().parents[1] / "MNIST"
    cfg = study_config("cpu", source_dataset="MNIST", target_dataset="MNIST", class_split="regular",
                       data_root=str(mnist / "no-data-here"))
    study = Study(cfg, root=mnist, verbose=False)
    assert study.store_path() == mnist / "results" / "MNIST01234_to_MNIST56789_4689190009.jsonl"
    assert pretrained_path(cfg, mnist) == mnist / "pretrained_models" / "MNIST_01234_d4c16_eb6996569b.pth"
    assert study.store_path().exists() and pretrained_path(cfg, mnist).exists()


def test_a_and_b_are_ordinary_sources(study):
    from functions.engine.conditions import SOURCES

    assert {"A", "B", "random"} <= set(study.source_makers()) and study.source_makers()["A"] is SOURCES["A"]
    assert study.source_model("A") is study.pretrained and study.pretrain_info["test_acc"] > 0.5
    with pytest.raises(ValueError, match="source 'C' is unknown; allowed: \\['A', 'B'"):
        study.use_source("C", study.pretrained)
    with pytest.raises(ValueError, match="condition 'nope' is unknown; allowed: baseline, \\['FR'"):
        study.plan(("nope",))


def test_conditions_and_sources_of_one_study_leave_the_registries_alone(study):
    """What a worker is shipped (or a notebook gives one study) belongs to that study only."""
    from functions.engine.conditions import CONDITIONS, SOURCES, Condition

    own = Study(study.cfg, root=study.root, verbose=False, sources={"twin": lambda s: s.source_model("A")},
                conditions={"twin_FR": Condition("twin_FR", source="twin")})
    assert "twin_FR" not in CONDITIONS and "twin" not in SOURCES
    assert [s.cut for s in own.plan(("twin_FR",)) if (s.fraction, s.repeat) == (0.1, 0)] == [1, 2, 3]
    model = own.build_model(RunSpec("twin_FR", 0.1, 2, 0))
    assert torch.equal(model.blocks[0].conv.weight, own.pretrained.blocks[0].conv.weight)
    with pytest.raises(ValueError, match="twin_FR"):
        study.plan(("twin_FR",))
