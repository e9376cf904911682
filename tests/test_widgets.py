"""The results explorer, driven programmatically: set control values, check the figure follows."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from functions.analysis import widgets  # noqa: E402
from functions.analysis.results import arm_name  # noqa: E402

STUDY_A = "MNIST[0-4]->MNIST[5-9]"
STUDY_B = "FashionMNIST[0-4]->FashionMNIST[5-9]"


def frame(study=STUDY_A, conditions=("FR", "FT"), fractions=(0.01, 0.1, 1.0), cuts=(0, 1, 2), repeats=4):
    """Results rows: accuracy 0.5 + fraction/4 + 0.05·cut, train accuracy 0.1 higher."""
    rows = []
    for condition in ("baseline", *conditions):
        for fraction in fractions:
            for cut in ([-1] if condition == "baseline" else cuts):
                for repeat in range(repeats):
                    acc = 0.5 + fraction / 4 + 0.05 * max(cut, 0) + 0.001 * repeat
                    rows.append({"study": study, "condition": condition, "fraction": fraction, "cut": cut,
                                 "repeat": repeat, "lr": 1e-3, "depth": 3, "num_channels": 8,
                                 "test_acc": acc, "train_acc": acc + 0.1, "val_acc": acc,
                                 "arm": arm_name(cut), "source": "synthetic"})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_explorer_redraws_when_controls_change():
    df = pd.concat([frame(), frame(study=STUDY_B, conditions=("FR",))], ignore_index=True)
    explorer = widgets.ResultsExplorer(df, root="/nonexistent-root")
    c = explorer.controls
    assert set(c) == {"source", "study", "condition", "fractions", "metric", "plot"}
    assert list(c["study"].options) == [STUDY_B, STUDY_A]
    assert c["study"].value == STUDY_B
    c["study"].value = STUDY_A
    assert list(c["condition"].options) == ["all", "FR", "FT"]
    first = explorer.figure
    assert len(first.axes) == 2 * 3  # FR and FT rows × 3 fractions
    assert STUDY_A in first._suptitle.get_text()

    c["condition"].value = "FT"
    assert len(explorer.figure.axes) == 3
    assert "FT (freeze + truncate)" in explorer.figure._suptitle.get_text()

    c["fractions"].value = (0.1,)
    assert len(explorer.figure.axes) == 1
    assert explorer.figure.axes[0].get_title() == "fraction 10 %"

    c["plot"].value = "heatmap"
    heat = explorer.figure
    assert len(heat.axes) == 2 and "median test_acc" in heat._suptitle.get_text()
    values = [float(t.get_text()) for t in heat.axes[0].texts]
    assert values == pytest.approx([0.5265, 0.5265, 0.5765, 0.6265], abs=6e-4)  # base, cut 0, 1, 2 at 10 %

    c["metric"].value = "train_acc"
    values = [float(t.get_text()) for t in explorer.figure.axes[0].texts]
    assert values == pytest.approx([0.6265, 0.6265, 0.6765, 0.7265], abs=6e-4)
    assert "train_acc" in explorer.figure._suptitle.get_text()

    c["plot"].value = "median lines"
    assert explorer.figure.axes[0].get_xscale() == "log"
    c["plot"].value = "diff to baseline"
    cut2 = next(line for line in explorer.figure.axes[0].get_lines() if line.get_label() == "cut 2")
    assert cut2.get_ydata() == pytest.approx([10])  # points, as the headline table

    c["study"].value = STUDY_B  # FT does not exist there: back to all conditions
    assert c["condition"].value == "all" and c["fractions"].value == (0.1,)
    assert STUDY_B in explorer.figure._suptitle.get_text()


def test_explorer_reports_an_empty_selection():
    explorer = widgets.ResultsExplorer(frame(conditions=("FR",), fractions=(0.1, 1.0)), root="/nonexistent-root")
    explorer.controls["fractions"].value = ()
    assert explorer.figure is None
    assert "no runs match" in explorer.error
    explorer.controls["fractions"].value = (1.0,)
    assert explorer.figure is not None and explorer.error is None


def _write_results_tree(root):
    """Our JSON-lines store, the original's baselines/cuts files, and a non-results JSON."""
    ours = root / "MNIST" / "results"
    ours.mkdir(parents=True)
    with open(ours / "store.jsonl", "w") as fh:
        for row in frame(conditions=("FR",)).drop(columns=["arm", "source"]).to_dict("records"):
            fh.write(json.dumps(row) + "\n")
    (ours / "config.json").write_text(json.dumps({"depth": 3}))
    original = root / "FashionMNIST" / "results" / "original"
    original.mkdir(parents=True)
    params = {"depth": 6, "num_channels": 64, "freeze": True, "reinit": True, "lr_fine_tune": 1e-3,
              "pre_train_classes": [0, 1, 2, 3, 4], "fine_tune_classes": [5, 6, 7, 8, 9]}
    rng = np.random.default_rng(0)
    base = [{"lr": 1e-3, "sampled_percentage": f, "sampled_cut_point": -1, "repeat": r, "train_acc": 0.9,
             "test_acc": 0.6 + rng.normal(0, 0.01)} for f in (0.1, 1.0) for r in range(3)]
    cuts = [{"lr": 1e-3, "sampled_percentage": f, "sampled_cut_point": k, "repeat": r, "train_acc": 0.9,
             "test_acc": 0.7 + 0.01 * k} for f in (0.1, 1.0) for k in (1, 2, 3) for r in range(3)]
    (original / "baselines_x.json").write_text(json.dumps([params] + base))
    (original / "cuts_x.json").write_text(json.dumps([params] + cuts))
    (root / "notes").mkdir()
    (root / "notes" / "store.jsonl").write_text((ours / "store.jsonl").read_text())  # not under results/
    # an export of our store and the store's claims sidecar: the same runs again, never listed
    (ours / "original_format").mkdir()
    (ours / "original_format" / "cuts_x.json").write_text(json.dumps([params] + cuts))
    (ours / "store.jsonl.claims").mkdir()
    (ours / "store.jsonl.claims" / "abc.json").write_text(json.dumps({"key": "x", "pid": 1}))
    (ours / "store.jsonl.lock").write_text("")


def test_find_result_sources_lists_results_folders_and_files(tmp_path):
    _write_results_tree(tmp_path)
    sources = widgets.find_result_sources(tmp_path)
    labels = [label for label, _ in sources]
    assert labels == ["FashionMNIST/results/original/ (2 files)", "MNIST/results/ (1 files)",
                      "FashionMNIST/results/original/baselines_x.json",
                      "FashionMNIST/results/original/cuts_x.json", "MNIST/results/store.jsonl"]
    with pytest.raises(ValueError, match="root"):
        widgets.find_result_sources(tmp_path / "missing")


def test_scratch_folders_of_the_smoke_profile_are_left_out(tmp_path):
    """``results/…/smoke/`` is git-ignored: a fresh clone has none, so the explorer lists them (and a saved
    notebook mentions them) only when asked, as the smoke profile's notebook does."""
    _write_results_tree(tmp_path)
    scratch = tmp_path / "MNIST" / "results" / "smoke"
    scratch.mkdir()
    (scratch / "store.jsonl").write_text((tmp_path / "MNIST" / "results" / "store.jsonl").read_text())
    assert not any("smoke" in label for label, _ in widgets.find_result_sources(tmp_path))
    with_scratch = [label for label, _ in widgets.find_result_sources(tmp_path, scratch=True)]
    assert "MNIST/results/smoke/ (1 files)" in with_scratch
    explorer = widgets.ResultsExplorer(root=tmp_path)
    assert not any("smoke" in label for label, _ in explorer.controls["source"].options)


def test_explorer_shows_a_sentence_where_no_widget_can_be_drawn(tmp_path):
    """Saved without widget state (or read on GitHub) the output is its text/plain: a sentence, not
    ``VBox(children=(Dropdown(…``."""
    _write_results_tree(tmp_path)
    explorer = widgets.ResultsExplorer(root=tmp_path)
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)
    assert repr(explorer).startswith("Results explorer over 2 results folder(s), open on 'MNIST/results/")
    assert "VBox" not in bundle["text/plain"]


def test_explorer_switches_between_our_results_and_the_originals(tmp_path):
    _write_results_tree(tmp_path)
    explorer = widgets.ResultsExplorer(root=tmp_path)
    c = explorer.controls
    assert c["source"].value == str(tmp_path / "MNIST" / "results")  # opens on MNIST first
    assert c["study"].value == STUDY_A
    ours = explorer.figure
    assert len(ours.axes) == 3
    assert [t.get_text() for t in ours.axes[0].get_xticklabels()] == ["base", "0", "1", "2"]

    c["source"].value = str(tmp_path / "FashionMNIST" / "results" / "original")
    assert c["study"].value == "FashionMNIST[0-4]->FashionMNIST[5-9] FR"
    original = explorer.figure
    assert len(original.axes) == 2  # fractions 10 % and 100 %
    ticks = [t.get_text() for t in original.axes[0].get_xticklabels()]
    assert ticks == ["base", "1", "2", "3"]
    assert original is not ours

    c["source"].value = str(tmp_path / "MNIST" / "results" / "store.jsonl")
    assert c["study"].value == STUDY_A
    assert len(explorer.figure.axes) == 3
    assert [t.get_text() for t in explorer.figure.axes[0].get_xticklabels()] == ["base", "0", "1", "2"]
    assert explorer.figure is not original


def test_explorer_shows_a_source_that_cannot_be_read(tmp_path):
    _write_results_tree(tmp_path)
    bad = tmp_path / "MNIST" / "results" / "config.json"
    explorer = widgets.ResultsExplorer(bad, root=tmp_path)
    assert explorer.figure is None and "could not read" in explorer.error
    explorer.controls["source"].value = str(tmp_path / "MNIST" / "results")
    assert explorer.figure is not None and explorer.error is None


def test_explorer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="path_or_df"):
        widgets.ResultsExplorer(42, root=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        widgets.ResultsExplorer(tmp_path / "nothing.jsonl", root=tmp_path)
    with pytest.raises(ValueError, match="no results"):
        widgets.ResultsExplorer(root=tmp_path)


def test_explorer_widget_holds_the_controls_and_output():
    explorer = widgets.ResultsExplorer(frame(conditions=("FR",), fractions=(1.0,)), root="/nonexistent-root")
    assert explorer.widget.children[0] is explorer.controls["source"]
    assert explorer.widget.children[-1] is explorer.output
    assert explorer.refresh() is explorer.figure


def test_explorer_reads_a_source_and_computes_its_statistics_once(tmp_path, monkeypatch):
    from functions.analysis import figures

    _write_results_tree(tmp_path)
    reads, summaries = [], []
    load, summarize = widgets.load_results, figures.significance_summary
    monkeypatch.setattr(widgets, "load_results", lambda path: reads.append(path) or load(path))
    monkeypatch.setattr(figures, "significance_summary",
                        lambda rows, **kw: summaries.append(len(rows)) or summarize(rows, **kw))
    explorer = widgets.ResultsExplorer(root=tmp_path)
    c = explorer.controls
    mnist, original = str(tmp_path / "MNIST" / "results"), str(tmp_path / "FashionMNIST" / "results" / "original")
    assert reads == [mnist] and len(summaries) == 1
    c["plot"].value = "median lines"  # the same selection: its statistics are reused
    c["plot"].value = "box"
    assert len(summaries) == 1
    c["source"].value = original
    c["source"].value = mnist  # back: neither read nor tested again
    assert reads == [mnist, original] and len(summaries) == 2
    c["fractions"].value = (0.1,)  # a new selection: tested once
    c["fractions"].value = (0.01, 0.1, 1.0)
    assert len(summaries) == 3
    with open(tmp_path / "MNIST" / "results" / "store.jsonl", "a") as fh:  # the store grew: read again
        fh.write(json.dumps({**frame(conditions=("FR",)).drop(columns=["arm", "source"]).iloc[0].to_dict(),
                             "repeat": 9}) + "\n")
    c["source"].value = original
    c["source"].value = mnist
    assert reads == [mnist, original, mnist] and len(summaries) == 4
    assert len(explorer.data) == len(frame(conditions=("FR",))) + 1

