"""Protocol-sensitivity analysis on synthetic rows with known gains."""
import numpy as np
import pandas as pd
import pytest

from functions.analysis import protocols

STUDY = "MNIST[0-4]->MNIST[5-9]"


def synthetic_rows(n_repeats=10, gains=None, seed=0):
    """Rows of two protocols: cut 2 gains ``gains[protocol]`` over the baseline in every repeat (± noise
    that keeps the sign); cut 1 gains nothing (differences alternate in sign)."""
    gains = gains or {"original": 0.10, "realistic": 0.04}
    rng = np.random.default_rng(seed)
    rows = []
    for protocol, gain in gains.items():
        for repeat in range(n_repeats):
            base = 0.6 + 0.05 * rng.random()
            accs = {"baseline": base, "cut 1": base + (0.01 if repeat % 2 else -0.01) * (1 + repeat),
                    "cut 2": base + gain + 0.004 * (rng.random() - 0.5)}
            for arm, acc in accs.items():
                cut = -1 if arm == "baseline" else int(arm.split()[-1])
                rows.append({"study": STUDY, "protocol": protocol, "n_val": 5, "fraction": 0.001,
                             "repeat": repeat, "arm": arm, "cut": cut, "test_acc": acc, "steps": 500,
                             "best_step": 100, "epochs": 20, "n_train": 20, "seconds": 1.0 if protocol ==
                             "original" else 0.5})
    df = pd.DataFrame(rows)
    df["protocol_variant"] = df["protocol"]  # the engine writes each row's variant label
    return df


def test_variant_labels_are_the_engines():
    """The engine writes the label (``functions.engine.protocols.variant_of``); rows without one are the
    original protocol's (the original study's files, stores from before protocols existed)."""
    df = pd.DataFrame({"protocol_variant": ["realistic, tuned lr", None, "fixed budget"]})
    assert list(protocols.protocol_variant(df)) == ["realistic, tuned lr", "original", "fixed budget"]
    assert list(protocols.protocol_variant(pd.DataFrame({"protocol": ["steps"]}))) == ["original"]


def test_gains_are_paired_within_a_protocol():
    gains = protocols.transfer_gains(synthetic_rows(), n_boot=500).set_index(["protocol_variant", "arm"])
    assert gains.loc[("original", "cut 2"), "gain_points"] == pytest.approx(10, abs=0.3)
    assert gains.loc[("realistic", "cut 2"), "gain_points"] == pytest.approx(4, abs=0.3)
    assert gains.loc[("original", "cut 2"), "significant"]  # 10 positive pairs: exact p = 2/1024, Holm ×2
    assert not gains.loc[("original", "cut 1"), "significant"]


def test_gain_shift_is_the_paired_change_between_protocols():
    shift = protocols.gain_shift(synthetic_rows(), n_boot=500).set_index("arm")
    assert shift.loc["cut 2", "median_shift"] == pytest.approx(-0.06, abs=0.003)
    assert shift.loc["cut 2", "significant"]
    assert shift.loc["cut 1", "median_shift"] == pytest.approx(0, abs=1e-9)


def test_verdict_and_table_use_the_computed_numbers():
    df = synthetic_rows()
    gains = protocols.transfer_gains(df, n_boot=500)
    shift = protocols.gain_shift(df, n_boot=500)
    text = protocols.verdict(gains, shift)
    g = gains.set_index(["protocol_variant", "arm"])
    assert f"  - `original`: {g.loc[('original', 'cut 2'), 'gain_points']:+.1f} points" in text
    assert f"  - `realistic`: {g.loc[('realistic', 'cut 2'), 'gain_points']:+.1f} points" in text
    assert "The significant gain under `original` survives `realistic`" in text
    table = protocols.summary_frame(gains)
    assert table.loc[(STUDY, 0.001, "cut 2"), "original"].endswith("✓")
    assert not table.loc[(STUDY, 0.001, "cut 1"), "original"].endswith("✓")


def test_gain_disappearing_under_the_fair_protocol_is_reported():
    df = synthetic_rows(gains={"original": 0.10, "realistic": 0.0})
    text = protocols.verdict(protocols.transfer_gains(df, n_boot=200), protocols.gain_shift(df, n_boot=200))
    # words follow the numbers: the gain shrinks to nothing and is no longer significant
    assert "The gain shrinks and is no longer significant under `realistic`" in text


def test_without_a_gain_under_the_reference_nothing_survives():
    df = synthetic_rows(gains={"original": 0.0, "realistic": 0.05})
    text = protocols.verdict(protocols.transfer_gains(df, n_boot=200), protocols.gain_shift(df, n_boot=200))
    assert "With no significant gain under `original` there is no gain to survive; `realistic` finds a " \
           "significant gain" in text
    assert "survives" not in text


def test_a_significant_loss_is_called_a_loss():
    df = synthetic_rows(gains={"original": 0.10, "realistic": -0.05})
    text = protocols.verdict(protocols.transfer_gains(df, n_boot=200))
    assert "significant gain under `original`; significant loss under `realistic`." in text
    assert "The significant gain under `original` reverses into a significant loss under `realistic`." in text


def test_budget_and_wall_time_tables():
    df = synthetic_rows()
    budget = protocols.budget_table(df)
    assert set(budget["steps"]) == {500} and budget["runs"].max() == 10
    overview = protocols.budget_overview(df.assign(steps=[5 if r % 3 == 0 else 500 for r in df["repeat"]]))
    assert list(overview["protocol_variant"]) == ["original", "realistic"]
    assert list(overview.columns[-3:]) == ["steps baseline", "steps cut 1", "steps cut 2"]
    assert overview["runs"].tolist() == [30, 30] and overview["< 50 steps"].tolist() == [12, 12]
    walls = protocols.wall_times(df).set_index("protocol_variant")
    assert walls.loc["realistic", "seconds_per_run_vs_original"] == pytest.approx(0.5)
    starved = protocols.starved_runs(df.assign(steps=[5 if r % 3 == 0 else 500 for r in df["repeat"]]))
    assert starved["starved"].sum() == 3 * 4 * 2  # repeats 0, 3, 6, 9 × 3 arms × 2 protocols


def test_gain_figure_draws_one_panel_per_fraction():
    fig = protocols.gain_figure(protocols.transfer_gains(synthetic_rows(), n_boot=200))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1


def test_verdict_names_every_fair_protocol_and_its_shift():
    base = synthetic_rows(gains={"original": 0.10, "realistic": 0.04})
    tuned = synthetic_rows(gains={"realistic": 0.0}, seed=1).assign(protocol_variant="realistic, tuned lr")
    df = pd.concat([base, tuned], ignore_index=True)
    gains = protocols.transfer_gains(df, n_boot=200)
    shift = protocols.gain_shifts(df, n_boot=200)
    assert set(shift["comparison"]) == {"realistic − original", "realistic, tuned lr − original"}
    text = protocols.verdict(gains, shift)
    assert ("The significant gain under `original` survives `realistic`: it moves by -5.9 points from `original` "
            "to `realistic`") in text
    assert "The gain shrinks and is no longer significant under `realistic, tuned lr`: it moves by -10.0 points" in text


def test_a_label_with_a_comma_stays_readable_in_the_verdict():
    """Issue 21: "Significant gain under: original, steps, realistic, fixed budget, realistic, tuned lr" could
    not be parsed. Each label is quoted, and each protocol has a line of its own."""
    base = synthetic_rows(gains={"original": 0.10, "realistic": 0.06})
    tuned = synthetic_rows(gains={"realistic": 0.05}, seed=1).assign(protocol_variant="realistic, tuned lr")
    df = pd.concat([base, tuned], ignore_index=True)
    text = protocols.verdict(protocols.transfer_gains(df, n_boot=200))
    assert "significant gain under `original`, `realistic`, `realistic, tuned lr`." in text
    assert [line.split(":")[0] for line in text.splitlines() if line.startswith("  - `")] == [
        "  - `original`", "  - `realistic`", "  - `realistic, tuned lr`"]


def test_shift_table_is_in_points_and_per_cent():
    shift = protocols.gain_shifts(synthetic_rows(), n_boot=200)
    table = protocols.shift_table(shift).set_index("cut")
    assert table.loc["cut 2", "shift (points)"] == pytest.approx(-6.0, abs=0.3)  # the verdict's unit
    assert table.loc["cut 2", "fraction"] == "0.1 %" and table.loc["cut 2", "✓"] == "✓"
    assert table.loc["cut 2", "interval (points)"].startswith(("95 % CI -", "n too small"))
    assert protocols.shift_table(pd.DataFrame()).empty


def test_chosen_learning_rates_count_the_tuned_runs_only():
    tuned = synthetic_rows(gains={"realistic": 0.02}).assign(protocol_variant="realistic, tuned lr")
    tuned["lr"] = [3e-3 if arm == "baseline" else 1e-3 for arm in tuned["arm"]]
    df = pd.concat([synthetic_rows(gains={"original": 0.1}), tuned], ignore_index=True)
    table = protocols.chosen_learning_rates(df)
    assert list(table.index.get_level_values("arm")) == ["baseline", "cut 1", "cut 2"]
    assert table.loc[(STUDY, "realistic, tuned lr", 0.001, "baseline"), "lr 0.003"] == 10
    assert table.loc[(STUDY, "realistic, tuned lr", 0.001, "cut 2"), "lr 0.001"] == 10
    assert protocols.chosen_learning_rates(synthetic_rows()).empty
