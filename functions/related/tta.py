"""Test-time augmentation of the study's fine-tuned networks: each condition's runs retrained at one
fraction (same seeds as the grid) and tested with and without averaging over flipped or cropped views.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from functions.engine.study import Study
from functions.engine.training import TTA_MODES, evaluate

TTA_CHOICES = (None, *TTA_MODES)


def tta_accuracies(net: nn.Module, x: torch.Tensor, y: torch.Tensor, modes: Sequence[str | None] = TTA_CHOICES,
                   batch_size: int = 2048) -> dict[str, float]:
    """Accuracy of ``net`` on ``(x, y)`` without TTA (``"none"``) and with each TTA mode."""
    out = {}
    for mode in modes:
        if mode not in TTA_CHOICES:
            raise ValueError(f"modes: {mode!r} is unknown; allowed: {list(TTA_CHOICES)}")
        out[mode or "none"] = evaluate(net, x, y, batch_size, tta=mode)
    return out


def tta_comparison(study: Study, conditions: Sequence[str], fraction: float, repeats: Iterable[int],
                   modes: Sequence[str | None] = TTA_CHOICES) -> pd.DataFrame:
    """Train each condition's runs at one fraction and report test accuracy with and without TTA.

    The runs are retrained (the store keeps rows, not weights) with the same seeds as the grid, so the
    ``none`` column reproduces the stored test accuracy. Columns: condition, cut, repeat, tta, test_acc.
    """
    records, wanted = [], set(repeats)
    for name in conditions:
        specs = [s for s in study.plan((name,)) if s.fraction == fraction and s.repeat in wanted]
        for spec in specs:
            model, _ = study.train(spec)
            model.eval()
            for mode, acc in tta_accuracies(model, study.target.x_test, study.target.y_test, modes,
                                            study.cfg.eval_batch_size).items():
                records.append({"condition": name, "cut": spec.cut, "repeat": spec.repeat, "tta": mode,
                                "test_acc": acc})
    return pd.DataFrame(records, columns=["condition", "cut", "repeat", "tta", "test_acc"])
