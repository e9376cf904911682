"""Findings sections about protocols: protocol sensitivity (gains, verdict, shifts, budget, chosen rates,
wall time) and what changed from the original protocol to the default."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from functions.analysis import protocols, stats
from functions.analysis.findings_common import (ALPHA, FAMILY_VS_BASELINE, Section, _by_variant, _completeness,
                                                _rel, init_note, power_lines, store_line)
from functions.analysis.findings_format import cut_number, effect_cells, fraction_text, number, points
from functions.analysis.results import arm_sort_key, load_results
from functions.engine.protocols import DEFAULT_VARIANT


def protocol_section(paths: Sequence[Path], root: Path, n_boot: int, seed: int) -> Section:
    """Protocol sensitivity: readings, verdict, gain and shift tables, budget, chosen rates, wall time."""
    section = Section("Protocol sensitivity: does the small-data gain survive a fair protocol?")
    df = protocols.load_protocol_results(*paths)
    section.add(store_line(paths, root, df), "", init_note(df), "")
    gains = protocols.transfer_gains(df, n_boot=n_boot, seed=seed, alpha=ALPHA)
    variants = protocols.variants_present(df)
    try:
        shift = protocols.gain_shifts(df, n_boot=n_boot, seed=seed, alpha=ALPHA)
    except ValueError as err:  # a protocol without baseline rows (yet)
        shift = pd.DataFrame()
        section.missing.append(f"protocol gain shift: {err}")
    section.tables["gains"], section.tables["shift"] = gains, shift
    section.add(f"Test: {FAMILY_VS_BASELINE}, computed separately for each protocol (the baseline is the "
                "from-scratch run of the same protocol). Gain shift: Wilcoxon signed-rank on the per-repeat "
                "change of a cut's paired gain between two protocols, Holm over every comparison, fraction "
                "and cut of one study (the verdict draws on all of them).", "")
    _protocol_readings(section, gains, variants)
    section.add("### Verdict", "", protocols.verdict(gains, shift if not shift.empty else None), "")
    complete = _completeness(df, ["study", "protocol_variant", "fraction"])
    section.tables["completeness"] = complete
    _protocol_gain_tables(section, gains, shift, variants)
    _protocol_vs_data(section, df)
    _protocol_budget(section, df, complete, variants)
    _chosen_rates(section, df)
    _wall_times(section, df, variants)
    return section


def _protocol_readings(section: Section, gains: pd.DataFrame, variants: list[str]) -> None:
    """One sentence per study: the deepest cut's gain at the smallest fraction under every protocol."""
    for study, rows in gains.groupby("study", sort=True):
        deepest = max(rows["arm"], key=cut_number)
        smallest = rows["fraction"].min()
        at = rows[(rows["arm"] == deepest) & (rows["fraction"] == smallest)].set_index("protocol_variant")
        n_sig = int(at["significant"].sum())
        parts = [f"{points(at.loc[v, 'median_diff'])} ({v}, n = {int(at.loc[v, 'n_pairs'])})"
                 for v in variants if v in at.index]
        section.add(f"**Reading ({study}).** At {fraction_text(smallest)}, the paired gain of {deepest} over the "
                    f"baseline of the same protocol is {'; '.join(parts)} points; significant under {n_sig} of "
                    f"{len(at)} protocols.", "")


def _protocol_gain_tables(section: Section, gains: pd.DataFrame, shift: pd.DataFrame, variants: list[str]) -> None:
    """Per study: the wide summary, the long gain table and the shift tables."""
    for study, rows in gains.groupby("study", sort=True):
        section.add(f"### {study}: paired gain over the baseline (points)", "")
        wide = protocols.summary_frame(rows).reset_index()
        wide.insert(1, "fraction", wide.pop("fraction").map(fraction_text))
        section.table(f"summary {study}", protocols.summary_frame(rows),
                      wide.drop(columns="study").rename(columns={"arm": "cut"}).fillna("–"))
        long = _by_variant(rows.assign(_c=rows["arm"].map(cut_number)), variants, ["fraction", "_c"])
        shown = pd.DataFrame({
            "protocol": long["protocol_variant"], "fraction": long["fraction"].map(fraction_text),
            "cut": long["arm"], "n pairs": long["n_pairs"].astype(str),
            **effect_cells(long)})
        section.table(f"gains {study}", long, shown)
        section.add(*power_lines(long, ["protocol_variant", "fraction"]))
        for comparison, s in (shift[shift["study"] == study] if len(shift) else shift).groupby("comparison", sort=False):
            s = s.assign(_c=s["arm"].map(cut_number)).sort_values(["fraction", "_c"])
            section.add(f"Gain shift {comparison} (paired by repeat):")
            section.table(f"shift {study} {comparison}", s, pd.DataFrame({
                "fraction": s["fraction"].map(fraction_text), "cut": s["arm"], "n pairs": s["n_pairs"].astype(str),
                **effect_cells(s, diff="median_shift", label="shift (points)")}))


def _protocol_vs_data(section: Section, df: pd.DataFrame) -> None:
    """The realistic − original shift split into same-image steps and the cost of carving validation."""
    split = protocols.protocol_vs_data_shifts(df, alpha=ALPHA)
    section.tables["protocol vs data"] = split
    if split.empty:
        return
    section.add("### Protocol or fewer training images?", "",
                "`realistic` trains on 80 % of the labelled subset, so its shift from `original` mixes a "
                "fairer budget with fewer training images. The steps below separate them: protocols that "
                "train on the same images (original → steps → fixed budget) and the cost of carving "
                "validation out of them (fixed budget → realistic). Paired by repeat; exact signed-rank "
                "test, Holm over every step, fraction and cut of one study.", "")
    for study, s in split.groupby("study", sort=True):
        s = s.assign(_c=s["arm"].map(cut_number)).sort_values(["fraction", "_c"], kind="stable")
        section.add(f"**{study}**")
        section.table(f"protocol vs data {study}", s, pd.DataFrame({
            "step": s["kind"] + ": " + s["comparison"], "fraction": s["fraction"].map(fraction_text),
            "cut": s["arm"], "n pairs": s["n_pairs"].astype(str),
            **effect_cells(s, diff="median_shift", label="shift (points)")}))


def _protocol_budget(section: Section, df: pd.DataFrame, complete: pd.DataFrame, variants: list[str]) -> None:
    """Steps, images and starved runs per (study, protocol, fraction)."""
    section.add("### Training budget actually used", "",
                "Medians over runs; steps are optimizer steps, best step the step of the kept state; "
                "`runs` counts every arm; `complete repeats` are those holding every arm (the pairs the tests "
                "can use); `< 50 steps` counts runs that took fewer than 50 optimizer steps.", "")
    budget = protocols.budget_table(df)
    starved = protocols.starved_runs(df)
    section.tables["budget"], section.tables["starved"] = budget, starved
    records, complete = [], complete.set_index(list(protocols.GROUP))
    starved = starved.groupby(list(protocols.GROUP))["starved"].sum()
    for (study, variant, fraction), rows in _by_variant(budget, variants, ["fraction"]).groupby(
            list(protocols.GROUP), sort=False):
        rows = rows.assign(_o=rows["arm"].map(arm_sort_key)).sort_values("_o")
        records.append({"study": study, "protocol": variant, "fraction": fraction_text(fraction),
                        "runs": str(int(rows["runs"].sum())),
                        "complete repeats": str(int(complete.loc[(study, variant, fraction), "complete"])),
                        "train images": "/".join(sorted({f"{v:g}" for v in rows["n_train"]})),
                        "validation images": "/".join(sorted({f"{v:g}" for v in rows["n_val"]})),
                        "steps (" + " / ".join(rows["arm"]) + ")": " / ".join(f"{v:g}" for v in rows["steps"]),
                        "< 50 steps": str(int(starved[(study, variant, fraction)]))})
    shown = pd.DataFrame(records)
    for study, rows in shown.groupby("study", sort=True):
        section.add(f"**{study}**")
        section.table(f"budget {study}", budget[budget["study"] == study],
                      rows.drop(columns="study").dropna(axis=1, how="all").fillna("–"))


def _chosen_rates(section: Section, df: pd.DataFrame) -> None:
    """How many repeats of each tuned arm chose each learning rate."""
    chosen = protocols.chosen_learning_rates(df)
    if chosen.empty:
        return
    section.tables["chosen lr"] = chosen
    section.add("### Learning rates the tuned runs chose", "", "Runs per rate (each arm picks on its own "
                "carved validation split; ties go to the lower validation loss).", "")
    shown = chosen.reset_index().drop(columns="protocol_variant").astype(str)
    section.table("chosen lr", chosen, shown.assign(fraction=chosen.reset_index()["fraction"].map(fraction_text)))


def _wall_times(section: Section, df: pd.DataFrame, variants: list[str]) -> None:
    """Training seconds per protocol, relative to the original protocol."""
    walls = _by_variant(protocols.wall_times(df), variants)
    devices = df.groupby(["study", "protocol_variant"])["device"].agg(
        lambda d: ", ".join(sorted({str(x) for x in d.dropna()})) or "–")
    section.add("### Wall time per protocol", "", "Training seconds recorded by the runs themselves "
                "(machine in `device`); the ratio is seconds per run relative to the original protocol.", "")
    section.table("wall", walls, pd.DataFrame({
        "study": walls["study"], "protocol": walls["protocol_variant"], "runs": walls["runs"].astype(str),
        "total s": walls["total_seconds"].map(lambda v: f"{v:.0f}"),
        "median s per run": walls["median_seconds"].map(lambda v: f"{v:.2f}"),
        "per run vs original": walls["seconds_per_run_vs_original"].map(lambda v: number(v, 2)),
        "device": [devices.get((s, v), "–") for s, v in zip(walls["study"], walls["protocol_variant"])]}))


# ----------------------------------------------------------------------------- original vs default
def _conclusions(df: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Per (study, fraction) of FR rows: repeats, cuts with a significant gain / loss and the largest Δ."""
    rows = df[df["condition"].isin(["FR", "baseline"])]
    table = stats.summarize(rows, by=("study", "fraction"), n_boot=n_boot, seed=seed, alpha=ALPHA)
    arms = table[table["arm"] != "baseline"].dropna(subset=["diff_vs_baseline"])
    records = []
    for (study, fraction), at in arms.groupby(["study", "fraction"], sort=True):
        sig = at[at["significant_vs_baseline"].astype(bool)]
        best = at.loc[at["diff_vs_baseline"].idxmax()]
        records.append({"study": study, "fraction": fraction, "n_pairs": int(at["n_pairs"].max()),
                        "cuts": tuple(sorted(cut_number(a) for a in at["arm"])),
                        "gains": tuple(cut_number(a) for a in sig.loc[sig["diff_vs_baseline"] > 0, "arm"]),
                        "losses": tuple(cut_number(a) for a in sig.loc[sig["diff_vs_baseline"] < 0, "arm"]),
                        "best_arm": best["arm"], "best_diff": best["diff_vs_baseline"]})
    return pd.DataFrame(records)


def _cuts_text(gains: tuple, losses: tuple) -> str:
    parts = []
    if gains:
        parts.append(f"gain at cut {', '.join(map(str, gains))}")
    if losses:
        parts.append(f"loss at cut {', '.join(map(str, losses))}")
    return "; ".join(parts) if parts else "no ✓"


def change_text(original: pd.Series, default: pd.Series, cuts: Iterable[int] | None = None) -> str:
    """What the default protocol changes in one conclusion: ✓ cuts won or lost among ``cuts`` (the cuts
    both protocols ran; default: every cut), in words."""
    changes = []
    keep = (lambda ks: set(ks)) if cuts is None else (lambda ks: set(ks) & set(cuts))
    for kind in ("gains", "losses"):
        lost = sorted(keep(original[kind]) - keep(default[kind]))
        won = sorted(keep(default[kind]) - keep(original[kind]))
        word = "gain" if kind == "gains" else "loss"
        if lost:
            changes.append(f"significant {word} no longer significant at cut {', '.join(map(str, lost))}")
        if won:
            changes.append(f"significant {word} newly at cut {', '.join(map(str, won))}")
    return "; ".join(changes) if changes else "same ✓ cuts"


def original_vs_default_table(original: pd.DataFrame, default: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Side by side per (study, fraction): the FR conclusion under ``original`` rows and under ``default`` rows."""
    a, b = _conclusions(original, n_boot, seed), _conclusions(default, n_boot, seed)
    if a.empty or b.empty:
        return pd.DataFrame()
    both = a.merge(b, on=["study", "fraction"], suffixes=("_original", "_default"))
    # only cuts the default grid has already run are compared (a grid still running has fewer)
    both["compared_cuts"] = [tuple(sorted(set(x) & set(y))) for x, y in zip(both["cuts_original"], both["cuts_default"])]
    both["change"] = [change_text(pd.Series({"gains": r.gains_original, "losses": r.losses_original}),
                                  pd.Series({"gains": r.gains_default, "losses": r.losses_default}), r.compared_cuts)
                      for r in both.itertuples()]
    return both


def original_vs_default_section(original_paths: Sequence[Path], protocol_paths: Sequence[Path],
                                default_paths: Sequence[Path], root: Path, n_boot: int, seed: int) -> Section:
    section = Section("What changed from the original protocol")
    frames = [load_results(p) for p in default_paths]
    default = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    default = default[protocols.protocol_variant(default) == DEFAULT_VARIANT] if len(default) else default
    crn = load_results(*protocol_paths) if protocol_paths else pd.DataFrame(columns=["study"])
    crn = crn[protocols.protocol_variant(crn) == "original"] if len(crn) else crn
    independent = load_results(*original_paths) if original_paths else pd.DataFrame(columns=["study"])
    # a setting's original-protocol rows with common random numbers (the protocol grid) when it has them,
    # else the older stores without them
    original = pd.concat([crn, independent[~independent["study"].isin(set(crn["study"]))]], ignore_index=True)
    section.add(f"Per setting and fraction, frozen transfer (FR) vs from scratch under the original protocol "
                f"and under the default (**{DEFAULT_VARIANT}**): the cuts whose paired gain is significant "
                f"({FAMILY_VS_BASELINE}) and the largest Δ. Original-protocol rows: "
                f"{_rel(protocol_paths, root) or '–'} (common random numbers) where a setting has them, else "
                f"{_rel(original_paths, root) or '–'} (independent initial weights per arm). Only fractions "
                "present under both protocols are compared.", "")
    table = original_vs_default_table(original, default, n_boot, seed) if len(original) and len(default) else pd.DataFrame()
    if table.empty:
        section.missing.append("original vs default: no setting has FR rows under both protocols yet")
        section.add("No setting has FR rows under both protocols yet.")
        return section
    init = dict(zip(original["study"], np.where(original["study"].isin(set(crn["study"])), "CRN", "independent")))
    section.table("original vs default", table, pd.DataFrame({
        "study": table["study"], "fraction": table["fraction"].map(fraction_text),
        "original: init": table["study"].map(init), "original: n": table["n_pairs_original"].astype(str),
        "original: ✓": [_cuts_text(g, l) for g, l in zip(table["gains_original"], table["losses_original"])],
        "original: largest Δ": [f"{a} {points(d)}" for a, d in zip(table["best_arm_original"], table["best_diff_original"])],
        "default: n": table["n_pairs_default"].astype(str),
        "default: ✓": [_cuts_text(g, l) for g, l in zip(table["gains_default"], table["losses_default"])],
        "default: largest Δ": [f"{a} {points(d)}" for a, d in zip(table["best_arm_default"], table["best_diff_default"])],
        "cuts compared": [", ".join(map(str, c)) for c in table["compared_cuts"]],
        "what changed": table["change"]}))
    changed = table[table["change"] != "same ✓ cuts"]
    section.add(f"**Reading.** {len(changed)} of {len(table)} (setting, fraction) conclusions change their ✓ cuts "
                "under the default protocol" + (": " + "; ".join(
                    f"{r.study} at {fraction_text(r.fraction)} ({r.change})" for r in changed.itertuples())
                    if len(changed) else "") + ".", "")
    return section
