"""Paper tables: one cell per (setting, fraction, arm), never two settings merged into one cell."""
import pandas as pd

from functions.analysis.tables import to_latex, to_markdown, wide_table


def _summary(settings=("FR", "FT")):
    rows = []
    for i, setting in enumerate(settings):
        for fraction in (0.01, 0.1):
            for arm, median in (("baseline", 0.5), ("cut 1", 0.6 + i / 10)):
                rows.append(dict(study="S", setting=setting, fraction=fraction, arm=arm, median=median,
                                 low=median - 0.01, high=median + 0.01, group_label="a"))
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


def test_significance_vs_baseline_is_starred():
    summary = _summary(settings=("FR",))
    summary["significant_vs_baseline"] = [None if a == "baseline" else True for a in summary["arm"]]
    table = wide_table(summary)
    assert table.loc[0.01, "cut 1"].endswith(" a *")
    assert not table.loc[0.01, "baseline"].endswith("*")


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
    assert table.index.names == ["setting", "fraction"]
    assert list(table.columns) == ["cut 1"]
    assert table.loc[("FR", 0.01), "cut 1"].startswith("+5.") and table.loc[("FR", 0.01), "cut 1"].endswith(" ✓")
    one = delta_table(_runs()[lambda d: d.condition.isin(["baseline", "FR"])], ci=True)
    assert one.index.names == ["fraction"] and "[" in one.iloc[0, 0]
    few = delta_table(_runs(repeats=3))  # 3 pairs: no Wilcoxon p below 0.05, so no ✓
    assert not few.apply(lambda c: c.str.contains("✓")).any().any()
