"""The study's figures over results frames (``functions.analysis.results``), as matplotlib Figures.

Each plotting function returns a :class:`matplotlib.figure.Figure` (made with pyplot, so a notebook shows
it at the end of the cell) and never saves it; :func:`save_figure` writes PNG and PDF. Titles state the
setting (study, condition, architecture, pooling, lr) through :func:`describe_setting`. A frame may mix
transfer conditions that share one baseline: every figure first gives each condition its own copy of it
(:func:`functions.analysis.results.with_settings`), then each (study, condition) gets its own panel (a
row of panels, one per fraction, for the box plots). Figures of one network are in ``diagnostics``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from functions.analysis import stats
from functions.analysis.results import sort_arms, summary_table, with_settings
from functions.engine.conditions import condition_label, ordered_conditions

METRICS = ("test_acc", "train_acc", "val_acc")
HEATMAP_STATS = ("median", "mean", "iqm", "std", "count")
BASELINE_COLOR = "0.2"
BASELINE_HATCH = "///"
_style_applied = False


# ----------------------------------------------------------------------------- style and saving
def use_style(force: bool = False) -> None:
    """Apply the seaborn theme of every figure (once; ``force=True`` applies it again)."""
    global _style_applied
    if _style_applied and not force:
        return
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titlesize": "medium", "figure.titlesize": "large"})
    _style_applied = True


def save_figure(fig: Figure, path_without_ext: str | Path, formats: Sequence[str] = ("png", "pdf"),
                dpi: int | None = None) -> list[Path]:
    """Write ``fig`` as ``path_without_ext.<format>`` for every format (folders created); the paths written."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(formats, str):
        formats = (formats,)
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in formats if f not in supported]
    if not formats or unknown:
        raise ValueError(f"formats {list(formats)!r}: allowed are {sorted(supported)}")
    base = Path(path_without_ext)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = base.with_name(f"{base.name}.{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi)
        written.append(path)
    return written


# ----------------------------------------------------------------------------- labels
def fraction_label(fraction: float) -> str:
    """0.001 → ``0.1%``, 1.0 → ``100%``."""
    return f"{100 * float(fraction):g}%"


def distinct_values(df: pd.DataFrame, column: str) -> list:
    """Distinct non-null values of a column (empty when the column is missing)."""
    if column not in df.columns:
        return []
    return list(pd.unique(df[column].dropna()))


def _joined(values: Iterable, fmt=str) -> str:
    return "/".join(fmt(v) for v in values)


def describe_setting(df: pd.DataFrame) -> str:
    """One line naming the setting of ``df``: study, condition(s), architecture, pooling, lr.

    A column with several values lists them joined by ``/`` (more than two studies are counted instead);
    missing columns are left out.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    parts = []
    studies = distinct_values(df, "study")
    if len(studies) > 2:  # each panel names its own study; the title would overflow
        parts.append(f"{len(studies)} studies")
    elif studies:
        parts.append(_joined(sorted(map(str, studies))))
    conditions = [c for c in distinct_values(df, "condition") if c != "baseline"] or distinct_values(df, "condition")
    if len(conditions) == 1:
        parts.append(condition_label(conditions[0]))
    elif conditions:
        parts.append("conditions " + _joined(ordered_conditions(conditions)))
    depth, channels = distinct_values(df, "depth"), distinct_values(df, "num_channels")
    kernel, activation = distinct_values(df, "kernel_size"), distinct_values(df, "activation")
    if depth or channels:
        arch = f"{_joined(sorted(depth)) or '?'}×{_joined(sorted(channels)) or '?'}"
        if kernel:
            arch += f" k{_joined(sorted(kernel))}"
        if activation:
            arch += f" {_joined(sorted(activation))}"
        parts.append(arch)
    pooling = distinct_values(df, "pooling")
    if pooling:
        parts.append("pool " + _joined(sorted(pooling)))
    lrs = distinct_values(df, "lr")
    if lrs:
        parts.append("lr " + _joined(sorted(lrs), lambda v: f"{v:g}"))
    return " | ".join(parts) if parts else "results"


# ----------------------------------------------------------------------------- frame checks
def check_frame(df, columns: Iterable[str], name: str = "df") -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; columns: {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{name} is empty: nothing to plot")


def check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns or not df[metric].notna().any():
        present = [c for c in df.columns if c.endswith("_acc") and df[c].notna().any()] or list(df.columns)
        raise ValueError(f"metric {metric!r} has no values in df; allowed: {present}")


def _pick_fractions(df: pd.DataFrame, fractions) -> list[float]:
    """Fractions to show, ascending; every requested one must be present."""
    available = sorted(float(f) for f in df["fraction"].dropna().unique())
    if fractions is None:
        return available
    if isinstance(fractions, (int, float)):
        fractions = [fractions]
    wanted = [float(f) for f in fractions]
    missing = [f for f in wanted if not any(math.isclose(f, a) for a in available)]
    if missing or not wanted:
        raise ValueError(f"fractions {list(fractions)!r}: allowed are {available}")
    return sorted(a for a in available if any(math.isclose(a, f) for f in wanted))


# ----------------------------------------------------------------------------- settings
def _row_columns(df: pd.DataFrame) -> list[str]:
    """Columns that tell one row of panels from another: study, setting, and lr when it varies."""
    columns = ["study", "setting"]
    transfer = df[df["cut"] != -1]
    if "lr" in df.columns and len(transfer) and transfer.groupby(columns)["lr"].nunique().max() > 1:
        columns.append("lr")
    return columns


def setting_rows(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per (study, condition[, lr]); the label names only what differs between rows."""
    df = with_settings(df)
    columns = _row_columns(df)
    groups = list(df.groupby(columns, sort=False, dropna=False))
    rank = {name: i for i, name in enumerate(ordered_conditions(df["setting"].unique()))}
    groups.sort(key=lambda item: (str(item[0][0]), rank.get(item[0][1], 0), *map(str, item[0][2:])))
    varying = [i for i, c in enumerate(columns) if df[c].nunique(dropna=False) > 1]
    rows = []
    for key, rows_df in groups:
        parts = []
        for i in varying:
            value = key[i]
            parts.append(f"lr {value:g}" if columns[i] == "lr" else str(value))
        rows.append((" · ".join(parts), rows_df))
    return rows


def panel_title(row_label: str, text: str) -> str:
    return f"{row_label} · {text}" if row_label else text


def titled(fig: Figure, title: str) -> Figure:
    """``fig`` with its overall title set."""
    fig.suptitle(title)
    return fig


def _arm_colors(arms: Sequence[str]) -> dict[str, tuple]:
    """Baseline dark grey, cuts along a sequential palette (early cut light, late cut dark)."""
    cuts = [a for a in arms if a != "baseline"]
    palette = sns.color_palette("viridis_r", max(len(cuts), 1))
    colors = {a: c for a, c in zip(cuts, palette)}
    colors["baseline"] = BASELINE_COLOR
    return colors


# ----------------------------------------------------------------------------- boxes
def _group_colors(n_groups: int) -> list[tuple]:
    return sns.color_palette("Set2", max(n_groups, 1))


def _draw_boxes(ax, values: dict, order: list, groups: dict, baseline=None,
                tick_labels: Sequence[str] | None = None) -> None:
    """Boxes of ``values[arm]`` in ``order``, coloured by rank group, median and group letter on top.

    ``groups[arm] = (group number, label)``; arms without one are drawn in light grey. The ``baseline``
    arm is hatched and sets a dashed line at its median.
    """
    data = [np.asarray(values[a], float) for a in order]
    positions = np.arange(len(order))
    parts = ax.boxplot(data, positions=positions, widths=0.6, patch_artist=True, showfliers=False,
                       medianprops={"color": "black", "linewidth": 1.5})
    n_groups = max((g for g, _ in groups.values()), default=1)
    palette = _group_colors(n_groups)
    for arm, box in zip(order, parts["boxes"]):
        group = groups.get(arm)
        box.set_facecolor(palette[(group[0] - 1) % len(palette)] if group else "0.85")
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
        label = groups.get(arm, (None, ""))[1]
        text = f"{np.median(points):.3f}" + (f"\n{label}" if label else "")
        ax.text(x, points.max() + 0.03 * span, text, ha="center", va="bottom", fontsize=8 if len(order) <= 6 else 7)
    if baseline in order and values[baseline] is not None and len(values[baseline]):
        ax.axhline(float(np.median(values[baseline])), color=BASELINE_COLOR, linestyle="--", linewidth=1,
                   zorder=0)
    # room below for a power warning, above for the median/group labels
    ax.set_ylim(low - 0.15 * span, high + 0.35 * span)
    ax.set_xticks(positions)
    labels = list(tick_labels) if tick_labels is not None else [str(a) for a in order]
    crowded = len(order) > 8
    ax.set_xticklabels(labels, rotation=45 if crowded else 0, ha="right" if crowded else "center")


def _short_arm(arm: str) -> str:
    """Tick label of an arm: ``baseline`` → ``base``, ``cut 3`` → ``3``."""
    if arm == "baseline":
        return "base"
    match = re.fullmatch(r"cut (-?\d+)", str(arm))
    return match.group(1) if match else str(arm)


def _power_text(panel_groups: pd.DataFrame, alpha: float) -> str | None:
    """Short warning for a panel whose arms carry rank_groups' power warning."""
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


def _write_warning(ax, text: str) -> None:
    ax.text(0.5, 0.02, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="darkred",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1.5})


def _lookup_groups(groups: pd.DataFrame, keys: dict, arm_col: str = "arm") -> pd.DataFrame:
    """Rows of a rank_groups frame for one panel, matched on the key columns it has."""
    rows = groups
    for column, value in keys.items():
        if column not in groups.columns:
            continue
        if isinstance(value, float):
            rows = rows[np.isclose(rows[column].astype(float), value)]
        else:
            rows = rows[rows[column] == value]
    duplicated = rows[arm_col].duplicated()
    if duplicated.any():
        raise ValueError(f"groups holds several rows for {arm_col} {list(rows.loc[duplicated, arm_col])} "
                         f"at {keys}; give a frame computed with by={tuple(keys)}")
    return rows


def _panels(n: int, width: float, height: float, max_cols: int = 3, **kwargs) -> tuple[Figure, list]:
    """``n`` panels wrapped into rows of at most ``max_cols``; unused grid cells removed."""
    ncols = min(n, max_cols)
    nrows = math.ceil(n / ncols)
    fig, axes = panel_grid(nrows, ncols, width=width, height=height, **kwargs)
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def panel_grid(nrows: int, ncols: int, width: float = 3.3, height: float = 3.4, **kwargs):
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(width * ncols + 0.6, 30), height * nrows + 0.8),
                             squeeze=False, layout="constrained", **kwargs)
    return fig, axes


def box_by_cut(df: pd.DataFrame, metric: str = "test_acc", fractions=None, groups: pd.DataFrame | None = None,
               alpha: float = 0.05) -> Figure:
    """Boxes per arm (baseline, then cuts ascending), one panel per fraction, one row per condition.

    Box colour = rank group (:func:`functions.analysis.stats.rank_groups`, computed when ``groups`` is None; else
    a frame of its shape whose ``by`` columns are matched against study/setting/fraction). Median and
    group letter above each box; the baseline box is hatched and its median is the dashed line. A panel
    where no difference can be significant (too few paired repeats) says so.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm", "repeat"))
    check_metric(df, metric)
    fracs = _pick_fractions(df, fractions)
    df = df[np.isclose(df["fraction"].to_numpy(float)[:, None], fracs).any(axis=1)]  # rank only what is shown
    rows = setting_rows(df)
    row_cols = _row_columns(pd.concat([r for _, r in rows], ignore_index=True))
    if groups is None:
        prepared = pd.concat([r for _, r in rows], ignore_index=True)
        groups = stats.rank_groups(prepared, metric=metric, by=row_cols + ["fraction"], alpha=alpha)
    else:
        check_frame(groups, ("arm", "group", "group_label"), name="groups")
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
            panel_groups = _lookup_groups(groups, keys)
            found = {row.arm: (int(row.group), str(row.group_label)) for row in panel_groups.itertuples()}
            _draw_boxes(ax, values, order, found, baseline="baseline", tick_labels=[_short_arm(a) for a in order])
            ax.set_xlabel("cut")
            ax.set_ylabel(metric if c == 0 else "")
            message = _power_text(panel_groups[panel_groups["arm"].isin(order)], alpha)
            if message:
                _write_warning(ax, message)
    return titled(fig, f"{metric} by cut\n{describe_setting(df)}")


def _sorted_layers(layers) -> list:
    """Numeric layers in numeric order; named layers (``input``, ``block0`` …) in the order they appear,
    which is the network's order in the clustering frames."""
    layers = list(pd.unique(pd.Series(list(layers))))
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in layers):
        return sorted(layers, key=float)
    return layers


def box_clustering(cdf: pd.DataFrame, metric: str = "ari", fractions=None, alpha: float = 0.05,
                   channel: int | None = -1) -> Figure:
    """Clustering ``metric`` per layer, one panel per fraction, boxes coloured by rank group.

    Layers are paired by repeat (each repeat clusters one subset at every layer). ``channel`` picks the
    rows of a ``channel`` column: -1 (default) the whole-layer rows, None every row; with several values
    per (fraction, layer, repeat), e.g. pooled channels, pairing is impossible and boxes are drawn
    uncoloured. One row of panels per dataset/split/method/model when those vary.
    """
    use_style()
    check_frame(cdf, ("fraction", "layer", "repeat", metric), name="cdf")
    if channel is not None and "channel" in cdf.columns and cdf["channel"].notna().any():
        if not (cdf["channel"] == channel).any():
            allowed = sorted(distinct_values(cdf, "channel"))
            raise ValueError(f"channel {channel!r} has no rows; allowed: None or {allowed}")
        cdf = cdf[cdf["channel"] == channel]
    if not cdf[metric].notna().any():
        raise ValueError(f"metric {metric!r} has no values in cdf")
    fracs = _pick_fractions(cdf, fractions)
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
            _draw_boxes(ax, values, order, found)
            ax.set_xlabel("layer")
            ax.set_ylabel(metric if c == 0 else "")
            if message:
                _write_warning(ax, message)
    extra = [f"{c} {_joined(sorted(map(str, distinct_values(cdf, c))))}"
             for c in ("dataset", "split", "method", "model")
             if c in cdf.columns and c not in row_cols and distinct_values(cdf, c)]
    return titled(fig, " | ".join([f"clustering {metric} by layer", *extra]))


# ----------------------------------------------------------------------------- lines over fractions
def _set_fraction_axis(ax, fractions: Sequence[float]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(list(fractions))
    ax.set_xticklabels([fraction_label(f) for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("fraction of fine-tuning data")


def median_lines(df: pd.DataFrame, metric: str = "test_acc") -> Figure:
    """Median ``metric`` over fractions (log x), one line per arm, min–max band and mean ± std bars.

    One panel per (study, condition).
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm"))
    check_metric(df, metric)
    rows = setting_rows(df)
    fig, axes = _panels(len(rows), width=5.2, height=4.2)
    for ax, (row_label, row_df) in zip(axes, rows):
        present = row_df[row_df[metric].notna()]
        summary = (present.groupby(["arm", "fraction"])[metric]
                   .agg(["median", "min", "max", "mean", "std"]).reset_index())
        arms = sort_arms(summary["arm"])
        colors = _arm_colors(arms)
        for arm in arms:
            line = summary[summary["arm"] == arm].sort_values("fraction")
            x = line["fraction"].to_numpy(float)
            style = {"linestyle": "--"} if arm == "baseline" else {}
            ax.plot(x, line["median"], marker="o", color=colors[arm], label=arm, **style)
            ax.fill_between(x, line["min"], line["max"], color=colors[arm], alpha=0.12, linewidth=0)
            ax.errorbar(x, line["mean"], yerr=line["std"].fillna(0), fmt="none", ecolor=colors[arm],
                        alpha=0.6, capsize=2)
        _set_fraction_axis(ax, sorted(summary["fraction"].unique()))
        ax.set_ylabel(f"{metric} (median; band min–max; bars mean ± std)")
        ax.set_title(row_label)
        ax.legend(fontsize=7, ncol=2)
    return titled(fig, f"{metric} over fractions\n{describe_setting(df)}")


def diff_to_baseline(df: pd.DataFrame, metric: str = "test_acc", n_boot: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> Figure:
    """Cut − baseline over fractions (log x), one line per cut, zero line; one panel per condition.

    Where runs pair with the baseline by repeat, the line is the median of the paired differences with its
    bootstrap 95 % CI band (:func:`functions.analysis.stats.effect_vs_baseline`); filled markers are significant
    after Holm. Without pairs it is the difference of medians, without a band.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "arm", "repeat"))
    check_metric(df, metric)
    if not (df["cut"] == -1).any():
        raise ValueError("df holds no baseline rows (cut -1): nothing to take differences to")
    rows = setting_rows(df)
    fig, axes = _panels(len(rows), width=5.2, height=4.2)
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
        colors = _arm_colors(arms)
        for arm in arms:
            line = effects[effects["arm"] == arm].sort_values("fraction").copy()
            unpaired = line["n_pairs"] == 0
            # without pairs: the plain difference of medians at that fraction
            line.loc[unpaired, "median_diff"] = [medians.get((f, arm), np.nan) - medians.get((f, "baseline"), np.nan)
                                                 for f in line.loc[unpaired, "fraction"]]
            x = line["fraction"].to_numpy(float)
            ax.plot(x, line["median_diff"], color=colors[arm], label=arm, marker=None)
            ax.fill_between(x, line["low"].astype(float), line["high"].astype(float), color=colors[arm],
                            alpha=0.15, linewidth=0)
            significant = line["significant"].astype(bool).to_numpy()
            ax.scatter(x[significant], line["median_diff"][significant], color=colors[arm], zorder=3)
            ax.scatter(x[~significant], line["median_diff"][~significant], facecolor="white",
                       edgecolor=colors[arm], zorder=3)
        _set_fraction_axis(ax, sorted(present["fraction"].unique()))
        ax.set_ylabel(f"Δ {metric} vs baseline (paired median, 95% CI)")
        ax.legend(fontsize=7, ncol=2, title="filled marker: significant (Holm)", title_fontsize=7)
    return titled(fig, f"difference to baseline\n{describe_setting(df)}")


# ----------------------------------------------------------------------------- grids
def heatmap(df: pd.DataFrame, metric: str = "test_acc", stat: str = "median", relative: bool = False) -> Figure:
    """Annotated fraction × arm table of ``stat`` of ``metric``; ``relative=True``: minus the baseline.

    One panel per (study, condition), each with its colour bar; all panels share one colour scale (centred
    on 0 when relative) so that equal colours mean equal values across panels.
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
        table = summary_table(row_df.drop(columns="study"), metric=metric, stat=stat)
        if relative:
            table = (table.sub(table["baseline"], axis=0).drop(columns="baseline")
                     if "baseline" in table.columns else None)
        tables.append((row_label, table))
    numbers = np.concatenate([t.to_numpy(float).ravel() for _, t in tables if t is not None and t.size] or [[0.0]])
    if relative:
        limit = float(np.nanmax(np.abs(numbers))) or 1e-9
        scale = {"cmap": "RdBu", "center": 0.0, "vmin": -limit, "vmax": limit}
    else:
        scale = {"cmap": "viridis", "vmin": float(np.nanmin(numbers)), "vmax": float(np.nanmax(numbers))}
    fig, axes = _panels(len(rows), width=5.5, height=0.45 * df["fraction"].nunique() + 2.8)
    for ax, (row_label, table) in zip(axes, tables):
        ax.set_title(row_label)
        if table is None:
            ax.text(0.5, 0.5, "no baseline", transform=ax.transAxes, ha="center")
            continue
        table.index = [fraction_label(f) for f in table.index]
        sns.heatmap(table, ax=ax, annot=True, fmt=".3f" if stat != "count" else ".0f", annot_kws={"fontsize": 8},
                    cbar_kws={"label": f"{stat} {metric}" + (" − baseline" if relative else "")}, **scale)
        ax.set_xlabel("arm")
        ax.set_ylabel("fraction")
    what = f"{stat} {metric}" + (" minus baseline" if relative else "")
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
