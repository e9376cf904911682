"""Paper tables from a statistics summary: median [CI] with rank-group letters, as Markdown or LaTeX."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _cell(row: pd.Series) -> str:
    text = f"{row['median']:.3f}"
    if pd.notna(row.get("low")) and pd.notna(row.get("high")):
        text += f" [{row['low']:.3f}, {row['high']:.3f}]"
    if isinstance(row.get("group_label"), str) and row["group_label"]:
        text += f" {row['group_label']}"
    flag = row.get("significant_vs_baseline")  # NaN for the baseline itself
    if isinstance(flag, (bool, np.bool_)) and flag:
        text += " *"
    return text


def wide_table(summary: pd.DataFrame, arm_col: str = "arm") -> pd.DataFrame:
    """Fractions as rows, arms as columns, cells ``median [low, high] group``."""
    from functions.analysis.results import sort_arms

    # Every grouping column that varies becomes an index level, so no two settings share one cell.
    varying = [c for c in ("study", "setting", "condition", "lr", "fraction")
               if c in summary.columns and summary[c].nunique() > 1]
    index = varying or ["fraction"]
    cells = summary.assign(cell=summary.apply(_cell, axis=1))
    table = cells.pivot_table(index=index, columns=arm_col, values="cell", aggfunc="first")
    return table[sort_arms(list(table.columns))]


def to_markdown(summary: pd.DataFrame) -> str:
    """Markdown table of :func:`wide_table` (GitHub style); ``*`` marks a significant difference to the baseline."""
    return wide_table(summary).to_markdown()


def to_latex(summary: pd.DataFrame, caption: str = "Median test accuracy [95\\% bootstrap CI] and rank group "
             "(arms sharing a letter do not differ after Holm correction over all pairs); * differs from the "
             "baseline after Holm correction over the comparisons with the baseline.") -> str:
    """LaTeX table of :func:`wide_table` (booktabs)."""
    table = wide_table(summary)
    return table.to_latex(caption=caption, escape=True)
