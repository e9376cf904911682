"""The study's networks as ordered lists of blocks plus a head; cut / freeze / re-init / truncate.

:class:`CustomCNN` (conv blocks) and :class:`ResNet` (a stem and residual pairs) share the
:class:`BlockNet` interface. "Cut at k" slices the block list: blocks ``[0, k)`` come from the pretrained
model, blocks ``[k, depth)`` are re-initialised, kept, or removed, and the head is always new.

The residual family has no batch normalisation, on purpose: a frozen BatchNorm still updates its running
statistics in training mode, so "frozen" blocks would drift, and cached prefix activations (computed in
eval mode) would no longer equal what the network computes while training. Three residual pairs train
well without it.
"""
from __future__ import annotations

import contextlib
import copy
import re
import zlib

import torch
from torch import nn

from .architectures import blocks_for_depth
from .datasets import DATASET_SHAPES

ACTIVATION_CLASSES = {
    "ReLU": nn.ReLU, "GELU": nn.GELU, "SiLU": nn.SiLU, "LeakyReLU": nn.LeakyReLU, "ELU": nn.ELU,
    "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid, "Mish": nn.Mish,
}


class ConvBlock(nn.Module):
    """conv ("same" padding) → activation → optional average pooling."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str,
                 pool_stride: int | None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.act = ACTIVATION_CLASSES[activation]()
        self.pool = nn.AvgPool2d(2, pool_stride) if pool_stride else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv(x))
        return self.pool(x) if self.pool is not None else x


class Head(nn.Module):
    """Flatten → ``fc`` (→ activation → ``fc_2`` with two linear layers)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int | None, activation: str):
        super().__init__()
        if hidden:
            self.fc = nn.Linear(in_features, hidden)
            self.act = ACTIVATION_CLASSES[activation]()
            self.fc_2 = nn.Linear(hidden, num_classes)
        else:
            self.fc = nn.Linear(in_features, num_classes)
            self.act = self.fc_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x.flatten(1))
        return self.fc_2(self.act(x)) if self.fc_2 is not None else x


class BlockNet(nn.Module):
    """Conv blocks + a head, the interface every condition relies on (cut points count blocks).

    Subclasses build ``self.blocks`` (an ``nn.ModuleList``), ``self.head`` and set ``in_channels``,
    ``image_size``, ``hidden`` and ``activation``; ``head_class`` and :meth:`head_features` say how the
    last block's activations reach the head's linear layer.
    """

    head_class: type[nn.Module] = Head

    @classmethod
    def from_config(cls, cfg, in_channels: int, image_size: int, num_classes: int) -> "BlockNet":
        """Build from a StudyConfig's model fields (subclasses share the constructor's signature)."""
        f = cfg.model_fields()
        return cls(in_channels, image_size, num_classes, f["depth"], f["num_channels"], f["kernel_size"],
                   f["activation_function"], f["use_pooling"], f["pooling_every_n_layers"],
                   f["pooling_stride"], f["two_linear_layers"], f["hidden_dim_lin"])

    @property
    def depth(self) -> int:
        """Number of blocks (what cut points count)."""
        return len(self.blocks)

    @property
    def num_classes(self) -> int:
        return (self.head.fc_2 or self.head.fc).out_features

    @staticmethod
    def _run(h: torch.Tensor, blocks) -> torch.Tensor:
        for block in blocks:
            h = block(h)
        return h

    def head_features(self, h: torch.Tensor) -> torch.Tensor:
        """The last block's output as the head's linear layer sees it (here: flattened)."""
        return h.flatten(1)

    def head_in_features(self) -> int:
        """Input size of the head, from a dummy forward pass (no arithmetic to keep in sync)."""
        with torch.no_grad():
            x = torch.zeros(1, self.in_channels, self.image_size, self.image_size)
            return self.head_features(self._run(x, self.blocks)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)

    def forward_from(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Run blocks ``[start, depth)`` and the head on activations ``h`` (output of block start−1)."""
        return self.head(self._run(h, self.blocks[start:]))

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, in order."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    def make_head(self, num_classes: int) -> nn.Module:
        """A fresh head sized for the current blocks (called after cutting)."""
        return self.head_class(self.head_in_features(), num_classes, self.hidden, self.activation)

    def head_input(self, x: torch.Tensor) -> torch.Tensor:
        """Features entering the head's linear layer."""
        return self.head_features(self._run(x, self.blocks))


class CustomCNN(BlockNet):
    """The study's CNN: ``depth`` conv blocks of ``num_channels`` and a linear head, logits out."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, num_classes: int = 10, depth: int = 6,
                 num_channels: int = 64, kernel_size: int = 3, activation: str = "ReLU",
                 use_pooling: bool = True, pooling_every_n_layers: int = 2, pooling_stride: int = 2,
                 two_linear_layers: bool = False, hidden_dim_lin: int = 128):
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        self.activation = activation
        self.hidden = hidden_dim_lin if two_linear_layers else None
        blocks = []
        for i in range(depth):
            pool = pooling_stride if use_pooling and (i + 1) % pooling_every_n_layers == 0 else None
            blocks.append(ConvBlock(in_channels if i == 0 else num_channels, num_channels, kernel_size,
                                    activation, pool))
        self.blocks = nn.ModuleList(blocks)
        self.head = self.make_head(num_classes)


# ----------------------------------------------------------------------------- the residual family
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

    def head_features(self, h: torch.Tensor) -> torch.Tensor:
        """The channel means of the last block (global average pooling)."""
        return h.mean(dim=(2, 3))


def new_model(cfg, num_classes: int) -> BlockNet:
    """An untrained network of a StudyConfig's architecture, shaped for its datasets."""
    channels, size, _ = DATASET_SHAPES[cfg.source_dataset]
    net_class = ResNet if cfg.architecture == "ResNet" else CustomCNN
    return net_class.from_config(cfg, channels, size, num_classes)


class Suffix(nn.Module):
    """Blocks ``[start, depth)`` and the head of a model: what trains on cached prefix activations."""

    def __init__(self, model: BlockNet, start: int):
        super().__init__()
        self.blocks = nn.ModuleList(list(model.blocks)[start:])
        self.head = model.head

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.head(h)


# ----------------------------------------------------------------------------- cutting
def cut(model: BlockNet, k: int, num_classes: int, freeze: bool = True, reinit: bool = True,
        truncate: bool = False, reinit_both_dense: bool = True, seed: int | None = None) -> BlockNet:
    """A new model from ``model`` cut at ``k`` (blocks [0,k) kept; the rest re-init/kept/removed; new head).

    ``seed`` makes the fresh weights common random numbers: block j is re-initialised from
    ``layer_seed(seed, "block", j)`` and the head from ``layer_seed(seed, "head")``, so every arm that
    re-initialises block j starts it from the same tensor, whatever its cut, and every head of the same
    shape starts alike (cut 0 with re-init is then exactly the from-scratch baseline).
    """
    if not 0 <= k <= model.depth:
        raise ValueError(f"cut k={k} is outside the allowed range 0..{model.depth}")
    new = copy.deepcopy(model)
    if truncate:
        new.blocks = nn.ModuleList(list(new.blocks)[:k])
    elif reinit:
        for j in range(k, new.depth):
            with _seeded(None if seed is None else layer_seed(seed, "block", j)):
                reset_parameters(new.blocks[j])
    old_head = new.head
    with _seeded(None if seed is None else layer_seed(seed, "head")):
        new.head = new.make_head(num_classes)
    keep_hidden = (not reinit_both_dense and getattr(new, "hidden", None)
                   and old_head.fc.in_features == new.head.fc.in_features)
    if keep_hidden:  # only the output layer is new; the hidden dense layer keeps its weights
        new.head.fc.load_state_dict(old_head.fc.state_dict())
    for block in new.blocks[:k]:
        block.requires_grad_(not freeze)
    return new


def layer_seed(seed: int, *layer) -> int:
    """Seed of one fresh layer of a run: depends on the run's seed and the layer only (not on the cut)."""
    return zlib.crc32("|".join(map(repr, (seed,) + layer)).encode()) & 0x7FFFFFFF


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Run a block of code under its own seed without disturbing the global RNG (no-op for None)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise every layer inside ``module`` that knows how (conv, linear, norm layers)."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters that require grad: exactly what goes to the optimizer (frozen ones are left out)."""
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ----------------------------------------------------------------------------- original .pth files
_ORIGINAL_KEY = re.compile(r"^(conv(\d+)|fc|fc_2)\.(weight|bias)$")


def convert_original_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the original study's names (``conv0.weight``, ``fc.bias``, ``fc_2.weight``) to ours."""
    out = {}
    for key, value in state.items():
        m = _ORIGINAL_KEY.match(key)
        if m is None:
            raise KeyError(f"unexpected parameter {key!r} in an original state dict; "
                           "expected conv<i>.weight/bias, fc.*, fc_2.*")
        name, idx, kind = m.group(1), m.group(2), m.group(3)
        out[f"blocks.{idx}.conv.{kind}" if idx is not None else f"head.{name}.{kind}"] = value
    return out


def load_state(model: BlockNet, state: dict[str, torch.Tensor]) -> BlockNet:
    """Load our own or the original study's state dict into ``model`` (names detected)."""
    if any(k.startswith("conv") for k in state):
        state = convert_original_state_dict(state)
    model.load_state_dict(state)
    return model


def forward_flops(model: BlockNet, input_shape: tuple[int, ...] | None = None) -> list[float]:
    """Forward FLOPs of one input of every block, then of the head: ``[block 0, …, block n-1, head]``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on one zero input of ``input_shape``
    (``(C, H, W)``; default the model's own): convolutions and matrix products at 2 FLOPs per
    multiply-add; element-wise work (activations, pooling, residual additions, biases) is not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(input_shape) if input_shape is not None else (model.in_channels, model.image_size,
                                                                model.image_size)
    flops = []
    h = torch.zeros(1, *shape)
    with torch.no_grad():
        for block in model.blocks:
            with FlopCounterMode(display=False) as counter:
                h = block(h)
            flops.append(float(counter.get_total_flops()))
        with FlopCounterMode(display=False) as counter:
            model.forward_from(h, len(model.blocks))
        flops.append(float(counter.get_total_flops()))
    return flops
