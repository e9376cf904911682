"""Paper tables from a statistics summary: median [CI] with rank-group letters, as Markdown or LaTeX; and
the headline Δ table (gain of every cut over the baseline, ✓ where significant)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from functions.analysis import stats
from functions.analysis.results import sort_arms, with_settings


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


def delta_table(df: pd.DataFrame, metric: str = "test_acc", baseline: str = "baseline", alpha: float = 0.05,
                ci: bool = False, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The headline table: the median paired difference of every cut to the baseline, in points (100 ×
    ``metric``), one row per fraction, one column per cut; ``✓`` where it is significant.

    Rows are the runs of a study notebook (``Study.run``'s frame or ``load_results``). Each condition is
    compared with its own copy of the baseline (:func:`~functions.analysis.results.with_settings`); the row
    index also names the study and the condition when there are several. Pairs are repeats (same subset,
    same initial weights); significance is a Wilcoxon signed-rank test, Holm-corrected over the
    cut-vs-baseline comparisons of one (study, condition, fraction) — exactly what
    :func:`functions.analysis.figures.diff_to_baseline` marks with filled markers. ``ci=True`` adds the
    bootstrap 95 % CI of the median difference to each cell.
    """
    data = with_settings(df)
    by = ["study", "setting", "fraction"]
    effects = stats.effect_vs_baseline(data, metric=metric, baseline=baseline, by=by, n_boot=n_boot,
                                       seed=seed, alpha=alpha)
    return delta_frame(effects, by=by, ci=ci)


def delta_frame(effects: pd.DataFrame, by: list[str] | tuple[str, ...] = ("study", "setting", "fraction"),
                ci: bool = False) -> pd.DataFrame:
    """:func:`delta_table` from an effect table (:func:`functions.analysis.stats.effect_vs_baseline`'s
    columns): cells ``+1.2 ✓`` (points), grouping columns that do not vary left out of the index."""
    by = [c for c in by if c in effects.columns]
    if effects.empty:
        return pd.DataFrame(index=pd.Index([], name="fraction"))

    def cell(row: pd.Series) -> str:
        if pd.isna(row["median_diff"]):
            return "–"
        text = f"{100 * row['median_diff']:+.1f}"
        if ci and pd.notna(row.get("low")) and pd.notna(row.get("high")):
            text += f" [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
        return text + (" ✓" if bool(row["significant"]) else "")

    index = [c for c in by if c == "fraction" or effects[c].nunique(dropna=False) > 1] or by[-1:]
    cells = effects.assign(cell=effects.apply(cell, axis=1))
    table = cells.pivot_table(index=index, columns="arm", values="cell", aggfunc="first")
    table = table[sort_arms(list(table.columns))]
    table.columns.name = "Δ points vs baseline"
    return table
