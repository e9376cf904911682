"""Paper tables: one cell per (setting, fraction, arm), never two settings merged into one cell; rows named
in words and per cent, a caption that never contradicts the marks; the headline Δ table in points, with its
pairs and its protocol."""
import pandas as pd
import pytest

from functions.analysis.tables import table_caption, to_latex, to_markdown, wide_table


def _summary(settings=("FR", "FT"), labels=("b", "a")):
    rows = []
    for i, setting in enumerate(settings):
        for fraction in (0.01, 0.1):
            for arm, median, label in (("baseline", 0.5, labels[0]), ("cut 1", 0.6 + i / 10, labels[1])):
                rows.append(dict(study="S", setting=setting, fraction=fraction, arm=arm, median=median,
                                 low=median - 0.01, high=median + 0.01, group_label=label))
    return pd.DataFrame(rows)


def test_settings_get_their_own_rows():
    table = wide_table(_summary())
    assert table.index.names == ["setting", "fraction"]
    assert table.loc[("FR", 0.01), "cut 1"].startswith("0.600 [0.590, 0.610] a")
    assert table.loc[("FT", 0.01), "cut 1"].startswith("0.700")
    assert list(table.columns) == ["baseline", "cut 1"]


def test_single_setting_is_indexed_by_fraction_only():
    table = wide_table(_summary(settings=("FR",)))
    assert table.index.names == ["fraction"]
    assert len(table) == 2


def test_markdown_and_latex_render_every_cell():
    summary = _summary()
    md, tex = to_markdown(summary), to_latex(summary)
    assert md.count("0.700 [0.690, 0.710] a") == 2
    assert "\\begin{table}" in tex and "0.700" in tex
    assert "('FR', 0.01)" not in md and "| FR        | 1 %" in md  # words and per cent, not tuples
    assert table_caption(summary) in md and "Letters: rank groups" in tex


def test_significance_vs_baseline_is_starred():
    summary = _summary(settings=("FR",))
    summary["significant_vs_baseline"] = [None if a == "baseline" else True for a in summary["arm"]]
    table = wide_table(summary)
    assert table.loc[0.01, "cut 1"].endswith(" a *")
    assert not table.loc[0.01, "baseline"].endswith("*")


def test_letters_that_separate_nothing_are_left_out_and_the_caption_says_why():
    """Issue 21: every arm carried the letter "a" while two were starred, under "arms sharing a letter do not
    differ". One letter for every arm of a row says nothing: it is left out, and the caption names both
    families, so a star and a shared letter cannot contradict it."""
    summary = _summary(settings=("FR",), labels=("a", "a"))
    summary["significant_vs_baseline"] = [None if a == "baseline" else True for a in summary["arm"]]
    table = wide_table(summary)
    assert table.loc[0.01, "cut 1"] == "0.600 [0.590, 0.610] *" and table.loc[0.01, "baseline"].endswith("]")
    caption = table_caption(summary)
    assert "do not differ" not in caption and "Holm over the 1 test of each cut against the baseline" in caption
    assert "Letters" not in caption and "no two arms differ after Holm over all pairs" in caption
    assert wide_table(summary, letters=True).loc[0.01, "cut 1"].endswith(" a *")  # on request
    three = pd.concat([summary.assign(group_label="a"), summary[summary.arm == "cut 1"].assign(
        arm="cut 2", median=0.9, group_label="b")], ignore_index=True)
    lettered = table_caption(three)
    assert "Holm over the 2 tests of each cut" in lettered and "all 3 tests between two arms" in lettered
    assert "a starred arm may still share the baseline's letter" in lettered


def _runs(gain=0.05, repeats=8):
    """Paired runs: cut 1 beats the baseline by ``gain`` (+ noise) at two fractions, FR and FT."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for condition in ("FR", "FT"):
        for fraction in (0.01, 0.1):
            for r in range(repeats):
                base = 0.8 + rng.normal(0, 0.01)
                rows.append(dict(study="S", condition="baseline", fraction=fraction, cut=-1, repeat=r,
                                 arm="baseline", test_acc=base, source_dataset="M", target_dataset="M"))
                rows.append(dict(study="S", condition=condition, fraction=fraction, cut=1, repeat=r,
                                 arm="cut 1", test_acc=base + gain + rng.normal(0, 0.005),
                                 source_dataset="M", target_dataset="M"))
    return pd.DataFrame(rows).drop_duplicates(["condition", "fraction", "cut", "repeat"])


def test_delta_table_points_and_ticks():
    from functions.analysis.tables import delta_table

    table = delta_table(_runs())
    assert table.index.names == ["protocol", "setting", "fraction", "pairs"]
    assert list(table.columns) == ["cut 1"] and table.columns.name == "Δ points vs baseline"
    assert table.loc[("original", "FR", "1 %", "8"), "cut 1"].startswith("+5.")
    assert table.loc[("original", "FR", "1 %", "8"), "cut 1"].endswith(" ✓")
    one = delta_table(_runs()[lambda d: d.condition.isin(["baseline", "FR"])], ci=True)
    assert one.index.names == ["protocol", "fraction", "pairs"] and "[" in one.iloc[0, 0]
    assert list(one.index.get_level_values("fraction")) == ["1 %", "10 %"]
    tuned = delta_table(_runs().assign(protocol_variant="realistic, tuned lr"))
    assert set(tuned.index.get_level_values("protocol")) == {"realistic, tuned lr"}
    few = delta_table(_runs(repeats=3))  # 3 pairs: no Wilcoxon p below 0.05, so no ✓
    assert not few.apply(lambda c: c.str.contains("✓")).any().any()


def test_reading_labels_fractions_in_per_cent_differences_in_points():
    from functions.analysis.labels import differences_in_points, repeats_text, with_fraction_labels

    frame = pd.DataFrame({"fraction": [0.001, 0.1], "diff_vs_baseline": [0.168, 0.01], "median": [0.7, 0.9]})
    shown = with_fraction_labels(differences_in_points(frame))
    assert list(shown["fraction"]) == ["0.1 %", "10 %"]
    assert list(shown["diff_vs_baseline (points)"]) == pytest.approx([16.8, 1.0])
    assert list(shown["median"]) == [0.7, 0.9]  # an accuracy, not a difference
    wide = with_fraction_labels(frame.set_index(["fraction", "median"]))
    assert list(wide.index.get_level_values("fraction")) == ["0.1 %", "10 %"]
    runs = _runs(repeats=3)
    assert repeats_text(runs) == "3 repeats"
    assert repeats_text(runs[~((runs.fraction == 0.1) & (runs.repeat == 2))]) == "repeats 3/2"
