"""tools/merge_stores.py: the results of another checkout merged in by key, nothing here overwritten."""
import importlib.util
import json
import multiprocessing as mp
import sys
from pathlib import Path

import pytest

from functions.engine.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("merge_stores", REPO / "tools" / "merge_stores.py")
merge_stores = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = merge_stores  # its dataclass looks its module up there
spec.loader.exec_module(merge_stores)

STORE = "MNIST/results/study_abc.jsonl"


def row(key, acc=0.5, seconds=1.0):
    return {"key": key, "test_acc": acc, "seconds": seconds, "finished_at": "2026-12-03T00:00:00"}


def write(root: Path, rel: str, rows, tail: str = "") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


def keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def test_rows_are_merged_once_by_key_and_nothing_here_is_overwritten(tmp_path):
    here, other = tmp_path / "here", tmp_path / "other"
    write(here, STORE, [row("a", 0.1), row("b", 0.2)])
    # b agrees but ran for another time (not a conflict), c is new, a differs, the torn tail is ignored
    write(other, STORE, [row("a", 0.9), row("b", 0.2, seconds=7.0), row("c", 0.3)], tail='{"key": "d", "te')
    write(other, "MNIST/results/smoke/s.jsonl", [row("x")])  # test output: never merged
    with pytest.warns(RuntimeWarning, match="truncated last row"):
        report = merge_stores.merge(other, here)
    assert keys(here / STORE) == ["a", "b", "c"]
    assert ResultsStore(here / STORE).rows["a"]["test_acc"] == 0.1  # this checkout's row kept
    assert report.rows[STORE] == 1 and report.conflicts == [f"{STORE}: a"]
    assert not (here / "MNIST/results/smoke").exists()
    with pytest.warns(RuntimeWarning, match="truncated last row"):
        again = merge_stores.merge(other, here)  # idempotent
    assert again.rows[STORE] == 0 and keys(here / STORE) == ["a", "b", "c"]


def test_a_new_store_and_missing_models_are_copied_existing_models_kept(tmp_path):
    here, other = tmp_path / "here", tmp_path / "other"
    write(other, "cross_domain/results/new.jsonl", [row("k1"), row("k2")])
    models = other / "MNIST/pretrained_models"
    models.mkdir(parents=True)
    (models / "m.pth").write_bytes(b"weights")
    (models / "m.json").write_text("{}")
    (here / "MNIST/pretrained_models").mkdir(parents=True)
    (here / "MNIST/pretrained_models/m.json").write_text('{"mine": 1}')
    dry = merge_stores.merge(other, here, dry_run=True)
    assert dry.rows == {"cross_domain/results/new.jsonl": 2} and not (here / "cross_domain").exists()
    report = merge_stores.merge(other, here)
    assert keys(here / "cross_domain/results/new.jsonl") == ["k1", "k2"]
    assert (here / "MNIST/pretrained_models/m.pth").read_bytes() == b"weights"
    assert (here / "MNIST/pretrained_models/m.pth").stat().st_mode == (models / "m.pth").stat().st_mode
    assert (here / "MNIST/pretrained_models/m.json").read_text() == '{"mine": 1}'
    assert report.models == ["MNIST/pretrained_models/m.pth"]
    assert report.conflicts == ["MNIST/pretrained_models/m.json"]


def _append_many(path, start, n):
    store = ResultsStore(path)
    for i in range(start, start + n):
        store.append(row(f"w{i:03d}"))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_a_merge_beside_a_running_grid_loses_and_duplicates_nothing(tmp_path):
    here, other = tmp_path / "here", tmp_path / "other"
    write(other, STORE, [row(f"w{i:03d}") for i in range(0, 150)])  # overlaps the writer's keys 100-149
    writer = mp.get_context("fork").Process(target=_append_many, args=(here / STORE, 100, 100))
    writer.start()
    merge_stores.merge(other, here)
    writer.join(30)
    assert writer.exitcode == 0
    assert sorted(keys(here / STORE)) == [f"w{i:03d}" for i in range(200)]  # every key exactly once


def test_merging_a_checkout_into_itself_is_refused(tmp_path):
    with pytest.raises(ValueError, match="this checkout"):
        merge_stores.merge(tmp_path, tmp_path)
