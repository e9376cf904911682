"""Test-time augmentation: average softmax scores over flipped or shifted copies of each input."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TTA_MODES = ("flip", "fivecrop")


def five_crops(x: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Centre + four corner crops of the zero-padded batch, each the size of the input."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    corners = [(pad, pad), (0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad)]
    return [padded[..., i:i + h, j:j + w] for i, j in corners]


def tta_probabilities(net: nn.Module, x: torch.Tensor, mode: str, pad: int | None = None) -> torch.Tensor:
    """Mean softmax over the views of ``x``: ``flip`` (image + mirror) or ``fivecrop``."""
    if mode == "flip":
        views = [x, x.flip(-1)]
    elif mode == "fivecrop":
        views = five_crops(x, pad if pad is not None else max(1, x.shape[-1] // 8))
    else:
        raise ValueError(f"tta {mode!r} is unknown; allowed: {list(TTA_MODES)} or None")
    return torch.stack([F.softmax(net(v), dim=1) for v in views]).mean(0)
