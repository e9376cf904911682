"""Cut semantics: kept / re-initialised / truncated blocks, new head, freezing through the optimizer."""
import pytest
import torch

from functions.engine.networks import (CustomCNN, convert_original_state_dict, cut, load_state,
                                       trainable_parameters)
from functions.engine.training import Tensors, fit


def model(**kw):
    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=16, num_classes=5, depth=4, num_channels=6, kernel_size=3,
                use_pooling=True, pooling_every_n_layers=2)
    args.update(kw)
    return CustomCNN(**args)


def same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_shapes_and_head_size():
    m = model()
    assert m(torch.zeros(3, 1, 16, 16)).shape == (3, 5)
    assert m.head.fc.in_features == 6 * 4 * 4  # two pools: 16 → 8 → 4
    assert [b.pool is not None for b in m.blocks] == [False, True, False, True]


@pytest.mark.parametrize("k", [0, 2, 4])
def test_cut_keeps_prefix_and_reinits_suffix(k):
    m = model()
    new = cut(m, k, num_classes=3, freeze=True, reinit=True, seed=1)
    for i in range(4):
        assert same(new.blocks[i], m.blocks[i]) == (i < k)
    assert new.num_classes == 3
    assert all(not p.requires_grad for b in new.blocks[:k] for p in b.parameters())
    assert all(p.requires_grad for b in new.blocks[k:] for p in b.parameters())


def test_reinit_off_keeps_suffix_and_seed_repeats():
    m = model()
    kept = cut(m, 1, 3, freeze=False, reinit=False)
    assert all(same(kept.blocks[i], m.blocks[i]) for i in range(4))
    a, b = cut(m, 1, 3, seed=5), cut(m, 1, 3, seed=5)
    assert same(a, b)


def test_truncate_removes_blocks_and_resizes_head():
    m = model()
    t = cut(m, 1, 3, truncate=True)
    assert t.depth == 1 and t.head.fc.in_features == 6 * 16 * 16
    assert t(torch.zeros(2, 1, 16, 16)).shape == (2, 3)


def test_two_linear_layers_and_reinit_both_dense():
    m = model(two_linear_layers=True, hidden_dim_lin=7)
    both = cut(m, 2, 3, reinit_both_dense=True, seed=0)
    last = cut(m, 2, 3, reinit_both_dense=False, seed=0)
    assert not torch.equal(both.head.fc.weight, m.head.fc.weight)
    assert torch.equal(last.head.fc.weight, m.head.fc.weight) and last.head.fc_2.out_features == 3


def test_frozen_params_unchanged_and_trainable_change_after_training():
    m = cut(model(), 2, 3, freeze=True, reinit=True, seed=0)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    x, y = torch.randn(64, 1, 16, 16), torch.randint(0, 3, (64,))
    fit(m, Tensors(x, y, x, y, x, y), lr=1e-2, max_epochs=3, patience=5, batch_size=16, seed=0)
    for name, p in m.named_parameters():
        changed = not torch.equal(before[name], p)
        frozen = name.startswith(("blocks.0.", "blocks.1."))
        assert changed != frozen, name
    ids = {id(p) for p in trainable_parameters(m)}
    assert all(id(p) not in ids for b in m.blocks[:2] for p in b.parameters())


def test_loads_original_state_dict_names():
    m = model(two_linear_layers=True, hidden_dim_lin=7)
    original = {}
    for i, b in enumerate(m.blocks):
        original[f"conv{i}.weight"], original[f"conv{i}.bias"] = b.conv.weight, b.conv.bias
    original.update({"fc.weight": m.head.fc.weight, "fc.bias": m.head.fc.bias,
                     "fc_2.weight": m.head.fc_2.weight, "fc_2.bias": m.head.fc_2.bias})
    fresh = model(two_linear_layers=True, hidden_dim_lin=7)
    torch.nn.init.zeros_(fresh.blocks[0].conv.weight)
    load_state(fresh, {k: v.detach().clone() for k, v in original.items()})
    assert same(fresh, m)
    with pytest.raises(KeyError, match="unexpected"):
        convert_original_state_dict({"bn1.weight": torch.zeros(1)})


def test_cut_out_of_range():
    with pytest.raises(ValueError, match="0..4"):
        cut(model(), 5, 3)


def test_forward_flops_per_block_and_head():
    """FlopCounterMode's count: 2 FLOPs per multiply-add of every conv output and of the head's matmuls."""
    from functions.engine.networks import forward_flops

    m = model(two_linear_layers=True, hidden_dim_lin=32)
    flops = forward_flops(m)
    assert len(flops) == len(m.blocks) + 1
    sizes = [16, 16, 8, 8]  # output side of each conv ("same" padding; pools after blocks 1 and 3)
    expected = [2.0 * 6 * s * s * (1 if i == 0 else 6) * 9 for i, s in enumerate(sizes)]
    assert flops[:-1] == expected
    assert flops[-1] == 2.0 * (6 * 4 * 4 * 32 + 32 * 5)
