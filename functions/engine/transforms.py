"""Fixed transforms of a study's fine-tuning images (torch only; no other engine module).

:func:`block_shuffle` is the what-transfers image control (``StudyConfig.target_block_shuffle``): images cut
into a ``g × g`` grid of blocks, permuted by one fixed permutation — a fixed bijection of pixels that keeps
local statistics but destroys the layout that features rely on (Neyshabur et al. 2020).
"""
from __future__ import annotations

import torch


def block_permutation(grid: int, seed: int) -> torch.Tensor:
    """The fixed order of a ``grid × grid`` image's blocks (a permutation of ``range(grid**2)``) that is
    never the identity, so a shuffled study always differs from the plain one."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(grid * grid, generator=gen)
        if grid == 1 or not torch.equal(order, torch.arange(grid * grid)):
            return order


def block_shuffle(images: torch.Tensor, grid: int, seed: int) -> torch.Tensor:
    """``images`` (N, C, H, W) with their ``grid × grid`` blocks moved by :func:`block_permutation`;
    H and W must be multiples of ``grid``."""
    n, c, h, w = images.shape
    if h % grid or w % grid:
        raise ValueError(f"block_shuffle: a {h}×{w} image does not split into a {grid}×{grid} grid of blocks")
    bh, bw = h // grid, w // grid
    blocks = images.reshape(n, c, grid, bh, grid, bw).permute(0, 1, 2, 4, 3, 5).reshape(n, c, grid * grid, bh, bw)
    blocks = blocks[:, :, block_permutation(grid, seed)]
    return blocks.reshape(n, c, grid, grid, bh, bw).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)
