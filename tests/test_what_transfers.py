"""What transfers: statistics-matched and shuffled-weight sources, block-shuffled target images."""
import pytest
import torch

from functions.engine.conditions import CONDITIONS, RunSpec
from functions.engine.controls import shuffled_weights, statistics_matched
from functions.engine.transforms import block_permutation, block_shuffle
from functions.engine.errors import ConfigError
from functions.engine.study import Study


@pytest.fixture(scope="module")
def study(tmp_path_factory, digits_config):
    root = tmp_path_factory.mktemp("what_transfers")
    s = Study(digits_config(root, num_channels=16, num_train=3), root=root, verbose=False)
    _ = s.pretrained
    return s


def _pairs(a, b):
    return zip([p for blk in a.blocks for p in blk.parameters()], [p for blk in b.blocks for p in blk.parameters()])


def test_statistics_matched_blocks_keep_each_layers_mean_and_std(study):
    pretrained = study.pretrained
    matched = statistics_matched(pretrained, seed=3)
    for real, drawn in _pairs(pretrained, matched):
        assert real.shape == drawn.shape and not torch.equal(real, drawn)
        n = real.numel()
        if n < 1000:  # a few bias values: too few to compare sample statistics
            continue
        sd = real.std(unbiased=False).item()
        assert abs(drawn.mean().item() - real.mean().item()) < 4 * sd / n ** 0.5
        assert drawn.std(unbiased=False).item() == pytest.approx(sd, rel=0.1)
    again = statistics_matched(pretrained, seed=3)
    assert all(torch.equal(a, b) for a, b in _pairs(matched, again))  # seeded


def test_shuffled_weights_keep_the_multiset_of_every_tensor(study):
    pretrained = study.pretrained
    shuffled = shuffled_weights(pretrained, seed=5)
    moved = 0
    for real, perm in _pairs(pretrained, shuffled):
        assert torch.equal(torch.sort(real.reshape(-1)).values, torch.sort(perm.reshape(-1)).values)
        moved += int(not torch.equal(real, perm))
    assert moved == len(list(_pairs(pretrained, shuffled)))


def test_block_shuffle_is_one_fixed_bijection_of_pixels():
    images = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    out = block_shuffle(images, grid=4, seed=7)
    assert torch.equal(torch.sort(out.reshape(2, -1)).values, torch.sort(images.reshape(2, -1)).values)
    # the same pixel mapping for every image: image 1 is image 0 + 784 before and after
    assert torch.equal(out[1] - out[0], torch.full_like(out[0], 784))
    assert not torch.equal(out, images)
    # a 7×7 block moves intact: the top-left block of the output is some block of the input
    order = block_permutation(4, 7)
    src = int(order[0])
    r, c = divmod(src, 4)
    assert torch.equal(out[0, 0, :7, :7], images[0, 0, 7 * r:7 * r + 7, 7 * c:7 * c + 7])
    with pytest.raises(ValueError, match="grid"):
        block_shuffle(images, grid=5, seed=7)


def test_controls_are_registered_conditions_sharing_crn_with_fr(study):
    for name in ("stats_FR", "stats_UR", "shuffled_FR"):
        assert name in CONDITIONS and CONDITIONS[name].description
    k = 1
    fr = study.build_model(RunSpec("FR", 0.5, k, 0))
    for name in ("stats_FR", "shuffled_FR", "stats_UR"):
        control = study.build_model(RunSpec(name, 0.5, k, 0))
        for j in range(k, fr.depth):  # fresh blocks after the cut: the same tensors as FR's (CRN)
            for a, b in zip(fr.blocks[j].parameters(), control.blocks[j].parameters()):
                assert torch.equal(a, b)
        assert torch.equal(fr.head.fc.weight, control.head.fc.weight)
        assert not torch.equal(fr.blocks[0].conv.weight, control.blocks[0].conv.weight)
    assert not study.build_model(RunSpec("stats_FR", 0.5, k, 0)).blocks[0].conv.weight.requires_grad
    assert study.build_model(RunSpec("stats_UR", 0.5, k, 0)).blocks[0].conv.weight.requires_grad
    row = study.run_one(RunSpec("stats_FR", 0.5, 2, 0))
    assert row["condition"] == "stats_FR" and 0 <= row["test_acc"] <= 1


def test_block_shuffled_targets_are_their_own_study(study, digits_config, tmp_path):
    cfg = study.cfg.replace(target_block_shuffle=4)
    shuffled = Study(cfg, root=study.root, verbose=False)
    assert shuffled.store_path() != study.store_path()
    assert "blocks shuffled 4x4" in cfg.study_name()
    x, x_shuffled = study.target.x_test, shuffled.target.x_test
    assert not torch.equal(x, x_shuffled)
    assert torch.equal(torch.sort(x.reshape(len(x), -1)).values, torch.sort(x_shuffled.reshape(len(x), -1)).values)
    assert torch.equal(study.source.x_train, shuffled.source.x_train)  # pretraining images untouched
    with pytest.raises(ConfigError, match="target_block_shuffle"):
        study.cfg.replace(target_block_shuffle=5).validate(check_data=False)


def _synthetic_rows(n=10):
    """Baseline, FR, stats_FR at cuts 1–2 with known per-repeat accuracies."""
    import pandas as pd

    rng = torch.Generator().manual_seed(0)
    rows = []
    for r in range(n):
        base = 0.70 + 0.01 * float(torch.rand(1, generator=rng))
        rows.append(dict(study="s", fraction=0.01, condition="baseline", cut=-1, repeat=r, test_acc=base))
        for k in (1, 2):
            stats_acc = base + 0.02 * k + 0.001 * r  # statistics reach 2k points (+ noise)
            rows.append(dict(study="s", fraction=0.01, condition="stats_FR", cut=k, repeat=r, test_acc=stats_acc))
            rows.append(dict(study="s", fraction=0.01, condition="FR", cut=k, repeat=r,
                             test_acc=stats_acc + 0.03 + 0.0005 * r))  # features add 3 points more
    return pd.DataFrame(rows)


def test_decomposition_splits_each_gain_into_statistics_and_features():
    from functions.analysis.what_transfers import decomposition, shares, verdict

    table = decomposition(_synthetic_rows())
    at2 = table[table["cut"] == 2].set_index("component")
    assert at2.loc["statistics part", "median_diff"] == pytest.approx(0.04 + 0.001 * 4.5, abs=1e-9)
    assert at2.loc["feature part", "median_diff"] == pytest.approx(0.03 + 0.0005 * 4.5, abs=1e-9)
    # every component at every cut is one family: 3 components × 2 cuts, all 10 differences positive
    assert len(table) == 6 and table["significant"].all()
    assert table["p_holm"].max() == pytest.approx(min(1.0, 6 * 2 / 2 ** 10))
    share = shares(table).set_index("cut").loc[2, "statistics_share"]
    assert 0.5 < share < 0.7
    text = verdict(table)
    assert "cut 2" in text and "+4.5 points ✓" in text and "+3.2 points ✓" in text
    assert "shuffled weights" not in text  # a control that was not run is left out, not reported as a number
    assert "Reading: both weight statistics and feature reuse" in text


def test_the_gain_source_follows_the_marks_of_the_components():
    import pandas as pd

    from functions.analysis.what_transfers import SHUFFLED_IMAGES, gain_source

    def at(**cells):  # component -> (median_diff, significant)
        return pd.DataFrame([{"component": c.replace("_", " "), "median_diff": d, "significant": s}
                             for c, (d, s) in cells.items()]).set_index("component")

    assert gain_source(at(total_gain=(0.01, False))) == "no significant gain to split"
    # the pretrained blocks' gain is lost in the family's correction while random blocks of their statistics
    # beat the baseline: that is an answer too, not "nothing to split"
    alone = gain_source(at(total_gain=(0.05, False), statistics_part=(0.06, True), feature_part=(-0.01, False),
                           **{"statistics,_fine-tuned": (0.05, True)}))
    assert alone.startswith("weight statistics") and "(frozen and fine-tuned)" in alone
    assert "block-shuffled" not in alone
    assert "do beat it" in gain_source(at(total_gain=(0.05, False), statistics_part=(0.06, True),
                                          **{SHUFFLED_IMAGES.replace(" ", "_"): (0.05, True)}))
    assert gain_source(at(total_gain=(0.05, False), statistics_part=(0.06, False))) == "no significant gain to split"
    assert gain_source(at(total_gain=(-0.05, True))) == "no significant gain to split"  # a significant loss
    assert gain_source(at(total_gain=(0.1, True), statistics_part=(0.02, False),
                      feature_part=(0.09, True))).startswith("feature reuse")
    assert gain_source(at(total_gain=(0.05, True), statistics_part=(0.06, True),
                      feature_part=(-0.01, False))).startswith("weight statistics")
    assert "cannot be split yet" in gain_source(at(total_gain=(0.05, True)))
    cells = dict(total_gain=(0.1, True), statistics_part=(0.0, False), feature_part=(0.1, True))
    survives = at(**cells, **{SHUFFLED_IMAGES.replace(" ", "_"): (0.1, True)})
    assert "survives block-shuffled images" in gain_source(survives)
    lost = at(**cells, **{SHUFFLED_IMAGES.replace(" ", "_"): (0.01, False)})
    assert "does not survive block-shuffled images" in gain_source(lost)


def test_block_shuffled_rows_join_the_family_of_their_study():
    from functions.analysis.what_transfers import SHUFFLED_IMAGES, decomposition

    plain = _synthetic_rows()
    shuffled = plain[plain["condition"] != "stats_FR"].assign(study="s (blocks shuffled 4x4)")
    table = decomposition(plain, shuffled_images=shuffled)
    assert set(table["study"]) == {"s"}
    assert (table["component"] == SHUFFLED_IMAGES).sum() == 2 and len(table) == 8
