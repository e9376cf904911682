"""Gain shifts between protocols: one joint Holm family per study, and protocol vs data split in steps."""
import numpy as np
import pandas as pd
import pytest

from functions.analysis import protocols, stats


def _rows(gains: dict[str, float], n: int = 8) -> pd.DataFrame:
    """baseline + cut 1 per repeat under each variant; cut 1's gain = gains[variant] + a small repeat term."""
    rows = []
    for variant, gain in gains.items():
        for r in range(n):
            base = 0.6 + 0.01 * r
            rows.append(dict(study="s", protocol_variant=variant, fraction=0.01, arm="baseline", repeat=r,
                             test_acc=base))
            rows.append(dict(study="s", protocol_variant=variant, fraction=0.01, arm="cut 1", repeat=r,
                             test_acc=base + gain + 0.001 * r))
    return pd.DataFrame(rows)


def test_shift_families_are_joint_over_comparisons():
    df = _rows({"original": 0.10, "realistic": 0.05, "realistic, tuned lr": 0.04})
    table = protocols.gain_shifts(df)
    assert len(table) == 2
    # each shift is constant-sign over 8 repeats: exact p = 2/2^8; Holm over both comparisons doubles it
    assert table["p"].tolist() == pytest.approx([2 / 2 ** 8] * 2)
    assert table["p_holm"].tolist() == pytest.approx([2 * 2 / 2 ** 8] * 2)
    assert table["median_shift"].tolist() == pytest.approx([-0.05, -0.06])
    assert np.isfinite(table["low"]).all() and (table["high"] < 0).all()


def test_protocol_vs_data_separates_budget_from_carving():
    df = _rows({"original": 0.10, "steps": 0.08, "fixed budget": 0.07, "realistic": 0.05})
    table = protocols.protocol_vs_data_shifts(df)
    assert list(zip(table["kind"], table["comparison"])) == [
        ("same images", "steps − original"), ("same images", "fixed budget − steps"),
        ("carved validation", "realistic − fixed budget")]
    assert table["median_shift"].tolist() == pytest.approx([-0.02, -0.01, -0.02])
    assert table["p_holm"].tolist() == pytest.approx(stats.holm(table["p"]).tolist())


def test_what_changed_compares_only_cuts_both_protocols_ran():
    from functions.analysis.findings_protocols import change_text, original_vs_default_table

    original = pd.Series({"gains": (2, 3, 4), "losses": ()})
    default = pd.Series({"gains": (3,), "losses": ()})
    assert change_text(original, default) == "significant gain no longer significant at cut 2, 4"
    assert change_text(original, default, cuts=(1, 2, 3)) == "significant gain no longer significant at cut 2"
    assert change_text(original, original) == "same ✓ cuts"
    rows = []
    for variant, cuts, gain in (("original", (1, 2), 0.10), ("realistic, tuned lr", (1,), 0.10)):
        for r in range(8):
            rows.append(dict(study="s", condition="baseline", cut=-1, arm="baseline", fraction=0.01, repeat=r,
                             test_acc=0.5 + 0.01 * r, protocol_variant=variant))
            rows += [dict(study="s", condition="FR", cut=k, arm=f"cut {k}", fraction=0.01, repeat=r,
                          test_acc=0.5 + 0.01 * r + gain + 0.001 * r, protocol_variant=variant) for k in cuts]
    df = pd.DataFrame(rows)
    table = original_vs_default_table(df[df["protocol_variant"] == "original"],
                                      df[df["protocol_variant"] != "original"], n_boot=100, seed=0)
    assert table["compared_cuts"].tolist() == [(1,)] and table["change"].tolist() == ["same ✓ cuts"]
