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


def test_holm_known_answer_and_paired_tests_use_it():
    # by hand: sorted p 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; made monotone
    # (running maximum) = 0.02, 0.03, 0.06, 0.06; back in the input order:
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    # paired_tests corrects over the comparisons of one group with that same rule
    rng = np.random.default_rng(0)
    rows = [dict(study="s", fraction=0.1, arm=arm, repeat=r, test_acc=0.5 + shift + 0.01 * rng.random())
            for arm, shift in (("baseline", 0.0), ("cut 1", 0.002), ("cut 2", 0.02)) for r in range(8)]
    tests = stats.paired_tests(pd.DataFrame(rows))
    np.testing.assert_allclose(tests["p_holm"], stats.holm(tests["p"]))


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


# ----------------------------------------------------------------------------- exact signed-rank test
def _brute_force_p(d):
    """Pratt signed-rank p by listing every sign pattern: written independently of the package."""
    import itertools

    from scipy.stats import rankdata

    d = np.asarray(d, dtype=float)
    ranks = rankdata(np.abs(d))  # zeros ranked with the rest (Pratt) …
    ranks = ranks[d != 0]  # … then dropped
    observed = ranks[d[d != 0] > 0].sum()
    centre = ranks.sum() / 2
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=ranks.size)]
    return np.mean([abs(t - centre) >= abs(observed - centre) - 1e-9 for t in sums])


def test_exact_p_and_hodges_lehmann_by_hand():
    # d = [1, 2, 3, -0.5, 4]; |d| ranks: 0.5→1, 1→2, 2→3, 3→4, 4→5; T+ = 2+3+4+5 = 14, T− = 1.
    # Under H0 T+ ranges over 0..15 (32 sign patterns, mean 7.5); |T+ − 7.5| ≥ 6.5 only for T+ ∈ {0, 1, 14, 15},
    # one pattern each: p = 4/32 = 0.125. Statistic min(T+, T−) = 1.
    # Walsh averages (i ≤ j) of the sorted -0.5, 1, 2, 3, 4:
    #   -0.5, 0.25, 0.75, 1.25, 1.75 | 1, 1.5, 2, 2.5 | 2, 2.5, 3 | 3, 3.5 | 4
    # sorted: -0.5 .25 .75 1 1.25 1.5 1.75 [2] 2 2.5 2.5 3 3 3.5 4 → 15 values, the 8th is HL = 2.
    # n = 5: P(T ≤ 0) = 1/32 > 0.025, so no 95 % interval exists: NaN bounds, "n too small".
    d = [1, 2, 3, -0.5, 4]
    result = stats.signed_rank_test(d)
    assert result == {"statistic": 1.0, "p": 0.125, "n_effective": 5, "n_zero": 0, "p_method": "exact"}
    assert wilcoxon(d, method="exact").pvalue == pytest.approx(0.125)  # scipy agrees when nothing ties
    hl = stats.hodges_lehmann(d)
    assert hl["estimate"] == 2.0 and np.median(d) == 2.0
    assert np.isnan(hl["low"]) and np.isnan(hl["high"]) and np.isnan(hl["achieved"])
    assert hl["note"] == "n too small"


def test_hodges_lehmann_interval_by_hand():
    # d = [-2, -1, 1, 2, 3, 4, 5, 6], n = 8, M = 36 Walsh averages:
    #   -2: -2 -1.5 -0.5 0 0.5 1 1.5 2 | -1: -1 0 0.5 1 1.5 2 2.5 | 1: 1 1.5 2 2.5 3 3.5 | 2: 2 2.5 3 3.5 4
    #    3: 3 3.5 4 4.5 | 4: 4 4.5 5 | 5: 5 5.5 | 6: 6
    # sorted: -2 -1.5 -1 (-0.5) 0 0 .5 .5 1 1 1 1.5 1.5 1.5 2 2 2 [2] [2.5] 2.5 2.5 3 3 3 3.5 3.5 3.5 4 4 4
    #         4.5 4.5 (5) 5 5.5 6
    # HL = mean of the 18th and 19th = (2 + 2.5)/2 = 2.25.
    # Null of T for n = 8 (256 patterns): #{T = 0, 1, 2, 3, 4} = 1, 1, 1, 2, 2 (3 = {3}, {1,2}; 4 = {4}, {1,3}),
    # cumulative 1, 2, 3, 5, 7; 0.025·256 = 6.4, so P(T ≤ 3) = 5/256 is the last tail within it: k = 4,
    # interval [W_(4), W_(33)] = [-0.5, 5], achieved 1 − 2·5/256 = 0.9609375 (≥ 95 %: T is discrete).
    hl = stats.hodges_lehmann([-2, -1, 1, 2, 3, 4, 5, 6])
    assert (hl["estimate"], hl["low"], hl["high"]) == (2.25, -0.5, 5.0)
    assert hl["achieved"] == 0.9609375 and hl["note"] is None
    # n = 6 is the first with a 95 % interval: k = 1 (P(T = 0) = 1/64), [min, max], achieved 1 − 2/64
    six = stats.hodges_lehmann([0.3, -0.1, 0.2, 0.5, 0.4, 0.1])
    assert (six["low"], six["high"], six["achieved"]) == (-0.1, 0.5, 1 - 2 / 64)
    assert stats.hodges_lehmann([])["note"] == "no pairs"
    with pytest.raises(ValueError, match="ci"):
        stats.hodges_lehmann([1, 2], ci=95)


def test_pratt_zeros_and_midranks_by_hand():
    # d = [0, 1, 1, 2, -3]: |d| ranks with the zero: 0→1, 1,1→2.5,2.5, 2→4, 3→5; the zero's rank is dropped.
    # Nonzero ranks {2.5, 2.5, 4, 5}, T+ = 2.5+2.5+4 = 9, total 14, mean 7, |9 − 7| = 2.
    # The 16 subset sums: 0 2.5 2.5 4 5 5 6.5 6.5 7.5 7.5 9 9 10 11.5 11.5 14; |T − 7| ≥ 2 for all but the
    # four of 6.5 and 7.5: p = 12/16 = 0.75. Statistic min(9, 5) = 5.
    result = stats.signed_rank_test([0, 1, 1, 2, -3])
    assert result == {"statistic": 5.0, "p": 0.75, "n_effective": 4, "n_zero": 1, "p_method": "exact"}
    # zeros push the other ranks up (Pratt), unlike dropping them first (scipy's "wilcox")
    d = [0, 0, 0.1, 0.2, -0.3, 0.4, 0.4, 0.5]
    assert stats.signed_rank_test(d)["p"] == pytest.approx(_brute_force_p(d)) == pytest.approx(0.125)
    pratt = wilcoxon(d, zero_method="pratt", method=__import__("scipy").stats.PermutationMethod())
    assert stats.signed_rank_test(d)["p"] == pytest.approx(pratt.pvalue)
    rng = np.random.default_rng(8)
    for n in (3, 6, 9, 11):
        d = rng.integers(-3, 4, n) / 100  # many ties and zeros, as accuracy differences have
        assert stats.signed_rank_test(d)["p"] == pytest.approx(_brute_force_p(d)), d
    assert stats.signed_rank_test([0.0, 0.0]) == {"statistic": 0.0, "p": 1.0, "n_effective": 0, "n_zero": 2,
                                                  "p_method": "exact"}  # every sign pattern gives T = 0
    assert np.isnan(stats.signed_rank_test([np.nan])["p"])


def test_exact_matches_scipy_without_ties():
    rng = np.random.default_rng(4)
    for n in (5, 10, 16):
        d = rng.normal(0.3, 1, n)
        assert stats.signed_rank_test(d)["p"] == pytest.approx(wilcoxon(d, method="exact").pvalue)


def test_monte_carlo_agrees_with_enumeration_at_14():
    rng = np.random.default_rng(2)
    d = np.round(rng.normal(0.4, 1, 14), 1)  # rounded: some ties
    exact = stats.signed_rank_test(d)
    forced = stats.signed_rank_test(d, max_exact=10)  # 14 > 10: the Monte-Carlo path
    assert exact["p_method"] == "exact" and forced["p_method"] == "monte carlo"
    assert forced["p"] == pytest.approx(exact["p"], abs=0.01)
    assert forced == stats.signed_rank_test(d, max_exact=10)  # seeded
    few = stats.signed_rank_test(d, max_exact=10, draws=999)["p"] * 1000  # (1 + count)/(1 + draws)
    assert few == pytest.approx(round(few)) and few >= 1
    assert stats.signed_rank_test(np.arange(1, 31))["p_method"] == "monte carlo"  # 30 nonzero > 20
    assert stats.min_wilcoxon_p(30) == pytest.approx(1 / (1 + stats.MC_DRAWS))


def test_power_warning_counts_only_nonzero_differences():
    assert stats.power_warning(7, 1) is None  # 2**-6 < 0.05
    message = stats.power_warning(7, 1, n_zero=2)  # only 5 count: 0.0625
    assert "7 paired repeats (2 with zero difference)" in message and "0.0625" in message
    assert "all 4 paired differences are zero" in stats.power_warning(4, 1, n_zero=4)


def test_paired_and_effect_tables_report_effective_n_and_the_matching_interval():
    base = np.linspace(0.80, 0.85, 8)
    gains = np.array([0.0, 0.0, 0.01, 0.02, 0.01, 0.03, 0.02, 0.01])  # two zero differences
    rows = [{"study": "S", "fraction": 0.1, "arm": arm, "repeat": r, "test_acc": base[r] + g[r]}
            for arm, g in (("baseline", np.zeros(8)), ("cut 1", gains)) for r in range(8)]
    df = pd.DataFrame(rows)
    test = stats.paired_tests(df).iloc[0]
    assert (test["n_pairs"], test["n_effective"], test["n_zero"], test["p_method"]) == (8, 6, 2, "exact")
    assert test["p"] == pytest.approx(_brute_force_p(-gains))  # arm_a − arm_b = baseline − cut 1
    effect = stats.effect_vs_baseline(df).iloc[0]
    hl = stats.hodges_lehmann(gains)
    assert effect["median_diff"] == pytest.approx(np.median(gains))
    assert (effect["low"], effect["high"], effect["hl_estimate"]) == pytest.approx((hl["low"], hl["high"],
                                                                                    hl["estimate"]))
    assert effect["ci_level"] == pytest.approx(0.9609375) and effect["ci_note"] is None
    assert (effect["n_effective"], effect["n_zero"]) == (6, 2)
    # the bootstrap interval stays available
    boot = stats.effect_vs_baseline(df, interval="bootstrap", n_boot=300).iloc[0]
    expected = stats._bootstrap(gains, "median", 300, 0.95, stats._group_rng(0, ("S", 0.1, "cut 1", "baseline")))
    assert (boot["low"], boot["high"]) == pytest.approx(expected[1:])
    with pytest.raises(ValueError, match="interval"):
        stats.effect_vs_baseline(df, interval="percentile")
    summary = stats.summarize(df, n_boot=100).set_index("arm")
    assert summary.loc["cut 1", "n_effective"] == 6 and summary.loc["cut 1", "diff_ci_level"] == effect["ci_level"]
    assert summary.loc["cut 1", "diff_low"] == effect["low"]


def test_too_few_pairs_give_no_interval_but_a_note():
    effects = stats.effect_vs_baseline(make_frame(SEPARATED, n_repeats=5)).set_index("arm")
    assert effects["low"].isna().all() and effects["high"].isna().all()
    assert (effects["ci_note"] == "n too small").all()
    assert effects["median_diff"].notna().all() and effects["hl_estimate"].notna().all()
