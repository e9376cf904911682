"""Smoke and known-answer tests of the figures (functions.analysis: figures, diagnostics, transfer_conditions)
on small synthetic results frames."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from functions.analysis import diagnostics, figures, transfer_conditions  # noqa: E402
from functions.analysis.results import arm_name, drop_repeated_runs  # noqa: E402
from functions.engine.networks import CustomCNN  # noqa: E402
from functions.engine.training import class_accuracies  # noqa: E402

STUDY = "MNIST[0-4]->MNIST[5-9]"


def results_frame(fractions=(0.01, 0.1, 1.0), cuts=(0, 1, 2), repeats=8, conditions=("FR",),
                  effect=0.1, seed=0) -> pd.DataFrame:
    """Rows in the results schema: baseline near 0.5 + fraction/4, cut k better by ``effect``·k per repeat.

    Every repeat shares one subset offset across arms (as the real pairing does), so a positive effect
    is a consistent paired difference; the cut arms also move ±0.003 on alternate repeats, so an arm with
    no effect has as many paired differences above the baseline as below (Wilcoxon p = 1).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in fractions:
        offsets = rng.normal(0, 0.01, repeats)
        for condition in ("baseline", *conditions):
            for cut in ([-1] if condition == "baseline" else cuts):
                for repeat in range(repeats):
                    wobble = 0.0 if cut == -1 else 0.003 * (1 if repeat % 2 else -1)
                    acc = 0.5 + fraction / 4 + offsets[repeat] + effect * max(cut, 0) + wobble
                    rows.append({
                        "key": f"{condition}|{fraction}|{cut}|{repeat}", "study": STUDY,
                        "source_dataset": "MNIST", "target_dataset": "MNIST",
                        "pretrain_classes": [0, 1, 2, 3, 4], "finetune_classes": [5, 6, 7, 8, 9],
                        "condition": condition, "freeze": condition.startswith("F"), "reinit": True,
                        "truncate": False, "fraction": fraction, "cut": cut, "repeat": repeat, "seed": repeat,
                        "lr": 1e-3, "depth": 3, "num_channels": 8, "kernel_size": 3, "activation": "ReLU",
                        "pooling": "avg2/every2", "n_train": int(3000 * fraction), "train_acc": min(acc + 0.05, 1),
                        "val_acc": acc, "test_acc": acc, "epochs": 5, "seconds": 0.1, "history": None,
                        "arm": arm_name(cut), "source": "synthetic.jsonl",
                    })
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _box_colors(ax) -> dict[str, tuple]:
    """Face colour of each box, by the arm its gid names."""
    return {p.get_gid()[4:]: tuple(p.get_facecolor()) for p in ax.patches if (p.get_gid() or "").startswith("box:")}


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# ----------------------------------------------------------------------------- labels
def test_describe_setting_names_study_condition_architecture_and_lr():
    text = figures.describe_setting(results_frame())
    assert STUDY in text
    assert "FR (freeze + reinit)" in text
    assert "3×8 k3 ReLU" in text and "avg2/every2" in text and "lr 0.001" in text
    both = figures.describe_setting(results_frame(conditions=("FR", "FT")))
    assert "conditions FR/FT" in both


def test_fraction_label():
    assert figures.fraction_label(0.001) == "0.1 %"  # as the tables and the findings write it
    assert figures.fraction_label(1.0) == "100 %"


def test_describe_setting_names_protocol_and_repeats():
    """Every figure's title says the protocol its runs were trained under and the repeats per fraction."""
    df = results_frame(repeats=8)
    assert "protocol original | 8 repeats" in figures.describe_setting(df)  # rows without a label: original
    tuned = df.assign(protocol_variant="realistic, tuned lr", lr_grid=[[3e-4, 1e-3]] * len(df))
    uneven = tuned[~((tuned.fraction == 1.0) & (tuned.repeat >= 4))]
    text = figures.describe_setting(uneven)
    assert "protocol realistic, tuned lr | repeats 8/8/4" in text
    assert "lr 0.001" not in text  # a tuned rate is an outcome, named by the protocol


def test_titles_wrap_to_the_figure_and_keep_study_names_whole():
    name = "FashionMNIST[0,1,2,3,4,6,8]->FashionMNIST[5,7,9]"
    assert figures.wrap_to_width(name, 2.0, 10).split("\n") == ["FashionMNIST[0,1,2,3,4,6,8]->", "FashionMNIST[5,7,9]"]
    assert figures.wrap_to_width("short", 5.0) == "short"


# ----------------------------------------------------------------------------- box_by_cut
def _labels(ax) -> dict[str, str]:
    """The text above each box, by the arm its gid names."""
    return {t.get_gid()[6:]: t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("label:")}


def test_box_by_cut_one_panel_per_fraction_and_significance_vs_baseline():
    df = results_frame(cuts=(0, 2))  # cut 2 is +0.2 on every repeat; cut 0 is the baseline ± 0.003
    fig = figures.box_by_cut(df)
    assert len(fig.axes) == 3
    assert STUDY in fig._suptitle.get_text() and "FR" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.axes] == ["fraction 1 %", "fraction 10 %", "fraction 100 %"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "0", "2"]
    colors = _box_colors(ax)
    assert colors["cut 2"] == to_rgba(figures.HIGHER_COLOR)  # significantly above the baseline
    assert colors["cut 0"] == colors["baseline"] == to_rgba(figures.NEUTRAL_COLOR)
    boxes = {p.get_gid(): p for p in ax.patches if p.get_gid()}
    assert boxes["box:baseline"].get_hatch() == figures.BASELINE_HATCH
    assert not boxes["box:cut 2"].get_hatch()
    median_cut2 = np.median(df[(df.fraction == 0.01) & (df.cut == 2)].test_acc)
    assert _labels(ax)["cut 2"] == f"★▲\n{median_cut2:.3f}"  # mark, then the median; no letter by default
    assert "★" not in _labels(ax)["cut 0"] and "★" not in _labels(ax)["baseline"]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    baseline_median = np.median(df[(df.fraction == 0.01) & (df.cut == -1)].test_acc)
    assert any(np.allclose(line.get_ydata(), baseline_median) for line in dashed)
    assert not any("no significance" in t for t in _texts(fig))  # n=8, 2 cuts: Holm p ≥ 0.016 < 0.05
    caption = fig.legends[0].get_title().get_text()
    assert caption.startswith("★: differs from the baseline, Wilcoxon signed-rank, Holm over the "
                              "cut-vs-baseline comparisons of the fraction")
    # the rank letters are an option: boxes then coloured by rank group, letters under the medians
    lettered = figures.box_by_cut(df, letters=True).axes[0]
    colors = _box_colors(lettered)
    assert colors["cut 2"] != colors["baseline"] and colors["cut 0"] == colors["baseline"]
    assert _labels(lettered)["cut 2"] == f"★▲\n{median_cut2:.3f}\na"


@pytest.mark.parametrize("effect, mark", [(0.05, "★▲"), (-0.05, "★▼")])
def test_box_and_line_plots_mark_exactly_the_arm_the_table_marks(effect, mark):
    from functions.analysis import stats, tables
    from functions.analysis.results import with_settings

    # cut 0: no effect (paired differences ±0.003, p = 1); cut 2: 2·effect on every repeat
    df = results_frame(fractions=(0.1, 1.0), cuts=(0, 2), effect=effect)
    summary = stats.summarize(with_settings(df), by=("study", "setting", "fraction"), seed=0)  # the tables' call
    table = tables.wide_table(summary)
    starred = {(f, arm) for f, row in table.iterrows() for arm, cell in row.items() if cell.endswith(" *")}
    assert starred == {(0.1, "cut 2"), (1.0, "cut 2")}
    fig = figures.box_by_cut(df)
    for ax, fraction in zip(fig.axes, (0.1, 1.0)):
        marked = {arm for arm, text in _labels(ax).items() if "★" in text}
        assert marked == {arm for f, arm in starred if f == fraction}
        assert _labels(ax)["cut 2"].startswith(mark)
    lines = figures.median_lines(df).axes[0]
    filled = {c.get_gid().split(":", 1)[1]: len(c.get_offsets()) for c in lines.collections
              if (c.get_gid() or "").startswith("significant:")}
    hollow = {c.get_gid().split(":", 1)[1]: len(c.get_offsets()) for c in lines.collections
              if (c.get_gid() or "").startswith("not significant:")}
    assert filled == {"baseline": 0, "cut 0": 0, "cut 2": 2} and hollow == {"baseline": 2, "cut 0": 2, "cut 2": 0}
    assert "Holm over the cut-vs-baseline" in lines.get_legend().get_title().get_text()


def test_box_by_cut_says_when_the_baseline_family_cannot_be_significant():
    # 7 repeats: smallest p = 2^-6; 4 cuts vs the baseline → Holm p ≥ 0.0625
    df = results_frame(fractions=(0.5,), repeats=7, cuts=(0, 1, 2, 3))
    fig = figures.box_by_cut(df)
    assert "n=7, 4 cuts vs baseline: Holm p ≥ 0.0625, no significance possible" in _texts(fig)
    assert not any("★" in text for text in _labels(fig.axes[0]).values())


def test_box_by_cut_power_warning_written_with_five_repeats():
    fig = figures.box_by_cut(results_frame(fractions=(0.5,), repeats=5, cuts=(1,)))
    assert len(fig.axes) == 1
    assert "n=5: p ≥ 0.0625, no significance possible" in _texts(fig)
    colors = _box_colors(fig.axes[0])
    assert colors["cut 1"] == colors["baseline"]  # nothing can be separated


def test_box_by_cut_fractions_and_conditions_make_the_grid():
    df = results_frame(conditions=("FR", "FT"))
    fig = figures.box_by_cut(df, fractions=[0.1, 1.0])
    assert len(fig.axes) == 4  # 2 conditions × 2 fractions
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "FR · fraction 10 %" and titles[2] == "FT · fraction 10 %"
    with pytest.raises(ValueError, match="fractions"):
        figures.box_by_cut(df, fractions=[0.3])


def test_box_by_cut_counts_a_run_read_twice_once():
    df = results_frame(fractions=(0.1,), repeats=5)
    doubled = pd.concat([df, df.assign(source="cuts_export.json", val_acc=np.nan)], ignore_index=True)
    fig = figures.box_by_cut(doubled)  # without dropping copies the pairing would be ambiguous
    assert "n=5: p ≥ 0.0625, no significance possible" in _texts(fig)
    assert len(drop_repeated_runs(doubled)) == len(df)
    assert drop_repeated_runs(doubled)["val_acc"].notna().all()  # the fuller copy is kept


def test_box_by_cut_uses_given_groups():
    df = results_frame(fractions=(0.1,), cuts=(1,))
    groups = pd.DataFrame({"study": [STUDY, STUDY], "fraction": [0.1, 0.1], "arm": ["baseline", "cut 1"],
                           "n": [8, 8], "median": [0.5, 0.6], "rank": [2, 1], "group": [2, 1],
                           "group_label": ["b", "a"], "warning": [None, None]})
    fig = figures.box_by_cut(df, groups=groups)
    texts = fig.axes[0].texts
    assert any(t.get_text().endswith("\nb") for t in texts)
    with pytest.raises(ValueError, match="groups"):
        figures.box_by_cut(df, groups=groups.drop(columns="group_label"))


def test_bad_metric_names_allowed_values():
    with pytest.raises(ValueError, match="metric 'loss'.*test_acc"):
        figures.box_by_cut(results_frame(), metric="loss")


# ----------------------------------------------------------------------------- lines and grids
def test_median_lines_one_line_per_arm_on_log_axis():
    df = results_frame()
    fig = figures.median_lines(df)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["baseline", "cut 0", "cut 1", "cut 2"]
    cut2 = next(line for line in ax.get_lines() if line.get_label() == "cut 2")
    expected = df[df.cut == 2].groupby("fraction").test_acc.median().to_numpy()
    np.testing.assert_allclose(cut2.get_ydata(), expected)
    assert len(ax.collections) >= 4  # one min–max band per arm
    assert "FR" in fig._suptitle.get_text()


def test_diff_to_baseline_matches_paired_effect():
    df = results_frame(cuts=(1, 2), effect=0.05)
    fig = figures.diff_to_baseline(df, n_boot=200)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    cut2 = next(line for line in ax.get_lines() if line.get_label() == "cut 2")
    np.testing.assert_allclose(cut2.get_ydata(), 10, atol=1)  # effect · cut, in points as the table
    assert "points" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 %", "10 %", "100 %"]
    zero = [line for line in ax.get_lines() if np.allclose(line.get_ydata(), 0)]
    assert zero
    with pytest.raises(ValueError, match="baseline"):
        figures.diff_to_baseline(df[df.cut != -1])


def test_heatmap_values_and_relative():
    df = results_frame(cuts=(0, 1))
    fig = figures.heatmap(df)
    assert len(fig.axes) == 2  # heatmap + colour bar
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 3 * 3  # 3 fractions × (baseline, cut 0, cut 1)
    rel = figures.heatmap(df, relative=True)
    rel_texts = [float(t.get_text()) for t in rel.axes[0].texts]
    assert len(rel_texts) == 3 * 2
    assert all(abs(v - 10) < 1 for v in rel_texts[1::2])  # cut 1 column: +10 points
    assert "median of the paired differences" in rel._suptitle.get_text().replace("\n", " ")
    with pytest.raises(ValueError, match="stat"):
        figures.heatmap(df, stat="mode")


def test_relative_heatmap_shows_the_headlines_paired_estimate():
    """The median of paired differences is not the difference of medians; the heatmap shows the first, the
    number of the headline table."""
    from functions.analysis.tables import delta_table

    rows = []
    for repeat, (base, cut) in enumerate([(0.50, 0.60), (0.60, 0.58), (0.70, 0.66), (0.80, 0.90), (0.90, 0.85)]):
        for c, acc in ((-1, base), (1, cut)):
            rows.append(dict(study="S", condition="baseline" if c == -1 else "FR", fraction=0.1, cut=c,
                             repeat=repeat, arm=arm_name(c), test_acc=acc, source_dataset="M", target_dataset="M"))
    df = pd.DataFrame(rows)
    fig = figures.heatmap(df, relative=True)
    shown = float(fig.axes[0].texts[0].get_text())
    assert shown == pytest.approx(-2.0)  # median of (+10, -2, -4, +10, -5); the difference of medians is -4
    assert delta_table(df).iloc[0, 0].startswith("-2.0")
    assert "paired" in fig.axes[1].get_ylabel()  # the colour bar says which estimate it is


def test_surface3d_has_a_3d_panel_per_condition():
    fig = figures.surface3d(results_frame(conditions=("FR", "F")))
    assert len(fig.axes) == 2
    assert all(ax.name == "3d" for ax in fig.axes)
    single = figures.surface3d(results_frame(fractions=(0.1,)))  # one fraction: lines, not a surface
    assert len(single.axes) == 1


# ----------------------------------------------------------------------------- the network
def test_effective_rank_known_answers():
    assert diagnostics.effective_rank_of(np.eye(7)) == pytest.approx(7.0)
    rank_one = np.outer(np.arange(1, 6), np.arange(1, 4))
    assert diagnostics.effective_rank_of(rank_one) == pytest.approx(1.0)
    assert diagnostics.effective_rank_of(torch.diag(torch.tensor([1.0, 1.0, 0.0]))) == pytest.approx(2.0)
    assert diagnostics.effective_rank_of(np.zeros((3, 3))) == 0.0
    with pytest.raises(ValueError, match="2-D"):
        diagnostics.effective_rank_of(np.ones(4))


def test_effective_rank_per_layer_of_a_model():
    torch.manual_seed(0)
    model = CustomCNN(in_channels=1, image_size=16, num_classes=5, depth=2, num_channels=4, kernel_size=3)
    table = diagnostics.effective_ranks(model)
    assert list(table["layer"]) == ["conv0", "conv1", "fc"]
    assert list(table["max_rank"]) == [4, 4, 5]  # conv weights as (4, 1·3·3) and (4, 4·3·3); fc (5, n)
    fig = diagnostics.effective_rank(model.state_dict())
    assert len(fig.axes) == 1
    assert len(fig.axes[0].patches) == 2 * 3


def test_per_class_accuracy_over_the_whole_set():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    table = class_accuracies(y_true, y_pred, ["zero", "one", "two"])
    np.testing.assert_allclose(table["accuracy"], [0.75, 0.5, 1.0])
    fig = diagnostics.per_class_accuracy_figure(torch.tensor(y_true), torch.tensor(y_pred), ["zero", "one", "two"])
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.75, 0.5, 1.0])
    assert "8 images" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="length"):
        diagnostics.per_class_accuracy_figure(y_true, y_pred[:3])


def test_misclassified_grid_titles_true_to_pred():
    images = torch.rand(10, 1, 8, 8)
    y_true = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    y_pred = torch.tensor([0, 2, 2, 1, 1, 2, 0, 1, 0, 0])
    fig = diagnostics.misclassified_grid(images, y_true, y_pred, ["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["b→c", "a→b", "c→a"]
    few = diagnostics.misclassified_grid(images.numpy(), y_true.numpy(), y_pred.numpy(), max_images=2)
    assert [ax.get_title() for ax in few.axes] == ["1→2", "0→1"]
    rgb = diagnostics.misclassified_grid(torch.rand(10, 3, 8, 8), y_true, y_pred)
    assert rgb.axes[0].images[0].get_array().shape == (8, 8, 3)


def test_learning_curves_two_panels_one_line_per_name():
    histories = {
        "pretraining": {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6], "val_acc": [0.5, 0.7, 0.8]},
        "fine-tune": {"train_loss": [0.9, 0.4], "val_loss": [1.0, 0.8], "val_acc": [0.6, 0.7],
                      "train_acc": [0.6, 0.8]},
    }
    fig = diagnostics.learning_curves(histories)
    loss_ax, acc_ax = fig.axes
    assert len(fig.axes) == 2
    assert len(loss_ax.get_lines()) == 4 and len(acc_ax.get_lines()) == 3
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), [0.5, 0.7, 0.8])
    with pytest.raises(ValueError, match="val_acc"):
        diagnostics.learning_curves({"x": {"train_loss": [1], "val_loss": [1]}})


def test_yosinski_plot_one_panel_per_fraction_one_line_per_condition():
    df = results_frame(fractions=(0.1, 1.0), conditions=("AnB", "BnB"), cuts=(1, 2), repeats=6)
    fig = transfer_conditions.yosinski_plot(df, n_boot=100)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert "baseline" in labels
    assert ax.get_legend() is None and fig.axes[1].get_legend() is not None
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert {"AnB", "BnB", "baseline"} <= set(legend)
    band = [p for p in ax.patches if p.get_label() == "baseline 95% CI"]
    assert band
    with pytest.raises(ValueError, match="conditions"):
        transfer_conditions.yosinski_plot(df, conditions=["AnB+"])


# ----------------------------------------------------------------------------- clustering and saving
def test_box_clustering_per_layer_groups():
    rng = np.random.default_rng(0)
    rows = [{"fraction": f, "repeat": r, "layer": layer, "precision": 0.5, "recall": 0.5, "accuracy": 0.5,
             "ari": 0.1 * layer + rng.normal(0, 0.005), "dataset": "MNIST", "split": "test"}
            for f in (0.1, 1.0) for r in range(8) for layer in (0, 1, 2, 3)]
    cdf = pd.DataFrame(rows)
    fig = figures.box_clustering(cdf)
    assert len(fig.axes) == 2
    colors = _box_colors(fig.axes[0])
    assert list(colors) == ["0", "1", "2", "3"]
    assert colors["3"] != colors["0"]
    assert "ari" in fig._suptitle.get_text() and "MNIST" in fig._suptitle.get_text()


def test_box_clustering_named_layers_and_channels():
    rng = np.random.default_rng(1)
    names = ["input", "block0", "block1", "head_in"]
    rows = [{"fraction": 1.0, "repeat": r, "layer": name, "channel": channel, "precision": 0.5, "recall": 0.5,
             "accuracy": 0.5, "ari": 0.2 * i + rng.normal(0, 0.005), "dataset": "MNIST", "split": "test"}
            for r in range(8) for i, name in enumerate(names) for channel in (-1, 0, 1)]
    cdf = pd.DataFrame(rows)
    whole = figures.box_clustering(cdf)  # whole-layer rows (channel -1): paired, coloured by group
    ax = whole.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names  # network order, not alphabetical
    colors = _box_colors(ax)
    assert colors["head_in"] != colors["input"]
    pooled = figures.box_clustering(cdf, channel=None)  # 3 rows per (layer, repeat): no pairing, no colours
    assert set(_box_colors(pooled.axes[0]).values()) == {to_rgba("0.85")}
    with pytest.raises(ValueError, match="channel"):
        figures.box_clustering(cdf, channel=7)


def test_box_clustering_leaves_out_subsets_below_the_minimum_per_class():
    import inspect

    from functions.analysis import clustering

    assert inspect.signature(figures.box_clustering).parameters["min_per_class"].default == clustering.MIN_PER_CLASS
    rng = np.random.default_rng(2)
    # the shipped MNIST CSV's shape: 5 classes, n_samples 5 / 45 / 485 at 0.1 % / 1 % / 10 % (1, 9, 97 per class)
    sizes = {0.001: 5, 0.01: 45, 0.1: 485}
    rows = [{"fraction": f, "repeat": r, "layer": layer, "channel": -1, "ari": 1.0 if f < 0.1 else rng.uniform(0, 0.6),
             "dataset": "MNIST", "split": "test", "n_samples": n}
            for f, n in sizes.items() for r in range(3) for layer in ("input", "block0", "head_in")]
    legacy = pd.DataFrame(rows)  # no n_per_class column: estimated as n_samples // 10 (MNIST's classes)
    fig = figures.box_clustering(legacy)
    assert [ax.get_title() for ax in fig.axes] == ["fraction 10 %"]
    assert "not shown: 0.1 %, 1 % (< 10 images per class)" in fig._suptitle.get_text().replace("\n", " ")
    exact = figures.box_clustering(legacy, n_classes=5)  # 1, 9, 97 per class: the same two left out
    assert [ax.get_title() for ax in exact.axes] == ["fraction 10 %"]
    assert len(figures.box_clustering(legacy, min_per_class=None).axes) == 3  # opt out
    # the n_per_class column that cluster_study writes decides where present
    written = legacy.assign(n_per_class=legacy["n_samples"] // 5)
    assert len(figures.box_clustering(written, min_per_class=9).axes) == 2
    with pytest.raises(ValueError, match="min_per_class"):
        figures.box_clustering(legacy, fractions=[0.001])
    with pytest.raises(ValueError, match="min_per_class"):
        figures.box_clustering(legacy[legacy.fraction < 0.1])


def test_box_clustering_hides_the_shipped_tiny_subsets():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "MNIST" / "results" / "clustering" / "clustering_MNIST.csv"
    if not path.exists():
        pytest.skip("no shipped clustering CSV")
    cdf = pd.read_csv(path)
    fig = figures.box_clustering(cdf[(cdf.model == "pretrained") & (cdf.method == "agglomerative")])
    shown = [ax.get_title() for ax in fig.axes]
    assert "fraction 0.1 %" not in shown and "fraction 1 %" not in shown and shown


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig = figures.median_lines(results_frame())
    written = figures.save_figure(fig, tmp_path / "figs" / "median_lines")
    assert [p.name for p in written] == ["median_lines.png", "median_lines.pdf"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "figs" / "median_lines.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figs" / "median_lines.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="formats"):
        figures.save_figure(fig, tmp_path / "x", formats=("docx",))


def test_use_style_sets_the_theme():
    figures.use_style(force=True)
    assert plt.rcParams["axes.grid"]
    assert to_rgba(plt.rcParams["axes.facecolor"]) == to_rgba("white")
