"""Findings section: does the layer-wise pattern hold at the paper's network size?

The shipped answers come from the ``cpu`` profile's 4 × 16 network; the original study asked the question
of a 6 × 64 network (the ``paper`` profile). This section sets the cut-wise gains of FR over the baseline
of the two networks side by side, fraction by fraction, each tested within its own family (exact Wilcoxon
signed-rank on the paired repeats, Holm over the cut-vs-baseline comparisons of one network and fraction),
and checks the pattern the 4 × 16 network shows, stated as three conditions computed from the table:
cut 1 gives no significant gain, the largest gain sits at one of the two deepest cuts, and it is significant.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from functions.analysis import stats
from functions.analysis.findings_common import (ALPHA, FAMILY_VS_BASELINE, Section, _rel, completeness_line,
                                                 protocol_note)
from functions.analysis.findings_format import cut_number, delta_cells, fraction_text, points
from functions.analysis.results import load_results, transfer_study_rows

TITLE = "Does the pattern hold at the paper's network size?"


def network_label(df: pd.DataFrame) -> str:
    """``6 × 64`` from the rows' depth and width (every distinct pair, joined, if they mix)."""
    pairs = df[["depth", "num_channels"]].drop_duplicates().itertuples(index=False)
    return " / ".join(f"{int(d)} × {int(c)}" for d, c in pairs)


def cutwise_gains(df: pd.DataFrame, condition: str = "FR") -> pd.DataFrame:
    """Per (fraction, cut): the median paired gain of ``condition`` over the baseline, its pairs, Holm p and
    ✓ (family: the cuts of one fraction)."""
    rows = df[df["condition"].isin([condition, "baseline"])]
    effects = stats.effect_vs_baseline(rows, by=("fraction",), alpha=ALPHA)
    return effects.assign(cut=effects["arm"].map(cut_number))[
        ["fraction", "cut", "n_pairs", "median_diff", "low", "high", "p_holm", "significant"]]


def pattern(gains: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: cut 1's gain and ✓, the cut with the largest gain, and whether the pattern holds (cut 1
    no significant gain; the largest gain at one of the two deepest cuts, and significant)."""
    records = []
    for fraction, rows in gains.groupby("fraction", sort=True):
        rows = rows.sort_values("cut")
        first, best = rows.iloc[0], rows.loc[rows["median_diff"].idxmax()]
        deepest = set(rows["cut"].nlargest(2))
        cut1_flat = not (bool(first["significant"]) and first["median_diff"] > 0)
        records.append({"fraction": fraction, "cut1_gain": first["median_diff"],
                        "cut1_significant": bool(first["significant"]), "best_cut": int(best["cut"]),
                        "best_gain": best["median_diff"], "best_significant": bool(best["significant"]),
                        "holds": cut1_flat and int(best["cut"]) in deepest and bool(best["significant"])})
    return pd.DataFrame(records)


def side_by_side(gains: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The formatted cells: one row per (fraction, cut), per network its Δ with ✓ and its pairs."""
    tables = [g.assign(cell=delta_cells(g), pairs=g["n_pairs"].map(lambda n: str(int(n))))
              .set_index(["fraction", "cut"])[["cell", "pairs"]]
              .rename(columns={"cell": f"{name}: Δ (points)", "pairs": f"{name}: n pairs"})
              for name, g in gains.items()]
    wide = pd.concat(tables, axis=1).sort_index().fillna("–").reset_index()
    return wide.assign(fraction=wide["fraction"].map(fraction_text), cut=wide["cut"].astype(str))


def _verdict_line(name: str, row: pd.Series) -> str:
    holds = "holds" if row.holds else "does not hold"
    return (f"{name}: cut 1 {_gain(row.cut1_gain, row.cut1_significant)}; largest gain at cut {row.best_cut} "
            f"({_gain(row.best_gain, row.best_significant)}) — the pattern {holds}")


def _gain(value: float, significant: bool) -> str:
    return f"{points(value)} points" + (" ✓" if significant else " (not significant)")


def _wall_time(df: pd.DataFrame) -> str:
    hours = df["seconds"].sum() / 3600
    return f"{len(df)} runs, {hours:.1f} h of training on one core (sum of the runs' `seconds`)"


def network_size_section(paper_paths: Sequence[Path], cpu_paths: Sequence[Path], root: Path) -> Section:
    """The cut-wise gains of the paper-size grid next to the cpu network's, at the fractions both ran."""
    section = Section(TITLE)
    paper = load_results(*paper_paths)
    cpu = load_results(*cpu_paths) if cpu_paths else paper.iloc[0:0]
    ran = paper[paper["condition"].isin(["FR", "baseline"])]
    # fractions where only the baseline has run yet compare nothing (a grid still being computed)
    paper, cpu = transfer_study_rows(ran), transfer_study_rows(cpu[cpu["condition"].isin(["FR", "baseline"])])
    if paper.empty:
        section.add(f"Store: {_rel(paper_paths, root)} — "
                    f"{_wall_time(ran)}, no FR run yet (the grid is still being computed): nothing to compare.")
        return section
    cpu = cpu[cpu["fraction"].isin(paper["fraction"].unique()) & (cpu["study"].isin(paper["study"].unique()))]
    names = {"paper": network_label(paper), "cpu": network_label(cpu) if len(cpu) else "cpu network"}
    section.add(f"Stores: {_rel(paper_paths, root)} (the `paper` "
                f"network, {names['paper']}) beside the headline store (the `cpu` network, {names['cpu']}), at the "
                "fractions the paper-size grid ran.", "", protocol_note(paper), "", completeness_line(paper), "",
                f"Test: {FAMILY_VS_BASELINE}, within each network. Δ = FR cut k − from-scratch baseline.",
                "Pattern (computed): cut 1 gives no significant gain, the largest gain sits at one of the two "
                "deepest cuts, and it is significant.", "")
    gains = {names["cpu"]: cutwise_gains(cpu), names["paper"]: cutwise_gains(paper)} if len(cpu) else {
        names["paper"]: cutwise_gains(paper)}
    for name, table in gains.items():
        section.tables[f"gains {name}"] = table
    section.table("side by side", pd.concat(gains, names=["network"]).reset_index(level=0),
                  side_by_side(gains))
    patterns = {name: pattern(table).set_index("fraction") for name, table in gains.items()}
    for fraction in sorted(paper["fraction"].unique()):
        section.add(f"- **{fraction_text(fraction)}**:")
        section.add(*(f"  - {_verdict_line(name, found.loc[fraction])}." for name, found in patterns.items()
                      if fraction in found.index))
    section.add("", f"Wall time: {names['paper']}: {_wall_time(paper)}"
                + (f"; {names['cpu']} at the same fractions: {_wall_time(cpu)}." if len(cpu) else "."))
    return section
