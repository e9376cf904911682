"""Feature-map training: streaming shapes and labels, one batch at a time, m2→m1 transfer, FGSM."""

import pytest
import torch
from torch import nn

from functions.related import featuremaps as fm
from functions.engine.data import load_dataset, normalize
from functions.engine.training import evaluate

torch.set_num_threads(2)


def _images(n=10, seed=0):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


class CountingConv(nn.Module):
    """Wraps a conv and records the batch size of every call."""

    def __init__(self, conv):
        super().__init__()
        self.conv, self.calls = conv, []

    def forward(self, x):
        self.calls.append(len(x))
        return self.conv(x)


def test_stream_yields_every_channel_with_its_image_label():
    torch.manual_seed(0)
    m1 = fm.FeatureMapNet()
    x, y = _images(10), torch.arange(10)  # unique labels identify the source image of every map
    batches = list(fm.stream_feature_maps(m1.conv1, x, y, image_batch_size=4, shuffle=False,
                                          generator=torch.Generator().manual_seed(1)))
    assert [tuple(m.shape) for m, _ in batches] == [(60, 1, 24, 24), (60, 1, 24, 24), (30, 1, 24, 24)]
    maps = torch.cat([m for m, _ in batches])
    labels = torch.cat([lab for _, lab in batches])
    assert torch.equal(torch.bincount(labels), torch.full((10,), 15))
    with torch.no_grad():
        expected = m1.conv1(x)  # [10, 15, 24, 24]
    for image in range(10):
        got = maps[labels == image, 0]
        # the 15 maps of an image are its 15 channels in some order: compare sorted per-map sums
        assert torch.allclose(got.sum((1, 2)).sort().values, expected[image].sum((1, 2)).sort().values,
                              atol=1e-4)
        assert torch.allclose(got.sum(0), expected[image].sum(0), atol=1e-4)


def test_stream_sum_channels_and_keep_fraction():
    m1 = fm.FeatureMapNet()
    x, y = _images(10), torch.arange(10)
    summed = list(fm.stream_feature_maps(m1.conv1, x, y, 4, sum_channels=True, shuffle=False))
    assert [tuple(m.shape) for m, _ in summed] == [(4, 1, 24, 24), (4, 1, 24, 24), (2, 1, 24, 24)]
    with torch.no_grad():
        expected = m1.conv1(x).sum(1, keepdim=True)
    for maps, labels in summed:
        assert torch.allclose(maps, expected[labels], atol=1e-4)
    half = list(fm.stream_feature_maps(m1.conv1, x, y, 4, keep_fraction=0.5))
    assert [len(lab) for _, lab in half] == [30, 30, 15]
    assert sum(len(lab) for _, lab in half) == fm.count_maps(10, 15, 4, False, 0.5)
    with pytest.raises(ValueError, match="keep_fraction"):
        next(fm.stream_feature_maps(m1.conv1, x, y, 4, keep_fraction=0))


def test_stream_holds_at_most_one_batch_of_maps():
    counting = CountingConv(fm.FeatureMapNet().conv1)
    x, y = _images(50), torch.randint(0, 10, (50,))
    stream = fm.stream_feature_maps(counting, x, y, image_batch_size=8)
    assert counting.calls == []  # nothing computed before the first batch is asked for
    maps, labels = next(stream)
    assert counting.calls == [8] and maps.shape == (8 * 15, 1, 24, 24) and len(labels) == 120
    for maps, _ in stream:  # every later batch is computed only when requested, from ≤ 8 images
        assert len(maps) <= 8 * 15
    assert counting.calls == [8] * 6 + [2]


def test_weight_transfer_m2_to_m1_reproduces_m2_conv_outputs():
    torch.manual_seed(0)
    m1 = fm.FeatureMapNet()
    m2 = fm.with_first_padding(m1, 2)
    with torch.no_grad():  # make m2 differ from m1, as training would
        for p in m2.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    back = fm.with_first_padding(m2, 0)
    x = _images(3)
    with torch.no_grad():
        # m2's padded conv on a 28×28 image, interior crop == the unpadded conv of the transferred net
        assert torch.allclose(back.conv1(x), m2.conv1(x)[..., 2:-2, 2:-2], atol=1e-5)
        assert torch.allclose(back.conv2(back.conv1(x)), m2.conv2(m2.conv1(x)[..., 2:-2, 2:-2]), atol=1e-5)
        assert not torch.allclose(back.conv1(x), m1.conv1(x))
    for name, value in m2.state_dict().items():
        assert torch.equal(back.state_dict()[name], value)
    assert m2(torch.randn(2, 1, 24, 24)).shape == (2, 10)  # m2 takes the 24×24 maps
    assert back(x).shape == (3, 10)


def test_train_on_feature_maps_counts_maps():
    torch.manual_seed(0)
    m1 = fm.FeatureMapNet()
    x, y = _images(40), torch.randint(0, 10, (40,))
    m2 = fm.with_first_padding(m1, 2)
    hist = fm.train_on_feature_maps(m2, m1.conv1, x, y, epochs=2, image_batch_size=16,
                                    keep_fraction=0.5, progress=False)
    assert list(hist["maps"]) == [fm.count_maps(40, 15, 16, False, 0.5)] * 2


@pytest.fixture(scope="module")
def trained_digits_model():
    """A small network trained on scikit-learn's digits (16×16) to well above chance."""
    raw = load_dataset("digits")
    x, y = normalize(raw.x_train, raw.mean, raw.std), raw.y_train
    xt, yt = normalize(raw.x_test, raw.mean, raw.std), raw.y_test
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    fm.train_classifier(net, x, y, epochs=10, lr=3e-3, batch_size=64, progress=False)
    return net, xt, yt, raw


def test_fgsm_zero_equals_clean_and_is_non_increasing(trained_digits_model):
    net, xt, yt, raw = trained_digits_model
    clean = evaluate(net, xt, yt)
    assert clean > 0.9
    assert fm.fgsm_accuracy(net, xt, yt, 0.0, raw.mean, raw.std) == pytest.approx(clean)
    accs = [fm.fgsm_accuracy(net, xt, yt, eps, raw.mean, raw.std) for eps in (0.0, 0.05, 0.1, 0.2, 0.3)]
    assert all(b <= a for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < clean - 0.2  # the attack does bite
    table = fm.robustness_table({"net": net}, xt, yt, [0.0, 0.05], raw.mean, raw.std)
    assert list(table["accuracy"]) == pytest.approx(accs[:2])
    with pytest.raises(ValueError, match="epsilon"):
        fm.fgsm_accuracy(net, xt, yt, -0.1, raw.mean, raw.std)


def test_fgsm_stays_in_valid_pixel_range():
    """A huge ε saturates pixels at 0 or 1 instead of leaving the image range."""
    mean, std = (0.5,), (0.25,)
    seen = {}

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, x):
            seen["x"] = x.detach()
            return self.lin(x.flatten(1))

    x = torch.zeros(3, 1, 2, 2)
    fm.fgsm_accuracy(Probe(), x, torch.tensor([0, 1, 0]), 5.0, mean, std)
    pixels = seen["x"] * 0.25 + 0.5
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_profile_settings_rejects_unknown():
    assert fm.profile_settings("smoke")["keep_fraction"] <= 1
    with pytest.raises(ValueError, match="profile"):
        fm.profile_settings("huge")
