"""Compact MNIST net: parameter budget, receptive-field table vs hand-worked values, augmentation, training."""
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from functions.related import compact
from functions.engine.data import load_dataset, normalize
from functions.engine.networks import count_parameters
from functions.engine.training import class_accuracies, evaluate, predict

torch.set_num_threads(2)


def test_parameter_count_under_budget_and_output_shape():
    model = compact.CompactNet()
    n = count_parameters(model, trainable_only=True)
    assert n < compact.PARAMETER_LIMIT == 8000
    assert n == sum(p.numel() for p in model.parameters())
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_receptive_field_table_matches_hand_worked_values():
    specs = [
        dict(layer="c1", kernel=3, stride=1, padding=0),
        dict(layer="c2", kernel=3, stride=1, padding=1),
        dict(layer="pool", kernel=2, stride=2, padding=0),
        dict(layer="c3", kernel=3, stride=2, padding=1),
        dict(layer="c4", kernel=5, stride=1, padding=0),
        dict(layer="gap", kernel=None, stride=1, padding=0),
    ]
    table = compact.receptive_field_table(specs, 28)
    # by hand: size 28→26→26→13→7→3→1, jump 1,1,2,4,4,4, RF 3,5,6,10,26,34
    assert list(table["layer"]) == ["input", "c1", "c2", "pool", "c3", "c4", "gap"]
    assert list(table["size_out"]) == [28, 26, 26, 13, 7, 3, 1]
    assert list(table["jump_out"]) == [1, 1, 1, 2, 4, 4, 4]
    assert list(table["rf_out"]) == [1, 3, 5, 6, 10, 26, 34]
    assert table["kernel"].iloc[-1] == 3  # the global pool spans the 3×3 that reaches it


def test_receptive_field_of_compact_net():
    model = compact.CompactNet()
    table = compact.receptive_field_table(compact.layer_specs(model), 28)
    before_gap = table[table["layer"] == "gap"].index[0] - 1
    assert table.loc[before_gap, "size_out"] == 6 and table.loc[before_gap, "rf_out"] == 22
    assert table["size_out"].iloc[-1] == 1
    # the table's final size agrees with a real forward pass through the feature layers
    feats = model.block2(model.transition(model.block1(torch.zeros(1, 1, 28, 28))))
    assert feats.shape[-1] == table.loc[before_gap, "size_out"]


def test_receptive_field_rejects_bad_input():
    with pytest.raises(ValueError, match="input_size"):
        compact.receptive_field_table([], 0)
    with pytest.raises(ValueError, match="below 1px"):
        compact.receptive_field_table([dict(layer="big", kernel=9, stride=1, padding=0)], 5)


def test_random_affine_identity_and_fill():
    x = torch.randn(4, 1, 28, 28)
    same = compact.random_affine(x, max_degrees=0, max_shift=0, fill=0.0)
    assert torch.allclose(same, x, atol=1e-5)
    background = torch.full((3, 1, 28, 28), -0.42)
    moved = compact.random_affine(background, 30, 0.2, fill=-0.42, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(moved, background, atol=1e-5)  # uncovered corners are background, not zero
    dot = torch.zeros(1, 1, 28, 28)
    dot[..., 10:14, 10:14] = 1.0
    shifted = compact.random_affine(dot, 0, 0.2, 0.0, torch.Generator().manual_seed(3))
    assert not torch.allclose(shifted, dot) and shifted.sum() == pytest.approx(16.0, rel=0.05)


def test_scheduler_and_profile_errors():
    opt = torch.optim.SGD(compact.CompactNet().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler"):
        compact.make_scheduler("cosine", opt, 5, 10, 0.1)
    with pytest.raises(ValueError, match="profile"):
        compact.profile_settings("huge")


def test_meets_target_reads_the_last_epochs():
    hist = pd.DataFrame({"test_acc": [0.98, 0.993, 0.994, 0.995, 0.9941]})
    assert compact.meets_target(hist)
    assert not compact.meets_target(hist.iloc[:4])  # epoch 2 (0.993) is among the last three
    assert not compact.meets_target(hist.tail(2))


def test_training_on_digits_learns_and_per_class_covers_everything():
    raw = load_dataset("digits")
    up = lambda x: F.interpolate(normalize(x, raw.mean, raw.std), size=28, mode="bilinear")  # noqa: E731
    x, y, xt, yt = up(raw.x_train[:800]), raw.y_train[:800], up(raw.x_test), raw.y_test
    fill = -raw.mean[0] / raw.std[0]
    model, hist = compact.train_compact(x, y, xt, yt, epochs=3, scheduler="onecycle", lr=0.05,
                                        batch_size=64, fill=fill, progress=False)
    assert list(hist["epoch"]) == [1, 2, 3]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr"} <= set(hist.columns)
    assert hist["test_acc"].iloc[-1] > 0.5  # chance is 0.1
    table = class_accuracies(yt, predict(model, xt), raw.classes)
    assert table["n"].sum() == len(yt)  # every test image counted, not a per-batch sample
    assert table["correct"].sum() / len(yt) == pytest.approx(evaluate(model, xt, yt))
    images, true, pred = compact.misclassified(model, xt, yt, limit=5)
    assert len(images) == len(true) == len(pred) <= 5 and bool((true != pred).all())
