"""What transfers: controls that separate reused features from well-scaled weights.

Raghu et al. (2019, "Transfusion") found that a random initialisation drawn with only each pretrained
layer's weight mean and variance recovers much of what pretrained weights give; Neyshabur et al. (2020,
"What is being transferred in transfer learning?") separate feature reuse from low-level statistics by
shuffling blocks of the target images. Three sources and one image transform make those controls here:

* :func:`statistics_matched` — every parameter tensor of the pretrained blocks re-drawn i.i.d. from a
  normal with that tensor's own mean and standard deviation (per layer, weights and biases alike): the
  scale of the pretrained weights without their structure.
* :func:`shuffled_weights` — every parameter tensor of the pretrained blocks with its values permuted
  across filters and positions: exactly the same multiset of values (so the same statistics), no structure.
* ``transforms.block_shuffle`` — images cut into a ``g × g`` grid of blocks, permuted by one fixed permutation:
  a fixed bijection of pixels that destroys the layout across blocks but keeps local statistics and what
  lies inside one block (so a gain that survives it does not rest on the image's global shape).

All are seeded from the study's seed, so every arm and repeat of a study sees the same network or
permutation. Conditions using the two sources are registered in ``conditions``.
"""
from __future__ import annotations

import copy

import torch

from .data import stable_seed


def _block_parameters(network):
    """The parameters of the network's blocks (the transferable part; the head is always new)."""
    return [p for block in network.blocks for p in block.parameters()]


def statistics_matched(network, seed: int):
    """A copy of ``network`` whose block parameters are i.i.d. normal with each tensor's mean and std."""
    new = copy.deepcopy(network)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in _block_parameters(new):
            std = p.std(unbiased=False) if p.numel() > 1 else torch.zeros(())
            draw = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.copy_(p.mean() + std * draw)
    return new


def shuffled_weights(network, seed: int):
    """A copy of ``network`` whose block parameter tensors each hold their values in a random order."""
    new = copy.deepcopy(network)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in _block_parameters(new):
            flat = p.reshape(-1)
            p.copy_(flat[torch.randperm(flat.numel(), generator=gen)].reshape(p.shape))
    return new


def statistics_matched_source(study):
    """Source ``stats_matched`` of a study: its pretrained A network, statistics-matched (seeded)."""
    return statistics_matched(study.source_model("A"), stable_seed("stats-matched", study.cfg.seed))


def shuffled_source(study):
    """Source ``shuffled`` of a study: its pretrained A network with shuffled weights (seeded)."""
    return shuffled_weights(study.source_model("A"), stable_seed("shuffled-weights", study.cfg.seed))
