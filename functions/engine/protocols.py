"""The protocol-sensitivity study: the same grid (baseline + a condition at every cut, same subsets)
trained under each fine-tuning protocol, so a transfer gain can be checked against a fair protocol.

Each protocol variant is an ordinary study with its own store (the protocol fields are in the store's
fingerprint); this module only names the variants and runs them one after the other.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

from .config import StudyConfig

# The learning rates "realistic, tuned lr" chooses from, around the profiles' lr_fine_tune = 1e-3.
TUNED_LR_GRID = [3e-4, 1e-3, 3e-3]
# Label → config fields. "fixed budget" is the realistic protocol without validation: exactly min_steps
# steps on all of the labelled subset, last state kept. "realistic, tuned lr" lets every arm pick its own
# learning rate on its own carved validation split (three times the training of "realistic").
PROTOCOL_VARIANTS: dict[str, dict[str, Any]] = {
    "original": dict(protocol="original"),
    "steps": dict(protocol="steps"),
    "realistic": dict(protocol="realistic"),
    "fixed budget": dict(protocol="realistic", subset_val_fraction=0.0),
    "realistic, tuned lr": dict(protocol="realistic", lr_grid=TUNED_LR_GRID),
}


def protocol_configs(cfg: StudyConfig, variants: Iterable[str] | None = None) -> dict[str, StudyConfig]:
    """One config per protocol variant (label → config; default: every one), everything else as in ``cfg``."""
    labels = list(PROTOCOL_VARIANTS) if variants is None else list(variants)
    unknown = [v for v in labels if v not in PROTOCOL_VARIANTS]
    if unknown:
        raise ValueError(f"protocol variant(s) {unknown} unknown; allowed: {list(PROTOCOL_VARIANTS)}")
    return {label: cfg.replace(**PROTOCOL_VARIANTS[label]) for label in labels}


def run_protocols(cfg: StudyConfig, root: str | Path = ".", conditions: Iterable[str] = ("baseline", None),
                  variants: Iterable[str] | None = None, progress: bool = True, executor=None):
    """Run (or resume) the grid under every protocol variant; returns (rows, wall seconds per variant).

    Rows get a ``protocol_variant`` column. Wall seconds are those spent in this call (0 for a variant
    whose rows were all stored already); the rows' own ``seconds`` sum to the training time per variant.
    """
    import pandas as pd

    from .study import Study

    frames, walls = [], {}
    for label, variant_cfg in protocol_configs(cfg, variants).items():
        study = Study(variant_cfg, root=root)
        start = time.perf_counter()
        df = study.run(list(conditions), progress=progress, executor=executor)
        walls[label] = time.perf_counter() - start
        frames.append(df.assign(protocol_variant=label))
    return pd.concat(frames, ignore_index=True), walls
