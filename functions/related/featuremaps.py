"""Feature-map training: train a CNN (m1), then a copy (m2) on m1's first-layer feature maps.

m1 is conv5×5(1→15) → max-pool → ReLU → conv5×5(15→30) → max-pool → ReLU → linear(→64) → ReLU →
linear(→10). Each of m1's first-conv output maps (24×24 on 28×28 inputs) becomes a one-channel
training image with its image's label. m2 has m1's layers with padding 2 on the first conv, so a 24×24
map yields the same downstream shapes as a 28×28 image in m1; it starts from m1's weights, trains on the
maps, and its weights go back into an m1-shaped model that is evaluated on the original test images.

The maps are streamed: each training step computes the maps of one image batch and trains on them, so
at most one batch of maps exists at a time (60,000 images × 15 channels would be 900,000 maps).
"""
from __future__ import annotations

import math
import time
from typing import Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from functions.engine.training import channels_last, evaluate

# Settings per profile: smoke takes seconds on a slice, cpu trains on the whole dataset.
PROFILES = {
    "smoke": dict(train_limit=1500, test_limit=500, m1_epochs=1, m2_epochs=1, keep_fraction=0.2,
                  image_batch_size=32, batch_size=128, epsilons=[0.0, 0.15, 0.25]),
    "cpu": dict(train_limit=None, test_limit=None, m1_epochs=3, m2_epochs=1, keep_fraction=1.0,
                image_batch_size=32, batch_size=128, epsilons=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]),
    "paper": dict(train_limit=None, test_limit=None, m1_epochs=5, m2_epochs=2, keep_fraction=1.0,
                  image_batch_size=32, batch_size=128, epsilons=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]),
}


# The original study's reported figures (test accuracy; FGSM accuracy at ε = 0.25 on MNIST), for comparison.
REFERENCE = {
    "MNIST": {"m1 test": 0.9813, "m2-in-m1 test": 0.9434, "m1 FGSM 0.25": 0.1076, "m2-in-m1 FGSM 0.25": 0.2382},
    "FashionMNIST": {"m1 test": 0.7169, "m2-in-m1 test": 0.7278},
}


def profile_settings(profile: str) -> dict:
    """The feature-map settings of a profile (smoke / cpu / paper)."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown; allowed: {list(PROFILES)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[profile].items()}


# ----------------------------------------------------------------------------- model
class FeatureMapNet(nn.Module):
    """m1 (``first_padding=0``, 28×28 inputs) or m2 (``first_padding=2``, 24×24 map inputs)."""

    def __init__(self, first_padding: int = 0, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 15, 5, padding=first_padding)
        self.conv2 = nn.Conv2d(15, 30, 5)
        self.fc1 = nn.Linear(30 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def with_first_padding(model: FeatureMapNet, padding: int) -> FeatureMapNet:
    """A copy of ``model``'s weights in a net whose first conv has ``padding`` (m1 ↔ m2).

    The parameter shapes do not depend on padding, so the state dict moves across unchanged.
    """
    other = FeatureMapNet(first_padding=padding, num_classes=model.fc2.out_features)
    other.load_state_dict(model.state_dict())
    return channels_last(other.to(next(model.parameters()).device))


# ----------------------------------------------------------------------------- streaming maps
def stream_feature_maps(conv: nn.Module, x: torch.Tensor, y: torch.Tensor, image_batch_size: int,
                        sum_channels: bool = False, keep_fraction: float = 1.0,
                        generator: torch.Generator | None = None, shuffle: bool = True,
                        device: str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(maps [M, 1, h, w], labels [M])`` computed from one image batch at a time.

    Every output channel of ``conv`` on an image is one map labelled with the image's label
    (``sum_channels``: one map per image, the channels summed). ``keep_fraction`` keeps that share of
    each batch's maps, drawn at random. Maps are shuffled within the batch so the channels of one
    image do not sit next to each other.
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must lie in (0, 1], got {keep_fraction!r}")
    if image_batch_size < 1:
        raise ValueError(f"image_batch_size must be >= 1, got {image_batch_size!r}")
    order = torch.randperm(len(y), generator=generator) if shuffle else torch.arange(len(y))
    for start in range(0, len(y), image_batch_size):
        idx = order[start:start + image_batch_size]
        with torch.no_grad():
            out = conv(x[idx].to(device))  # [B, C, h, w]
        if sum_channels:
            maps, labels = out.sum(1, keepdim=True), y[idx]
        else:
            maps = out.reshape(-1, 1, *out.shape[2:])  # image-major: map i*C + c is channel c of image i
            labels = y[idx].repeat_interleave(out.shape[1])
        keep = torch.randperm(len(labels), generator=generator)[:max(1, round(len(labels) * keep_fraction))]
        yield maps[keep.to(maps.device)], labels[keep].to(device)


def count_maps(n_images: int, channels: int, image_batch_size: int, sum_channels: bool,
               keep_fraction: float) -> int:
    """How many maps one pass of :func:`stream_feature_maps` yields."""
    per_image = 1 if sum_channels else channels
    full, rest = divmod(n_images, image_batch_size)
    per_batch = lambda b: max(1, round(b * per_image * keep_fraction))  # noqa: E731
    return full * per_batch(image_batch_size) + (per_batch(rest) if rest else 0)


# ----------------------------------------------------------------------------- training
def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 1e-3,
                     batch_size: int = 128, seed: int = 0, device: str = "cpu",
                     progress: bool = True) -> pd.DataFrame:
    """Adam on in-memory tensors; one history row (train loss/accuracy) per epoch."""
    gen = torch.Generator().manual_seed(seed)
    # channels-last before the optimizer sees the parameters, the layout evaluate() switches to
    channels_last(model.to(device)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rows = []
    for epoch in tqdm(range(1, epochs + 1), desc="m1", disable=not progress):
        order = torch.randperm(len(y), generator=gen)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss_sum, correct = _step(model, optimizer, xb, yb, loss_sum, correct)
        rows.append(dict(epoch=epoch, train_loss=loss_sum / len(y), train_acc=correct / len(y)))
    return pd.DataFrame(rows)


def _step(model, optimizer, xb, yb, loss_sum, correct):
    """One optimiser step; returns the running loss sum and correct count."""
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss_sum + loss.item() * len(yb), correct + (logits.argmax(1) == yb).sum().item()


def train_on_feature_maps(m2: nn.Module, source_conv: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          epochs: int, lr: float = 1e-3, image_batch_size: int = 32,
                          sum_channels: bool = False, keep_fraction: float = 1.0, seed: int = 0,
                          device: str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train ``m2`` on the maps of ``source_conv`` (m1's frozen first conv), streamed per image batch.

    One optimiser step per image batch (``image_batch_size`` images give up to 15× as many maps).
    Returns one history row per epoch: loss and accuracy on the maps, maps seen, seconds.
    """
    gen = torch.Generator().manual_seed(seed)
    source_conv = source_conv.to(device).eval()
    channels_last(m2.to(device)).train()
    optimizer = torch.optim.Adam(m2.parameters(), lr=lr)
    steps = math.ceil(len(y) / image_batch_size)
    rows, start_time = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss_sum, correct, seen = 0.0, 0, 0
        stream = stream_feature_maps(source_conv, x, y, image_batch_size, sum_channels, keep_fraction,
                                     gen, device=device)
        for maps, labels in tqdm(stream, total=steps, desc=f"m2 epoch {epoch}", disable=not progress):
            loss_sum, correct = _step(m2, optimizer, maps, labels, loss_sum, correct)
            seen += len(labels)
        rows.append(dict(epoch=epoch, train_loss=loss_sum / seen, train_acc=correct / seen, maps=seen,
                         seconds=time.perf_counter() - start_time))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- robustness
def fgsm_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, mean, std,
                  batch_size: int = 1000) -> float:
    """Accuracy under the fast gradient sign attack with step ``epsilon`` in pixel units ([0, 1]).

    ``x`` is normalised with ``mean``/``std``; the step is taken in pixel space (``ε/std`` after
    normalisation) and the result clamped to valid pixels, so ε means the same on every dataset.
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    channels_last(model)  # outside inference mode, so the parameters stay usable by autograd
    device = next(model.parameters()).device
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        xb = x[start:start + batch_size].to(device).clone().requires_grad_(True)
        yb = y[start:start + batch_size].to(device)
        loss = F.cross_entropy(model(xb), yb)
        (grad,) = torch.autograd.grad(loss, xb)
        with torch.no_grad():
            adv = xb + epsilon / std_t * grad.sign()
            adv = torch.maximum(torch.minimum(adv, (1 - mean_t) / std_t), (0 - mean_t) / std_t)
            correct += (model(adv).argmax(1) == yb).sum().item()
    model.train(was_training)
    return correct / max(1, len(y))


def robustness_table(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, epsilons, mean,
                     std) -> pd.DataFrame:
    """Tidy table: one row per (model, ε) with the FGSM accuracy."""
    rows = [dict(model=name, epsilon=float(eps), accuracy=fgsm_accuracy(m, x, y, float(eps), mean, std))
            for name, m in models.items() for eps in epsilons]
    return pd.DataFrame(rows)


def accuracy_table(models: dict[str, nn.Module], splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
                   ) -> pd.DataFrame:
    """Tidy table: one row per (model, split) with the clean accuracy."""
    rows = [dict(model=name, split=split, accuracy=evaluate(m, xs, ys))
            for name, m in models.items() for split, (xs, ys) in splits.items()]
    return pd.DataFrame(rows)
