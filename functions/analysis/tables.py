"""Paper tables from a statistics summary: median [CI] with rank-group letters, as Markdown or LaTeX; and
the headline Δ table (gain of every cut over the baseline, ✓ where significant)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from functions.analysis import stats
from functions.analysis.labels import fraction_label
from functions.analysis.results import protocol_variant, sort_arms, with_settings


def _cell(row: pd.Series, letters: bool = True) -> str:
    text = f"{row['median']:.3f}"
    if pd.notna(row.get("low")) and pd.notna(row.get("high")):
        text += f" [{row['low']:.3f}, {row['high']:.3f}]"
    if letters and isinstance(row.get("group_label"), str) and row["group_label"]:
        text += f" {row['group_label']}"
    flag = row.get("significant_vs_baseline")  # NaN for the baseline itself
    if isinstance(flag, (bool, np.bool_)) and flag:
        text += " *"
    return text


def _index_columns(summary: pd.DataFrame) -> list[str]:
    """Every grouping column that varies, so that no two settings share one cell (at least the fraction)."""
    varying = [c for c in ("study", "setting", "condition", "lr", "fraction")
               if c in summary.columns and summary[c].nunique() > 1]
    return varying or ["fraction"]


def _informative_letters(summary: pd.DataFrame) -> pd.Series:
    """Per row of ``summary``: whether its row of the table has arms in different rank groups (where every
    arm shares one letter, the letter says nothing and is left out)."""
    if "group_label" not in summary.columns:
        return pd.Series(False, index=summary.index)
    keys = [summary[c] for c in _index_columns(summary)]
    return summary.groupby(keys, dropna=False)["group_label"].transform("nunique") > 1


def wide_table(summary: pd.DataFrame, arm_col: str = "arm", letters: bool | None = None) -> pd.DataFrame:
    """Fractions as rows, arms as columns, cells ``median [low, high] group *``.

    ``letters``: rank-group letters in every row (True), in none (False), or (None, default) only in rows
    where the arms fall into more than one group.
    """
    shown = _informative_letters(summary) if letters is None else pd.Series(bool(letters), index=summary.index)
    cells = summary.assign(cell=[_cell(row, show) for (_, row), show in zip(summary.iterrows(), shown)])
    table = cells.pivot_table(index=_index_columns(summary), columns=arm_col, values="cell", aggfunc="first")
    return table[sort_arms(list(table.columns))]


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """A wide table for reading: index levels as columns (no tuples as row labels), fractions in per cent."""
    flat = table.reset_index()
    if "fraction" in flat.columns:
        flat["fraction"] = flat["fraction"].map(fraction_label)
    flat.columns.name = None
    return flat.fillna("–")  # an arm a setting does not have (FR has no cut 0 where FT has)


def _tests(n: int) -> str:
    return f"{n} test" + ("" if n == 1 else "s")


def table_caption(summary: pd.DataFrame, letters: bool | None = None, metric: str = "test accuracy") -> str:
    """What a table of :func:`wide_table` shows and which test each mark comes from, with the sizes of the
    two Holm families, so that a letter and a star never seem to contradict each other."""
    arms = summary.groupby(_index_columns(summary), dropna=False)["arm"].nunique()
    k = int(arms.max()) if len(arms) else 0
    vs_baseline, all_pairs = max(k - 1, 1), k * (k - 1) // 2
    text = (f"Median {metric} [95 % bootstrap CI] per fraction (in per cent of the fine-tuning data) and arm. "
            f"*: differs from the baseline (paired Wilcoxon signed-rank, Holm over the {_tests(vs_baseline)} of "
            "each cut against the baseline in its row).")
    shown = _informative_letters(summary) if letters is None else pd.Series(bool(letters), index=summary.index)
    if shown.any():
        text += (f" Letters: rank groups from all {_tests(all_pairs)} between two arms of a row (Holm over all "
                 "pairs); arms sharing a letter are not significantly different.")
        if all_pairs > vs_baseline:
            text += (" That family is larger than the baseline's, so a starred arm may still share the "
                     "baseline's letter.")
    if letters is None and not shown.all() and "group_label" in summary.columns:
        text += " Rows without letters: no two arms differ after Holm over all pairs."
    return text


def to_markdown(summary: pd.DataFrame, letters: bool | None = None, caption: bool = True) -> str:
    """Markdown table of :func:`wide_table` (GitHub style), followed by its caption (:func:`table_caption`);
    ``*`` marks a significant difference to the baseline."""
    text = readable(wide_table(summary, letters=letters)).to_markdown(index=False)
    return text + (f"\n\n{table_caption(summary, letters)}" if caption else "")


def to_latex(summary: pd.DataFrame, caption: str | None = None, letters: bool | None = None) -> str:
    """LaTeX table of :func:`wide_table` (booktabs); ``caption`` defaults to :func:`table_caption`."""
    table = readable(wide_table(summary, letters=letters))
    return table.to_latex(caption=caption or table_caption(summary, letters), escape=True, index=False)


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
    exact Hodges–Lehmann interval that matches the test (at least 95 %; "n too small" below 6 pairs) to
    each cell.
    """
    data = with_settings(df)
    by = ["study", "setting", "fraction"]
    effects = stats.effect_vs_baseline(data, metric=metric, baseline=baseline, by=by, n_boot=n_boot,
                                       seed=seed, alpha=alpha)
    return delta_frame(effects, by=by, ci=ci, protocol="/".join(map(str, pd.unique(protocol_variant(data)))))


def delta_frame(effects: pd.DataFrame, by: list[str] | tuple[str, ...] = ("study", "setting", "fraction"),
                ci: bool = False, protocol: str | None = None) -> pd.DataFrame:
    """:func:`delta_table` from an effect table (:func:`functions.analysis.stats.effect_vs_baseline`'s
    columns): cells ``+1.2 ✓`` (points), one row per fraction (in per cent) with its number of ``pairs``
    (repeats paired with the baseline; ``15–16`` when cuts differ), grouping columns that do not vary left
    out of the index; a first index level ``protocol`` names the protocol the runs were trained under, when
    given. The columns' name says the unit."""
    by = [c for c in by if c in effects.columns]
    if effects.empty:
        return pd.DataFrame(index=pd.Index([], name="fraction"))

    def cell(row: pd.Series) -> str:
        if pd.isna(row["median_diff"]):
            return "–"
        text = f"{100 * row['median_diff']:+.1f}"
        if ci and pd.notna(row.get("low")) and pd.notna(row.get("high")):
            text += f" [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
        elif ci and isinstance(row.get("ci_note"), str):  # no interval reaches 95 % with so few pairs
            text += f" [{row['ci_note']}]"
        return text + (" ✓" if bool(row["significant"]) else "")

    def pairs(n: pd.Series) -> str:
        low, high = int(n.min()), int(n.max())
        return str(low) if low == high else f"{low}–{high}"

    index = [c for c in by if c == "fraction" or effects[c].nunique(dropna=False) > 1] or by[-1:]
    cells = effects.assign(cell=effects.apply(cell, axis=1),
                           pairs=effects.groupby(index, dropna=False)["n_pairs"].transform(pairs))
    table = cells.pivot_table(index=index + ["pairs"], columns="arm", values="cell", aggfunc="first")
    table = table[sort_arms(list(table.columns))]
    if "fraction" in table.index.names:  # in per cent, in the order of the fractions
        table.index = table.index.set_levels(
            table.index.levels[table.index.names.index("fraction")].map(fraction_label), level="fraction")
    table.columns.name = "Δ points vs baseline"
    return pd.concat({protocol: table}, names=["protocol"]) if protocol else table
