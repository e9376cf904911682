"""The frozen-prefix cache: outputs of frozen blocks ``[0, k)`` computed once per cut, shared by every run.

With freezing on, blocks ``[0, k)`` are a fixed function, so their outputs for the rows runs need
(validation, test, and the union of the training subsets in play) are computed once and derived cut by
cut (cut k from cut k−1); only the suffix trains. :func:`worth_caching` is the one rule for when a cache
is built at all.
"""
from __future__ import annotations

import torch

from .data import Split
from .training import Tensors

PARTS = ("train", "val", "test")


class PrefixCache:
    """Outputs of the frozen blocks ``[0, k)`` for the rows runs need, advanced one block at a time.

    Rows: validation, test, and the union of the training subsets in play. Stored in fp32 when they fit
    the memory budget, else bf16; when even that does not fit, :attr:`fits` turns False and runs fall
    back to computing the prefix on the fly. :meth:`drop` and :meth:`adopt` let a caller compute some
    parts elsewhere (a worker's shared validation/test features).
    """

    def __init__(self, pretrained, split: Split, train_rows: torch.Tensor, device: str,
                 budget_bytes: float, batch_size: int = 2048):
        self.blocks = pretrained.blocks
        self.device, self.budget, self.batch_size = device, budget_bytes, batch_size
        self.train_rows = torch.unique(train_rows)  # sorted: positions found by searchsorted
        self.k = 0
        self.parts = {"train": split.x_train[self.train_rows], "val": split.x_val, "test": split.x_test}
        self.parts = {name: x.to(device) for name, x in self.parts.items()}
        self.fits = True

    def _n_rows(self) -> int:
        return sum(len(x) for x in self.parts.values())

    def drop(self, *names: str) -> None:
        """Stop carrying the named parts (``train``, ``val``, ``test``): :meth:`advance_to` skips them."""
        unknown = [n for n in names if n not in PARTS]
        if unknown:
            raise ValueError(f"parts {unknown} are unknown; allowed: {list(PARTS)}")
        for name in names:
            self.parts.pop(name, None)

    def adopt(self, features: dict[str, torch.Tensor], k: int) -> None:
        """Take parts computed elsewhere for cut ``k`` (this cache must stand at cut k too)."""
        if k != self.k:
            raise ValueError(f"features of cut {k} cannot join a cache at cut {self.k}")
        self.parts.update(features)

    def features(self) -> dict[str, torch.Tensor]:
        """The current parts; :meth:`advance_to` replaces the tensors, so this copy stays valid."""
        return dict(self.parts)

    @torch.no_grad()  # not inference_mode: the cached tensors later feed autograd-tracked training
    def advance_to(self, k: int) -> None:
        """Apply blocks ``[self.k, k)`` to the cached rows (derive cut k from cut k−1)."""
        if k < self.k:
            raise ValueError(f"the cache only moves forward: at cut {self.k}, asked for {k}")
        for i in range(self.k, k):
            block = self.blocks[i].to(self.device).eval()
            for name, x in self.parts.items():
                self.parts[name] = self._apply(block, x)
            self.k = i + 1

    def _apply(self, block, x: torch.Tensor) -> torch.Tensor:
        block = block.to(memory_format=torch.channels_last)
        out_shape = block(x[:1].float()).shape[1:]
        per_row = int(torch.tensor(out_shape).prod())
        dtype = torch.float32 if self._n_rows() * per_row * 4 <= self.budget else torch.bfloat16
        out = torch.empty((len(x),) + tuple(out_shape), dtype=dtype, device=x.device,
                          memory_format=torch.channels_last)
        for s in range(0, len(x), self.batch_size):
            batch = x[s:s + self.batch_size].float().contiguous(memory_format=torch.channels_last)
            out[s:s + self.batch_size] = block(batch).to(dtype)
        self.fits = self._n_rows() * per_row * out.element_size() <= self.budget
        return out

    def tensors(self, split: Split, train_idx: torch.Tensor, val_idx: torch.Tensor | None = None) -> Tensors:
        """Cached inputs of one run (its training subset, validation and test); ``val_idx`` (rows of the
        training split, inside the cached subsets) replaces the validation split when given."""
        def rows(idx):
            return self.parts["train"][torch.searchsorted(self.train_rows, idx).to(self.device)]

        x_val, y_val = ((self.parts["val"], split.y_val) if val_idx is None
                        else (rows(val_idx), split.y_train[val_idx]))
        return Tensors(rows(train_idx), split.y_train[train_idx].to(self.device), x_val, y_val.to(self.device),
                       self.parts["test"], split.y_test.to(self.device))


def parts_nbytes(parts: dict[str, torch.Tensor]) -> int:
    """Bytes held by a dict of tensors."""
    return sum(t.numel() * t.element_size() for t in parts.values())


def cache_bytes_estimate(pretrained, n_rows: int, k: int) -> int:
    """fp32 bytes of the cached activations of ``n_rows`` inputs after block k−1."""
    x = torch.zeros(1, pretrained.in_channels, pretrained.image_size, pretrained.image_size)
    with torch.no_grad():
        for block in pretrained.blocks[:k]:
            x = block(x)
    return n_rows * x[0].numel() * 4


def cached_rows(split: Split, train_rows: torch.Tensor) -> int:
    """Rows a cache over ``train_rows`` holds: the distinct training rows, validation and test."""
    return len(torch.unique(train_rows)) + len(split.y_val) + len(split.y_test)


def worth_caching(pretrained, split: Split, train_rows: torch.Tensor, k: int, budget_bytes: float) -> bool:
    """Whether to build a prefix cache at cut ``k``: its fp32 size at most twice the budget (bf16 halves
    it); beyond that the runs compute the prefix on the fly."""
    return cache_bytes_estimate(pretrained, cached_rows(split, train_rows), k) <= 2 * budget_bytes
