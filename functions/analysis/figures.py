"""The study's figures over results frames (``functions.analysis.results``), as matplotlib Figures.

Each plotting function returns a :class:`matplotlib.figure.Figure` (made with pyplot, so a notebook shows
it at the end of the cell) and never saves it; :func:`save_figure` writes PNG and PDF. Titles state the
setting (study, condition, architecture, pooling, lr) through :func:`describe_setting`. A frame may mix
transfer conditions that share one baseline: every figure first gives each condition its own copy of it
(:func:`functions.analysis.results.with_settings`), then each (study, condition) gets its own panel (a
row of panels, one per fraction, for the box plots). Figures of one network are in ``diagnostics``; the
style, labels, checks and panel grids shared by every figure module in ``figures_common``.

Significance on the box and line plots is the tables' (``functions.analysis.tables``): each cut against
the baseline, Wilcoxon signed-rank on the paired repeats, Holm over the cut-vs-baseline comparisons of one
fraction — ``significant_vs_baseline`` of :func:`functions.analysis.stats.summarize` with the same call.
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from functions.analysis import stats
from functions.analysis.figures_common import (
    BASELINE_COLOR, BASELINE_HATCH, HEATMAP_STATS, check_frame, check_metric, colors_of_arms, describe_setting,
    distinct_values, fraction_label, join_values, lookup_groups, panel_axes, panel_grid, panel_title,
    pick_fractions, row_columns, set_fraction_axis, setting_rows, short_arm, titled, use_style, wrap_to_width,
    write_warning)
# the notebooks' entry points for saving and comparing figures, one import away with the figures themselves
from functions.analysis.figures_common import METRICS, figure_bytes, save_figure  # noqa: F401
from functions.analysis.results import sort_arms, summary_table

HIGHER_COLOR = "#8fd19e"  # box of a cut significantly above the baseline
LOWER_COLOR = "#f4a3a3"   # … significantly below it
NEUTRAL_COLOR = "0.85"
HIGHER_MARK, LOWER_MARK = "★▲", "★▼"
SIGNIFICANCE_CAPTION = ("★: differs from the baseline, Wilcoxon signed-rank, Holm over the cut-vs-baseline "
                        "comparisons of the fraction")
LINE_CAPTION = ("filled marker: differs from the baseline, Wilcoxon signed-rank,\nHolm over the "
                "cut-vs-baseline comparisons of the fraction")
LETTERS_CAPTION = "letters: rank groups (arms sharing a letter do not differ; Holm over all pairs)"


# ----------------------------------------------------------------------------- boxes
def _group_colors(n_groups: int) -> list[tuple]:
    return sns.color_palette("Set2", max(n_groups, 1))


def _colors_by_group(found: dict) -> dict:
    """{arm: colour} from {arm: (rank group, letter)}."""
    palette = _group_colors(max((g for g, _ in found.values()), default=1))
    return {arm: palette[(group - 1) % len(palette)] for arm, (group, _) in found.items()}


def _draw_boxes(ax, values: dict, order: list, colors: dict | None = None, marks: dict | None = None,
                letters: dict | None = None, baseline=None, tick_labels: Sequence[str] | None = None) -> None:
    """Boxes of ``values[arm]`` in ``order`` filled with ``colors[arm]`` (light grey without one).

    Above each box one text (gid ``label:<arm>``): ``marks[arm]`` (e.g. ★▲), the median, ``letters[arm]``,
    top to bottom, each when given. The ``baseline`` arm is hatched and sets a dashed line at its median.
    """
    colors, marks, letters = colors or {}, marks or {}, letters or {}
    data = [np.asarray(values[a], float) for a in order]
    positions = np.arange(len(order))
    parts = ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True, showfliers=False,
                       medianprops={"color": "black", "linewidth": 1.5})
    for arm, box in zip(order, parts["boxes"]):
        box.set_facecolor(colors.get(arm, NEUTRAL_COLOR))
        box.set_gid(f"box:{arm}")
        if arm == baseline:
            box.set_hatch(BASELINE_HATCH)
            box.set_edgecolor(BASELINE_COLOR)
    rng = np.random.default_rng(0)  # fixed jitter: the same figure every time
    for x, points in zip(positions, data):
        ax.scatter(x + rng.uniform(-0.15, 0.15, len(points)), points, s=8, color="0.25", alpha=0.6, zorder=3)
    everything = np.concatenate([d for d in data if d.size]) if any(d.size for d in data) else np.zeros(1)
    low, high = float(everything.min()), float(everything.max())
    span = high - low or max(abs(high) * 0.05, 0.01)
    for x, arm, points in zip(positions, order, data):
        if not points.size:
            continue
        lines = [marks.get(arm), f"{np.median(points):.3f}", letters.get(arm)]
        ax.text(x, points.max() + 0.03 * span, "\n".join(line for line in lines if line), ha="center",
                va="bottom", fontsize=8 if len(order) <= 6 else 7, gid=f"label:{arm}")
    if baseline in order and values[baseline] is not None and len(values[baseline]):
        ax.axhline(float(np.median(values[baseline])), color=BASELINE_COLOR, linestyle="--", linewidth=1,
                   zorder=0)
    # room below for a power warning, above for the marks, medians and letters
    ax.set_ylim(low - 0.15 * span, high + (0.45 if marks else 0.35) * span)
    ax.set_xticks(positions)
    labels = list(tick_labels) if tick_labels is not None else [str(a) for a in order]
    crowded = len(order) > 8
    ax.set_xticklabels(labels, rotation=45 if crowded else 0, ha="right" if crowded else "center")


def _power_text(panel_groups: pd.DataFrame, alpha: float) -> str | None:
    """Short warning for a panel whose arms carry rank_groups' power warning (all pairs)."""
    if panel_groups.empty or "warning" not in panel_groups.columns:
        return None
    warned = panel_groups[panel_groups["warning"].notna()]
    if warned.empty:
        return None
    n = int(panel_groups["n"].min()) if "n" in panel_groups.columns else 0
    if n < 1:
        return "no paired repeats: no test possible"
    smallest = stats.min_wilcoxon_p(n)
    arms = len(panel_groups)
    comparisons = arms * (arms - 1) // 2
    if len(warned) < arms:
        return f"{', '.join(map(str, warned['arm']))}: too few repeats for significance"
    if smallest >= alpha or comparisons <= 1:
        return f"n={n}: p ≥ {smallest:.3g}, no significance possible"
    return (f"n={n}, {comparisons} tests: Holm p ≥ {min(1.0, smallest * comparisons):.3g}, "
            "no significance possible")


def _baseline_power_text(panel: pd.DataFrame, alpha: float) -> str | None:
    """Short warning when cuts of a panel cannot differ significantly from the baseline, whatever the data:
    Holm over the panel's cut-vs-baseline tests multiplies the smallest exact Wilcoxon p by their number."""
    cuts = panel[(panel["arm"] != "baseline") & panel["n_pairs"].notna()]
    if cuts.empty:
        return None
    pairs = cuts["n_pairs"].astype(int)
    if (pairs < 1).all():
        return "no repeats paired with the baseline: no test possible"
    m = int((pairs > 0).sum())
    hopeless = [arm for arm, n in zip(cuts["arm"], pairs) if n < 1 or min(1.0, m * stats.min_wilcoxon_p(n)) >= alpha]
    if not hopeless:
        return None
    if len(hopeless) < len(cuts):
        return f"{', '.join(map(short_arm, hopeless))}: too few repeats for significance"
    n = int(pairs.min())
    smallest = stats.min_wilcoxon_p(max(n, 1))
    if smallest >= alpha or m <= 1:
        return f"n={n}: p ≥ {smallest:.3g}, no significance possible"
    return f"n={n}, {m} cuts vs baseline: Holm p ≥ {min(1.0, smallest * m):.3g}, no significance possible"


def _verdicts(panel: pd.DataFrame) -> dict[str, int]:
    """{arm: +1 significantly above the baseline, -1 below} from a summarize frame's rows of one panel."""
    out = {}
    for row in panel.itertuples():
        flag = row.significant_vs_baseline
        if isinstance(flag, (bool, np.bool_)) and flag:
            out[row.arm] = 1 if row.diff_vs_baseline > 0 else -1
    return out


def significance_summary(df: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """The tables' statistics for the panels of the box and line plots: :func:`stats.summarize` of the
    frame's settings (``with_settings``) by study, setting (, lr when it varies) and fraction, with
    ``family="vs_baseline"`` — the call the tables make."""
    prepared = pd.concat([r for _, r in setting_rows(df)], ignore_index=True)
    return stats.summarize(prepared, metric=metric, by=row_columns(prepared) + ["fraction"], alpha=alpha,
                           family="vs_baseline")


def _significance_legend(fig: Figure, letters: bool) -> None:
    """The figure's key, below the panels: what the box colours, ★▲/★▼ and (optionally) letters mean."""
    handles = [Patch(facecolor=HIGHER_COLOR, edgecolor="0.3", label=f"{HIGHER_MARK} above the baseline"),
               Patch(facecolor=LOWER_COLOR, edgecolor="0.3", label=f"{LOWER_MARK} below the baseline"),
               Patch(facecolor=NEUTRAL_COLOR, edgecolor="0.3", label="no significant difference"),
               Patch(facecolor="white", edgecolor=BASELINE_COLOR, hatch=BASELINE_HATCH,
                     label="baseline (dashed: its median)")]
    if letters:  # colours are rank groups then; the marks keep their meaning
        handles = handles[:2] + handles[3:]
    title = SIGNIFICANCE_CAPTION + (f"\n{LETTERS_CAPTION}; box colour: rank group" if letters else "")
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7, title=title,
               title_fontsize=7, frameon=False)


def box_by_cut(df: pd.DataFrame, metric: str = "test_acc", fractions=None, groups: pd.DataFrame | None = None,
               alpha: float = 0.05, letters: bool = False, summary: pd.DataFrame | None = None) -> Figure:
    """Boxes per arm (baseline, then cuts ascending), one panel per fraction, one row per condition.

    A cut that differs significantly from the baseline is marked ★▲ (above) or ★▼ (below) and its box
    filled green or red: the tables' test, ``significant_vs_baseline`` of :func:`significance_summary`
    (``summary``: such a frame computed already). The median is written above each box; the baseline box
    is hatched and its median is the dashed line. A panel where no cut can differ significantly from the
    baseline (too few paired repeats) says so. ``letters=True`` adds the all-pairs rank-group letters
    (:func:`functions.analysis.stats.rank_groups`, or ``groups``, a frame of its shape whose ``by`` columns are
    matched against study/setting/fraction) and colours the boxes by rank group instead.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm", "repeat"))
    check_metric(df, metric)
    fracs = pick_fractions(df, fractions)
    df = df[np.isclose(df["fraction"].to_numpy(float)[:, None], fracs).any(axis=1)]  # test only what is shown
    rows = setting_rows(df)
    row_cols = row_columns(pd.concat([r for _, r in rows], ignore_index=True))
    if summary is None:
        summary = significance_summary(df, metric=metric, alpha=alpha)
    else:
        check_frame(summary, ("arm", "n_pairs", "diff_vs_baseline", "significant_vs_baseline"), name="summary")
    if groups is not None:
        check_frame(groups, ("arm", "group", "group_label"), name="groups")
        letters = True
    elif letters:
        groups = summary
    n_arms = max(r["arm"].nunique() for _, r in rows)
    fig, axes = panel_grid(len(rows), len(fracs), width=max(3.3, 0.5 * n_arms + 0.9))
    for r, (row_label, row_df) in enumerate(rows):
        for c, fraction in enumerate(fracs):
            ax = axes[r, c]
            panel = row_df[np.isclose(row_df["fraction"], fraction) & row_df[metric].notna()]
            ax.set_title(panel_title(row_label, f"fraction {fraction_label(fraction)}"))
            if panel.empty:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
                continue
            order = sort_arms(panel["arm"])
            values = {a: panel.loc[panel["arm"] == a, metric].to_numpy(float) for a in order}
            keys = {col: panel[col].iloc[0] for col in row_cols}
            keys["fraction"] = float(fraction)
            tested = lookup_groups(summary, keys)
            tested = tested[tested["arm"].isin(order)]
            verdicts = _verdicts(tested)
            marks = {arm: HIGHER_MARK if v > 0 else LOWER_MARK for arm, v in verdicts.items()}
            colors = {arm: HIGHER_COLOR if v > 0 else LOWER_COLOR for arm, v in verdicts.items()}
            found = {}
            if letters:
                panel_groups = lookup_groups(groups, keys)
                found = {row.arm: (int(row.group), str(row.group_label)) for row in panel_groups.itertuples()}
                colors = _colors_by_group(found)
            _draw_boxes(ax, values, order, colors, marks, {a: label for a, (_, label) in found.items()},
                        baseline="baseline", tick_labels=[short_arm(a) for a in order])
            ax.set_xlabel("cut")
            ax.set_ylabel(metric if c == 0 else "")
            message = (_power_text(panel_groups[panel_groups["arm"].isin(order)], alpha) if letters
                       else _baseline_power_text(tested, alpha))
            if message:
                write_warning(ax, message)
    _significance_legend(fig, letters)
    return titled(fig, f"{metric} by cut\n{describe_setting(df)}")


def _sorted_layers(layers) -> list:
    """Numeric layers in numeric order; named layers (``input``, ``block0`` …) in the order they appear,
    which is the network's order in the clustering frames."""
    layers = list(pd.unique(pd.Series(list(layers))))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in layers):
        return sorted(layers, key=float)
    return layers


def _drop_small_subsets(cdf: pd.DataFrame, min_per_class: int | None,
                        n_classes: int | None) -> tuple[pd.DataFrame, list[float]]:
    """Rows of subsets with at least ``min_per_class`` images per class (rows whose size cannot be told
    stay), and the fractions that lost rows."""
    if min_per_class is None:
        return cdf, []
    from functions.analysis.clustering import per_class_size  # torch-heavy: only when clustering is plotted

    size = per_class_size(cdf, n_classes)
    small = size.notna() & (size < min_per_class)
    return cdf[~small], sorted(float(f) for f in cdf.loc[small, "fraction"].unique())


def box_clustering(cdf: pd.DataFrame, metric: str = "ari", fractions=None, alpha: float = 0.05,
                   channel: int | None = -1, min_per_class: int | None = 10,
                   n_classes: int | None = None) -> Figure:
    """Clustering ``metric`` per layer, one panel per fraction, boxes coloured by rank group.

    Layers are paired by repeat (each repeat clusters one subset at every layer). ``channel`` picks the
    rows of a ``channel`` column: -1 (default) the whole-layer rows, None every row; with several values
    per (fraction, layer, repeat), e.g. pooled channels, pairing is impossible and boxes are drawn
    uncoloured. One row of panels per dataset/split/method/model when those vary.

    Subsets with fewer than ``min_per_class`` images of some class (default
    ``functions.analysis.clustering.MIN_PER_CLASS``; None: keep all) are not shown: k images in k clusters
    score ARI = 1.0 at every layer. The size per class is the rows' ``n_per_class``, else estimated from
    ``n_samples`` (:func:`functions.analysis.clustering.per_class_size`; ``n_classes`` = k makes the
    estimate exact); the title names the fractions left out.
    """
    use_style()
    check_frame(cdf, ("fraction", "layer", "repeat", metric), name="cdf")
    cdf, dropped = _drop_small_subsets(cdf, min_per_class, n_classes)
    if cdf.empty:
        raise ValueError(f"cdf: every subset holds fewer than min_per_class = {min_per_class} images of some "
                         f"class (fractions {dropped}); nothing to plot")
    if fractions is not None and dropped:
        wanted = [fractions] if isinstance(fractions, (int, float)) else list(fractions)
        refused = [f for f in wanted if any(math.isclose(float(f), d) for d in dropped)
                   and not np.isclose(cdf["fraction"].astype(float), float(f)).any()]
        if refused:
            raise ValueError(f"fractions {refused}: fewer than min_per_class = {min_per_class} images per "
                             "class, not shown")
    if channel is not None and "channel" in cdf.columns and cdf["channel"].notna().any():
        if not (cdf["channel"] == channel).any():
            allowed = sorted(distinct_values(cdf, "channel"))
            raise ValueError(f"channel {channel!r} has no rows; allowed: None or {allowed}")
        cdf = cdf[cdf["channel"] == channel]
    if not cdf[metric].notna().any():
        raise ValueError(f"metric {metric!r} has no values in cdf")
    fracs = pick_fractions(cdf, fractions)
    cdf = cdf[np.isclose(cdf["fraction"].to_numpy(float)[:, None], fracs).any(axis=1)]
    row_cols = [c for c in ("dataset", "split", "method", "model") if c in cdf.columns
                and cdf[c].nunique(dropna=False) > 1]
    row_groups = list(cdf.groupby(row_cols, sort=True, dropna=False)) if row_cols else [((), cdf)]
    fig, axes = panel_grid(len(row_groups), len(fracs), width=max(3.3, 0.6 * cdf["layer"].nunique() + 0.9))
    for r, (key, rows) in enumerate(row_groups):
        key = key if isinstance(key, tuple) else (key,)
        row_label = " · ".join(str(k) for k in key)
        rows = rows[rows[metric].notna()]
        pairable = not rows.duplicated(["fraction", "layer", "repeat"]).any()
        groups = (stats.rank_groups(rows.assign(layer=rows["layer"].astype(str)), metric=metric,
                                    arm_col="layer", by=("fraction",), alpha=alpha)
                  if pairable else None)
        for c, fraction in enumerate(fracs):
            ax = axes[r, c]
            ax.set_title(panel_title(row_label, f"fraction {fraction_label(fraction)}"))
            panel = rows[np.isclose(rows["fraction"], fraction)]
            if panel.empty:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center")
                continue
            layers = [v for v in _sorted_layers(rows["layer"]) if (panel["layer"] == v).any()]
            order = [str(v) for v in layers]
            values = {str(v): panel.loc[panel["layer"] == v, metric].to_numpy(float) for v in layers}
            found, message = {}, None
            if groups is not None:
                panel_groups = groups[np.isclose(groups["fraction"].astype(float), fraction)]
                found = {row.arm: (int(row.group), str(row.group_label)) for row in panel_groups.itertuples()}
                message = _power_text(panel_groups, alpha)
            _draw_boxes(ax, values, order, _colors_by_group(found),
                        letters={a: label for a, (_, label) in found.items()})
            ax.set_xlabel("layer")
            ax.set_ylabel(metric if c == 0 else "")
            if message:
                write_warning(ax, message)
    extra = [f"{c} {join_values(sorted(map(str, distinct_values(cdf, c))))}"
             for c in ("dataset", "split", "method", "model")
             if c in cdf.columns and c not in row_cols and distinct_values(cdf, c)]
    title = " | ".join([f"clustering {metric} by layer", *extra])
    if dropped:
        title += f"\nnot shown: {', '.join(map(fraction_label, dropped))} (< {min_per_class} images per class)"
    return titled(fig, title)


# ----------------------------------------------------------------------------- lines over fractions
def median_lines(df: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05,
                 summary: pd.DataFrame | None = None) -> Figure:
    """Median ``metric`` over fractions (log x), one line per arm, min–max band and mean ± std bars.

    One panel per (study, condition). A cut's marker is filled at the fractions where it differs
    significantly from the baseline — the tables' test, ``significant_vs_baseline`` of
    :func:`significance_summary` (``summary``: such a frame computed already) — and hollow elsewhere; the
    baseline's markers are hollow diamonds. Without a ``repeat`` column nothing can be paired: all hollow.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm"))
    check_metric(df, metric)
    rows = setting_rows(df)
    testable = "repeat" in df.columns and (df["arm"] == "baseline").any()
    if summary is None and testable:
        summary = significance_summary(df, metric=metric, alpha=alpha)
    row_cols = row_columns(pd.concat([r for _, r in rows], ignore_index=True))
    fig, axes = panel_axes(len(rows), width=5.2, height=4.2)
    for ax, (row_label, row_df) in zip(axes, rows):
        present = row_df[row_df[metric].notna()]
        spread = (present.groupby(["arm", "fraction"])[metric]
                  .agg(["median", "min", "max", "mean", "std"]).reset_index())
        tested = None
        if summary is not None and len(present):
            tested = summary
            for col in row_cols:  # this panel's rows, every fraction
                if col in summary.columns:
                    tested = tested[tested[col] == present[col].iloc[0]]
        arms = sort_arms(spread["arm"])
        colors = colors_of_arms(arms)
        for arm in arms:
            line = spread[spread["arm"] == arm].sort_values("fraction")
            x, y = line["fraction"].to_numpy(float), line["median"].to_numpy(float)
            style = {"linestyle": "--"} if arm == "baseline" else {}
            ax.plot(x, y, color=colors[arm], label=arm, **style)
            ax.fill_between(x, line["min"], line["max"], color=colors[arm], alpha=0.12, linewidth=0)
            ax.errorbar(x, line["mean"], yerr=line["std"].fillna(0), fmt="none", ecolor=colors[arm],
                        alpha=0.6, capsize=2)
            significant = np.zeros(len(x), dtype=bool)
            if tested is not None and arm != "baseline":
                arm_rows = tested[tested["arm"] == arm]
                flags = [arm_rows.loc[np.isclose(arm_rows["fraction"].astype(float), f), "significant_vs_baseline"]
                         for f in x]
                significant = np.array([bool(v.iloc[0]) if len(v) and isinstance(v.iloc[0], (bool, np.bool_))
                                        else False for v in flags])
            marker = "D" if arm == "baseline" else "o"
            ax.scatter(x[significant], y[significant], marker=marker, color=colors[arm], zorder=3,
                       gid=f"significant:{arm}")
            ax.scatter(x[~significant], y[~significant], marker=marker, facecolor="white",
                       edgecolor=colors[arm], zorder=3, gid=f"not significant:{arm}")
        set_fraction_axis(ax, sorted(spread["fraction"].unique()))
        ax.set_ylabel(f"{metric} (median)")  # short: a long label runs into the titles above it
        ax.set_title(wrap_to_width(row_label, ax.get_position().width * fig.get_figwidth(), "medium"))
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], marker="o", color="0.3", linestyle=""),
                    Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="")]
        labels += ["differs from the baseline", "no significant difference"]
        caption = LINE_CAPTION if testable else "no baseline or repeats: no test"
        ax.legend(handles, labels, fontsize=7, ncol=2, title=f"line: median; band: min–max; bars: mean ± std\n"
                  f"{caption}", title_fontsize=7)
    return titled(fig, f"{metric} over fractions\n{describe_setting(df)}")


def diff_to_baseline(df: pd.DataFrame, metric: str = "test_acc", n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> Figure:
    """Cut − baseline in points (100 × ``metric``) over fractions (log x), one line per cut, zero line; one
    panel per condition — the numbers of :func:`functions.analysis.tables.delta_table`.

    Where runs pair with the baseline by repeat, the line is the median of the paired differences and the band
    the interval :func:`functions.analysis.stats.effect_vs_baseline` gives with it (by default the exact
    Wilcoxon-inverted interval of the Hodges–Lehmann shift, the one that matches the test; none below 6 pairs);
    filled markers are significant after Holm. A fraction without pairs shows the difference of medians
    instead, as a cross, and the legend says so.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm", "repeat"))
    check_metric(df, metric)
    if not (df["cut"] == -1).any():
        raise ValueError("df holds no baseline rows (cut -1): nothing to take differences to")
    rows = setting_rows(df)
    fig, axes = panel_axes(len(rows), width=5.2, height=4.2)
    for ax, (row_label, row_df) in zip(axes, rows):
        ax.set_title(row_label)
        present = row_df[row_df[metric].notna()]
        ax.axhline(0.0, color=BASELINE_COLOR, linewidth=1)
        if not (present["arm"] == "baseline").any():
            ax.text(0.5, 0.5, "no baseline", transform=ax.transAxes, ha="center")
            continue
        effects = stats.effect_vs_baseline(present, metric=metric, by=["fraction"], n_boot=n_boot, seed=seed,
                                           alpha=alpha)
        medians = present.groupby(["fraction", "arm"])[metric].median()
        arms = [a for a in sort_arms(present["arm"]) if a != "baseline"]
        colors = colors_of_arms(arms)
        any_unpaired, no_band = False, False
        for arm in arms:
            line = effects[effects["arm"] == arm].sort_values("fraction").copy()
            unpaired = (line["n_pairs"] == 0).to_numpy()
            any_unpaired |= bool(unpaired.any())
            no_band |= bool((line["low"].isna() & ~unpaired).any())
            # without pairs: the plain difference of medians at that fraction (marked as such)
            line.loc[unpaired, "median_diff"] = [medians.get((f, arm), np.nan) - medians.get((f, "baseline"), np.nan)
                                                 for f in line.loc[unpaired, "fraction"]]
            x = line["fraction"].to_numpy(float)
            y = 100 * line["median_diff"].to_numpy(float)
            ax.plot(x, y, color=colors[arm], label=arm, marker=None)
            ax.fill_between(x, 100 * line["low"].astype(float), 100 * line["high"].astype(float), color=colors[arm],
                            alpha=0.15, linewidth=0)
            significant = line["significant"].astype(bool).to_numpy()
            ax.scatter(x[significant], y[significant], color=colors[arm], zorder=3, gid=f"significant:{arm}")
            ax.scatter(x[~significant & ~unpaired], y[~significant & ~unpaired], facecolor="white",
                       edgecolor=colors[arm], zorder=3, gid=f"not significant:{arm}")
            ax.scatter(x[unpaired], y[unpaired], marker="x", color=colors[arm], zorder=3, gid=f"unpaired:{arm}")
        set_fraction_axis(ax, sorted(present["fraction"].unique()))
        ax.set_ylabel(f"Δ {metric} vs baseline (points)")
        caption = "line: median of paired differences\nband: exact 95 % interval (Hodges–Lehmann)"
        if no_band:
            caption += "; none below 6 pairs"
        caption += "\nfilled marker: significant (Holm)"
        if any_unpaired:
            caption += "\n×: no pairs, difference of medians"
        ax.legend(fontsize=7, ncol=2, title=caption, title_fontsize=7)
    return titled(fig, f"gain over the baseline (points of {metric})\n{describe_setting(df)}")


# ----------------------------------------------------------------------------- grids
def paired_differences(df: pd.DataFrame, metric: str = "test_acc", baseline: str = "baseline") -> pd.DataFrame:
    """Per (fraction, repeat, arm): ``metric`` of the arm minus the baseline's of the same repeat (column
    ``diff``); only repeats that hold both arms. The rows of one setting (study, condition)."""
    keys = [c for c in ("study", "fraction", "repeat") if c in df.columns]
    wide = df.pivot_table(index=keys, columns="arm", values=metric, aggfunc="first")
    if baseline not in wide.columns:
        return pd.DataFrame(columns=keys + ["arm", "diff"])
    diffs = wide.drop(columns=baseline).sub(wide[baseline], axis=0)
    return diffs.stack().rename("diff").reset_index()


def _relative_table(rows: pd.DataFrame, metric: str, stat: str) -> tuple[pd.DataFrame | None, bool]:
    """The relative heatmap's table in points, and whether it is paired: ``stat`` of the paired differences
    (the headline's estimate, for the median) where repeats pair with the baseline, else ``stat`` of the arm
    minus ``stat`` of the baseline."""
    scale = 1 if stat == "count" else 100  # a count of pairs stays a count
    diffs = paired_differences(rows, metric) if "repeat" in rows.columns else pd.DataFrame()
    if len(diffs):
        table = summary_table(diffs.drop(columns="study", errors="ignore"), metric="diff", stat=stat)
        return scale * table, True
    table = summary_table(rows.drop(columns="study"), metric=metric, stat=stat)
    if "baseline" not in table.columns:
        return None, False
    return scale * table.sub(table["baseline"], axis=0).drop(columns="baseline"), False


def heatmap(df: pd.DataFrame, metric: str = "test_acc", stat: str = "median", relative: bool = False) -> Figure:
    """Annotated fraction × arm table of ``stat`` of ``metric``; ``relative=True``: the gain over the baseline.

    The gain is in points, and paired where the design is paired: ``stat`` over repeats of (arm − baseline
    of the same repeat) — for the median, the number the headline table shows
    (:func:`functions.analysis.tables.delta_table`). Rows without repeats fall back to the difference of the
    two arms' ``stat``, and the colour bar says which it is. One panel per (study, condition), each with its colour bar; all panels share
    one colour scale (centred on 0 when relative) so that equal colours mean equal values across panels.
    """
    use_style()
    if stat not in HEATMAP_STATS:
        raise ValueError(f"stat {stat!r} is unknown; allowed: {list(HEATMAP_STATS)}")
    check_frame(df, ("fraction", "cut", "arm"))
    check_metric(df, metric)
    if relative and not (df["cut"] == -1).any():
        raise ValueError("relative=True needs baseline rows (cut -1) in df")
    rows = setting_rows(df)
    tables = []
    for row_label, row_df in rows:
        if relative:
            table, paired = _relative_table(row_df, metric, stat)
        else:
            table, paired = summary_table(row_df.drop(columns="study"), metric=metric, stat=stat), False
        tables.append((row_label, table, paired))
    numbers = np.concatenate([t.to_numpy(float).ravel() for _, t, _ in tables if t is not None and t.size]
                             or [[0.0]])
    if relative:
        limit = float(np.nanmax(np.abs(numbers))) or 1e-9
        scale = {"cmap": "RdBu", "center": 0.0, "vmin": -limit, "vmax": limit}
    else:
        scale = {"cmap": "viridis", "vmin": float(np.nanmin(numbers)), "vmax": float(np.nanmax(numbers))}
    fig, axes = panel_axes(len(rows), width=5.5, height=0.45 * df["fraction"].nunique() + 2.8)
    for ax, (row_label, table, paired) in zip(axes, tables):
        ax.set_title(row_label)
        if table is None:
            ax.text(0.5, 0.5, "no baseline", transform=ax.transAxes, ha="center")
            continue
        table.index = [fraction_label(f) for f in table.index]
        if relative:
            fmt = "+.1f" if stat != "count" else ".0f"
            what = (f"{stat} of paired Δ {metric} (points)" if paired
                    else f"Δ of {stat}s of {metric} (points, unpaired)")
        else:
            fmt, what = (".3f" if stat != "count" else ".0f"), f"{stat} {metric}"
        sns.heatmap(table, ax=ax, annot=True, fmt=fmt, annot_kws={"fontsize": 8}, cbar_kws={"label": what},
                    **scale)
        ax.set_xlabel("arm")
        ax.set_ylabel("fraction")
    if relative and all(paired for _, t, paired in tables if t is not None):
        what = f"gain over the baseline: {stat} of the paired differences (points of {metric})"
    elif relative:
        what = f"gain over the baseline (points of {metric}; unpaired panels: difference of {stat}s)"
    else:
        what = f"{stat} {metric}"
    return titled(fig, f"{what}\n{describe_setting(df)}")


def surface3d(df: pd.DataFrame, metric: str = "test_acc") -> Figure:
    """3-D surface of the median ``metric`` over log10(fraction) × cut; baseline as a line at cut −1.

    With fewer than two fractions or cuts (or gaps in the grid) the medians are drawn as lines instead.
    One 3-D panel per (study, condition).
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm"))
    check_metric(df, metric)
    rows = setting_rows(df)
    ncols = min(len(rows), 3)
    nrows = math.ceil(len(rows) / ncols)
    fig = plt.figure(figsize=(5.5 * ncols, 5.0 * nrows), layout="constrained")
    for i, (row_label, row_df) in enumerate(rows, 1):
        ax = fig.add_subplot(nrows, ncols, i, projection="3d")
        medians = row_df[row_df[metric].notna()].groupby(["fraction", "cut"])[metric].median().unstack("cut")
        cuts = [c for c in medians.columns if c != -1]
        grid = medians[cuts]
        logf = np.log10(grid.index.to_numpy(float))
        if len(logf) >= 2 and len(cuts) >= 2 and not grid.isna().any().any():
            x, y = np.meshgrid(logf, np.asarray(cuts, float), indexing="ij")
            ax.plot_surface(x, y, grid.to_numpy(float), cmap="viridis", alpha=0.85, edgecolor="0.3",
                            linewidth=0.3)
        else:
            for cut in cuts:
                column = grid[cut].dropna()
                ax.plot(np.log10(column.index.to_numpy(float)), np.full(len(column), float(cut)), column.to_numpy(),
                        marker="o")
        if -1 in medians.columns:
            base = medians[-1].dropna()
            ax.plot(np.log10(base.index.to_numpy(float)), np.full(len(base), -1.0), base.to_numpy(), "k--o",
                    label="baseline (cut −1)")
            ax.legend(fontsize=7)
        fractions = sorted(medians.index.astype(float))
        ax.set_xticks(np.log10(fractions))
        ax.set_xticklabels([fraction_label(f) for f in fractions], fontsize=8)
        ax.set_xlabel("fraction (log scale)")
        ax.set_ylabel("cut")
        ax.set_zlabel(f"median {metric}")
        ax.set_title(row_label, fontsize=9)
    fig.suptitle(f"median {metric} over fraction × cut\n{describe_setting(df)}")
    return fig
