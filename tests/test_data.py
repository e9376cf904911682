"""Data: class split + relabel, disjoint train/val/test, balanced seeded subsets, real loaders."""
import pytest
import torch

from functions.engine import data


def coded_raw(n_train=600, n_test=200):
    """A RawDataset whose every image encodes its own index (to check disjointness)."""
    def make(n, offset):
        idx = torch.arange(n) + offset
        x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
        x[:, 0, 0, 0], x[:, 0, 0, 1] = (idx % 256).to(torch.uint8), (idx // 256).to(torch.uint8)
        return x, idx % 10
    x_train, y_train = make(n_train, 0)
    x_test, y_test = make(n_test, n_train)
    return data.RawDataset("coded", x_train, y_train, x_test, y_test, [str(i) for i in range(10)], (0.0,), (1 / 255,))


def ids(x):
    """Back to the index encoded in an image normalised with mean 0, std 1/255."""
    return set((x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1]).round().long().tolist())


def test_split_is_disjoint_relabelled_and_test_from_test_split():
    raw = coded_raw()
    split = data.make_split(raw, [7, 3, 5], val_split=0.2, seed=1)
    train, val, test = ids(split.x_train), ids(split.x_val), ids(split.x_test)
    assert not train & val and not train & test and not val & test
    assert min(test) >= 600  # the real test split, never the training split
    assert sorted(torch.unique(split.y_train).tolist()) == [0, 1, 2]
    # relabelled in the order of `classes`: class 7 → 0
    first = next(iter(i for i in sorted(train) if i % 10 == 7))
    pos = (split.x_train[:, 0, 0, 0] + 256 * split.x_train[:, 0, 0, 1]).round().long().tolist().index(first)
    assert split.y_train[pos] == 0
    assert len(val) == pytest.approx(0.2 * (len(train) + len(val)), abs=3)


def test_val_split_is_seeded():
    raw = coded_raw()
    a = data.make_split(raw, [1, 2], 0.1, seed=4)
    b = data.make_split(raw, [1, 2], 0.1, seed=4)
    c = data.make_split(raw, [1, 2], 0.1, seed=5)
    assert ids(a.x_val) == ids(b.x_val) != ids(c.x_val)


def test_balanced_subset_counts_and_seed():
    y = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)
    idx = data.balanced_subset(y, 0.03, seed=3)
    assert torch.bincount(y[idx]).tolist() == [10, 10, 10]  # int(1000 * 0.03 / 3)
    assert torch.equal(idx, data.balanced_subset(y, 0.03, seed=3))
    assert not torch.equal(idx, data.balanced_subset(y, 0.03, seed=4))
    assert len(data.balanced_subset(y, 0.0001, seed=0)) == 3  # at least one per class
    with pytest.raises(ValueError, match="fraction"):
        data.balanced_subset(y, 1.5, seed=0)


def test_subset_seed_depends_on_fraction_and_repeat_only():
    assert data.subset_seed(42, 0.01, 3) == data.subset_seed(42, 0.01, 3)
    assert len({data.subset_seed(42, f, r) for f in (0.01, 0.1) for r in range(5)}) == 10


def test_digits_loads_without_download():
    raw = data.load_dataset("digits")
    assert raw.x_train.shape[1:] == (1, 16, 16) and raw.x_train.dtype == torch.uint8
    assert len(raw.y_train) + len(raw.y_test) == 1797


@pytest.mark.parametrize("name, shape", [("MNIST", (1, 28, 28)), ("FashionMNIST", (1, 28, 28)),
                                         ("CIFAR10", (3, 32, 32))])
def test_torchvision_layout_loaders(name, shape):
    raw = data.load_dataset(name)  # TL_STUDY_DATA points at the test data root (conftest)
    assert raw.x_train.shape[1:] == shape and raw.x_test.shape[1:] == shape
    assert raw.y_train.dtype == torch.int64 and int(raw.y_train.max()) == 9


def test_normalize_is_per_channel():
    x = torch.full((2, 3, 2, 2), 255, dtype=torch.uint8)
    out = data.normalize(x, (0.5, 0.0, 1.0), (0.5, 1.0, 1.0))
    assert out[0, :, 0, 0].tolist() == pytest.approx([1.0, 1.0, 0.0])
