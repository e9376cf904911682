"""What transfers: how much of a cut's gain over the baseline is reused features, how much weight scale.

Rows come from one study's store (baseline, FR and the controls ``stats_FR``, ``stats_UR``,
``shuffled_FR`` of ``functions.engine.conditions``) and, optionally, from the same study on block-shuffled
target images (``target_block_shuffle``). Every comparison is paired by repeat (same subset, same fresh
weights): the difference of two arms at the same cut, or of an arm and the baseline. The decomposition

    total gain (FR − baseline) = statistics part (stats_FR − baseline) + feature part (FR − stats_FR)

is exact repeat by repeat; its medians need not add up exactly. Significance: the exact Wilcoxon
signed-rank test (``signed_rank``), Holm over every comparison of one (study, fraction) — all components
at all cuts — so a verdict never draws on a test outside its family.
"""
from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
import numpy as np
import pandas as pd

from functions.analysis import stats
from functions.analysis.findings_format import fraction_text
from functions.analysis.signed_rank import hodges_lehmann, signed_rank_test
from functions.engine.conditions import WHAT_TRANSFERS

STATS_FINE_TUNED = "statistics, fine-tuned"
# (component, arm, reference): the paired differences the decomposition tests, in display order.
COMPONENTS = (
    ("total gain", "FR", "baseline"),
    ("statistics part", "stats_FR", "baseline"),
    ("feature part", "FR", "stats_FR"),
    ("shuffled weights", "shuffled_FR", "baseline"),
    (STATS_FINE_TUNED, "stats_UR", "baseline"),
)
SHUFFLED_IMAGES = "total gain, block-shuffled images"
CONTROLS = WHAT_TRANSFERS  # the weight controls a study's own store holds
# how StudyConfig.study_name marks a study on block-shuffled target images: "<plain name> (blocks shuffled 4x4)"
BLOCK_SHUFFLED = " (blocks shuffled "
COLUMNS = ["study", "fraction", "cut", "component", "arm", "reference", "n_pairs", "median_diff", "hl_estimate",
           "low", "high", "p", "p_holm", "significant"]


def paired_differences(df: pd.DataFrame, arm: str, reference: str, metric: str = "test_acc") -> pd.DataFrame:
    """``arm`` − ``reference`` per (study, fraction, cut, repeat); the baseline is matched at every cut."""
    a = df[df["condition"] == arm][["study", "fraction", "cut", "repeat", metric]]
    b = df[df["condition"] == reference][["study", "fraction", "cut", "repeat", metric]]
    on = ["study", "fraction", "repeat"] + ([] if reference == "baseline" else ["cut"])
    if reference == "baseline":
        b = b.drop(columns="cut")
    both = a.merge(b, on=on, suffixes=("", "_ref"))
    return both.assign(diff=both[metric] - both[f"{metric}_ref"])[["study", "fraction", "cut", "repeat", "diff"]]


def split_block_shuffled(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the plain studies, rows of studies on block-shuffled target images)."""
    shuffled = df["study"].str.contains(BLOCK_SHUFFLED, regex=False)
    return df[~shuffled], df[shuffled]


def plain_study(study: str) -> str:
    """The study a block-shuffled study shuffles the images of (itself when it is plain)."""
    return study.split(BLOCK_SHUFFLED)[0]


def _test(diffs: np.ndarray) -> dict:
    """Median, Hodges–Lehmann estimate with its exact interval, and the exact two-sided p of ``diffs``."""
    hl = hodges_lehmann(diffs)
    return {"n_pairs": len(diffs), "median_diff": float(np.median(diffs)), "hl_estimate": hl["estimate"],
            "low": hl["low"], "high": hl["high"], "p": signed_rank_test(diffs)["p"]}


def decomposition(df: pd.DataFrame, shuffled_images: pd.DataFrame | None = None, alpha: float = 0.05,
                  components: Iterable[tuple[str, str, str]] = COMPONENTS) -> pd.DataFrame:
    """One row per (study, fraction, cut, component) present in the rows; Holm over each (study, fraction).

    ``shuffled_images`` (rows of the same study on block-shuffled target images) adds the component
    :data:`SHUFFLED_IMAGES` (FR − baseline there), matched to the plain study by (fraction, cut).
    """
    records = []
    sources = [(df, list(components), None)]
    if shuffled_images is not None and len(shuffled_images):
        plain_study = df["study"].iloc[0] if len(df) else None
        sources.append((shuffled_images, [(SHUFFLED_IMAGES, "FR", "baseline")], plain_study))
    for rows, comps, study_name in sources:
        for component, arm, reference in comps:
            diffs = paired_differences(rows, arm, reference)
            for (study, fraction, cut), group in diffs.groupby(["study", "fraction", "cut"], sort=True):
                records.append({"study": study_name or study, "fraction": fraction, "cut": int(cut),
                                "component": component, "arm": arm, "reference": reference,
                                **_test(group["diff"].to_numpy(float))})
    table = pd.DataFrame(records, columns=COLUMNS[:-2])
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    table["p_holm"] = table.groupby(["study", "fraction"])["p"].transform(stats.holm)
    table["significant"] = table["p_holm"] < alpha
    order = {c: i for i, c in enumerate([c[0] for c in COMPONENTS] + [SHUFFLED_IMAGES])}
    return table.sort_values(["study", "fraction", "cut"], kind="stable").sort_values(
        ["study", "fraction", "cut", "component"], key=lambda c: c.map(order) if c.name == "component" else c,
        kind="stable").reset_index(drop=True)[COLUMNS]


def shares(table: pd.DataFrame) -> pd.DataFrame:
    """Per (study, fraction, cut): the total gain and the share of it that statistics-matched blocks reach
    (statistics part / total, from medians of paired differences; NaN where the total is not positive)."""
    wide = table.pivot_table(index=["study", "fraction", "cut"], columns="component", values="median_diff")
    need = {"total gain", "statistics part", "feature part"}
    if not need <= set(wide.columns):
        return pd.DataFrame()
    total = wide["total gain"]
    share = (wide["statistics part"] / total).where(total > 0)
    return pd.DataFrame({"total_gain": total, "statistics_part": wide["statistics part"],
                         "feature_part": wide["feature part"], "statistics_share": share}).reset_index()


def _mark(row) -> str:
    return " ✓" if bool(row["significant"]) else ""


def verdict(table: pd.DataFrame, cut: int | None = None) -> str:
    """One line per (study, fraction) at ``cut`` (default: the deepest), in points, from the table."""
    lines = []
    for (study, fraction), rows in table.groupby(["study", "fraction"], sort=True):
        k = cut if cut is not None else int(rows["cut"].max())
        at = rows[rows["cut"] == k].set_index("component")
        if "total gain" not in at.index:
            continue

        def part(name: str) -> str:
            if name not in at.index:
                return "not run"
            r = at.loc[name]
            return f"{100 * r['median_diff']:+.1f} points{_mark(r)} (Holm p {_p(r['p_holm'])}, n = {int(r['n_pairs'])})"

        text = (f"- **{study}, {fraction_text(fraction)}, cut {k}**: total gain {part('total gain')}; "
                f"statistics-matched frozen blocks reach {part('statistics part')}; the real features add "
                f"{part('feature part')}")
        if "shuffled weights" in at.index:
            text += f"; shuffled weights reach {part('shuffled weights')}"
        if STATS_FINE_TUNED in at.index:
            text += f"; statistics-matched blocks fine-tuned reach {part(STATS_FINE_TUNED)}"
        if SHUFFLED_IMAGES in at.index:
            text += f"; on block-shuffled images the gain is {part(SHUFFLED_IMAGES)}"
        lines.append(f"{text}. Reading: {gain_source(at)}.")
    return "\n".join(lines) if lines else "No (study, fraction) has both FR and baseline rows yet."


def gain_source(at: pd.DataFrame) -> str:
    """What one cut's components say, from their Holm ✓ marks and signs (``at``: the table's rows of one
    (study, fraction, cut), indexed by component)."""
    def positive(name: str) -> bool | None:  # None: the control was not run
        if name not in at.index:
            return None
        return bool(at.loc[name, "significant"]) and at.loc[name, "median_diff"] > 0

    if not positive("total gain"):
        alone = [how for name, how in (("statistics part", "frozen"), (STATS_FINE_TUNED, "fine-tuned"))
                 if positive(name)]
        if not alone:
            return "no significant gain to split"
        text = ("weight statistics: the pretrained blocks' gain is not significant, yet statistics-matched random "
                f"blocks beat the baseline ({' and '.join(alone)})")
        if positive(SHUFFLED_IMAGES):
            text += "; on block-shuffled images the pretrained blocks do beat it"
        return text
    statistics, features = positive("statistics part"), positive("feature part")
    if statistics is None or features is None:
        split = "the statistics-matched control has not run: the gain cannot be split yet"
    else:
        split = {(False, True): "feature reuse (only the real features carry the gain)",
                 (True, False): "weight statistics (statistics-matched random blocks reach the gain; the real "
                                "features add nothing significant)",
                 (True, True): "both weight statistics and feature reuse (each part significant)",
                 (False, False): "neither part is significant alone: the split is unresolved at these repeats",
                 }[(statistics, features)]
    images = positive(SHUFFLED_IMAGES)
    if images is None:
        return split
    return split + ("; it survives block-shuffled images, so it does not rest on the layout across blocks"
                    if images else "; it does not survive block-shuffled images (no significant gain there)")


def _p(p: float) -> str:
    return "–" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.3f}")


def decomposition_figure(table: pd.DataFrame):
    """Per study and fraction, bars per cut: the statistics part and the feature part side by side with the
    total gain, in points; a filled bar is Holm-significant, an open one is not. Returns the figure."""
    shown = ["total gain", "statistics part", "feature part"]
    extra = [c for c in ("shuffled weights", SHUFFLED_IMAGES) if c in set(table["component"])]
    comps = shown + extra
    colours = dict(zip(comps, ["#444444", "#E69F00", "#0072B2", "#CC79A7", "#009E73"]))
    panels = list(table.groupby(["study", "fraction"], sort=True))
    if not panels:
        raise ValueError("decomposition_figure: the table has no rows")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True, squeeze=False)
    width = 0.8 / len(comps)
    for ax, ((study, fraction), rows) in zip(axes[0], panels):
        cuts = sorted(rows["cut"].unique())
        for i, comp in enumerate(comps):
            r = rows[rows["component"] == comp].set_index("cut").reindex(cuts)
            x = np.arange(len(cuts)) + (i - (len(comps) - 1) / 2) * width
            for xi, (_, v) in zip(x, r.iterrows()):
                if pd.isna(v["median_diff"]):
                    continue
                sig = bool(v["significant"])
                ax.bar(xi, 100 * v["median_diff"], width, color=colours[comp] if sig else "white",
                       edgecolor=colours[comp], linewidth=1.2)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_xticks(range(len(cuts)), [f"cut {c}" for c in cuts])
        ax.set_title(f"{study}\n{fraction_text(fraction)} of the fine-tuning data", fontsize=9)
    axes[0][0].set_ylabel("median paired difference (points)")
    # legend keys drawn filled whatever the first panel shows (an open key would read as "not significant")
    keys = [Patch(facecolor=colours[c], edgecolor=colours[c], label=c) for c in comps]
    fig.legend(handles=keys, loc="lower center", ncol=len(comps), frameon=False, fontsize=8)
    fig.suptitle("What transfers: filled = Holm-significant (exact Wilcoxon), open = not", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig
