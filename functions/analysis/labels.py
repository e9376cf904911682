"""How the tables and figures name what they show: fractions, the protocol, the repeats.

One unit per quantity everywhere: a fraction of the fine-tuning data in per cent (``0.1 %``), an accuracy
difference in points. Light (pandas only), so that the tables use it without importing matplotlib.
"""
from __future__ import annotations

import pandas as pd

from functions.analysis.findings_format import fraction_text
from functions.analysis.results import protocol_variant


def fraction_label(fraction: float) -> str:
    """0.001 → ``0.1 %``, 1.0 → ``100 %`` (as the findings document writes it)."""
    return fraction_text(fraction)


def protocol_text(df: pd.DataFrame) -> str:
    """``protocol realistic, tuned lr``: the fine-tuning protocol of the rows (several joined by ``/``)."""
    variants = [str(v) for v in pd.unique(protocol_variant(df))]
    return ("protocol " if len(variants) == 1 else "protocols ") + "/".join(variants)


def repeats_per_fraction(df: pd.DataFrame) -> pd.Series:
    """Repeats per fraction (ascending): the largest number of distinct repeats of any arm there."""
    arm = "arm" if "arm" in df.columns else "cut"
    counts = df.dropna(subset=["repeat"]).groupby(["fraction", arm])["repeat"].nunique()
    return counts.groupby(level="fraction").max().sort_index().astype(int)


def repeats_text(df: pd.DataFrame) -> str | None:
    """``8 repeats``, or ``repeats 16/16/8`` (one count per fraction, ascending) when they differ; None
    when the rows have no repeats."""
    if not {"repeat", "fraction"} <= set(df.columns) or not ({"arm", "cut"} & set(df.columns)) \
            or not df["repeat"].notna().any():
        return None
    values = list(repeats_per_fraction(df))
    if len(set(values)) == 1:
        return f"{values[0]} repeat{'s' if values[0] != 1 else ''}"
    return "repeats " + "/".join(map(str, values))


def with_fraction_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a table for reading, with its ``fraction`` column or index level in per cent (``0.1 %``)."""
    out = frame.copy()
    if "fraction" in out.columns:
        out["fraction"] = out["fraction"].map(fraction_label)
    names = list(out.index.names)
    if "fraction" in names:
        if isinstance(out.index, pd.MultiIndex):
            level = names.index("fraction")
            out.index = out.index.set_levels(out.index.levels[level].map(fraction_label), level=level)
        else:
            out.index = out.index.map(fraction_label).rename("fraction")
    return out


def differences_in_points(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a statistics table for reading: every accuracy-difference column (``diff_vs_baseline``,
    ``diff_low``, ``median_diff`` …: a name with ``diff``) times 100, renamed ``… (points)``."""
    columns = [c for c in frame.columns if isinstance(c, str) and "diff" in c.split("_")]
    out = frame.copy()
    for column in columns:
        out[column] = 100 * pd.to_numeric(out[column], errors="coerce")
    return out.rename(columns={c: f"{c} (points)" for c in columns})
