"""Loading our JSON-lines store, the original study's JSON format and clustering files into tidy frames."""
import json

import numpy as np
import pandas as pd
import pytest

from functions.analysis import results, stats
from functions.engine.conditions import condition_name
from functions.engine.original_format import export_original

ORIGINAL_PARAMS = {
    "depth": 6, "num_channels": 64, "activation_function": "<class 'torch.nn.modules.activation.ReLU'>",
    "kernel_size": 5, "lr_pretrain": 0.001, "lr_fine_tune": 0.001, "num_train": 40, "early_stop_patience": 6,
    "batch_size": 4096, "pre_train_classes": [0, 1, 2, 3, 4], "fine_tune_classes": [5, 6, 7, 8, 9],
    "val_split": 0.1, "generate_dataset_seed": 42, "percentages": [0.001, 0.1, 1], "use_pooling": False,
    "freeze": True, "reinit": True, "reinit_both_dense": True,
}


def our_row(cut: int, fraction: float, repeat: int, test_acc: float, condition: str = "FR", **extra) -> dict:
    """One results row as the store writes it (CONTRIBUTING.md, "Results row")."""
    row = {
        "key": f"{condition}|{cut}|{fraction}|{repeat}", "study": "MNIST[0-4]->MNIST[5-9]",
        "source_dataset": "MNIST", "target_dataset": "MNIST",
        "pretrain_classes": [0, 1, 2, 3, 4], "finetune_classes": [5, 6, 7, 8, 9],
        "condition": "baseline" if cut == -1 else condition,
        "freeze": cut != -1 and condition.startswith("F"), "reinit": cut == -1 or condition.endswith("R"),
        "truncate": condition.endswith("T") and cut != -1,
        "fraction": fraction, "cut": cut, "repeat": repeat, "seed": 1000 + repeat, "lr": 0.001,
        "depth": 6, "num_channels": 64, "kernel_size": 3, "activation": "ReLU", "pooling": "avg2/every2",
        "n_train": 30, "train_acc": 1.0, "val_acc": test_acc - 0.01, "test_acc": test_acc,
        "epochs": 7, "seconds": 1.5, "history": {"val_acc": [0.5, test_acc]},
    }
    row.update(extra)
    return row


def store_rows(condition: str = "FR", cuts=(-1, 0, 2, 10)) -> list[dict]:
    return [our_row(cut, fraction, repeat, round(0.5 + 0.01 * (cut + 1) + 0.1 * fraction + 0.001 * repeat, 6),
                    condition)
            for cut in cuts for fraction in (0.01, 1.0) for repeat in range(3)]


def write_jsonl(path, rows, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def write_original(path, params, rows) -> None:
    path.write_text(json.dumps([params, *rows]))


def test_read_jsonl_skips_a_truncated_last_line_with_a_warning(tmp_path):
    path = tmp_path / "store.jsonl"
    write_jsonl(path, store_rows()[:4], tail='{"key": "half", "cut": 2, "fra')
    with pytest.warns(RuntimeWarning, match="truncated last line"):
        rows = results.read_jsonl(path)
    assert [r["key"] for r in rows] == [r["key"] for r in store_rows()[:4]]
    with pytest.warns(RuntimeWarning):
        df = results.load_results(path)
    assert len(df) == 4


def test_read_jsonl_rejects_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "store.jsonl"
    lines = [json.dumps(r) for r in store_rows()[:3]]
    lines[1] = lines[1][:20]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"store\.jsonl: line 2"):
        results.read_jsonl(path)


def test_load_store_has_every_column_and_stable_types(tmp_path):
    path = tmp_path / "store.jsonl"
    write_jsonl(path, store_rows())
    df = results.load_results(path)
    assert list(df.columns[: len(results.ROW_COLUMNS)]) == results.ROW_COLUMNS
    assert {"arm", "source"} <= set(df.columns)
    assert len(df) == 4 * 2 * 3
    assert set(df["arm"]) == {"baseline", "cut 0", "cut 2", "cut 10"}
    assert (df.loc[df["cut"] == -1, "condition"] == "baseline").all()
    assert (df.loc[df["cut"] >= 0, "condition"] == "FR").all()
    assert df["cut"].dtype == np.int64 and df["fraction"].dtype == np.float64 and df["freeze"].dtype == bool
    assert set(df["source"]) == {str(path)}
    assert df["history"].iloc[0] == {"val_acc": [0.5, df["test_acc"].iloc[0]]}


def test_rows_missing_derived_fields_are_filled(tmp_path):
    row = our_row(3, 0.1, 0, 0.8, "F")
    for key in ("condition", "study", "arm"):
        row.pop(key, None)
    row["activation"] = "<class 'torch.nn.modules.activation.Tanh'>"
    path = tmp_path / "partial.jsonl"
    write_jsonl(path, [row])
    loaded = results.load_results(path).iloc[0]
    assert loaded["condition"] == "F" and loaded["arm"] == "cut 3"
    assert loaded["study"] == "MNIST[0-4]->MNIST[5-9]"
    assert loaded["activation"] == "Tanh"


def test_original_format_is_filled_from_its_params(tmp_path):
    base = [{"lr": 0.001, "sampled_percentage": 0.1, "sampled_cut_point": -1, "repeat": r, "train_acc": 1.0,
             "test_acc": 0.7 + r / 100} for r in range(3)]
    cuts = [{"lr": 0.001, "sampled_percentage": 0.1, "sampled_cut_point": c, "repeat": r, "train_acc": 1.0,
             "test_acc": 0.8 + c / 100} for c in (0, 3) for r in range(3)]
    write_original(tmp_path / "baselines_regular.json", ORIGINAL_PARAMS, base)
    write_original(tmp_path / "cuts_regular_FR.json", ORIGINAL_PARAMS, cuts)
    df = results.load_results(tmp_path)
    assert len(df) == 9
    assert set(df["study"]) == {"MNIST[0-4]->MNIST[5-9] FR"}
    assert set(df["activation"]) == {"ReLU"} and set(df["pooling"]) == {"none"}
    assert df.loc[df["cut"] == -1, "condition"].eq("baseline").all()
    assert df.loc[df["cut"] >= 0, "condition"].eq("FR").all()
    assert sorted(df["arm"].unique(), key=results.arm_sort_key) == ["baseline", "cut 0", "cut 3"]
    assert df["val_acc"].isna().all() and (df["kernel_size"] == 5).all()

    truncated = dict(ORIGINAL_PARAMS, truncate=True, use_pooling=True, pooling_every_n_layers=2)
    write_original(tmp_path / "cuts_regular_FT.json", truncated, cuts)
    ft = results.load_results(tmp_path / "cuts_regular_FT.json", source_dataset="FashionMNIST")
    assert set(ft["condition"]) == {"FT"} and set(ft["pooling"]) == {"avg2/every2"}
    assert set(ft["study"]) == {"FashionMNIST[0-4]->MNIST[5-9] FT"}
    assert set(ft["source_dataset"]) == {"FashionMNIST"} and set(ft["target_dataset"]) == {"MNIST"}


def test_condition_names():
    assert condition_name(True, True, False, cut=-1) == "baseline"
    assert [condition_name(f, r, t) for f, r, t in
            [(True, True, False), (True, False, False), (False, True, False), (False, False, False),
             (True, True, True), (False, False, True)]] == ["FR", "F", "UR", "U", "FT", "UT"]


def test_datasets_are_read_from_the_original_folder_layout(tmp_path):
    folder = tmp_path / "FashionMNIST_to_MNIST" / "results"
    folder.mkdir(parents=True)
    write_original(folder / "cuts_x.json", ORIGINAL_PARAMS,
                   [{"lr": 0.001, "sampled_percentage": 1, "sampled_cut_point": 1, "repeat": 0,
                     "train_acc": 1.0, "test_acc": 0.9}])
    row = results.load_results(folder).iloc[0]
    assert (row["source_dataset"], row["target_dataset"]) == ("FashionMNIST", "MNIST")
    assert results.datasets_from_path("FashionMNIST/results/cuts_a.json") == ("FashionMNIST", "FashionMNIST")
    assert results.datasets_from_path("x/results/cuts_a.json") is None


def test_export_original_round_trip(tmp_path):
    store = tmp_path / "store.jsonl"
    write_jsonl(store, store_rows("F"))
    ours = results.load_results(store)
    params = dict(ORIGINAL_PARAMS, reinit=False)
    baselines, cuts = export_original(ours, tmp_path / "export", params, tag="regular_classes_F")
    assert baselines.name == "baselines_regular_classes_F.json" and cuts.name == "cuts_regular_classes_F.json"
    header = json.loads(cuts.read_text())[0]
    assert header["reinit"] is False and header["study"] == "MNIST[0-4]->MNIST[5-9]"
    first_row = json.loads(baselines.read_text())[1]
    assert set(first_row) == {"lr", "sampled_percentage", "sampled_cut_point", "repeat", "train_acc", "test_acc"}

    back = results.load_results(baselines, cuts)
    assert len(back) == len(ours)
    keys = ["cut", "fraction", "repeat"]
    merged = ours.merge(back, on=keys, suffixes=("", "_back"))
    assert len(merged) == len(ours)
    np.testing.assert_array_equal(merged["test_acc"], merged["test_acc_back"])
    np.testing.assert_array_equal(merged["train_acc"], merged["train_acc_back"])
    assert (merged["condition"] == merged["condition_back"]).all()
    assert (merged["study"] == merged["study_back"]).all()


def test_export_original_rejects_ambiguous_frames(tmp_path):
    store = tmp_path / "store.jsonl"
    write_jsonl(store, store_rows("FR") + [our_row(1, 1.0, 0, 0.9, "UR")])
    mixed = results.load_results(store)
    with pytest.raises(ValueError, match="several transfer conditions"):
        export_original(mixed, tmp_path, ORIGINAL_PARAMS, "x")
    fr = mixed[mixed["condition"] != "UR"]
    with pytest.raises(ValueError, match="contradicts"):
        export_original(fr, tmp_path, dict(ORIGINAL_PARAMS, freeze=False), "x")
    with pytest.raises(ValueError, match="tag"):
        export_original(fr, tmp_path, ORIGINAL_PARAMS, "a/b")


def test_mixed_sources_in_one_frame(tmp_path):
    store = tmp_path / "store.jsonl"
    write_jsonl(store, store_rows("FR", cuts=(-1, 1)))
    original = tmp_path / "cuts_old_FR.json"
    write_original(original, ORIGINAL_PARAMS,
                   [{"lr": 0.001, "sampled_percentage": 0.01, "sampled_cut_point": 1, "repeat": r,
                     "train_acc": 1.0, "test_acc": 0.6} for r in range(4)])
    # files that are not results: a clustering output and a config, both skipped when scanning
    (tmp_path / "regular_cluster.json").write_text(json.dumps(
        [{"Percentage": 0.01, "Repeat": 0, "Layer": 1, "Precision": 0.5, "Recall": 0.5, "Accuracy": 0.5,
          "ARI": 0.2, "Dataset": "MNIST", "Split": "test"}]))
    (tmp_path / "config.json").write_text(json.dumps({"depth": 6}))
    df = results.load_results(tmp_path)
    assert set(df["source"]) == {str(store), str(original)}
    assert (df["source"] == str(original)).sum() == 4
    assert len(df) == 2 * 2 * 3 + 4
    assert set(df["study"]) == {"MNIST[0-4]->MNIST[5-9]", "MNIST[0-4]->MNIST[5-9] FR"}
    with pytest.raises(ValueError, match="neither results rows"):
        results.load_results(tmp_path / "config.json")
    with pytest.raises(ValueError, match="paths_or_dirs"):
        results.load_results(tmp_path / "missing.jsonl")


def test_expand_baselines_pairs_every_condition_with_the_baseline(tmp_path):
    store = tmp_path / "store.jsonl"
    write_jsonl(store, store_rows("FR", cuts=(-1, 1)) + store_rows("FT", cuts=(1,)))
    df = results.load_results(store)
    with pytest.raises(ValueError, match="ambiguous"):  # cut 1 of FR and FT share one study name
        stats.paired_tests(df)
    expanded = results.expand_baselines(df)
    assert set(expanded["setting"]) == {"FR", "FT"}
    assert (expanded["arm"] == "baseline").sum() == 2 * 6
    tests = stats.paired_tests(expanded, by=("study", "setting", "fraction"))
    assert len(tests) == 2 * 2 and (tests["n_pairs"] == 3).all()


def test_summary_table_orders_arms_numerically(tmp_path):
    store = tmp_path / "store.jsonl"
    write_jsonl(store, store_rows())
    table = results.summary_table(results.load_results(store))
    assert list(table.columns) == ["baseline", "cut 0", "cut 2", "cut 10"]
    assert list(table.index) == [0.01, 1.0]
    # medians over repeats 0..2 are the middle repeat's value
    assert table.loc[1.0, "cut 2"] == pytest.approx(0.5 + 0.03 + 0.1 + 0.001)
    counts = results.summary_table(results.load_results(store), stat="count")
    assert (counts == 3).all().all()
    with pytest.raises(ValueError, match="stat"):
        results.summary_table(results.load_results(store), stat="max")


def test_load_clustering_original_and_ours(tmp_path):
    original = tmp_path / "regular_cluster.json"
    original.write_text(json.dumps([
        {"Percentage": 0.1, "Repeat": r, "Layer": layer, "Precision": 0.5, "Recall": 0.4, "Accuracy": 0.6,
         "ARI": 0.1 * layer, "Dataset": "MNIST", "Split": "test"} for r in range(2) for layer in range(3)]))
    ours = tmp_path / "clustering.jsonl"
    write_jsonl(ours, [{"fraction": 1.0, "repeat": 0, "layer": 2, "precision": 0.7, "recall": 0.7,
                        "accuracy": 0.8, "ari": 0.5, "dataset": "MNIST", "split": "train", "method": "kmeans",
                        "channel": 4}])
    as_csv = tmp_path / "clustering.csv"
    pd.DataFrame([{"fraction": 0.5, "repeat": 1, "layer": 0, "precision": 0.1, "recall": 0.2, "accuracy": 0.3,
                   "ari": 0.0, "dataset": "MNIST", "split": "test", "method": "gmm"}]).to_csv(as_csv, index=False)
    df = results.load_clustering(tmp_path)
    assert list(df.columns[:9]) == results.CLUSTERING_COLUMNS
    assert {"method", "channel", "source"} <= set(df.columns)
    assert len(df) == 6 + 1 + 1
    from_original = df[df["source"] == str(original)]
    assert from_original["ari"].tolist() == pytest.approx([0.0, 0.1, 0.2] * 2)
    assert from_original["method"].isna().all()
    assert df.loc[df["source"] == str(ours), "channel"].iloc[0] == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"x": 1}]))
    with pytest.raises(ValueError, match="not a clustering"):
        results.load_clustering(bad)


def test_load_results_reads_a_run_once_but_keeps_runs_of_other_stores(tmp_path):
    rows = [dict(r, config_hash="aaa", protocol="original", n_val=10) for r in store_rows("FR", cuts=(-1, 1))]
    write_jsonl(tmp_path / "a.jsonl", rows)
    # another store (another protocol) whose runs happen to score exactly alike: different runs, kept
    write_jsonl(tmp_path / "b.jsonl", [dict(r, config_hash="bbb", protocol="steps") for r in rows])
    export_original(results.load_results(tmp_path / "a.jsonl"), tmp_path / "export", ORIGINAL_PARAMS, "a_FR")
    both = results.load_results(tmp_path)
    assert len(both) == 2 * len(rows)
    # the same store named twice, and a store with its export: each run once, the store's (fuller) row
    again = results.load_results(tmp_path / "a.jsonl", tmp_path / "a.jsonl", tmp_path / "export",
                                 study="MNIST[0-4]->MNIST[5-9]")
    assert len(again) == len(rows) and set(again["source"]) == {str(tmp_path / "a.jsonl")}


def _protocol_rows():
    """Baseline + FR cut 1 under two protocols (same study name, fractions, repeats), the realistic one
    with a tuned learning rate that differs from run to run."""
    rows = []
    for protocol, grid in (("original", None), ("realistic", [3e-4, 1e-3, 3e-3])):
        for repeat in range(6):
            for cut in (-1, 1):
                rows.append(dict(study="S", condition="baseline" if cut == -1 else "FR", cut=cut, fraction=0.01,
                                 repeat=repeat, protocol=protocol, n_val=5, lr_grid=grid,
                                 protocol_variant=protocol if grid is None else f"{protocol}, tuned lr",
                                 lr=1e-3 if grid is None else grid[(repeat + cut) % 3],
                                 test_acc=0.5 + 0.01 * repeat + (0.1 if cut == 1 else 0) +
                                 (0.2 if protocol == "realistic" else 0), config_hash=protocol,
                                 source_dataset="MNIST", target_dataset="MNIST", pretrain_classes=[0, 1],
                                 finetune_classes=[2, 3], depth=2, num_channels=4, kernel_size=3,
                                 activation="ReLU", pooling="avg2/every2", train_acc=1.0))
    return pd.DataFrame(rows).assign(arm=lambda d: np.where(d["cut"] == -1, "baseline", "cut " + d["cut"].astype(str)))


def test_protocols_are_never_paired_across_variants():
    df = results.with_settings(_protocol_rows())
    assert sorted(df["setting"].unique()) == ["FR · original", "FR · realistic, tuned lr"]
    for setting, rows in df.groupby("setting"):
        assert set(rows["protocol"]) == {setting.split(" · ")[1].split(",")[0]}  # its own baseline only
        assert rows.groupby(["arm", "repeat"]).size().max() == 1
    assert set(df.loc[df["setting"].str.endswith("tuned lr"), "lr_setting"]) == {"tuned"}
    assert set(df.loc[df["setting"] == "FR · original", "lr_setting"]) == {"0.001"}


def test_a_tuned_learning_rate_never_splits_the_pairs():
    from functions.analysis.figures_common import row_columns, setting_rows

    tuned = _protocol_rows().query("protocol == 'realistic'")
    prepared = pd.concat([r for _, r in setting_rows(tuned)], ignore_index=True)
    assert row_columns(prepared) == ["study", "setting"]  # the chosen lr varies, but it is an outcome
    summary = stats.summarize(prepared, by=row_columns(prepared) + ["fraction"], n_boot=100)
    assert summary.loc[summary["arm"] == "cut 1", "n_pairs"].iloc[0] == 6


def test_transfer_study_rows_leave_out_controls_and_fractions_without_a_transfer_arm():
    from functions.analysis.results import transfer_study_rows

    df = pd.DataFrame({"study": ["s"] * 6 + ["t"] * 2,
                       "condition": ["baseline", "FR", "stats_FR", "baseline", "shuffled_FR", "baseline",
                                     "baseline", "FT"],
                       "fraction": [0.01, 0.01, 0.01, 0.5, 0.5, 1.0, 0.5, 0.5]})
    kept = transfer_study_rows(df)
    # s at 50 %: only the baseline and a control, s at 100 %: the baseline alone; t at 50 % has FT
    assert kept[["study", "condition", "fraction"]].values.tolist() == [
        ["s", "baseline", 0.01], ["s", "FR", 0.01], ["t", "baseline", 0.5], ["t", "FT", 0.5]]
