"""Where does class structure appear? Layer-wise activation clustering, linear probes and CKA.

Each layer of a network (CustomCNN or ResNet) is read out on a data subset — the flattened input
(``"input"``), every block's output averaged over H×W (``"block0"`` … ``"block{d-1}"``) and the features
entering the head as the network computes them (``"head_in"``: flattened, or channel means for a ResNet) — and clustered into k = number of classes groups with agglomerative clustering
(cosine distance, average linkage) and k-means. Clusters are scored against the labels with ARI, accuracy
after Hungarian matching of clusters to labels, and pairwise precision / recall. With ``per_channel`` each
channel's full spatial maps are clustered too.

Beyond the original study: a linear probe per layer (held-out accuracy of a logistic regression) and
linear CKA (Kornblith et al. 2019) between two models, e.g. pretrained vs fine-tuned, layer by layer.

Zero vectors under the cosine distance (a dead ReLU channel is all zero for many images) have no
direction: they form **one cluster of their own**, and the remaining rows are clustered into k − 1
groups, so there are still k clusters in all (see :func:`cluster_labels`).
"""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from functions.engine.data import balanced_subset, subset_seed
from functions.engine.training import channels_last

METHODS = ("agglomerative", "kmeans")
CLUSTER_COLUMNS = ["fraction", "repeat", "layer", "channel", "method", "precision", "recall", "accuracy",
                   "ari", "dataset", "split", "n_samples", "n_per_class"]
# Fewest images of every class a clustered subset must hold. With one image per class every layer, the
# input included, "clusters" perfectly (ARI = 1.0): k points into k clusters. Smaller subsets are skipped
# by cluster_study and left out of the figures (figures.box_clustering).
MIN_PER_CLASS = 10
WHOLE_LAYER = -1  # ``channel`` value of rows that cluster a whole layer
KMEANS_N_INIT = 10
# Per-channel maps are produced in chunks of channels no larger than this (block 0 of the paper model on
# 2,000 MNIST images is 2000 × 64 × 784 floats = 400 MB if taken at once).
CHANNEL_CHUNK_BYTES = 256 * 2**20
_BLOCK_NAME = re.compile(r"^block(\d+)$")


# ----------------------------------------------------------------------------- activations
def _labels_array(y) -> np.ndarray:
    """Labels as a 1-D int64 numpy array (tensor, list or array in)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.asarray(y).astype(np.int64).ravel()


def _batches(model: torch.nn.Module, x: torch.Tensor, batch_size: int):
    """Yield float batches of ``x`` on the model's device (eval mode is set by the caller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = next(model.parameters()).device
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        xb = xb if xb.is_floating_point() else xb.float()
        # channels-last convolutions run ≈2× faster on CPU here (the model is converted on entry)
        yield xb.contiguous(memory_format=torch.channels_last) if xb.dim() == 4 else xb


class _EvalMode:
    """Context manager: ``model.eval()`` (and channels-last conv weights, as ``training.evaluate`` leaves
    them) inside, the previous train/eval mode restored after."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        channels_last(self.model)
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def layer_names(model) -> list[str]:
    """Layer names in order: ``"input"``, ``"block0"`` … ``"block{d-1}"``, ``"head_in"``."""
    return ["input"] + [f"block{i}" for i in range(model.depth)] + ["head_in"]


def layer_activations(model, x: torch.Tensor, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Per-layer features ``[N, features]`` (float32): flattened input, every block's output averaged
    over H×W (``[N, C]``), and the features entering the head's linear layer as the network itself
    computes them (flattened for a CustomCNN, channel means for a ResNet); keys in :func:`layer_names` order."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layer_names(model)}
    with _EvalMode(model), torch.inference_mode():
        for xb in _batches(model, x, batch_size):
            parts["input"].append(xb.flatten(1).float().cpu().numpy())
            outputs = model.block_outputs(xb)
            for i, h in enumerate(outputs):
                parts[f"block{i}"].append(h.float().mean(dim=(2, 3)).cpu().numpy())
            # the network's own rule (BlockNet.head_features), so each architecture's head is read right
            parts["head_in"].append(model.head_features(outputs[-1]).float().cpu().numpy())
    return {name: (np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32))
            for name, chunks in parts.items()}


def _block_index(model, layer) -> int:
    """Block number of ``layer`` ("blockI" or int I); -1 for ``"input"``."""
    if layer == "input":
        return -1
    match = _BLOCK_NAME.match(layer) if isinstance(layer, str) else None
    index = int(match.group(1)) if match else layer
    if not isinstance(index, (int, np.integer)) or not 0 <= index < model.depth:
        allowed = ["input"] + [f"block{i}" for i in range(model.depth)]
        raise ValueError(f"layer {layer!r} has no channel maps; allowed: {allowed} (or an int block index)")
    return int(index)


def channel_maps(model, x: torch.Tensor, layer, channels: Sequence[int] | None = None,
                 batch_size: int = 1024) -> np.ndarray:
    """Each channel's full spatial map, flattened: ``[C, N, H*W]`` (float32) for ``layer`` = ``"input"``,
    ``"blockI"`` or int I; ``channels`` picks a subset of channels (in that order)."""
    index = _block_index(model, layer)
    chunks = []
    with _EvalMode(model), torch.inference_mode():
        for xb in _batches(model, x, batch_size):
            h = xb
            for block in model.blocks[:index + 1]:
                h = block(h)
            if channels is not None:
                h = h[:, list(channels)]
            chunks.append(h.float().flatten(2).cpu())
    if not chunks:
        return np.zeros((0 if channels is None else len(channels), 0, 0), np.float32)
    return torch.cat(chunks).transpose(0, 1).contiguous().numpy()


def _channel_count(model, layer) -> int:
    """How many channels ``layer`` has."""
    index = _block_index(model, layer)
    if index < 0:
        return model.in_channels
    return model.blocks[index].conv.out_channels


# ----------------------------------------------------------------------------- clustering
def cluster_labels(features: np.ndarray, k: int, method: str = "agglomerative", seed: int = 0) -> np.ndarray:
    """Cluster ids (``0..k-1``) of the rows of ``features`` into ``k`` clusters.

    ``"agglomerative"``: cosine distance, average linkage. Rows that are exactly zero have no direction
    under the cosine distance; they form one cluster of their own (the last id) and the other rows are
    clustered into k − 1 groups. ``"kmeans"``: Euclidean, ``n_init`` = 10, seeded by ``seed``; zero rows
    need no special care there. With fewer distinct points than clusters each point keeps its own cluster.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; allowed: {list(METHODS)}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    labels = np.zeros(len(features), dtype=np.int64)
    if len(features) == 0:
        return labels
    if method == "kmeans":
        return _fit_labels(features, k, method, seed)
    zero = ~np.any(features, axis=1)
    if zero.all() or k == 1:
        return labels
    rest = ~zero
    n_rest_clusters = k - 1 if zero.any() else k
    labels[rest] = _fit_labels(features[rest], n_rest_clusters, method, seed)
    labels[zero] = labels[rest].max() + 1
    return labels


def _fit_labels(features: np.ndarray, k: int, method: str, seed: int) -> np.ndarray:
    """One sklearn clustering of ``features`` (no zero rows for cosine), k capped by the sample count."""
    n = len(features)
    k = min(k, n)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    if k == n:
        return np.arange(n, dtype=np.int64)
    if method == "agglomerative":
        model = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average")
        return model.fit_predict(features).astype(np.int64)
    with warnings.catch_warnings():
        # duplicate points (e.g. a mostly dead layer) leave fewer distinct clusters than k: allowed here
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)
        return model.fit_predict(features).astype(np.int64)


# ----------------------------------------------------------------------------- metrics
def contingency(labels, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``[label, cluster]`` plus the sorted distinct labels and cluster ids (rows / columns)."""
    labels, clusters = _labels_array(labels), _labels_array(clusters)
    if len(labels) != len(clusters):
        raise ValueError(f"labels and clusters must have the same length, got {len(labels)} and "
                         f"{len(clusters)}")
    label_ids, label_idx = np.unique(labels, return_inverse=True)
    cluster_ids, cluster_idx = np.unique(clusters, return_inverse=True)
    table = np.zeros((len(label_ids), len(cluster_ids)), dtype=np.int64)
    np.add.at(table, (label_idx, cluster_idx), 1)
    return table, label_ids, cluster_ids


def match_clusters(labels, clusters) -> dict[int, int]:
    """The Hungarian matching as a map **cluster → label** maximising the matched samples.

    One-to-one; with more clusters than labels the surplus clusters stay unmatched (absent from the map),
    so their samples count as errors.
    """
    table, label_ids, cluster_ids = contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {int(cluster_ids[c]): int(label_ids[r]) for r, c in zip(rows, cols)}


def hungarian_accuracy(labels, clusters) -> float:
    """Share of samples whose cluster, mapped to a label by :func:`match_clusters`, is their label."""
    labels, clusters = _labels_array(labels), _labels_array(clusters)
    if len(labels) == 0:
        return float("nan")
    mapping = match_clusters(labels, clusters)
    correct = [c in mapping and mapping[c] == label for c, label in zip(clusters.tolist(), labels.tolist())]
    return float(np.mean(correct))


def _pairs(counts: np.ndarray) -> int:
    """Number of unordered pairs within groups of the given sizes: Σ n(n−1)/2."""
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def pairwise_precision_recall(labels, clusters) -> tuple[float, float]:
    """Over unordered pairs of samples: precision = same-cluster pairs that share a label / same-cluster
    pairs; recall = same-label pairs that share a cluster / same-label pairs (0.0 when there are none)."""
    table, _, _ = contingency(labels, clusters)
    both = _pairs(table)
    same_cluster, same_label = _pairs(table.sum(axis=0)), _pairs(table.sum(axis=1))
    precision = both / same_cluster if same_cluster else 0.0
    recall = both / same_label if same_label else 0.0
    return float(precision), float(recall)


def cluster_metrics(labels, clusters) -> dict[str, float]:
    """``precision``, ``recall`` (pairwise), ``accuracy`` (Hungarian) and ``ari`` of a clustering."""
    precision, recall = pairwise_precision_recall(labels, clusters)
    return {"precision": precision, "recall": recall,
            "accuracy": hungarian_accuracy(labels, clusters),
            "ari": float(adjusted_rand_score(_labels_array(labels), _labels_array(clusters)))}


# ----------------------------------------------------------------------------- the study
def _repeats_per_fraction(fractions: Sequence[float], repeats) -> list[int]:
    """``repeats`` as one count per fraction (an int applies to all)."""
    if isinstance(repeats, (int, np.integer)):
        counts = [int(repeats)] * len(fractions)
    else:
        counts = [int(r) for r in repeats]
        if len(counts) != len(fractions):
            raise ValueError(f"repeats must be an int or one count per fraction ({len(fractions)}), "
                             f"got {list(repeats)!r}")
    if any(c < 1 for c in counts):
        raise ValueError(f"repeats must be positive, got {repeats!r}")
    return counts


def study_subsets(y, fractions: Sequence[float], repeats, seed: int = 0,
                  max_samples: int | None = 2000) -> list[tuple[float, int, np.ndarray]]:
    """``(fraction, repeat, indices)`` of every subset: balanced, seeded by (seed, fraction, repeat) as in
    training, then thinned to a balanced ``max_samples`` when larger (agglomerative is O(n²))."""
    y_t = torch.as_tensor(_labels_array(y))
    out = []
    for fraction, count in zip(fractions, _repeats_per_fraction(fractions, repeats)):
        for repeat in range(count):
            sub_seed = subset_seed(seed, fraction, repeat)
            idx = balanced_subset(y_t, fraction, seed=sub_seed)
            if max_samples is not None and len(idx) > max_samples:
                keep = balanced_subset(y_t[idx], max_samples / len(idx), seed=sub_seed + 1)
                idx = idx[keep]
            out.append((float(fraction), repeat, idx.numpy()))
    return out


def smallest_class(y: np.ndarray, idx: np.ndarray, classes: np.ndarray) -> int:
    """Images of the rarest of ``classes`` among ``y[idx]`` (0 when one is missing)."""
    counts = np.bincount(np.searchsorted(classes, y[idx]), minlength=len(classes))
    return int(counts.min()) if len(classes) else 0


def _large_enough(subsets: list, y: np.ndarray, classes: np.ndarray, min_per_class: int) -> list:
    """The subsets whose fraction holds at least ``min_per_class`` images of every class (in every repeat);
    a warning names each fraction left out, a ValueError says when none is left."""
    smallest: dict[float, int] = {}
    for fraction, _, idx in subsets:
        n = smallest_class(y, idx, classes)
        smallest[fraction] = min(n, smallest.get(fraction, n))
    too_small = {f: n for f, n in smallest.items() if n < min_per_class}
    if len(too_small) == len(smallest):
        raise ValueError(f"fractions {sorted(smallest)}: every subset holds fewer than min_per_class = "
                         f"{min_per_class} images of some class (at most {max(smallest.values(), default=0)}"
                         f" of {len(y)} images in {len(classes)} classes); use larger fractions")
    for fraction, n in too_small.items():
        warnings.warn(f"clustering: fraction {fraction:g} gives {n} image(s) per class (< min_per_class = "
                      f"{min_per_class}); skipped, since so few images cluster perfectly at every layer",
                      stacklevel=3)
    return [s for s in subsets if s[0] not in too_small]


def cluster_study(model, split_x: torch.Tensor, split_y, fractions: Sequence[float], repeats,
                  methods: Sequence[str] = METHODS, per_channel: bool = False, seed: int = 0,
                  max_samples: int | None = 2000, dataset: str | None = None, split: str | None = None,
                  batch_size: int = 1024, min_per_class: int = MIN_PER_CLASS) -> pd.DataFrame:
    """Cluster every layer (and with ``per_channel`` every block channel) of ``model`` on balanced subsets
    of ``split_x`` over ``fractions`` × ``repeats``; one tidy row per (fraction, repeat, layer, channel,
    method) with the columns of ``CLUSTER_COLUMNS`` (``channel`` = -1 for a whole layer; ``n_per_class``
    = images of the subset's rarest class).

    k is the number of classes in ``split_y``. Subsets follow ``functions.engine.data.balanced_subset`` seeded by
    ``subset_seed(seed, fraction, repeat)``; ``repeats`` is an int or one count per fraction. A fraction
    whose subsets hold fewer than ``min_per_class`` images of some class is skipped with a warning (with
    one image per class every layer scores ARI = 1.0); a ValueError when no fraction is left.
    """
    methods = list(methods)
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"methods: {method!r} is unknown; allowed: {list(METHODS)}")
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, (int, np.integer)) or min_per_class < 1:
        raise ValueError(f"min_per_class must be an integer ≥ 1, got {min_per_class!r}")
    y = _labels_array(split_y)
    if len(y) != len(split_x):
        raise ValueError(f"split_x and split_y must have the same length, got {len(split_x)} and {len(y)}")
    classes = np.unique(y)
    k = len(classes)
    subsets = _large_enough(study_subsets(y, fractions, repeats, seed, max_samples), y, classes, min_per_class)
    # whole-layer features are small: compute them once for every image any subset uses
    used = np.unique(np.concatenate([idx for _, _, idx in subsets]))
    position = np.full(len(y), -1, dtype=np.int64)
    position[used] = np.arange(len(used))
    features = layer_activations(model, split_x[torch.as_tensor(used)], batch_size)
    rows = []
    base = {"dataset": dataset, "split": split}
    for fraction, repeat, idx in tqdm(subsets, desc="clustering subsets"):
        labels = y[idx]
        common = {"fraction": fraction, "repeat": repeat, **base, "n_samples": len(idx),
                  "n_per_class": smallest_class(y, idx, classes)}
        for layer, feats in features.items():
            for method in methods:
                clusters = cluster_labels(feats[position[idx]], k, method, seed=seed + repeat)
                rows.append({**common, "layer": layer, "channel": WHOLE_LAYER, "method": method,
                             **cluster_metrics(labels, clusters)})
        if per_channel:
            rows.extend(_channel_rows(model, split_x[torch.as_tensor(idx)], labels, k, methods,
                                      seed + repeat, batch_size, common))
    return pd.DataFrame(rows, columns=CLUSTER_COLUMNS)


def _channel_rows(model, x: torch.Tensor, labels: np.ndarray, k: int, methods: list[str], seed: int,
                  batch_size: int, common: dict) -> list[dict]:
    """Rows for every channel of every block: each channel's flattened maps clustered on their own."""
    rows = []
    for i in range(model.depth):
        layer = f"block{i}"
        n_channels = _channel_count(model, layer)
        # chunk channels so that one chunk of maps stays under CHANNEL_CHUNK_BYTES
        map_size = channel_maps(model, x[:1], layer, channels=[0]).shape[2]
        step = max(1, CHANNEL_CHUNK_BYTES // max(1, len(x) * map_size * 4))
        for start in range(0, n_channels, step):
            chosen = list(range(start, min(n_channels, start + step)))
            maps = channel_maps(model, x, layer, channels=chosen, batch_size=batch_size)
            for channel, channel_features in zip(chosen, maps):
                for method in methods:
                    clusters = cluster_labels(channel_features, k, method, seed=seed)
                    rows.append({**common, "layer": layer, "channel": channel, "method": method,
                                 **cluster_metrics(labels, clusters)})
    return rows


def per_class_size(cdf: pd.DataFrame, n_classes: int | None = None) -> pd.Series:
    """Images per class of each clustering row's subset (float, NaN where it cannot be told).

    The ``n_per_class`` column where rows have it (``cluster_study`` writes it). Older rows carry only
    ``n_samples``: subsets below the whole split are balanced, so it is ``n_samples // k`` with k =
    ``n_classes`` when given, else the number of classes of the row's ``dataset``
    (``functions.engine.datasets.NUM_CLASSES``), an upper bound on k — the estimate is then a lower bound
    and never lets a too small subset through. E.g. the shipped ``MNIST/results/clustering`` CSV (classes
    5–9, 4,861 test images, k = 5) has n_samples 5, 45, 485 at fractions 0.1 %, 1 %, 10 %: exactly 1, 9
    and 97 per class, estimated 0, 4 and 48 without ``n_classes``; the same two fractions fall below
    ``MIN_PER_CLASS`` either way.
    """
    from functions.engine.datasets import NUM_CLASSES

    size = pd.Series(np.nan, index=cdf.index, dtype=float)
    if "n_per_class" in cdf.columns:
        size = pd.to_numeric(cdf["n_per_class"], errors="coerce").astype(float)
    if "n_samples" in cdf.columns and size.isna().any():
        if n_classes is not None:
            k = pd.Series(float(n_classes), index=cdf.index)
        elif "dataset" in cdf.columns:
            k = cdf["dataset"].map(lambda d: NUM_CLASSES.get(d, np.nan)).astype(float)
        else:
            k = pd.Series(np.nan, index=cdf.index)
        estimate = np.floor(pd.to_numeric(cdf["n_samples"], errors="coerce").astype(float) / k)
        size = size.fillna(estimate)
    return size


# ----------------------------------------------------------------------------- linear probes
def linear_probe(features: np.ndarray, y, test_size: float = 0.3, seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression on standardised ``features`` (stratified split when
    every class has at least two samples)."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size!r}")
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = _labels_array(y)
    if len(np.unique(y)) < 2:
        raise ValueError("y: a linear probe needs at least two classes")
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 else None
    x_fit, x_test, y_fit, y_test = train_test_split(features, y, test_size=test_size, random_state=seed,
                                                    stratify=stratify)
    if len(np.unique(y_fit)) < 2:
        raise ValueError("y: the fitting part of the probe holds a single class; use more samples")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a near-converged probe still scores fine
        probe.fit(x_fit, y_fit)
    return float(probe.score(x_test, y_test))


def probe_study(model, x: torch.Tensor, y, test_size: float = 0.3, seed: int = 0,
                max_samples: int | None = None, batch_size: int = 1024) -> pd.DataFrame:
    """Linear-probe accuracy of every layer: columns ``layer``, ``accuracy``, ``n_features``, ``n_samples``.

    ``max_samples`` first takes a balanced, seeded subsample of ``x`` (None: all of it).
    """
    y_np = _labels_array(y)
    if max_samples is not None and len(y_np) > max_samples:
        keep = balanced_subset(torch.as_tensor(y_np), max_samples / len(y_np), seed=seed).numpy()
        x, y_np = x[torch.as_tensor(keep)], y_np[keep]
    features = layer_activations(model, x, batch_size)
    rows = [{"layer": layer, "accuracy": linear_probe(feats, y_np, test_size, seed),
             "n_features": feats.shape[1], "n_samples": len(y_np)}
            for layer, feats in tqdm(features.items(), desc="linear probes")]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- CKA
def linear_cka(X, Y) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same N samples (``[N, p]``,
    ``[N, q]``): ||Yᵀ X||_F² / (||Xᵀ X||_F ||Yᵀ Y||_F) on column-centred features; NaN when either is
    constant."""
    X = _as_matrix(X, "X")
    Y = _as_matrix(Y, "Y")
    if len(X) != len(Y):
        raise ValueError(f"X and Y must hold the same samples, got {len(X)} and {len(Y)} rows")
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    if len(X) < max(X.shape[1], Y.shape[1]):
        # fewer samples than features: the same quantities from N × N Gram matrices are cheaper
        K, L = X @ X.T, Y @ Y.T
        cross, norm_x, norm_y = float(np.sum(K * L)), np.linalg.norm(K), np.linalg.norm(L)
    else:
        cross = float(np.linalg.norm(Y.T @ X) ** 2)
        norm_x, norm_y = np.linalg.norm(X.T @ X), np.linalg.norm(Y.T @ Y)
    if norm_x == 0 or norm_y == 0:
        return float("nan")
    return float(cross / (norm_x * norm_y))


def _as_matrix(a, name: str) -> np.ndarray:
    """A 2-D float64 numpy array from a tensor or array (extra dims flattened)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"{name} must be [N, features], got shape {a.shape}")
    return a.reshape(len(a), -1)


def cka_by_layer(model_a, model_b, x: torch.Tensor, batch_size: int = 1024) -> pd.DataFrame:
    """Linear CKA between the two models' same-named layers on ``x``: columns ``layer``, ``cka``.

    Only layers both models have are compared (a truncated model lacks its later blocks); ``head_in`` is
    compared only when both have the same depth, since otherwise it follows different blocks.
    """
    feats_a = layer_activations(model_a, x, batch_size)
    feats_b = layer_activations(model_b, x, batch_size)
    common = [name for name in feats_a if name in feats_b]
    if model_a.depth != model_b.depth:
        common.remove("head_in")
    return pd.DataFrame([{"layer": name, "cka": linear_cka(feats_a[name], feats_b[name])}
                         for name in common])
