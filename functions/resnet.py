"""A small residual ConvNet family (3, 5 or 7 conv layers) with the same block/head interface as CustomCNN.

Block 0 is the stem (conv → activation); every later block is one residual pair
``act(h + conv(act(conv(h))))`` followed by optional average pooling; the head averages each channel
over the image (global average pooling) and applies the linear layer(s). Cuts therefore count *blocks*:
a 7-layer network has 4 blocks and cuts 0..4.

No batch normalisation, on purpose: a frozen BatchNorm still updates its running statistics in training
mode, so "frozen" blocks would drift, and cached prefix activations (computed in eval mode) would no
longer equal what the network computes while training. Three residual pairs train well without it.
"""
from __future__ import annotations

import torch
from torch import nn

from .models import ACTIVATION_CLASSES, BlockNet, Head

RESNET_DEPTHS = (3, 5, 7)  # conv layers: the stem + 1, 2 or 3 residual pairs


def blocks_for_depth(depth: int) -> int:
    """Number of blocks (stem + residual pairs) of a ResNet with ``depth`` conv layers."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"depth {depth!r} is not allowed for architecture='ResNet'; allowed: "
                         f"{list(RESNET_DEPTHS)} conv layers (stem + 1, 2 or 3 residual pairs)")
    return 1 + (depth - 1) // 2


def block_count(cfg) -> int:
    """Blocks a cut can count for a StudyConfig: conv layers for CustomCNN, stem + pairs for ResNet."""
    return blocks_for_depth(cfg.depth) if cfg.architecture == "ResNet" else cfg.depth


class StemBlock(nn.Module):
    """The first conv layer: ``in_channels`` → ``channels`` ("same" padding) → activation."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, activation: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size, padding=kernel_size // 2)
        self.act = ACTIVATION_CLASSES[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ResidualBlock(nn.Module):
    """Two conv layers with an identity shortcut, then optional 2×2 average pooling."""

    def __init__(self, channels: int, kernel_size: int, activation: str, pool_stride: int | None):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.act = ACTIVATION_CLASSES[activation]()
        self.pool = nn.AvgPool2d(2, pool_stride) if pool_stride else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.act(h + self.conv_2(self.act(self.conv(h))))
        return self.pool(h) if self.pool is not None else h


class PooledHead(Head):
    """Global average pooling over the image, then the linear layer(s) of :class:`Head`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.mean(dim=(2, 3)) if x.dim() == 4 else x)


class ResNet(BlockNet):
    """Stem + residual pairs + global average pooling, with CustomCNN's block/head interface.

    ``depth`` counts conv layers (3, 5 or 7: the stem plus two per residual pair), so ``from_config``
    takes ``cfg.depth`` as it is; :attr:`depth` afterwards counts blocks, which is what cuts count.
    """

    head_class = PooledHead

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, depth: int = 5,
                 num_channels: int = 16, kernel_size: int = 3, activation: str = "ReLU",
                 use_pooling: bool = True, pooling_every_n_layers: int = 2, pooling_stride: int = 2,
                 two_linear_layers: bool = False, hidden_dim_lin: int = 128):
        super().__init__()
        if activation not in ACTIVATION_CLASSES:
            raise ValueError(f"activation {activation!r} is unknown; allowed: {list(ACTIVATION_CLASSES)}")
        n_pairs = blocks_for_depth(depth) - 1
        self.in_channels, self.image_size = in_channels, image_size
        self.activation = activation
        self.hidden = hidden_dim_lin if two_linear_layers else None
        # A residual pair holds two conv layers, so "pool every n conv layers" pools after every
        # max(1, n // 2)-th pair.
        every_pairs = max(1, pooling_every_n_layers // 2)
        blocks: list[nn.Module] = [StemBlock(in_channels, num_channels, kernel_size, activation)]
        size = image_size
        for j in range(1, n_pairs + 1):
            pool = pooling_stride if use_pooling and j % every_pairs == 0 and size >= 2 else None
            if pool:
                size = (size - 2) // pool + 1
            blocks.append(ResidualBlock(num_channels, kernel_size, activation, pool))
        self.blocks = nn.ModuleList(blocks)
        self.head = self.make_head(num_classes)

    @property
    def conv_layers(self) -> int:
        return 1 + 2 * (len(self.blocks) - 1)

    def head_features(self, h: torch.Tensor) -> torch.Tensor:
        """The channel means of the last block (global average pooling)."""
        return h.mean(dim=(2, 3))
