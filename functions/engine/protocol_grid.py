"""The protocol-sensitivity study: one grid (baseline + a condition at every cut, same subsets) trained
under each protocol variant of ``protocols``, one store per variant."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

from .config import StudyConfig
from .protocols import protocol_configs
from .study import Study


def run_protocols(cfg: StudyConfig, root: str | Path = ".", conditions: Iterable[str] = ("baseline", None),
                  variants: Iterable[str] | None = None, progress: bool = True, executor=None):
    """Run (or resume) the grid under every protocol variant; returns (rows, wall seconds per variant).

    Wall seconds are those spent in this call (0 for a variant whose rows were all stored already); the
    rows' own ``seconds`` sum to the training time per variant.
    """
    import pandas as pd

    frames, walls = [], {}
    for label, variant_cfg in protocol_configs(cfg, variants).items():
        study = Study(variant_cfg, root=root)
        start = time.perf_counter()
        df = study.run(list(conditions), progress=progress, executor=executor)
        walls[label] = time.perf_counter() - start
        frames.append(df)
    return pd.concat(frames, ignore_index=True), walls
