"""Layer-wise clustering, its metrics (Hungarian accuracy, ARI, pairwise precision/recall), probes and CKA."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from functions.analysis import clustering
from functions.engine.data import balanced_subset, load_dataset, make_split, subset_seed
from functions.engine.networks import CustomCNN, cut

torch.set_num_threads(2)


def small_cnn(seed: int = 0) -> CustomCNN:
    torch.manual_seed(seed)
    return CustomCNN(in_channels=1, image_size=16, num_classes=10, depth=3, num_channels=8)


@pytest.fixture(scope="module")
def digits_test():
    split = make_split(load_dataset("digits"), list(range(10)), val_split=0.1, seed=0)
    return split.x_test, split.y_test


def blobs_in_directions(n_per: int, k: int, dim: int, seed: int):
    """Well-separated clusters for the cosine distance: each along its own axis, far from the origin."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n_per)
    centres = 10.0 * np.eye(dim)[:k]
    return centres[labels] + rng.normal(0, 0.3, (len(labels), dim)), labels


# ----------------------------------------------------------------------------- Hungarian accuracy
def test_permuted_cluster_ids_give_accuracy_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    permutation = np.array([3, 0, 4, 1, 2])
    clusters = permutation[labels]
    assert clustering.hungarian_accuracy(labels, clusters) == 1.0
    assert clustering.match_clusters(labels, clusters) == {int(permutation[c]): c for c in range(5)}


def test_matching_maps_clusters_to_labels_not_the_inverse():
    # unequal class sizes 6/3/1; cluster id = (label + 1) mod 3, a 3-cycle (not its own inverse)
    labels = np.array([0] * 6 + [1] * 3 + [2])
    clusters = (labels + 1) % 3
    mapping = clustering.match_clusters(labels, clusters)
    assert mapping == {1: 0, 2: 1, 0: 2}
    assert clustering.hungarian_accuracy(labels, clusters) == 1.0
    # the original's mistake: the label → cluster map applied to cluster ids
    inverted = {label: cluster for cluster, label in mapping.items()}
    wrong = np.mean([inverted[c] == y for c, y in zip(clusters, labels)])
    assert wrong == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_hungarian_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=30, p=[0.6, 0.3, 0.1])
    clusters = np.where(rng.random(30) < 0.7, labels, rng.integers(0, 4, 30))  # 4 clusters, 3 labels
    best = 0
    cluster_ids = np.unique(clusters)
    for chosen in itertools.permutations(cluster_ids, len(np.unique(labels))):  # one cluster per label
        mapping = dict(zip(chosen, np.unique(labels)))
        best = max(best, sum(mapping.get(c, -1) == y for c, y in zip(clusters, labels)))
    assert clustering.hungarian_accuracy(labels, clusters) == pytest.approx(best / len(labels))


# ----------------------------------------------------------------------------- ARI, pairwise scores
def _pair_counts(labels, clusters):
    """Brute force over all unordered pairs: (same label & same cluster, same cluster, same label)."""
    both = same_cluster = same_label = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        sl, sc = labels[i] == labels[j], clusters[i] == clusters[j]
        both += sl and sc
        same_cluster += sc
        same_label += sl
    return both, same_cluster, same_label


@pytest.mark.parametrize("seed", range(4))
def test_ari_equals_sklearn_and_the_pair_count_formula(seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, 4, 60), rng.integers(0, 5, 60)
    clusters[:30] = labels[:30]  # partly agreeing, so ARI is clearly non-zero
    ari = clustering.cluster_metrics(labels, clusters)["ari"]
    assert ari == pytest.approx(adjusted_rand_score(labels, clusters))
    both, same_cluster, same_label = _pair_counts(labels, clusters)
    total = len(labels) * (len(labels) - 1) / 2
    expected = same_cluster * same_label / total
    hubert_arabie = (both - expected) / ((same_cluster + same_label) / 2 - expected)
    assert ari == pytest.approx(hubert_arabie)
    assert clustering.cluster_metrics(labels, (labels + 2) % 4)["ari"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_precision_recall_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, 4, 45), rng.integers(0, 6, 45)
    both, same_cluster, same_label = _pair_counts(labels, clusters)
    precision, recall = clustering.pairwise_precision_recall(labels, clusters)
    assert precision == pytest.approx(both / same_cluster)
    assert recall == pytest.approx(both / same_label)


def test_pairwise_scores_of_edge_cases():
    labels = np.array([0, 0, 1, 1])
    assert clustering.pairwise_precision_recall(labels, [0, 1, 2, 3]) == (0.0, 0.0)  # no same-cluster pair
    assert clustering.pairwise_precision_recall(labels, [0, 0, 0, 0]) == (pytest.approx(2 / 6), 1.0)
    with pytest.raises(ValueError, match="same length"):
        clustering.cluster_metrics(labels, [0, 1])


# ----------------------------------------------------------------------------- clustering
@pytest.mark.parametrize("method", clustering.METHODS)
def test_well_separated_blobs_are_recovered(method):
    features, labels = blobs_in_directions(40, 4, 6, seed=1)
    clusters = clustering.cluster_labels(features, 4, method, seed=0)
    assert adjusted_rand_score(labels, clusters) == 1.0
    assert clustering.cluster_metrics(labels, clusters)["accuracy"] == 1.0


def test_zero_rows_form_their_own_cluster_without_crashing():
    features, labels = blobs_in_directions(20, 3, 5, seed=2)
    features[[0, 25, 50]] = 0.0  # dead rows, one in each class
    clusters = clustering.cluster_labels(features, 3, "agglomerative")
    assert len(np.unique(clusters)) == 3
    assert len(np.unique(clusters[[0, 25, 50]])) == 1
    assert not np.isin(clusters[[0, 25, 50]][0], np.delete(clusters, [0, 25, 50]))
    for method in clustering.METHODS:
        assert np.array_equal(clustering.cluster_labels(np.zeros((12, 4)), 3, method), np.zeros(12))
        metrics = clustering.cluster_metrics(labels, clustering.cluster_labels(features, 3, method))
        assert all(np.isfinite(v) for v in metrics.values())


def test_bad_method_and_k_are_rejected():
    with pytest.raises(ValueError, match="allowed"):
        clustering.cluster_labels(np.ones((4, 2)), 2, "spectral")
    with pytest.raises(ValueError, match="k must"):
        clustering.cluster_labels(np.ones((4, 2)), 0)


# ----------------------------------------------------------------------------- activations
def test_layer_activations_keys_shapes_and_values():
    model = small_cnn()
    model.train()
    x = torch.randn(7, 1, 16, 16)
    acts = clustering.layer_activations(model, x, batch_size=3)
    assert list(acts) == ["input", "block0", "block1", "block2", "head_in"]
    shapes = {name: a.shape for name, a in acts.items()}
    assert shapes == {"input": (7, 256), "block0": (7, 8), "block1": (7, 8), "block2": (7, 8),
                      "head_in": (7, 8 * 8 * 8)}
    with torch.no_grad():
        outputs = model.block_outputs(x)
        np.testing.assert_allclose(acts["block1"], outputs[1].mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(acts["head_in"], model.head_input(x).numpy(), rtol=1e-5, atol=1e-6)
    whole = clustering.layer_activations(model, x, batch_size=1024)
    for name in acts:
        np.testing.assert_allclose(acts[name], whole[name], rtol=1e-5, atol=1e-6)
    assert model.training  # mode restored


def test_resnet_head_input_is_what_its_head_sees(tmp_path, digits_config, digits_test):
    """A ResNet's head takes the channel means of its last block, not the flattened maps a CustomCNN's
    takes: ``head_in`` must be what the head's linear layer sees, and clustering must run on it."""
    from functions.engine.networks import ResNet, new_model

    cfg = digits_config(tmp_path, architecture="ResNet", depth=5, num_channels=6)
    torch.manual_seed(0)
    model = new_model(cfg, num_classes=10)
    x, y = digits_test
    x = x[:40]
    assert isinstance(model, ResNet) and model.block_outputs(x)[-1].shape[2:] == (4, 4)  # 16 → 8 → 4 px
    acts = clustering.layer_activations(model, x, batch_size=16)
    assert acts["head_in"].shape == (40, 6)  # one mean per channel; flattening would give 6 × 4 × 4
    with torch.no_grad():
        np.testing.assert_allclose(acts["head_in"], model.head_input(x).numpy(), rtol=1e-5, atol=1e-6)
        logits = model.head.fc(torch.from_numpy(acts["head_in"]))
        np.testing.assert_allclose(logits.numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    df = clustering.cluster_study(model, *digits_test, [1.0], 1, methods=["kmeans"], dataset="digits",
                                  split="test")
    assert list(df.layer) == ["input", "block0", "block1", "block2", "head_in"]
    assert df.ari.between(-1, 1).all()


def test_channel_maps_are_each_channels_flattened_map():
    model = small_cnn()
    x = torch.randn(5, 1, 16, 16)
    maps = clustering.channel_maps(model, x, "block1", batch_size=2)
    assert maps.shape == (8, 5, 8 * 8)
    with torch.no_grad():
        expected = model.block_outputs(x)[1][:, 3].flatten(1).numpy()
    np.testing.assert_allclose(maps[3], expected, rtol=1e-5, atol=1e-6)
    assert clustering.channel_maps(model, x, 0, channels=[2, 5]).shape == (2, 5, 256)
    with pytest.raises(ValueError, match="allowed"):
        clustering.channel_maps(model, x, "head_in")
    with pytest.raises(ValueError, match="allowed"):
        clustering.channel_maps(model, x, "block3")


# ----------------------------------------------------------------------------- the study
def test_cluster_study_on_digits(digits_test):
    x, y = digits_test
    model = small_cnn()
    df = clustering.cluster_study(model, x, y, [0.5, 1.0], 2, seed=3, dataset="digits", split="test")
    assert list(df.columns) == clustering.CLUSTER_COLUMNS
    assert len(df) == 2 * 2 * 5 * 2  # fractions × repeats × layers × methods
    assert set(df.layer) == {"input", "block0", "block1", "block2", "head_in"}
    assert (df.channel == -1).all() and set(df.method) == set(clustering.METHODS)
    assert set(df.dataset) == {"digits"} and set(df.split) == {"test"}
    # the subset of (0.5, repeat 1) is the one training uses; its input layer clustered by hand agrees
    subset = balanced_subset(y, 0.5, subset_seed(3, 0.5, 1))
    row = df[(df.fraction == 0.5) & (df.repeat == 1) & (df.layer == "input") & (df.method == "kmeans")]
    by_hand = clustering.cluster_labels(x[subset].flatten(1).numpy(), 10, "kmeans", seed=3 + 1)
    assert row.n_samples.item() == len(subset)
    assert row.ari.item() == pytest.approx(adjusted_rand_score(y[subset].numpy(), by_hand))
    assert set(df[df.fraction == 1.0].n_samples) == {len(y)}
    metrics = df[["precision", "recall", "accuracy", "ari"]]
    assert metrics.notna().all().all() and (metrics.drop(columns="ari").to_numpy() <= 1).all()
    # digit pixels alone cluster well (ARI ≈ 0.6); a broken pipeline gives ≈ 0
    assert df[(df.layer == "input") & (df.method == "kmeans")].ari.min() > 0.4
    again = clustering.cluster_study(model, x, y, [0.5, 1.0], 2, seed=3, dataset="digits", split="test")
    pd.testing.assert_frame_equal(df, again)


def test_cluster_study_caps_samples_and_adds_channel_rows(digits_test):
    x, y = digits_test
    df = clustering.cluster_study(small_cnn(), x, y, [1.0], [1], methods=["kmeans"], per_channel=True,
                                  max_samples=100)
    whole, channels = df[df.channel == -1], df[df.channel >= 0]
    assert len(whole) == 5 and len(channels) == 3 * 8
    assert set(channels.layer) == {"block0", "block1", "block2"} and set(channels.channel) == set(range(8))
    assert set(df.n_samples) == {100} and set(df.n_per_class) == {10}  # 10 per class of 10 classes


def test_cluster_study_on_a_dead_network_does_not_crash(digits_test):
    x, y = digits_test
    model = small_cnn()
    with torch.no_grad():
        for block in model.blocks:
            block.conv.bias.fill_(-1e3)  # every ReLU output is zero: all rows are zero vectors
    df = clustering.cluster_study(model, x, y, [0.3], 1)  # 10 images per class
    dead = df[df.layer.isin(["block0", "block2", "head_in"])]
    assert dead[["precision", "recall", "accuracy", "ari"]].notna().all().all()
    assert dead.ari.abs().max() == pytest.approx(0.0)


def test_cluster_study_rejects_bad_arguments(digits_test):
    x, y = digits_test
    with pytest.raises(ValueError, match="methods"):
        clustering.cluster_study(small_cnn(), x, y, [0.5], 1, methods=["dbscan"])
    with pytest.raises(ValueError, match="repeats"):
        clustering.cluster_study(small_cnn(), x, y, [0.5, 1.0], [1])
    with pytest.raises(ValueError, match="fraction"):
        clustering.cluster_study(small_cnn(), x, y, [1.5], 1)


def test_cluster_study_skips_subsets_below_the_minimum_per_class(digits_test):
    x, y = digits_test  # 359 test images, 10 classes: 0.02 → 1 per class, 0.2 → 7, 0.5 → 17
    model = small_cnn()
    with pytest.warns(UserWarning) as caught:
        df = clustering.cluster_study(model, x, y, [0.02, 0.2, 0.5], 1, methods=["kmeans"])
    messages = [str(w.message) for w in caught]
    assert any("fraction 0.02 gives 1 image(s) per class (< min_per_class = 10)" in m for m in messages)
    assert any("fraction 0.2 gives 7 image(s) per class" in m for m in messages)
    assert set(df.fraction) == {0.5}
    assert set(df.n_per_class) == {17} and set(df.n_samples) == {170}
    # one image per class "clusters" perfectly at every layer: what the minimum keeps out of the results
    tiny = clustering.cluster_study(model, x, y, [0.02], 1, methods=["kmeans"], min_per_class=1)
    assert (tiny.ari == 1.0).all() and set(tiny.n_samples) == {10}
    with pytest.raises(ValueError, match=r"min_per_class = 10.*use larger fractions"):
        clustering.cluster_study(model, x, y, [0.001, 0.02], 2)
    with pytest.raises(ValueError, match="min_per_class"):
        clustering.cluster_study(model, x, y, [0.5], 1, min_per_class=0)


def test_per_class_size_from_the_column_or_estimated_from_n_samples():
    legacy = pd.DataFrame({"fraction": [0.001, 0.01, 0.1], "n_samples": [5, 45, 485], "dataset": "MNIST"})
    np.testing.assert_array_equal(clustering.per_class_size(legacy), [0, 4, 48])  # n // 10: a lower bound
    np.testing.assert_array_equal(clustering.per_class_size(legacy, n_classes=5), [1, 9, 97])  # exact
    written = legacy.assign(n_per_class=[1, np.nan, 97])
    np.testing.assert_array_equal(clustering.per_class_size(written, n_classes=5), [1, 9, 97])
    unknown = pd.DataFrame({"fraction": [0.1], "ari": [0.3]})  # the original's rows: no size at all
    assert clustering.per_class_size(unknown).isna().all()


# ----------------------------------------------------------------------------- probes
def test_linear_probe_separates_separable_and_not_noise():
    features, labels = blobs_in_directions(50, 3, 5, seed=3)
    assert clustering.linear_probe(features, labels) >= 0.99
    rng = np.random.default_rng(4)
    # 200 random features for 300 samples: a training fit is perfect, held-out accuracy stays near chance
    assert clustering.linear_probe(rng.normal(size=(300, 200)), rng.integers(0, 2, 300)) < 0.7
    with pytest.raises(ValueError, match="test_size"):
        clustering.linear_probe(features, labels, test_size=1.5)


def test_probe_study_has_one_row_per_layer(digits_test):
    x, y = digits_test
    df = clustering.probe_study(small_cnn(), x, y, seed=1, max_samples=200)
    assert list(df.layer) == ["input", "block0", "block1", "block2", "head_in"]
    assert list(df.n_features) == [256, 8, 8, 8, 512] and set(df.n_samples) == {200}
    assert df.set_index("layer").accuracy["input"] > 0.8  # pixels of digits are linearly separable


# ----------------------------------------------------------------------------- CKA
def test_linear_cka_invariances():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 12))
    Y = X @ rng.normal(size=(12, 7)) + 0.5 * rng.normal(size=(300, 7))
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert clustering.linear_cka(X, X) == pytest.approx(1.0)
    assert clustering.linear_cka(X, 3.7 * X @ rotation + 2.0) == pytest.approx(1.0)
    base = clustering.linear_cka(X, Y)
    assert 0.2 < base < 0.99
    assert clustering.linear_cka(X @ rotation * 0.01, Y) == pytest.approx(base)
    assert clustering.linear_cka(Y, X) == pytest.approx(base)
    independent = clustering.linear_cka(rng.normal(size=(2000, 10)), rng.normal(size=(2000, 10)))
    assert independent < 0.05
    assert np.isnan(clustering.linear_cka(np.ones((10, 3)), X[:10]))


def test_linear_cka_gram_route_equals_feature_route():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(20, 50)), rng.normal(size=(20, 30))  # fewer samples than features
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    direct = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert clustering.linear_cka(X, Y) == pytest.approx(direct)
    assert clustering.linear_cka(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(direct)


def test_cka_by_layer_compares_common_layers():
    model, other = small_cnn(0), small_cnn(1)
    x = torch.randn(64, 1, 16, 16)
    same = clustering.cka_by_layer(model, model, x)
    assert list(same.layer) == ["input", "block0", "block1", "block2", "head_in"]
    np.testing.assert_allclose(same.cka, 1.0, rtol=1e-6)
    different = clustering.cka_by_layer(model, other, x).set_index("layer").cka
    assert different["input"] == pytest.approx(1.0) and different["block2"] < 0.99
    truncated = cut(model, 2, num_classes=5, truncate=True)
    common = clustering.cka_by_layer(model, truncated, x)
    assert list(common.layer) == ["input", "block0", "block1"]  # head_in follows different blocks
    np.testing.assert_allclose(common.cka, 1.0, rtol=1e-6)  # the kept blocks are the pretrained ones
