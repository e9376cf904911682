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
    assert figures.fraction_label(0.001) == "0.1%"
    assert figures.fraction_label(1.0) == "100%"


# ----------------------------------------------------------------------------- box_by_cut
def test_box_by_cut_one_panel_per_fraction_and_group_colours():
    df = results_frame(cuts=(0, 2))  # cut 2 is +0.2 on every repeat: its own group
    fig = figures.box_by_cut(df)
    assert len(fig.axes) == 3
    assert STUDY in fig._suptitle.get_text() and "FR" in fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.axes] == ["fraction 1%", "fraction 10%", "fraction 100%"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "0", "2"]
    colors = _box_colors(ax)
    assert colors["cut 2"] != colors["baseline"]  # separated groups differ
    assert colors["cut 0"] == colors["baseline"]  # cut 0 ≈ baseline: same group
    boxes = {p.get_gid(): p for p in ax.patches if p.get_gid()}
    assert boxes["box:baseline"].get_hatch() == figures.BASELINE_HATCH
    assert not boxes["box:cut 2"].get_hatch()
    texts = [t.get_text() for t in ax.texts]
    median_cut2 = np.median(df[(df.fraction == 0.01) & (df.cut == 2)].test_acc)
    assert f"{median_cut2:.3f}\na" in texts  # best arm: group a, median above its box
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    baseline_median = np.median(df[(df.fraction == 0.01) & (df.cut == -1)].test_acc)
    assert any(np.allclose(line.get_ydata(), baseline_median) for line in dashed)
    assert not any("no significance" in t for t in _texts(fig))  # n=8 can reach significance


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
    assert titles[0] == "FR · fraction 10%" and titles[2] == "FT · fraction 10%"
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
    np.testing.assert_allclose(cut2.get_ydata(), 0.1, atol=0.01)  # effect · cut
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
    assert all(abs(v - 0.1) < 0.01 for v in rel_texts[1::2])  # cut 1 column: +0.1
    assert "minus baseline" in rel._suptitle.get_text()
    with pytest.raises(ValueError, match="stat"):
        figures.heatmap(df, stat="mode")


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
