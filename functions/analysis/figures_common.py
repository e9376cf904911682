"""What every figure module shares: the style, saving, labels, frame checks, panels per setting.

``functions.analysis.figures`` re-exports the public names; ``transfer_conditions`` and ``diagnostics`` use
them through it.
"""
from __future__ import annotations

import io
import math
import re
import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from functions.analysis.labels import fraction_label, protocol_text, repeats_text  # noqa: F401  (re-exported)
from functions.analysis.results import lr_setting, with_settings
from functions.engine.conditions import condition_label, ordered_conditions
from functions.engine.fileio import atomic_write_bytes

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


# Metadata that would change the bytes of an unchanged figure on every save: the creation date (PDF, PS)
# and the date and random ids of an SVG. Without them the same figure gives the same file.
_STABLE_METADATA = {"pdf": {"CreationDate": None}, "ps": {"CreationDate": None}, "eps": {"CreationDate": None},
                    "svg": {"Date": None}}


def figure_bytes(fig: Figure, fmt: str, dpi: int | None = None) -> bytes:
    """``fig`` rendered as ``fmt``, without timestamps: the same figure always gives the same bytes."""
    buffer = io.BytesIO()
    with plt.rc_context({"svg.hashsalt": "tl-study"}):  # SVG element ids from a fixed salt, not a random one
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_STABLE_METADATA.get(fmt))
    return buffer.getvalue()


def save_figure(fig: Figure, path_without_ext: str | Path, formats: Sequence[str] = ("png", "pdf"),
                dpi: int | None = None) -> list[Path]:
    """Write ``fig`` as ``path_without_ext.<format>`` for every format (folders created); the paths written.

    A file whose bytes would not change is left as it is (a re-run does not touch a tracked figure), and a
    changed one is replaced atomically (a killed notebook never leaves half a figure behind).
    """
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
        data = figure_bytes(fig, fmt, dpi)
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)
        written.append(path)
    return written


# ----------------------------------------------------------------------------- labels
def distinct_values(df: pd.DataFrame, column: str) -> list:
    """Distinct non-null values of a column (empty when the column is missing)."""
    if column not in df.columns:
        return []
    return list(pd.unique(df[column].dropna()))


def join_values(values: Iterable, fmt=str) -> str:
    return "/".join(fmt(v) for v in values)


def describe_setting(df: pd.DataFrame) -> str:
    """One line naming the setting of ``df``: study, condition(s), architecture, pooling, lr, protocol, repeats.

    A column with several values lists them joined by ``/`` (more than two studies are counted instead);
    missing columns are left out. The learning rate is named only when it is a setting: a run that tuned it
    (``lr_grid``) chose it, which the protocol's label (``realistic, tuned lr``) already says.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    parts = []
    studies = distinct_values(df, "study")
    if len(studies) > 2:  # each panel names its own study; the title would overflow
        parts.append(f"{len(studies)} studies")
    elif studies:
        parts.append(join_values(sorted(map(str, studies))))
    conditions = [c for c in distinct_values(df, "condition") if c != "baseline"] or distinct_values(df, "condition")
    if len(conditions) == 1:
        parts.append(condition_label(conditions[0]))
    elif conditions:
        parts.append("conditions " + join_values(ordered_conditions(conditions)))
    depth, channels = distinct_values(df, "depth"), distinct_values(df, "num_channels")
    kernel, activation = distinct_values(df, "kernel_size"), distinct_values(df, "activation")
    if depth or channels:
        arch = f"{join_values(sorted(depth)) or '?'}×{join_values(sorted(channels)) or '?'}"
        if kernel:
            arch += f" k{join_values(sorted(kernel))}"
        if activation:
            arch += f" {join_values(sorted(activation))}"
        parts.append(arch)
    pooling = distinct_values(df, "pooling")
    if pooling:
        parts.append("pool " + join_values(sorted(pooling)))
    if "lr" in df.columns and df["lr"].notna().any():
        rates = sorted({r for r in lr_setting(df) if r not in ("tuned", "–")}, key=float)
        if rates:
            parts.append("lr " + join_values(rates))
    if len(df):
        parts.append(protocol_text(df))
    repeats = repeats_text(df)
    if repeats:
        parts.append(repeats)
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


def pick_fractions(df: pd.DataFrame, fractions) -> list[float]:
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
def row_columns(df: pd.DataFrame) -> list[str]:
    """Columns that tell one row of panels from another: study, setting, and the learning rate when it is
    a setting that varies (``lr_setting`` of :func:`~functions.analysis.results.with_settings`; a rate
    each run tuned for itself is an outcome and never splits panels)."""
    columns = ["study", "setting"]
    transfer = df[df["cut"] != -1]
    if "lr_setting" in df.columns and len(transfer) and transfer.groupby(columns)["lr_setting"].nunique().max() > 1:
        columns.append("lr_setting")
    return columns


def setting_rows(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per (study, condition[, lr]); the label names only what differs between rows."""
    df = with_settings(df)
    columns = row_columns(df)
    groups = list(df.groupby(columns, sort=False, dropna=False))
    rank = {name: i for i, name in enumerate(ordered_conditions(df["setting"].unique()))}
    groups.sort(key=lambda item: (str(item[0][0]), rank.get(item[0][1], 0), *map(str, item[0][2:])))
    varying = [i for i, c in enumerate(columns) if df[c].nunique(dropna=False) > 1]
    rows = []
    for key, rows_df in groups:
        parts = []
        for i in varying:
            value = key[i]
            parts.append(f"lr {value}" if columns[i] == "lr_setting" else str(value))
        rows.append((" · ".join(parts), rows_df))
    return rows


def panel_title(row_label: str, text: str) -> str:
    return f"{row_label} · {text}" if row_label else text


def titled(fig: Figure, title: str) -> Figure:
    """``fig`` with its overall title set, each line wrapped to the figure's width (a setting line is long)."""
    fig.suptitle(wrap_to_width(title, fig.get_figwidth(), plt.rcParams["figure.titlesize"]))
    return fig


def wrap_to_width(text: str, width_inches: float, fontsize="medium") -> str:
    """``text`` with every line wrapped at `` | `` or spaces so that it fits ``width_inches`` at ``fontsize``."""
    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=fontsize).get_size_in_points()
    chars = max(20, int(width_inches * 72 / (0.55 * points)))  # an average glyph is about 0.55 em wide
    lines = []
    for line in text.split("\n"):
        if len(line) > chars:  # a long study name may break after its arrow, never inside a dataset name
            line = line.replace("->", "-> ")
        wrapped = textwrap.wrap(line, chars, break_on_hyphens=False, break_long_words=False) or [""]
        lines.extend(w.replace("-> ", "->") for w in wrapped)
    return "\n".join(lines)


def colors_of_arms(arms: Sequence[str]) -> dict[str, tuple]:
    """Baseline dark grey, cuts along a sequential palette (early cut light, late cut dark)."""
    cuts = [a for a in arms if a != "baseline"]
    palette = sns.color_palette("viridis_r", max(len(cuts), 1))
    colors = {a: c for a, c in zip(cuts, palette)}
    colors["baseline"] = BASELINE_COLOR
    return colors


# ----------------------------------------------------------------------------- boxes
def short_arm(arm: str) -> str:
    """Tick label of an arm: ``baseline`` → ``base``, ``cut 3`` → ``3``."""
    if arm == "baseline":
        return "base"
    match = re.fullmatch(r"cut (-?\d+)", str(arm))
    return match.group(1) if match else str(arm)


def write_warning(ax, text: str) -> None:
    ax.text(0.5, 0.02, text, transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="darkred",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1.5})


def lookup_groups(groups: pd.DataFrame, keys: dict, arm_col: str = "arm") -> pd.DataFrame:
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


def panel_axes(n: int, width: float, height: float, max_cols: int = 3, **kwargs) -> tuple[Figure, list]:
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


def set_fraction_axis(ax, fractions: Sequence[float]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(list(fractions))
    ax.set_xticklabels([fraction_label(f) for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("fraction of fine-tuning data")
