"""Paired tests, Holm correction, rank groups, bootstrap CIs and power warnings on constructed data."""
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests

from functions.analysis import stats


def make_frame(means: dict, n_repeats: int = 12, noise: float = 0.01, seed: int = 0,
               fractions=(0.1,), study: str = "S") -> pd.DataFrame:
    """One row per (fraction, arm, repeat) with accuracy ``means[arm]`` + Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = [{"study": study, "fraction": f, "arm": arm, "repeat": r, "test_acc": mean + rng.normal(0, noise)}
            for f in fractions for arm, mean in means.items() for r in range(n_repeats)]
    return pd.DataFrame(rows)


SEPARATED = {"baseline": 0.5, "cut 1": 0.7, "cut 2": 0.9}


def test_min_wilcoxon_p_is_the_exact_extreme():
    assert stats.min_wilcoxon_p(5) == 0.0625
    assert stats.min_wilcoxon_p(1) == 1.0
    # all differences of one sign give scipy's exact two-sided p, which equals the formula
    for n in (4, 6, 9):
        assert wilcoxon(np.arange(1, n + 1) / 10).pvalue == pytest.approx(stats.min_wilcoxon_p(n))
    with pytest.raises(ValueError, match="n must be"):
        stats.min_wilcoxon_p(0)


def test_power_warning_thresholds():
    assert stats.power_warning(5, 1) == ("with 5 paired repeats the smallest two-sided exact Wilcoxon p "
                                         "is 0.0625 ≥ 0.05: no difference can be significant")
    assert stats.power_warning(6, 1) is None  # 0.03125 < 0.05
    message = stats.power_warning(6, 3)  # Holm: 3 × 0.03125 = 0.09375
    assert message is not None and "0.09375" in message and "3 comparisons" in message
    assert stats.power_warning(10, 10) is None  # 10 × 2**-9 ≈ 0.0195
    assert stats.power_warning(0, 1) is not None
    with pytest.raises(ValueError, match="alpha"):
        stats.power_warning(5, 1, alpha=1.5)


def test_separated_arms_all_significant_with_distinct_groups():
    df = make_frame(SEPARATED, fractions=(0.1, 1.0))
    tests = stats.paired_tests(df)
    assert len(tests) == 2 * 3
    assert tests["significant"].all()
    assert (tests["n_pairs"] == 12).all() and (tests["n_dropped"] == 0).all()
    # every difference has one sign: the exact p is the extreme 2**-11, ×3 by Holm
    assert np.allclose(tests["p"], 2.0 ** -11)
    assert np.allclose(tests["p_holm"], 3 * 2.0 ** -11)
    assert tests["warning"].isna().all()
    row = tests[(tests["fraction"] == 0.1) & (tests["arm_a"] == "baseline") & (tests["arm_b"] == "cut 2")].iloc[0]
    assert row["median_diff"] == pytest.approx(-0.4, abs=0.02)

    ranks = stats.rank_groups(df, tests=tests)
    for _, group in ranks.groupby("fraction"):
        by_arm = group.set_index("arm")
        assert by_arm.loc[["cut 2", "cut 1", "baseline"], "rank"].tolist() == [1, 2, 3]
        assert by_arm.loc[["cut 2", "cut 1", "baseline"], "group_label"].tolist() == ["a", "b", "c"]
    # computing the tests inside gives the same answer
    pd.testing.assert_frame_equal(ranks, stats.rank_groups(df))


def test_identical_arms_form_one_group_with_p_one():
    df = make_frame({"baseline": 0.8}, n_repeats=12)
    copies = [df.assign(arm=arm) for arm in ("cut 0", "cut 1")]
    df = pd.concat([df, *copies], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the all-zero case must not reach scipy's warning
        tests = stats.paired_tests(df)
    assert (tests["p"] == 1.0).all() and (tests["statistic"] == 0).all()
    assert not tests["significant"].any()
    ranks = stats.rank_groups(df, tests=tests)
    assert set(ranks["group"]) == {1} and set(ranks["group_label"]) == {"a"}
    assert (ranks["rank"] == 1).all()  # equal medians share rank 1


def test_holm_matches_statsmodels_and_is_monotone():
    rng = np.random.default_rng(3)
    base = rng.normal(0.7, 0.05, 15)
    shifts = {"baseline": 0.0, "cut 0": 0.004, "cut 1": 0.012, "cut 2": 0.03, "cut 3": -0.02}
    rows = [{"study": "S", "fraction": 0.5, "arm": arm, "repeat": r,
             "test_acc": base[r] + shift + rng.normal(0, 0.02)}
            for arm, shift in shifts.items() for r in range(15)]
    tests = stats.paired_tests(pd.DataFrame(rows))
    assert len(tests) == 10
    expected = multipletests(tests["p"], alpha=0.05, method="holm")[1]
    np.testing.assert_allclose(tests["p_holm"], expected)
    ordered = tests.sort_values("p")
    assert ordered["p_holm"].is_monotonic_increasing
    assert (tests["p_holm"] >= tests["p"]).all()
    assert tests["p"].nunique() > 3  # the family really has different p-values


def test_five_repeats_warn_and_nothing_is_significant():
    df = make_frame(SEPARATED, n_repeats=5)
    tests = stats.paired_tests(df)
    assert np.allclose(tests["p"], 0.0625)
    assert not tests["significant"].any()
    assert tests["warning"].str.contains("0.0625").all()
    ranks = stats.rank_groups(df, tests=tests)
    assert set(ranks["group"]) == {1}
    assert ranks["warning"].notna().all()


def test_unpaired_repeats_are_dropped_and_counted():
    df = make_frame({"baseline": 0.5, "cut 1": 0.7}, n_repeats=14)
    df = df[~((df["arm"] == "baseline") & (df["repeat"] < 2))]  # baseline lacks repeats 0, 1
    df = df[~((df["arm"] == "cut 1") & (df["repeat"] > 11))]  # cut 1 lacks 12, 13
    df.loc[(df["arm"] == "cut 1") & (df["repeat"] == 5), "test_acc"] = np.nan  # a missing value
    row = stats.paired_tests(df).iloc[0]
    assert row["n_pairs"] == 9  # repeats 2..11 minus 5
    assert row["n_dropped"] == 5  # 0, 1, 12, 13 and 5
    assert row["p"] == pytest.approx(2.0 ** -8)


def test_rank_groups_letter_rule_joins_close_arms():
    rng = np.random.default_rng(5)
    best = 0.9 + rng.normal(0, 0.01, 12)
    close = best + np.tile([0.002, -0.001], 6)  # not significantly different from the best
    worse = best - 0.2
    rows = [{"study": "S", "fraction": 1.0, "arm": arm, "repeat": r, "test_acc": values[r]}
            for arm, values in (("cut 3", best), ("cut 2", close), ("baseline", worse)) for r in range(12)]
    ranks = stats.rank_groups(pd.DataFrame(rows)).set_index("arm")
    assert ranks.loc[["cut 2", "cut 3", "baseline"], "group_label"].tolist() == ["a", "a", "b"]


def test_bootstrap_ci_contains_true_median_and_is_reproducible():
    rng = np.random.default_rng(11)
    df = pd.DataFrame({"study": "S", "fraction": 1.0, "arm": "cut 1", "repeat": range(2000),
                       "test_acc": rng.normal(0.3, 0.1, 2000)})
    for stat in ("median", "iqm", "mean"):
        result = stats.bootstrap_ci(df, stat=stat, n_boot=1000, seed=7).iloc[0]
        assert result["low"] < 0.3 < result["high"], stat
        assert result["high"] - result["low"] < 0.03
        assert result["n"] == 2000 and result["stat"] == stat
    first = stats.bootstrap_ci(df, n_boot=500, seed=1)
    pd.testing.assert_frame_equal(first, stats.bootstrap_ci(df, n_boot=500, seed=1))
    assert not first.equals(stats.bootstrap_ci(df, n_boot=500, seed=2))
    assert first["estimate"].iloc[0] == pytest.approx(np.median(df["test_acc"]))
    with pytest.raises(ValueError, match="stat"):
        stats.bootstrap_ci(df, stat="mode")


def test_effect_vs_baseline_recovers_the_shift():
    df = make_frame(SEPARATED)
    effects = stats.effect_vs_baseline(df, n_boot=500).set_index("arm")
    assert list(effects.index) == ["cut 1", "cut 2"]
    assert effects.loc["cut 1", "median_diff"] == pytest.approx(0.2, abs=0.01)
    assert effects.loc["cut 2", "low"] < effects.loc["cut 2", "median_diff"] < effects.loc["cut 2", "high"]
    assert effects.loc["cut 2", "low"] > 0.35
    tests = stats.paired_tests(df).set_index("arm_b")
    all_pairs = stats.effect_vs_baseline(df, n_boot=500, family="all_pairs").set_index("arm")
    assert all_pairs.loc["cut 1", "p_holm"] == tests.loc["cut 1", "p_holm"]
    assert effects.loc["cut 1", "p_holm"] <= all_pairs.loc["cut 1", "p_holm"]
    with pytest.raises(ValueError, match="baseline"):
        stats.effect_vs_baseline(df, baseline="scratch")


def test_summarize_joins_everything():
    df = make_frame(SEPARATED, fractions=(0.1, 1.0))
    table = stats.summarize(df, n_boot=200)
    assert len(table) == 6
    assert table["arm"].tolist()[:3] == ["baseline", "cut 1", "cut 2"]
    for column in ("median", "estimate", "low", "high", "rank", "group_label", "diff_vs_baseline",
                   "p_holm_vs_baseline", "warning"):
        assert column in table.columns
    base = table[table["arm"] == "baseline"]
    assert base["diff_vs_baseline"].isna().all()
    assert table.loc[table["arm"] == "cut 2", "significant_vs_baseline"].all()


def test_summarize_warns_about_the_family_its_checkmark_uses():
    # 7 repeats, 3 arms against the baseline: best Holm p vs baseline = 3 × 2**-6 = 0.047 (can pass), but
    # over all 6 pairs = 0.094 (cannot): arms must not carry the all-pairs warning next to a ✓
    df = make_frame({**SEPARATED, "cut 3": 0.95}, n_repeats=7)
    table = stats.summarize(df, n_boot=200).set_index("arm")
    assert table.loc["cut 3", "significant_vs_baseline"]
    assert table.loc[["cut 1", "cut 2", "cut 3"], "warning"].isna().all()
    assert "no difference can be significant" in table.loc["baseline", "warning"]  # the rank groups' family
    few = stats.summarize(make_frame(SEPARATED, n_repeats=5), n_boot=200).set_index("arm")
    assert few.loc[["cut 1", "cut 2"], "warning"].notna().all()  # 2 × 2**-4 = 0.125: never significant


def test_bad_input_is_rejected_clearly():
    df = make_frame(SEPARATED)
    with pytest.raises(ValueError, match="metric"):
        stats.paired_tests(df, metric="val_acc")
    with pytest.raises(ValueError, match="by"):
        stats.paired_tests(df, by=("study", "condition"))
    doubled = pd.concat([df, df], ignore_index=True)  # e.g. two conditions under one study name
    with pytest.raises(ValueError, match="ambiguous"):
        stats.paired_tests(doubled)


def test_holm_wrapper_on_a_known_example():
    # Holm by hand: sorted p 0.01, 0.02, 0.03, 0.04 × 4, 3, 2, 1 = 0.04, 0.06, 0.06, 0.04 → running max
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(stats.holm(p), [0.06, 0.04, 0.06, 0.06])
    assert isinstance(stats.holm(p), np.ndarray)
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    # an untested comparison (NaN) stays NaN and is not counted in the family
    np.testing.assert_allclose(stats.holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    assert stats.holm([]).shape == (0,)


def test_holm_is_the_statsmodels_one_everywhere():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(stats))
    calls = [node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name)]
    assert calls.count("multipletests") == 1  # one Holm: the wrapper, which paired_tests calls too
    assert calls.count("holm") >= 2


def test_bootstrap_is_scipys_percentile_bootstrap():
    from scipy.stats import bootstrap

    values = np.random.default_rng(2).normal(0.8, 0.05, 101)
    estimate, low, high = stats.bootstrap_median(values, n_boot=1000, seed=4, key=("S", 0.1, "cut 1"))
    expected = bootstrap((values,), np.median, n_resamples=1000, method="percentile", vectorized=True,
                         rng=stats._group_rng(4, ("S", 0.1, "cut 1"))).confidence_interval
    assert estimate == pytest.approx(np.median(values))
    assert (low, high) == pytest.approx((expected.low, expected.high))
    # reproducible, and a group's interval depends on its key, not on what else is computed
    assert stats.bootstrap_median(values, 1000, 4, ("S", 0.1, "cut 1")) == (estimate, low, high)
    assert stats.bootstrap_median(values, 1000, 4, ("S", 0.1, "cut 2")) != (estimate, low, high)
    assert stats.bootstrap_median([0.7], 1000, 4) == (0.7, 0.7, 0.7)  # one value: that value
    assert stats.bootstrap_median([0.7] * 5, 1000, 4) == (0.7, 0.7, 0.7)  # degenerate: no warning, no NaN


def test_vs_baseline_family_is_holm_over_the_baseline_comparisons_only():
    # 8 pairs, every arm above the baseline in every pair: raw two-sided p = 2/2^8 for each comparison
    rows = [dict(fraction=0.1, arm=arm, repeat=r, test_acc=0.5 + 0.01 * r + shift)
            for r in range(8) for arm, shift in (("baseline", 0.0), ("cut 1", 0.1 + 0.001 * r),
                                                 ("cut 2", 0.2 + 0.002 * r), ("cut 3", 0.3 + 0.003 * r))]
    df = pd.DataFrame(rows)
    raw = 2 / 2 ** 8
    many_to_one = stats.effect_vs_baseline(df, by=("fraction",), n_boot=200).set_index("arm")
    np.testing.assert_allclose(many_to_one["p_holm"], 3 * raw)  # 3 comparisons with the baseline
    assert many_to_one["significant"].all()
    all_pairs = stats.effect_vs_baseline(df, by=("fraction",), n_boot=200, family="all_pairs")
    np.testing.assert_allclose(all_pairs["p_holm"], 6 * raw)  # 6 pairwise comparisons, all tied
    summary = stats.summarize(df, by=("fraction",), n_boot=200).set_index("arm")
    np.testing.assert_allclose(summary.loc[["cut 1", "cut 2", "cut 3"], "p_holm_vs_baseline"], 3 * raw)
    with pytest.raises(ValueError, match="family"):
        stats.effect_vs_baseline(df, by=("fraction",), family="pairs")
