"""One arm, one place: arms that are the same network and training are recognised from the registry."""
import pandas as pd
import pytest

from functions.analysis.results import merge_equivalent_arms
from functions.engine.conditions import arm_signature, equivalent_arms


@pytest.mark.parametrize("a, b", [
    (("FR", 4), ("FT", 4)), (("FR", 4), ("head_only", 4)), (("AnB", 4), ("surgical", 4)),
    (("full_finetune", 4), ("AnB+", 4)), (("baseline", -1), ("UR", 0)), (("FR", 2), ("AnB", 2)),
    (("FT", 0), ("UT", 0))])
def test_the_same_network_and_training_has_one_signature(a, b):
    assert arm_signature(*a, n_blocks=4) == arm_signature(*b, n_blocks=4)


@pytest.mark.parametrize("a, b", [
    (("FR", 3), ("FT", 3)), (("FR", 4), ("UR", 4)), (("AnB", 2), ("BnB", 2)), (("FR", 2), ("stats_FR", 2)),
    (("stats_FR", 2), ("shuffled_FR", 2)), (("random_frozen", 4), ("head_only", 4)), (("surgical", 1), ("F", 1))])
def test_different_arms_have_different_signatures(a, b):
    assert arm_signature(*a, n_blocks=4) != arm_signature(*b, n_blocks=4)


def test_equivalent_arms_groups_in_the_given_order():
    groups = equivalent_arms([("FR", 4), ("FT", 4), ("FT", 3), ("head_only", 4)], n_blocks=4)
    assert groups == [[("FR", 4), ("FT", 4), ("head_only", 4)], [("FT", 3)]]


def test_merged_arms_are_kept_once_with_all_their_names():
    rows = []
    for r in range(3):
        rows.append(dict(study="s", condition="baseline", cut=-1, fraction=0.1, repeat=r, test_acc=0.5))
        for k in (1, 2):
            rows += [dict(study="s", condition=c, cut=k, fraction=0.1, repeat=r, test_acc=0.6 + 0.1 * k)
                     for c in ("FR", "FT")]
    merged = merge_equivalent_arms(pd.DataFrame(rows))
    assert len(merged) == len(rows) - 3  # FT cut 2 is FR cut 2 in every repeat
    twins = merged[merged["same_as"].notna()]
    assert set(twins["condition"]) == {"FR"} and set(twins["cut"]) == {2}
    assert set(twins["same_as"]) == {"FR cut 2 = FT cut 2"}
    assert len(merged[(merged["condition"] == "FT") & (merged["cut"] == 1)]) == 3  # FT cut 1 is its own arm
