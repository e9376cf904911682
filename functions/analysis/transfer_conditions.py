"""The analysis of the transfer conditions run on the grid engine (``functions.engine.conditions``): the
Yosinski et al. (2014) self-transfer controls, surgical fine-tuning and fine-tuning strategies.

Tables (:func:`accuracy_by_cut`, :func:`effects_vs_baseline`, :func:`surgical_summary`,
:func:`strategy_summary`), per-epoch curves of rows that recorded them (:func:`histories`,
:func:`curves_at`), and their figures (:func:`yosinski_plot`, :func:`surgical_plot`). Everything reads
results frames; nothing trains.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from functions.analysis import stats
from functions.analysis.figures_common import (BASELINE_COLOR, check_frame, check_metric, describe_setting,
                                               distinct_values, fraction_label, panel_grid, panel_title, titled,
                                               use_style)
from functions.analysis.results import drop_repeated_runs
from functions.engine.conditions import CONDITIONS, STRATEGIES, SURGICAL, YOSINSKI, arm_label, ordered_conditions


# ----------------------------------------------------------------------------- tidy frames
def _require(df: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df: missing columns {missing}; pass a frame from Study.run or load_results")


def with_baseline_at_cut0(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI) -> pd.DataFrame:
    """Rows of ``conditions`` plus, for each, the baseline rows relabelled as its cut 0.

    Cut 0 with re-initialisation *is* training from scratch, so the engine runs it once as the baseline;
    the Yosinski figure draws it as every curve's first point. The baseline rows themselves stay too.
    """
    _require(df, ("condition", "cut", "fraction", "repeat", "test_acc"))
    base = df[df["condition"] == "baseline"]
    parts = [df[df["condition"].isin(conditions)], base]
    for name in conditions:
        if CONDITIONS.get(name) is not None and CONDITIONS[name].cut0_is_baseline:
            if not ((df["condition"] == name) & (df["cut"] == 0)).any():
                parts.append(base.assign(condition=name, cut=0, arm="cut 0"))
    out = pd.concat(parts, ignore_index=True)
    out["arm"] = [arm_label(c) for c in out["cut"]]
    return out


def accuracy_by_cut(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI, metric: str = "test_acc",
                    n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Median ``metric`` with a 95 % bootstrap CI per (fraction, condition, cut), baseline included.

    The numbers behind the Yosinski figure: columns fraction, condition, cut, n, median, low, high.
    """
    rows = with_baseline_at_cut0(df, conditions)
    rows = rows.assign(group=rows["condition"] + "|" + rows["cut"].astype(str))
    ci = stats.bootstrap_ci(rows, metric=metric, arm_col="group", by=("fraction",), n_boot=n_boot, seed=seed)
    ci[["condition", "cut"]] = ci["arm"].str.split("|", expand=True)
    ci["cut"] = ci["cut"].astype(int)
    ci = ci.rename(columns={"estimate": "median"})
    order = {name: i for i, name in enumerate(["baseline", *conditions])}
    ci = ci.sort_values(["fraction", "condition", "cut"], key=lambda s: s.map(order) if s.name == "condition"
                        else s)
    return ci[["fraction", "condition", "cut", "n", "median", "low", "high"]].reset_index(drop=True)


def effects_vs_baseline(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI, metric: str = "test_acc",
                        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired effect of every (condition, cut) against the from-scratch baseline on the same subsets.

    Per (fraction, condition): median paired difference with a bootstrap CI and Holm-corrected Wilcoxon
    p-value over that condition's cuts (functions.analysis.stats.effect_vs_baseline).
    """
    _require(df, ("condition", "cut", "fraction", "repeat", metric))
    parts = []
    base = df[df["condition"] == "baseline"].assign(arm="baseline")
    for name in conditions:
        own = df[(df["condition"] == name) & (df["cut"] > 0)]
        own = own.assign(arm=[arm_label(c) for c in own["cut"]])
        if own.empty:
            continue
        part = pd.concat([own, base]).assign(setting=name)
        parts.append(stats.effect_vs_baseline(part, metric=metric, by=("setting", "fraction"), n_boot=n_boot,
                                        seed=seed))
    if not parts:
        raise ValueError(f"df holds no rows of the conditions {list(conditions)} with cut > 0")
    out = pd.concat(parts, ignore_index=True).rename(columns={"setting": "condition"})
    out["cut"] = out["arm"].str.removeprefix("cut ").astype(int)
    return out[["condition", "fraction", "cut", "n_pairs", "median_diff", "low", "high", "p_holm",
                "significant"]]


def block_label(cut_point: int, n_blocks: int) -> str:
    """Surgical arm label: ``block k`` or ``head only`` (cut = number of blocks)."""
    return "head only" if cut_point == n_blocks else f"block {cut_point}"


def surgical_summary(df: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """Per (study, fraction) and tuned block: median accuracy, gain over head-only, rank and rank group.

    ``group_label == "a"`` marks the best block and those not significantly worse than it (paired
    Wilcoxon, Holm-corrected within the fraction). Columns: study, fraction, cut, tuned, n, median,
    gain_vs_head, rank, group_label, best.
    """
    _require(df, ("study", "condition", "cut", "fraction", "repeat", metric))
    rows = df[df["condition"] == SURGICAL].copy()
    if rows.empty:
        raise ValueError("df holds no 'surgical' rows; run Study.run(('surgical',)) first")
    rows["arm"] = [arm_label(c) for c in rows["cut"]]
    ranked = stats.rank_groups(rows, metric=metric, by=("study", "fraction"), alpha=alpha)
    ranked["cut"] = ranked["arm"].str.removeprefix("cut ").astype(int)
    n_blocks = rows.groupby("study")["cut"].max()  # the head-only cut is always in the grid
    ranked["tuned"] = [block_label(c, n_blocks[s]) for s, c in zip(ranked["study"], ranked["cut"])]
    head = ranked[ranked["cut"] == ranked["study"].map(n_blocks)].set_index(["study", "fraction"])["median"]
    ranked["gain_vs_head"] = ranked["median"] - [head.get((s, f), np.nan)
                                                 for s, f in zip(ranked["study"], ranked["fraction"])]
    ranked["best"] = ranked["rank"] == 1
    columns = ["study", "fraction", "cut", "tuned", "n", "median", "gain_vs_head", "rank", "group_label",
               "best"]
    return ranked.sort_values(["study", "fraction", "cut"])[columns].reset_index(drop=True)


def best_blocks(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, fraction): the best tuned block and every block tied with it (group a)."""
    _require(summary, ("study", "fraction", "tuned", "rank", "group_label", "median"))
    records = []
    for (study, fraction), rows in summary.groupby(["study", "fraction"], sort=True):
        best = rows.sort_values(["rank", "cut"]).iloc[0]
        tied = rows[rows["group_label"] == "a"]["tuned"].tolist()
        records.append({"study": study, "fraction": fraction, "best": best["tuned"],
                        "best_median": best["median"], "not_significantly_worse": ", ".join(tied)})
    return pd.DataFrame(records)


def strategy_summary(df: pd.DataFrame, strategies: Sequence[str] = STRATEGIES,
                     metric: str = "test_acc") -> pd.DataFrame:
    """Median accuracy, bootstrap CI, rank group and paired effect vs scratch per (fraction, strategy)."""
    _require(df, ("condition", "fraction", "repeat", metric))
    rows = df[df["condition"].isin(strategies)].assign(study="strategies")
    rows = rows.assign(arm=rows["condition"])
    table = stats.summarize(rows, metric=metric, by=("fraction",))
    order = {name: i for i, name in enumerate(strategies)}
    return (table.rename(columns={"arm": "strategy"})
            .sort_values(["fraction", "strategy"], key=lambda s: s.map(order) if s.name == "strategy" else s)
            .reset_index(drop=True))


def histories(df: pd.DataFrame, conditions: Sequence[str] = STRATEGIES) -> pd.DataFrame:
    """Per-epoch curves of rows that recorded them, long format.

    Columns: condition, fraction, cut, repeat, epoch (1-based), train_loss, val_loss, val_acc.
    Rows without a ``history`` (runs stored before ``record_history`` was on) are skipped.
    """
    _require(df, ("condition", "fraction", "cut", "repeat"))
    if "history" not in df.columns:
        raise ValueError("df has no 'history' column; run the grid with Study(..., record_history=True)")
    records = []
    for row in df[df["condition"].isin(conditions)].itertuples(index=False):
        history = row.history
        if not isinstance(history, dict) or not history.get("val_loss"):
            continue
        for epoch, values in enumerate(zip(history["train_loss"], history["val_loss"], history["val_acc"]), 1):
            records.append({"condition": row.condition, "fraction": row.fraction, "cut": row.cut,
                            "repeat": row.repeat, "epoch": epoch, "train_loss": values[0],
                            "val_loss": values[1], "val_acc": values[2]})
    return pd.DataFrame(records, columns=["condition", "fraction", "cut", "repeat", "epoch", "train_loss",
                                          "val_loss", "val_acc"])


def curves_at(df: pd.DataFrame, fraction: float, repeat: int = 0,
              conditions: Sequence[str] = STRATEGIES) -> dict[str, dict[str, list[float]]]:
    """``{condition: history}`` of one (fraction, repeat): what ``diagnostics.learning_curves`` draws."""
    _require(df, ("condition", "fraction", "repeat", "history"))
    picked = df[np.isclose(df["fraction"].astype(float), fraction) & (df["repeat"] == repeat)]
    out = {}
    for name in conditions:
        rows = picked[picked["condition"] == name]
        found = [h for h in rows["history"] if isinstance(h, dict) and h.get("val_loss")]
        if found:
            out[name] = found[0]
    if not out:
        raise ValueError(f"no recorded histories at fraction={fraction}, repeat={repeat} for {list(conditions)}; "
                         "run the grid with Study(..., record_history=True)")
    return out


def surgical_plot(summary: pd.DataFrame):
    """Gain of tuning one block over training the head alone, per tuned block; a line per fraction and
    one panel per study (class split vs domain shift side by side); the best block of each line ringed."""
    _require(summary, ("study", "fraction", "cut", "tuned", "gain_vs_head", "best"))
    use_style()
    studies = sorted(summary["study"].unique())
    fig, axes = plt.subplots(1, len(studies), figsize=(4.6 * len(studies), 3.8), squeeze=False,
                             layout="constrained", sharey=True)
    for ax, study in zip(axes[0], studies):
        rows = summary[summary["study"] == study].sort_values("cut")
        for fraction, line in rows.groupby("fraction"):
            drawn = ax.plot(line["cut"], line["gain_vs_head"], marker="o", label=fraction_label(fraction))
            best = line[line["best"]]
            ax.scatter(best["cut"], best["gain_vs_head"], s=140, facecolors="none",
                       edgecolors=drawn[0].get_color(), linewidths=1.5)
        ax.axhline(0, color="0.3", linewidth=0.8, linestyle="--")
        ticks = rows.drop_duplicates("cut")
        ax.set_xticks(ticks["cut"], [t.replace("block ", "") for t in ticks["tuned"]])
        ax.set_xlabel("block fine-tuned (others frozen)")
        ax.set_title(study)
    axes[0, 0].set_ylabel("median test acc − head only")
    axes[0, -1].legend(title="fraction", fontsize=7)
    fig.suptitle("Surgical fine-tuning: which single block to tune (ring: best median)")
    return fig


def yosinski_plot(df: pd.DataFrame, metric: str = "test_acc", conditions: Sequence[str] | None = None,
                  n_boot: int = 1000, seed: int = 0) -> Figure:
    """Median ``metric`` vs cut, one line per condition (AnB, AnB+, BnB, BnB+ …), one panel per fraction.

    Error bars and the baseline's horizontal band are bootstrap 95 % CIs of the median; the baseline
    median is the dashed line. One row of panels per study.
    """
    use_style()
    check_frame(df, ("fraction", "cut", "condition"))
    check_metric(df, metric)
    df = drop_repeated_runs(df)
    if "study" not in df.columns:
        df = df.assign(study="")
    present = [c for c in distinct_values(df, "condition") if c != "baseline"]
    if conditions is None:
        conditions = ordered_conditions(present)
    unknown = [c for c in conditions if c not in present]
    if unknown or not conditions:
        raise ValueError(f"conditions {list(conditions)!r}: allowed are {ordered_conditions(present)}")
    rows = df[df["condition"].isin(list(conditions) + ["baseline"]) & df[metric].notna()]
    cis = stats.bootstrap_ci(rows, metric=metric, arm_col="condition", by=("study", "fraction", "cut"),
                             n_boot=n_boot, seed=seed)
    studies = sorted(rows["study"].unique(), key=str)
    fracs = sorted(rows["fraction"].unique())
    fig, axes = panel_grid(len(studies), len(fracs), width=4.0, height=3.6)
    palette = dict(zip(conditions, sns.color_palette("colorblind", len(conditions))))
    for r, study in enumerate(studies):
        for c, fraction in enumerate(fracs):
            ax = axes[r, c]
            panel = cis[(cis["study"] == study) & np.isclose(cis["fraction"].astype(float), fraction)]
            base = panel[panel["arm"] == "baseline"]  # bootstrap_ci names its arm column "arm"
            if len(base):
                ax.axhspan(float(base["low"].iloc[0]), float(base["high"].iloc[0]), color=BASELINE_COLOR,
                           alpha=0.15, label="baseline 95% CI")
                ax.axhline(float(base["estimate"].iloc[0]), color=BASELINE_COLOR, linestyle="--", linewidth=1,
                           label="baseline")
            for i, condition in enumerate(conditions):
                line = panel[panel["arm"] == condition].sort_values("cut")
                if line.empty:
                    continue
                y = line["estimate"].to_numpy(float)
                yerr = np.vstack([y - line["low"].to_numpy(float), line["high"].to_numpy(float) - y])
                dodge = (i - (len(conditions) - 1) / 2) * 0.05  # keep the error bars of conditions apart
                ax.errorbar(line["cut"].to_numpy(float) + dodge, y, yerr=yerr, marker="o", capsize=2,
                            color=palette[condition], label=condition)
            ax.set_title(panel_title(str(study) if len(studies) > 1 else "", f"fraction {fraction_label(fraction)}"))
            ax.set_xlabel("cut (blocks transferred)")
            ax.set_ylabel(f"median {metric}" if c == 0 else "")
            ax.xaxis.get_major_locator().set_params(integer=True)
            if r == 0 and c == len(fracs) - 1:
                ax.legend(fontsize=7)
    return titled(fig, f"{metric} by cut per condition\n{describe_setting(df)}")
