"""The residual family: blocks = stem + residual pairs, CustomCNN's interface, cuts that count blocks."""
import pytest
import torch

from functions.engine.architectures import block_count, blocks_for_depth
from functions.engine.conditions import RunSpec
from functions.engine.config import StudyConfig
from functions.engine.networks import ResNet, cut, new_model
from functions.engine.study import Study


def resnet(depth=5, **kw):
    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=16, num_classes=5, depth=depth, num_channels=6)
    args.update(kw)
    return ResNet(**args)


def same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("depth,blocks,pools", [(3, 2, 1), (5, 3, 2), (7, 4, 3)])
def test_blocks_count_stem_plus_residual_pairs(depth, blocks, pools):
    m = resnet(depth)
    assert m.depth == blocks == blocks_for_depth(depth)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert len(convs) == depth
    assert sum(getattr(b, "pool", None) is not None for b in m.blocks) == pools
    assert m(torch.zeros(2, 1, 16, 16)).shape == (2, 5)
    assert m.head.fc.in_features == m.head_in_features() == 6  # global average pooling: one per channel


@pytest.mark.parametrize("depth", [1, 2, 4, 6, 9])
def test_other_depths_are_rejected_with_the_allowed_values(depth):
    with pytest.raises(ValueError, match=r"allowed: \[3, 5, 7\]"):
        resnet(depth)


def test_interface_matches_customcnn():
    m = resnet(7)
    x = torch.randn(3, 1, 16, 16)
    outs = m.block_outputs(x)
    assert len(outs) == m.depth and outs[-1].shape == (3, 6, 2, 2)  # 16 → 8 → 4 → 2
    for k in range(1, m.depth + 1):
        assert torch.allclose(m.forward_from(outs[k - 1], k), m(x), atol=1e-6)
    assert torch.allclose(m.head.fc(m.head_input(x)), m(x), atol=1e-6)
    assert m.num_classes == 5 and m.make_head(3).fc.out_features == 3


def test_zero_residual_branch_is_the_identity():
    m = resnet(3, use_pooling=False)
    block = m.blocks[1]
    with torch.no_grad():
        block.conv_2.weight.zero_()
        block.conv_2.bias.zero_()
    h = torch.randn(2, 6, 16, 16)
    assert torch.equal(block(h), torch.relu(h))


def test_cut_keeps_prefix_reinitialises_suffix_and_truncates():
    m = resnet(7)
    c = cut(m, 2, 3, freeze=True, reinit=True, seed=1)
    assert same(c.blocks[0], m.blocks[0]) and same(c.blocks[1], m.blocks[1])
    assert not same(c.blocks[2], m.blocks[2]) and c.num_classes == 3
    assert not any(p.requires_grad for p in c.blocks[:2].parameters())
    assert all(p.requires_grad for p in c.blocks[2:].parameters())
    t = cut(m, 2, 3, truncate=True)
    assert t.depth == 2 and t(torch.zeros(1, 1, 16, 16)).shape == (1, 3)


def test_train_and_eval_give_the_same_output():
    """No batch norm: a frozen block computes the same function while training (the cache relies on it)."""
    m = resnet(5)
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(m.train()(x), m.eval()(x))


def digits_config(tmp_path, **kw):
    settings = dict(source_dataset="digits", target_dataset="digits", architecture="ResNet", depth=5,
                    num_channels=4, pooling_every_n_layers=2, num_train=2, early_stop_patience=2,
                    batch_size=64, lr_pretrain=3e-3, lr_fine_tune=3e-3, percentages=[0.3], repeats=1,
                    train_limit=None, test_limit=None, results_dir=str(tmp_path / "results"),
                    pretrained_dir=str(tmp_path / "pretrained"))
    settings.update(kw)
    return StudyConfig.from_profile("smoke", **settings)


def test_config_builds_a_resnet_and_cuts_count_blocks(tmp_path):
    cfg = digits_config(tmp_path)
    assert isinstance(new_model(cfg, 5), ResNet) and block_count(cfg) == 3
    assert block_count(cfg.replace(architecture="CustomCNN")) == 5
    with pytest.raises(ValueError, match="ResNet"):
        new_model(cfg.replace(depth=4), 5)


def test_every_condition_runs_on_a_resnet(tmp_path):
    s = Study(digits_config(tmp_path), root=tmp_path, verbose=False)
    specs = s.plan(("baseline", "AnB", "BnB+", "surgical", "head_only"))
    cuts = {name: sorted({x.cut for x in specs if x.condition == name}) for name in
            ("AnB", "BnB+", "surgical", "head_only")}
    assert cuts == {"AnB": [1, 2, 3], "BnB+": [1, 2, 3], "surgical": [0, 1, 2, 3], "head_only": [3]}
    df = s.run(("baseline", "AnB", "surgical"), progress=False)
    assert len(df) == 1 + 3 + 4 and df["test_acc"].between(0, 1).all()
    # the frozen-prefix cache gives the same run as computing the prefix on the fly
    (_, cached), = list(s.iter_group([RunSpec("AnB", 0.3, 2, 0)]))
    plain = s.run_one(RunSpec("AnB", 0.3, 2, 0), cache=None)
    assert cached["test_acc"] == pytest.approx(plain["test_acc"], abs=0.02)
