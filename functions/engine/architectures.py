"""Names and block counts of the networks, torch-free: ``config`` validates with them, ``networks`` builds
them, ``conditions`` counts cut points with them.
"""
from __future__ import annotations

from .errors import ConfigError

ACTIVATIONS = ("ReLU", "GELU", "SiLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Mish")
ARCHITECTURES = ("CustomCNN", "ResNet")
RESNET_DEPTHS = (3, 5, 7)  # conv layers: the stem + 1, 2 or 3 residual pairs


def blocks_for_depth(depth: int) -> int:
    """Number of blocks (stem + residual pairs) of a ResNet with ``depth`` conv layers."""
    if depth not in RESNET_DEPTHS:
        raise ConfigError(f"depth {depth!r} is not allowed for architecture='ResNet'; allowed: "
                          f"{list(RESNET_DEPTHS)} conv layers (stem + 1, 2 or 3 residual pairs)")
    return 1 + (depth - 1) // 2


def block_count(cfg) -> int:
    """Blocks a cut can count for a StudyConfig: conv layers for CustomCNN, stem + pairs for ResNet."""
    return blocks_for_depth(cfg.depth) if cfg.architecture == "ResNet" else cfg.depth
