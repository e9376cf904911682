"""The repeats advisor: simulated power of the exact Wilcoxon + Holm, checked against independent simulations."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import wilcoxon

from functions.analysis import power, stats


def _normal(rng, shape):
    """Known paired differences: N(0.5, 1), continuous, so no ties and scipy's exact test applies."""
    return rng.normal(0.5, 1.0, shape)


def _scipy_power(n, n_sim, threshold, seed):
    """Power by an independent simulation: scipy's exact Wilcoxon (vectorised over rows), significant when
    p < threshold."""
    draws = np.random.default_rng(seed).normal(0.5, 1.0, (n_sim, n))
    return np.mean(wilcoxon(draws, axis=1, method="exact").pvalue < threshold)


@pytest.mark.parametrize("n, family_size", [(8, 1), (12, 1), (12, 3), (24, 1)])
def test_power_of_a_normal_shift_matches_scipy(n, family_size):
    # 24 > 20 differences: the simulation uses the normal approximation, still within the tolerance of the
    # exact test's power; with a family of 3 (the other two never significant) Holm asks p < alpha/3.
    curve = power.power_curve(sampler=_normal, n_values=(n,), n_sim=3000, seed=1, family_size=family_size)
    expected = _scipy_power(n, 3000, 0.05 / family_size, seed=99)
    row = curve.iloc[0]
    assert row["power"] == pytest.approx(expected, abs=0.045)  # two Monte-Carlo errors of ≈ 0.009 each
    assert row["p_method"] == ("normal" if n > 20 else "exact") and row["family_size"] == family_size
    assert row["effect"] == pytest.approx(0.5, abs=0.05) and row["effect_kind"] == "sampler"


def test_holm_rows_is_the_packages_holm():
    p = np.random.default_rng(3).uniform(0, 0.2, (50, 4))
    np.testing.assert_allclose(power.holm_rows(p), np.vstack([stats.holm(row) for row in p]))
    # arms not simulated count as never significant (p = 1) in a family of 6
    padded = np.hstack([p, np.ones((50, 2))])
    np.testing.assert_allclose(power.holm_rows(p, 6), np.vstack([stats.holm(row) for row in padded])[:, :4])
    with pytest.raises(ValueError, match="family_size"):
        power.holm_rows(p, 3)


def test_simulated_exact_p_is_the_studys_test():
    d = np.random.default_rng(5).integers(-3, 4, (40, 9)) / 1000  # accuracy-like: ties and zeros
    p, method = power.simulated_p(d)
    assert method == "exact"
    np.testing.assert_allclose(p, [stats.signed_rank_test(row)["p"] for row in d])
    # the normal approximation (> 20 differences only) is close to the Monte-Carlo test
    wide = np.random.default_rng(6).integers(-5, 9, (5, 30)) / 1000
    approx, method = power.simulated_p(wide)
    assert method == "normal"
    np.testing.assert_allclose(approx, [stats.signed_rank_test(row)["p"] for row in wide], atol=0.01)


def test_joint_family_power_lies_between_bonferroni_and_a_single_test():
    rng = np.random.default_rng(0)
    weak = np.round(rng.normal(0.004, 0.01, 12), 3)
    strong = np.round(rng.normal(0.05, 0.01, 12), 3)
    kwargs = dict(n_values=(8, 16), n_sim=600, seed=2)
    single = power.power_curve(weak, **kwargs)["power"].to_numpy()
    bonferroni = power.power_curve(weak, family_size=2, **kwargs)["power"].to_numpy()
    joint = power.power_curve({"cut 1": weak, "cut 2": strong}, arm="cut 1", **kwargs)["power"].to_numpy()
    # the same seed draws the same repeats, so the comparison holds simulation by simulation
    assert np.all(bonferroni <= joint) and np.all(joint <= single)
    assert np.any(bonferroni < single)
    both = power.power_curve({"cut 1": weak, "cut 2": strong}, **kwargs)
    assert list(both["arm"].unique()) == ["cut 1", "cut 2"]
    np.testing.assert_allclose(both.loc[both["arm"] == "cut 1", "power"], joint)


def test_power_at_n_does_not_depend_on_the_grid_and_curves_rise():
    d = np.round(np.random.default_rng(1).normal(0.006, 0.01, 10), 3)
    grid = power.power_curve(d, n_values=(4, 8, 16, 32), n_sim=500)
    alone = power.power_curve(d, n_values=(16,), n_sim=500)
    assert alone["power"].iloc[0] == grid.loc[grid["n"] == 16, "power"].iloc[0]
    assert grid["power"].iloc[0] == 0.0  # 4 repeats: the smallest p is 2**-3 > 0.05
    assert grid["power"].is_monotonic_increasing
    assert grid["effect"].iloc[0] == pytest.approx(np.median(d))


def test_repeats_needed_for_the_observed_and_a_named_effect():
    d = np.round(np.random.default_rng(4).normal(0.004, 0.01, 10), 3)
    n_values = (6, 8, 12, 16, 24, 32, 48, 64)
    observed = power.power_curve(d, n_values=n_values, n_sim=400)
    named = power.power_curve(d, n_values=n_values, n_sim=400, effect=0.02)
    assert named["effect"].eq(0.02).all() and named["effect_kind"].eq("named").all()
    needed, needed_named = power.repeats_needed(observed), power.repeats_needed(named)
    assert needed_named is not None and needed_named < (needed or 10**6)
    first = observed.loc[observed["power"] >= 0.8, "n"]
    assert needed == (int(first.min()) if len(first) else None)
    hopeless = power.power_curve(d - np.median(d), n_values=(6, 8), n_sim=200)  # no effect at all
    assert power.repeats_needed(hopeless) is None
    with pytest.raises(ValueError, match="arm"):
        power.repeats_needed(pd.concat([observed, observed.assign(arm="other")]))


def _frame(repeats=10, seed=0):
    """Accuracy on a 1/1000 grid (so differences tie), cut 1 about +0.5 points, cut 2 about +3 points."""
    rng = np.random.default_rng(seed)
    base = 0.9 + rng.normal(0, 0.01, repeats)
    rows = []
    for arm, gain in (("baseline", 0.0), ("cut 1", 0.005), ("cut 2", 0.03)):
        for r in range(repeats):
            acc = np.round(base[r] + gain + rng.normal(0, 0.006 if gain else 0), 3)
            rows.append({"study": "S", "fraction": 0.01, "arm": arm, "repeat": r, "test_acc": acc})
    other = pd.DataFrame(rows).assign(fraction=0.1)
    return pd.concat([pd.DataFrame(rows), other], ignore_index=True)


def test_advisor_table_per_arm():
    df = _frame()
    curves = power.family_curves(df, "S", 0.01, effect=0.01, n_values=(6, 12, 24, 48), n_sim=300)
    table = power.advise_repeats(df, "S", 0.01, effect=0.01, curves=curves)
    assert list(table["arm"]) == ["cut 1", "cut 2"]
    assert {"median_gain", "p", "p_holm", "power_now", "repeats_needed", "repeats_for_named", "advice"} <= set(table)
    effects = stats.effect_vs_baseline(df[df["fraction"] == 0.01]).set_index("arm")
    np.testing.assert_allclose(table["p_holm"], effects.loc[["cut 1", "cut 2"], "p_holm"])  # the verdict's family
    np.testing.assert_allclose(table["median_gain"], effects.loc[["cut 1", "cut 2"], "median_diff"])
    assert (table["n_joint"] == 10).all() and 10 in set(curves["n"])
    cut2 = table.set_index("arm").loc["cut 2"]
    assert cut2["power_now"] > 0.9 and cut2["repeats_needed"] <= 12
    observed = curves[(curves["arm"] == "cut 1") & (curves["effect_kind"] == "observed")]
    expected = power.repeats_needed(observed)
    cut1 = table.set_index("arm").loc["cut 1"]
    assert (pd.isna(cut1["repeats_needed"]) and expected is None) or cut1["repeats_needed"] == expected
    gain = f"{100 * cut1['median_gain']:+.1f} points at 1 %"
    assert cut1["advice"].startswith(f"cut 1: to confirm the {gain} you need ")
    assert "with 10 repeats" in cut1["advice"] and "for +1.0 points" in cut1["advice"]
    # computing the curves inside gives the same table
    pd.testing.assert_frame_equal(table, power.advise_repeats(df, "S", 0.01, effect=0.01, n_values=(6, 12, 24, 48),
                                                              n_sim=300))


def test_power_figure_draws_one_line_per_curve():
    curves = power.family_curves(_frame(), "S", 0.01, effect=0.01, n_values=(6, 12), n_sim=100)
    fig = power.power_figure(curves)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 4 + 1  # 2 arms × (observed, named) + the 80 % line
    assert ax.get_lines()[-1].get_ydata()[0] == 0.8
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="one length"):
        power.power_curve({"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2]})
    with pytest.raises(ValueError, match="NaN"):
        power.power_curve({"a": [0.1, np.nan, 0.3]})
    with pytest.raises(ValueError, match="arm 'cut 9'"):
        power.power_curve({"a": [0.1, 0.2]}, arm="cut 9")
    with pytest.raises(ValueError, match="effect"):
        power.power_curve(sampler=_normal, effect=0.3)
    with pytest.raises(ValueError, match="n_values"):
        power.power_curve([0.1, 0.2], n_values=(0, 4))
    with pytest.raises(ValueError, match="shape"):
        power.power_curve(sampler=lambda rng, shape: rng.normal(size=3), n_values=(4,), n_sim=10)
    df = _frame()
    with pytest.raises(ValueError, match="ambiguous"):
        power.family_differences(pd.concat([df, df]), "S", 0.01)
    with pytest.raises(ValueError, match="fraction"):
        power.family_differences(df, "S", 0.5)
    with pytest.raises(ValueError, match="baseline"):
        power.family_differences(df, "S", 0.01, baseline="scratch")
