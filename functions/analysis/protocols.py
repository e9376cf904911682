"""Protocol sensitivity: does a transfer gain survive a budget-fair protocol and realistic validation?

Rows come from the stores of :func:`functions.engine.protocol_grid.run_protocols` (one store per protocol
variant, all on the same subsets and initial weights). Every gain is paired: a cut's test accuracy minus
the baseline's of the *same* protocol, (fraction, repeat). Significance is a Wilcoxon signed-rank test
per cut, Holm-corrected over the cut-vs-baseline family of one (study, protocol, fraction).
"""
from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from functions.analysis import stats
from functions.analysis.findings_format import fraction_text
from functions.analysis.results import load_results, protocol_variant  # noqa: F401  (re-exported)
from functions.engine.protocols import PROTOCOL_VARIANTS, fair_variants

# Order, styles and fairness come from the engine's registry of protocol variants.
VARIANT_ORDER = tuple(PROTOCOL_VARIANTS)
VARIANT_STYLE = {label: (v.color, v.linestyle) for label, v in PROTOCOL_VARIANTS.items()}
GROUP = ("study", "protocol_variant", "fraction")
FAIR_VARIANTS = tuple(fair_variants())


def load_protocol_results(*paths: str) -> pd.DataFrame:
    """Rows of protocol-sensitivity stores with a ``protocol_variant`` column (and arm, from load_results)."""
    df = load_results(*paths)
    if df.empty:
        raise ValueError(f"no results rows under {list(paths)}: run the protocol-sensitivity notebook first")
    df["protocol_variant"] = protocol_variant(df)
    return df


def variants_present(df: pd.DataFrame) -> list[str]:
    """The protocol variants of ``df``'s rows, in the order of :data:`VARIANT_ORDER` (unknown ones last)."""
    present = set(df["protocol_variant"])
    return [v for v in VARIANT_ORDER if v in present] + sorted(present - set(VARIANT_ORDER))


def transfer_gains(df: pd.DataFrame, metric: str = "test_acc", n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> pd.DataFrame:
    """Paired gain of every cut over the baseline of the same protocol, per (study, protocol, fraction).

    Columns: study, protocol_variant, fraction, arm, n_pairs, median_diff (accuracy), low/high (bootstrap
    95 % CI of the median paired difference), p_holm (Holm over the cuts of the group), significant, and
    ``gain_points`` = 100 × median_diff.
    """
    gains = stats.effect_vs_baseline(df, metric=metric, by=list(GROUP), n_boot=n_boot, seed=seed, alpha=alpha)
    gains["gain_points"] = 100 * gains["median_diff"]
    return gains


def gain_shift(df: pd.DataFrame, reference: str = "original", other: str = "realistic",
               metric: str = "test_acc", n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """How much a cut's gain changes from the ``reference`` protocol to ``other``, paired by repeat.

    Per (study, fraction, arm) and repeat r: shift(r) = gain_other(r) − gain_reference(r), where
    gain(r) = accuracy(arm, r) − accuracy(baseline, r) under that protocol. Columns: n_pairs, n_effective
    (nonzero shifts), median_shift (accuracy), hl_estimate with low/high (its exact Wilcoxon-inverted
    interval; NaN and ``ci_note`` "n too small" below 6 pairs), ci_level, p (exact signed-rank test),
    p_holm (Holm over every (fraction, arm) of one study), significant. ``n_boot``/``seed`` are unused
    (kept for callers of the bootstrap version).
    """
    cols = ["study", "fraction", "arm", "repeat"]
    parts = {}
    for variant in (reference, other):
        rows = df[df["protocol_variant"] == variant]
        wide = rows.pivot_table(index=["study", "fraction", "repeat"], columns="arm", values=metric,
                                aggfunc="first")
        if "baseline" not in wide:
            raise ValueError(f"protocol {variant!r} has no baseline rows; variants: {variants_present(df)}")
        gain = wide.drop(columns="baseline").sub(wide["baseline"], axis=0)
        parts[variant] = gain.stack().rename(variant).reset_index().set_index(cols)
    paired = parts[reference].join(parts[other], how="inner").dropna()
    shift = (paired[other] - paired[reference]).rename("shift").reset_index()
    records = []
    for (study, fraction, arm), rows in shift.groupby(["study", "fraction", "arm"], sort=True):
        diffs = rows["shift"].to_numpy(float)
        test, hl = stats.signed_rank_test(diffs), stats.hodges_lehmann(diffs)
        records.append({"study": study, "fraction": fraction, "arm": arm, "n_pairs": diffs.size,
                        "n_effective": test["n_effective"], "median_shift": float(np.median(diffs)),
                        "hl_estimate": hl["estimate"], "low": hl["low"], "high": hl["high"],
                        "ci_level": hl["achieved"], "ci_note": hl["note"], "p": test["p"]})
    out = pd.DataFrame(records)
    if out.empty:
        return out
    out["p_holm"] = out.groupby("study")["p"].transform(lambda p: pd.Series(stats.holm(p), index=p.index))
    out["significant"] = out["p_holm"] < alpha
    out.insert(0, "comparison", f"{other} − {reference}")
    return out


def gain_shifts(df: pd.DataFrame, reference: str = "original", others: Iterable[str] | None = None,
                alpha: float = 0.05, **kwargs) -> pd.DataFrame:
    """:func:`gain_shift` from ``reference`` to each of ``others`` (default: the fair variants) that is
    present, one table (column ``comparison``). Holm runs jointly over every comparison, fraction and arm
    of one study: the verdict draws on all of them, so they are one family."""
    present = set(df["protocol_variant"])
    others = FAIR_VARIANTS if others is None else tuple(others)
    if reference not in present:
        return pd.DataFrame()
    return _joint_holm([gain_shift(df, reference, other, alpha=alpha, **kwargs)
                        for other in others if other in present], alpha)


# Steps between protocols that train on the same images (the budget and where validation comes from),
# then the one step that carves validation out of the labelled images (fewer training images).
SAME_IMAGES = (("original", "steps"), ("steps", "fixed budget"))
CARVING = (("fixed budget", "realistic"),)


def protocol_vs_data_shifts(df: pd.DataFrame, alpha: float = 0.05, **kwargs) -> pd.DataFrame:
    """``realistic`` − ``original`` split in two: shifts between protocols that train on the same images
    (:data:`SAME_IMAGES`) and the cost of carving validation from them (:data:`CARVING`); column ``kind``
    says which. Holm jointly over every step, fraction and arm of one study."""
    present = set(df["protocol_variant"])
    parts = [gain_shift(df, ref, other, alpha=alpha, **kwargs).assign(kind=kind)
             for kind, steps in (("same images", SAME_IMAGES), ("carved validation", CARVING))
             for ref, other in steps if {ref, other} <= present]
    return _joint_holm(parts, alpha)


def _joint_holm(parts: list[pd.DataFrame], alpha: float) -> pd.DataFrame:
    """Concatenated shift tables with Holm recomputed over all rows of one study."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    out["p_holm"] = out.groupby("study")["p"].transform(lambda p: pd.Series(stats.holm(p), index=p.index))
    out["significant"] = out["p_holm"] < alpha
    return out


def budget_table(df: pd.DataFrame) -> pd.DataFrame:
    """Training actually done, per (study, protocol, fraction, arm): medians of labelled images used for
    training and validation, optimizer steps, the step of the kept state, and epochs (passes begun)."""
    columns = {"n_train": "median", "n_val": "median", "steps": "median", "best_step": "median",
               "epochs": "median", "repeat": "count"}
    table = df.groupby(["study", "protocol_variant", "fraction", "arm"], sort=False).agg(columns)
    return table.rename(columns={"repeat": "runs"}).reset_index()


def budget_overview(df: pd.DataFrame, max_steps: int = 50) -> pd.DataFrame:
    """One row per (study, protocol, fraction): median labelled images for training and validation, the
    median optimizer steps of each arm (one column per arm) and how many runs took < ``max_steps`` steps."""
    keys = list(GROUP)
    images = df.groupby(keys, sort=False).agg(train_images=("n_train", "median"), val_images=("n_val", "median"),
                                              runs=("steps", "size"),
                                              **{f"< {max_steps} steps": ("steps", lambda s: int((s < max_steps).sum()))})
    steps = df.pivot_table(index=keys, columns="arm", values="steps", aggfunc="median")
    steps = steps[sorted(steps.columns, key=lambda a: -1 if a == "baseline" else int(a.split()[-1]))]
    steps.columns = [f"steps {arm}" for arm in steps.columns]
    table = images.join(steps).reset_index()
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return table.sort_values(["study", "fraction"], kind="stable").sort_values(
        ["study", "protocol_variant"], key=lambda c: c.map(order) if c.name == "protocol_variant" else c,
        kind="stable").reset_index(drop=True)


def chosen_learning_rates(df: pd.DataFrame) -> pd.DataFrame:
    """For runs that tuned their learning rate (``lr_grid``): how many repeats chose each rate, per (study,
    protocol, fraction, arm), one column per rate. Empty when no run tuned its rate."""
    tuned = df[df["protocol_variant"].map(lambda v: v in PROTOCOL_VARIANTS and PROTOCOL_VARIANTS[v].tuned)]
    if tuned.empty:
        return pd.DataFrame()
    table = pd.crosstab([tuned["study"], tuned["protocol_variant"], tuned["fraction"], tuned["arm"]],
                        tuned["lr"].map(lambda v: f"lr {v:g}"))
    order = sorted(table.index, key=lambda k: (k[0], k[1], k[2], -1 if k[3] == "baseline" else int(k[3].split()[-1])))
    table = table.loc[order]
    table.columns.name = "runs that chose"
    return table


def starved_runs(df: pd.DataFrame, max_steps: int = 50) -> pd.DataFrame:
    """Runs that took fewer than ``max_steps`` optimizer steps, per (study, protocol, fraction, arm):
    ``runs``, ``starved`` and the median test accuracy of each kind — the symptom of an epoch-counted
    protocol on a tiny subset (one step per epoch, so patience 5 stops after 5 steps)."""
    marked = df.assign(starved=df["steps"] < max_steps)
    table = (marked.groupby(["study", "protocol_variant", "fraction", "arm"], sort=False)
             .agg(runs=("starved", "size"), starved=("starved", "sum")).reset_index())
    accs = (marked.groupby(["study", "protocol_variant", "fraction", "arm", "starved"])["test_acc"].median()
            .unstack("starved").rename(columns={True: "median_acc_starved", False: "median_acc_other"}))
    return table.merge(accs.reset_index(), on=["study", "protocol_variant", "fraction", "arm"], how="left")


def wall_times(df: pd.DataFrame) -> pd.DataFrame:
    """Training seconds per (study, protocol): runs, total and median seconds per run (from the rows).

    These are the runs' own wall times on the machine that trained them (see the rows' ``device``);
    compare protocols within one table only.
    """
    table = (df.groupby(["study", "protocol_variant"], sort=False)["seconds"]
             .agg(runs="size", total_seconds="sum", median_seconds="median").reset_index())
    reference = table[table["protocol_variant"] == "original"].set_index("study")["total_seconds"]
    per_run_ref = table[table["protocol_variant"] == "original"].set_index("study")["runs"]
    ratio = []
    for row in table.itertuples():
        if row.study in reference.index and reference[row.study] > 0:
            # per-run ratio, so a variant with fewer runs stored so far is still compared fairly
            ratio.append((row.total_seconds / row.runs) / (reference[row.study] / per_run_ref[row.study]))
        else:
            ratio.append(np.nan)
    table["seconds_per_run_vs_original"] = ratio
    return table


def gain_figure(gains: pd.DataFrame, metric_label: str = "test accuracy"):
    """Paired gain over the baseline (points) by cut, one line per protocol, one panel per (study, fraction).

    Bars: bootstrap 95 % CI of the median paired difference. Filled markers: significant after Holm over
    the cuts of that protocol and fraction (the same test as :func:`transfer_gains`' table).
    """
    panels = list(gains.groupby(["study", "fraction"], sort=True).groups)
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.6 * n_cols, 3.6 * n_rows), squeeze=False,
                             sharey=False, constrained_layout=True)
    for ax, (study, fraction) in zip(axes.flat, panels):
        panel = gains[(gains["study"] == study) & (gains["fraction"] == fraction)]
        _draw_gain_panel(ax, panel)
        ax.set_title(f"{study}\n{fraction_text(fraction)} of the fine-tuning data", fontsize=9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, title="protocol (filled: Holm p < 0.05)", title_fontsize=7)
    fig.suptitle(f"Transfer gain over the baseline of the same protocol ({metric_label}, paired)", fontsize=10)
    return fig


def _draw_gain_panel(ax, panel: pd.DataFrame) -> None:
    arms = sorted(panel["arm"].unique(), key=lambda a: int(a.split()[-1]))
    x_of = {arm: i for i, arm in enumerate(arms)}
    variants = variants_present(panel)
    width = 0.12
    ax.axhline(0, color="0.3", linewidth=0.8)
    for i, variant in enumerate(variants):
        rows = panel[panel["protocol_variant"] == variant].set_index("arm").loc[[a for a in arms if a in
                                                                                 set(panel["arm"])]]
        rows = rows[rows.index.isin(panel.loc[panel["protocol_variant"] == variant, "arm"])]
        color, style = VARIANT_STYLE.get(variant, ("0.5", "-"))
        x = np.array([x_of[a] for a in rows.index]) + (i - (len(variants) - 1) / 2) * width
        y = 100 * rows["median_diff"].to_numpy(float)
        err = np.vstack([y - 100 * rows["low"].to_numpy(float), 100 * rows["high"].to_numpy(float) - y])
        ax.errorbar(x, y, yerr=err, color=color, linestyle=style, linewidth=1.4, capsize=2, label=variant)
        sig = rows["significant"].astype(bool).to_numpy()
        ax.scatter(x[sig], y[sig], color=color, zorder=3, s=22)
        ax.scatter(x[~sig], y[~sig], facecolor="white", edgecolor=color, zorder=3, s=22)
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel("gain over baseline (points)")
    ax.grid(axis="y", alpha=0.3)


def _p_text(p: float) -> str:
    return "p n/a" if not np.isfinite(p) else (f"Holm p = {p:.3f}" if p >= 0.001 else "Holm p < 0.001")


def _name(variant: str) -> str:
    """A protocol's label in code quotes: ``realistic, tuned lr`` holds a comma, so a list of bare labels
    could not be read."""
    return f"`{variant}`"


def _names(variants: Iterable[str]) -> str:
    return ", ".join(_name(v) for v in variants)


def verdict(gains: pd.DataFrame, shift: pd.DataFrame | None = None, arm: str | None = None,
            reference: str = "original", fair: str | Iterable[str] = FAIR_VARIANTS) -> str:
    """A short verdict computed from the tables, as Markdown: per study, the gain of ``arm`` (default: the
    deepest cut) at each fraction — one line saying under which protocols it is significant, then one line
    per protocol (gain in points, Holm p, pairs), then whether it survives each ``fair`` protocol and (from
    ``shift``, :func:`gain_shift`) how much it moved from the reference to that protocol, in points."""
    fair = (fair,) if isinstance(fair, str) else tuple(fair)
    lines = []
    for study, rows in gains.groupby("study", sort=True):
        chosen = arm or max(rows["arm"].unique(), key=lambda a: int(a.split()[-1]))
        if lines:
            lines.append("")  # a blank line ends the previous study's list in Markdown
        lines += [f"**{study}**, {chosen} vs the baseline of the same protocol (median paired gain in points; "
                  "Wilcoxon signed-rank, Holm over the cuts of each protocol and fraction):", ""]
        for fraction, at in rows[rows["arm"] == chosen].groupby("fraction", sort=True):
            by_variant = at.set_index("protocol_variant")
            lines.append(f"- **at {fraction_text(fraction)}**: {_significance_text(by_variant)}")
            for variant in variants_present(at):
                r = by_variant.loc[variant]
                mark = " ✓" if bool(r["significant"]) else ""
                lines.append(f"  - {_name(variant)}: {r['gain_points']:+.1f} points ({_p_text(r['p_holm'])}, "
                             f"n = {r['n_pairs']}){mark}")
            if reference in by_variant.index:
                for variant in (v for v in fair if v in by_variant.index):
                    lines.append("  - " + _survival_text(by_variant.loc[variant], variant, reference,
                                                         _shift_row(shift, study, fraction, chosen, variant,
                                                                    reference), by_variant.loc[reference]))
    return "\n".join(lines)


def _shift_row(shift: pd.DataFrame | None, study: str, fraction: float, arm: str, variant: str,
               reference: str) -> pd.Series | None:
    """The row of :func:`gain_shift`'s table for this gain and comparison, if there is one."""
    if shift is None or shift.empty:
        return None
    s = shift[(shift["study"] == study) & (shift["fraction"] == fraction) & (shift["arm"] == arm)
              & (shift["comparison"] == f"{variant} − {reference}")]
    return s.iloc[0] if len(s) else None


def _interval_text(row: pd.Series) -> str:
    """``95 % CI -7.3 to -2.8`` in points (the level the interval reaches, where the row says it), or why
    there is none (``n too small``)."""
    low, high = row.get("low", np.nan), row.get("high", np.nan)
    if not (pd.notna(low) and pd.notna(high)):
        note = row.get("ci_note")
        return note if isinstance(note, str) and note else "no interval"
    level = row.get("ci_level", 0.95)
    level = 95 if not pd.notna(level) else int(np.floor(100 * float(level)))
    return f"{level} % CI {100 * low:+.1f} to {100 * high:+.1f}"


def _survival_text(row: pd.Series, variant: str, reference: str, shift: pd.Series | None,
                   reference_row: pd.Series | None = None) -> str:
    """What ``variant`` does to the reference protocol's result, in words that follow the numbers: a
    significant gain under the reference "survives" (still a significant gain), "shrinks/grows and is no
    longer significant" (the same sign, not significant) or "reverses"; without a significant gain under the
    reference nothing can survive, so the sentence says what the variant finds instead."""
    def state(r):
        if r is None or not bool(r["significant"]):
            return "none"
        return "gain" if r["median_diff"] > 0 else "loss"

    before, after = state(reference_row), state(row)
    name = _name(variant)
    if before == "gain":
        if after == "gain":
            text = f"The significant gain under {_name(reference)} survives {name}"
        elif after == "loss":
            text = f"The significant gain under {_name(reference)} reverses into a significant loss under {name}"
        else:
            moved = "shrinks" if row["median_diff"] < reference_row["median_diff"] else "grows"
            text = f"The gain {moved} and is no longer significant under {name}"
    else:
        what = {"gain": "a significant gain", "loss": "a significant loss", "none": "no significant effect"}[after]
        first = {"loss": "a significant loss", "none": "no significant gain"}[before]
        text = f"With {first} under {_name(reference)} there is no gain to survive; {name} finds {what}"
    if shift is not None:
        text += (f": it moves by {100 * shift['median_shift']:+.1f} points from {_name(reference)} to "
                 f"{name} (paired by repeat, {_interval_text(shift)}, {_p_text(shift['p_holm'])})")
    return text + "."


def _significance_text(by_variant: pd.DataFrame) -> str:
    """Which protocols make the gain a significant gain and which a significant loss (sign of the median)."""
    significant = by_variant[by_variant["significant"].astype(bool)]
    present = variants_present(significant.reset_index())
    gains = [v for v in present if significant.loc[v, "median_diff"] > 0]
    losses = [v for v in present if significant.loc[v, "median_diff"] < 0]
    parts = ([f"significant gain under {_names(gains)}"] if gains else []) + \
            ([f"significant loss under {_names(losses)}"] if losses else [])
    return ("; ".join(parts) or "significant under no protocol") + "."


def shift_table(shift: pd.DataFrame) -> pd.DataFrame:
    """:func:`gain_shifts`' table for reading: one row per (comparison, study, fraction, cut), the shift and
    its 95 % CI in points (as the verdict writes them), the fraction in per cent, Holm p and ✓."""
    if shift is None or shift.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "comparison": shift["comparison"], "study": shift["study"],
        "fraction": shift["fraction"].map(fraction_text), "cut": shift["arm"],
        "pairs": shift["n_pairs"].astype(int),
        "shift (points)": (100 * shift["median_shift"]).round(1),
        "interval (points)": [_interval_text(row) for _, row in shift.iterrows()],
        "Holm p": shift["p_holm"].round(4), "✓": shift["significant"].map(lambda v: "✓" if v else ""),
    }).reset_index(drop=True)


def summary_frame(gains: pd.DataFrame, arms: Iterable[str] | None = None) -> pd.DataFrame:
    """Gains as a wide table: one row per (study, fraction, arm), one column per protocol, each cell
    ``+x.x ✓`` (✓: significant after Holm) — for notebooks and the findings document."""
    rows = gains if arms is None else gains[gains["arm"].isin(list(arms))]
    cell = rows.apply(lambda r: f"{r['gain_points']:+.1f}{' ✓' if r['significant'] else ''}", axis=1)
    wide = rows.assign(cell=cell).pivot_table(index=["study", "fraction", "arm"], columns="protocol_variant",
                                              values="cell", aggfunc="first")
    return wide[[v for v in VARIANT_ORDER if v in wide.columns]]


def budget_check(df: pd.DataFrame) -> pd.DataFrame:
    """Does the step budget suit every fraction? Per (study, protocol, fraction, arm) of step-protocol rows:
    runs, the largest allowed steps (``training.step_budget`` of each run's own training images), median
    steps taken, runs that ended at that cap, and of those the runs whose last evaluation was still their
    best (``best_step == steps``: stopped while improving). Empty when no row used a step protocol."""
    from functions.engine.training import step_budget

    need = {"steps", "best_step", "n_train", "max_steps", "eval_every", "batch_size"}
    if not need <= set(df):
        return pd.DataFrame()
    rows = df[df["protocol_variant"].isin([v for v in VARIANT_ORDER if v != "original"])]
    rows = rows.dropna(subset=list(need))
    if rows.empty:
        return pd.DataFrame()
    cap = [step_budget(int(n), int(b), int(m), int(e), _int_or_none(me), _int_or_none(ev))[0]
           for n, b, m, e, me, ev in zip(rows["n_train"], rows["batch_size"], rows["max_steps"], rows["eval_every"],
                                         rows.get("max_epochs", pd.Series(None, rows.index)),
                                         rows.get("evals_per_epoch", pd.Series(None, rows.index)))]
    rows = rows.assign(cap=cap, at_cap=lambda d: d["steps"] >= d["cap"],
                       improving=lambda d: (d["steps"] >= d["cap"]) & (d["best_step"] >= d["steps"]))
    keys = ["study", "protocol_variant", "fraction"] + (["condition"] if "condition" in rows else []) + ["arm"]
    table = rows.groupby(keys, sort=True).agg(
        runs=("steps", "size"), train_images=("n_train", "median"), step_cap=("cap", "median"),
        median_steps=("steps", "median"), max_steps_taken=("steps", "max"), ended_at_cap=("at_cap", "sum"),
        still_improving=("improving", "sum"))
    return table.reset_index()


def _int_or_none(value) -> int | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)
