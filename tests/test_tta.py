"""Test-time augmentation: flip and five-crop views, softmax averaging, evaluate(tta=...) on CIFAR-format data."""
import pytest
import torch
import torch.nn.functional as F

from functions.engine.data import load_split
from functions.engine.networks import CustomCNN
from functions.engine.training import Tensors, evaluate, fit, five_crops, tta_probabilities
from functions.related.tta import tta_accuracies


def net(in_channels=3, size=32, classes=4):
    torch.manual_seed(0)
    return CustomCNN(in_channels, size, classes, depth=2, num_channels=6, pooling_every_n_layers=1)


@pytest.fixture(scope="module")
def cifar():
    """The CIFAR-format fixture of conftest (real CIFAR-10 when it is under the data root)."""
    return load_split("CIFAR10", [0, 1, 2, 3], val_split=0.2, seed=0)


def test_five_crops_are_centre_and_corners_of_the_padded_input():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    centre, top_left, top_right, bottom_left, bottom_right = five_crops(x, pad=2)
    assert all(c.shape == x.shape for c in (centre, top_left, top_right, bottom_left, bottom_right))
    assert torch.equal(centre, x)
    # the top-left crop shows the image shifted 2 px right and down, zeros where the padding shows
    assert torch.equal(top_left[..., 2:, 2:], x[..., :-2, :-2])
    assert top_left[..., :2, :].abs().sum() == 0 and top_left[..., :, :2].abs().sum() == 0
    assert torch.equal(bottom_right[..., :-2, :-2], x[..., 2:, 2:])
    assert torch.equal(top_right[..., 2:, :-2], x[..., :-2, 2:])
    assert torch.equal(bottom_left[..., :-2, 2:], x[..., 2:, :-2])


def test_tta_averages_softmax_scores_over_the_views():
    m = net().eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = (F.softmax(m(x), 1) + F.softmax(m(x.flip(-1)), 1)) / 2
        got = tta_probabilities(m, x, "flip")
        crops = five_crops(x, 4)
        expected5 = sum(F.softmax(m(c), 1) for c in crops) / 5
        got5 = tta_probabilities(m, x, "fivecrop")
    assert torch.allclose(got, expected, atol=1e-6) and torch.allclose(got5, expected5, atol=1e-6)
    assert torch.allclose(got.sum(1), torch.ones(5))


def test_flip_tta_on_mirror_symmetric_inputs_equals_plain_evaluation(cifar):
    m = net()
    x = cifar.x_test[:300]
    x = (x + x.flip(-1)) / 2  # every image now equals its mirror image
    y = cifar.y_test[:300]
    plain_acc, plain_loss = evaluate(m, x, y, with_loss=True)
    tta_acc, tta_loss = evaluate(m, x, y, with_loss=True, tta="flip")
    assert tta_acc == plain_acc
    assert tta_loss == pytest.approx(plain_loss, rel=1e-5)
    # on ordinary (asymmetric) images the two differ: the test above is not vacuous
    with torch.no_grad():
        assert not torch.allclose(tta_probabilities(m.eval(), cifar.x_test[:50], "flip"),
                                  F.softmax(m(cifar.x_test[:50]), 1), atol=1e-4)


def test_accuracy_with_and_without_tta_on_cifar_format_data(cifar):
    m = net()
    data = Tensors(cifar.x_train, cifar.y_train, cifar.x_val, cifar.y_val, cifar.x_test, cifar.y_test)
    result = fit(m, data, lr=3e-3, max_epochs=3, patience=3, batch_size=64, seed=0)
    accs = tta_accuracies(m, cifar.x_test, cifar.y_test)
    assert set(accs) == {"none", "flip", "fivecrop"}
    assert accs["none"] == pytest.approx(result.test_acc)
    assert accs["none"] > 0.5  # four class-coloured patterns: learnable, far above chance (0.25)
    assert all(0 <= a <= 1 for a in accs.values())


def test_unknown_tta_mode_is_a_clear_error():
    m = net()
    with pytest.raises(ValueError, match="allowed"):
        evaluate(m, torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), tta="rotate")
    with pytest.raises(ValueError, match="allowed"):
        tta_accuracies(m, torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), modes=("rotate",))


def test_a_model_evaluated_before_training_can_still_be_trained():
    """evaluate() converts weights to channels-last inside inference mode; they must stay trainable."""
    m = net(1, 16, 3)
    x, y = torch.randn(24, 1, 16, 16), torch.randint(0, 3, (24,))
    evaluate(m, x, y, tta="fivecrop")
    assert not any(p.is_inference() for p in m.parameters())
    result = fit(m, Tensors(x, y, x, y, x, y), lr=1e-3, max_epochs=1, patience=1, batch_size=8, seed=0)
    assert result.epochs == 1
