"""Findings sections about the studies: FR vs from scratch, FT vs FR, what transfers, transfer conditions,
clustering."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from functions.analysis import clustering as _clustering
from functions.analysis import protocols, stats, transfer_conditions, what_transfers
from functions.analysis.findings_common import (ALPHA, FAMILY_VS_BASELINE, Section, _rel, completeness_line,
                                                init_note, power_lines, protocol_note, reading, store_line,
                                                summary_shown)
from functions.analysis.findings_format import (delta_cells, effect_cells, fraction_text, number, p_text, percent,
                                               points)
from functions.analysis.results import load_clustering, load_results, transfer_study_rows
from functions.engine.conditions import STRATEGIES, SURGICAL, YOSINSKI, arm_signature

MIN_PER_CLASS = _clustering.MIN_PER_CLASS  # subsets with fewer images per class are not clustered


# ----------------------------------------------------------------------------- transfer studies
def transfer_section(title: str, paths: Sequence[Path], root: Path, condition: str, n_boot: int,
                     seed: int) -> Section:
    section = Section(title)
    # studies on block-shuffled images are a control of the what-transfers section, not another setting
    df, _ = what_transfers.split_block_shuffled(load_results(*paths))
    section.add(store_line(paths, root, df), "", protocol_note(df), "", init_note(df), "",
                f"Test: {FAMILY_VS_BASELINE}. Δ = {condition} cut k − from-scratch baseline.", "")
    arms = df[df["condition"].isin([condition, "baseline"])]
    section.add(completeness_line(arms), "")
    # a fraction (or a whole study) where only the baseline has run yet compares nothing: said, not tabled
    own = transfer_study_rows(arms)
    for (study, fraction), rows in arms.drop(own.index).groupby(["study", "fraction"], sort=True):
        runs = f"{len(rows)} baseline run" + ("s" if len(rows) != 1 else "")
        section.add(f"- {study} at {fraction_text(fraction)}: {runs} so far, no {condition} run yet (grid still "
                    "being computed): not compared.")
    section.add("")
    # stats.summarize per (study, fraction): medians, CIs, paired Δ, Holm over the cut-vs-baseline family
    table = stats.summarize(own, by=("study", "fraction"), n_boot=n_boot, seed=seed, alpha=ALPHA)
    for study in sorted(table["study"].unique()):
        rows = table[table["study"] == study]
        section.add(reading(table, study), "")
        section.table(f"{condition} {study}", rows, summary_shown(rows))
        section.add(*power_lines(rows, ["fraction"]))
    budget_lines(section, df[df["condition"].isin([condition, "baseline"])])
    return section


def what_transfers_section(paths: Sequence[Path], root: Path) -> Section:
    """Per study holding the weight controls: the paired decomposition of each cut's gain into the part
    statistics-matched random blocks reach and the part only the real features reach
    (:func:`what_transfers.decomposition`), its verdict at the deepest cut, and what is still missing."""
    section = Section("What transfers: reused features or weight statistics?")
    section.add("Δ = median paired difference in points. **total gain** = FR − baseline; **statistics part** = "
                "stats_FR − baseline (blocks [0, k) re-drawn with each pretrained layer's weight mean and standard "
                "deviation, frozen); **feature part** = FR − stats_FR (what only the real features add; total = "
                "statistics + feature repeat by repeat, medians need not add up); **shuffled weights** = "
                "shuffled_FR − baseline (the pretrained values permuted, frozen); **statistics, fine-tuned** = "
                "stats_UR − baseline; **block-shuffled images** = FR − baseline of the same study on images cut "
                "into a 4 × 4 grid of blocks and permuted (the layout across blocks is gone, what lies inside one "
                "block is kept: a gain that survives rests on local features or statistics, not on global shape). "
                "Exact Wilcoxon signed-rank on repeats paired by `repeat`; Holm over every comparison of one "
                "(study, fraction); ✓ = Holm p < 0.05.", "")
    found = False
    for path in paths:
        plain, shuffled = what_transfers.split_block_shuffled(load_results(path))
        for study in sorted(plain.loc[plain["condition"].isin(what_transfers.CONTROLS), "study"].unique()):
            found = True
            _what_transfers_study(section, path, root, plain[plain["study"] == study],
                                  shuffled[shuffled["study"].map(what_transfers.plain_study) == study])
    if not found:
        section.missing.append("no store holds the what-transfers controls (stats_FR, stats_UR, shuffled_FR)")
    return section


def _what_transfers_study(section: Section, path: Path, root: Path, plain: pd.DataFrame,
                          images: pd.DataFrame) -> None:
    """The decomposition table and verdict of one study, at the fractions its controls were run at."""
    study = plain["study"].iloc[0]
    controls = plain[plain["condition"].isin(what_transfers.CONTROLS)]
    rows = plain[plain["condition"].isin(("baseline", "FR", *what_transfers.CONTROLS))
                 & plain["fraction"].isin(controls["fraction"].unique())]
    table = what_transfers.decomposition(rows, shuffled_images=images)
    section.add(f"### {study}", "", store_line([path], root, rows) + (
                f" Block-shuffled images: {len(images)} runs." if len(images) else
                " Block-shuffled images: not run yet."), "", protocol_note(rows), "", completeness_line(rows), "")
    section.table(f"what transfers {study}", table, _decomposition_shown(table))
    section.add("Verdict at the deepest cut (from the table):", "", what_transfers.verdict(table), "")


def _decomposition_shown(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (fraction, cut), one column per component: Δ in points with ✓ and the pairs tested."""
    cells = table.assign(cell=delta_cells(table))
    wide = cells.pivot_table(index=["fraction", "cut"], columns="component", values="cell", aggfunc="first",
                             sort=False)
    pairs = table.groupby(["fraction", "cut"])["n_pairs"].max()
    order = [c for c in [c[0] for c in what_transfers.COMPONENTS] + [what_transfers.SHUFFLED_IMAGES]
             if c in wide.columns]
    shown = wide[order].fillna("–").reset_index()
    shown.insert(2, "n pairs", [str(int(pairs[(f, k)])) for f, k in zip(shown["fraction"], shown["cut"])])
    return shown.assign(fraction=shown["fraction"].map(fraction_text), cut=shown["cut"].astype(str)).rename(
        columns={what_transfers.SHUFFLED_IMAGES: "block-shuffled images"})


def budget_lines(section: Section, df: pd.DataFrame) -> None:
    """The step budget per fraction (does it suit every fraction?): :func:`protocols.budget_check`."""
    check = protocols.budget_check(df.assign(protocol_variant=protocols.protocol_variant(df)))
    if check.empty:
        return
    section.tables["budget check"] = check
    per = check.groupby(["study", "protocol_variant", "fraction"], sort=True).agg(
        runs=("runs", "sum"), images=("train_images", "median"), cap=("step_cap", "max"),
        steps=("median_steps", "median"), most=("max_steps_taken", "max"), at_cap=("ended_at_cap", "sum"),
        improving=("still_improving", "sum")).reset_index()
    section.add("Step budget per fraction (every arm): the cap is `max(max_steps, max_epochs passes)`; "
                "`ended at cap` counts runs stopped by it, `still improving` those whose last evaluation was "
                "their best.", "")
    section.table("budget per fraction", per, pd.DataFrame({
        "study": per["study"], "protocol": per["protocol_variant"], "fraction": per["fraction"].map(fraction_text),
        "runs": per["runs"].astype(int).astype(str), "train images (median)": per["images"].map(lambda v: f"{v:g}"),
        "step cap": per["cap"].map(lambda v: f"{v:g}"), "median steps": per["steps"].map(lambda v: f"{v:g}"),
        "most steps": per["most"].map(lambda v: f"{v:g}"), "ended at cap": per["at_cap"].astype(int).astype(str),
        "still improving": per["improving"].astype(int).astype(str)}))


def ft_vs_fr_table(df: pd.DataFrame, n_boot: int, seed: int, a: str = "FT", b: str = "FR") -> pd.DataFrame:
    """``a`` − ``b`` at the same cut, paired by repeat: Δ with bootstrap CI (:func:`stats.effect_vs_baseline`),
    Wilcoxon p (:func:`stats.paired_tests`), Holm over the cuts of one (study, fraction)."""
    rows = df[df["condition"].isin([a, b]) & (df["cut"] >= 0)]
    rows = rows[~rows["cut"].isin(identical_cuts(rows, a, b))]  # one arm under two names: nothing to test
    by = ["study", "fraction", "cut"]
    effect = stats.effect_vs_baseline(rows, arm_col="condition", baseline=b, by=by, n_boot=n_boot, seed=seed,
                                      alpha=ALPHA)
    tests = stats.paired_tests(rows, arm_col="condition", by=by, alpha=ALPHA)
    first = (tests["arm_a"] == a).to_numpy()  # paired_tests orders the two arms by name
    tests[f"median_{a}"] = np.where(first, tests["median_a"], tests["median_b"])
    tests[f"median_{b}"] = np.where(first, tests["median_b"], tests["median_a"])
    out = effect.drop(columns=["p_holm", "significant"]).merge(
        tests[by + [f"median_{a}", f"median_{b}", "p"]], on=by, how="left")
    out["p_holm"] = out.groupby(["study", "fraction"])["p"].transform(stats.holm)
    out["significant"] = out["p_holm"] < ALPHA
    return out.sort_values(by).reset_index(drop=True)


def identical_cuts(df: pd.DataFrame, a: str = "FT", b: str = "FR") -> list[int]:
    """Cuts at which ``a`` and ``b`` are the same network and training (``arm_signature``), e.g. FT and FR
    at the last cut: the same runs, never a comparison."""
    n_blocks = int(df["cut"].max()) if len(df) else 0
    return [k for k in sorted(set(df["cut"])) if k >= 0
            and arm_signature(a, int(k), n_blocks) == arm_signature(b, int(k), n_blocks)]


def ft_vs_fr_section(paths: Sequence[Path], root: Path, n_boot: int, seed: int) -> Section:
    section = Section("Truncation vs re-initialisation (FT vs FR) at the same cut")
    df = load_results(*paths)
    section.add(store_line(paths, root, df), "", protocol_note(df), "", init_note(df), "",
                "Test: Wilcoxon signed-rank on repeats paired by `repeat` (same subset), FT − FR at the same "
                "cut; Holm over the cuts of one fraction.", "")
    if not {"FT", "FR"} <= set(df["condition"]):
        section.missing.append(f"FT vs FR: {_rel(paths, root)} lacks FT or FR rows")
        section.add("No FT and FR rows to compare.")
        return section
    table = ft_vs_fr_table(df, n_boot, seed)
    same = identical_cuts(df[df["condition"].isin(["FT", "FR"])])
    if same:
        section.add(f"FT and FR at cut {', '.join(map(str, same))} are one arm (the same network and training: "
                    "nothing after the cut to remove or re-initialise); it is shown once and left out of the tests.",
                    "")
    for study, rows in table.groupby("study", sort=True):
        parts = []
        for fraction, at in rows.groupby("fraction", sort=True):
            sig = at[at["significant"]]
            parts.append(f"{'at' if parts else 'At'} {fraction_text(fraction)} FT − FR ranges from "
                         f"{points(at['median_diff'].min())} to {points(at['median_diff'].max())} points, "
                         + (f"significant at cut(s) {', '.join(str(c) for c in sig['cut'])}" if len(sig)
                            else "significant at no cut"))
        section.add(f"**Reading ({study}).** " + "; ".join(parts) + ".", "")
        section.table(f"FT-FR {study}", rows, pd.DataFrame({
            "fraction": rows["fraction"].map(fraction_text), "cut": rows["cut"].astype(str),
            "n pairs": rows["n_pairs"].astype(str), "FR median (%)": rows["median_FR"].map(percent),
            "FT median (%)": rows["median_FT"].map(percent), "p": rows["p"].map(p_text),
            **effect_cells(rows, label="FT − FR (points)")}))
        section.add(*power_lines(rows, ["fraction"]))
    return section


# ----------------------------------------------------------------------------- transfer conditions
def conditions_section(paths: Sequence[Path], surgical_paths: Sequence[Path], root: Path, n_boot: int,
                       seed: int) -> Section:
    section = Section("Transfer conditions: Yosinski controls, surgical fine-tuning, strategies")
    df = load_results(*paths) if paths else pd.DataFrame(columns=["condition"])
    if paths:
        section.add(store_line(paths, root, df), "", protocol_note(df), "", init_note(df), "")
    present = set(df["condition"])
    if present & set(YOSINSKI):
        effects = transfer_conditions.effects_vs_baseline(df, YOSINSKI, n_boot=n_boot, seed=seed)
        section.add("### Yosinski self-transfer controls (AnB, AnB+, BnB, BnB+)", "",
                    "Test: Wilcoxon signed-rank on repeats paired by `repeat` (same subset), condition at cut "
                    "k − from-scratch baseline; Holm over the cuts of one condition and fraction.", "")
        parts = []
        for (fraction, condition), at in effects.groupby(["fraction", "condition"], sort=True):
            best = at.loc[at["median_diff"].idxmax()]
            parts.append(f"{condition} at {fraction_text(fraction)}: {int(at['significant'].sum())} of {len(at)} "
                         f"cuts ✓, largest Δ {points(best['median_diff'])} at cut {int(best['cut'])} "
                         f"(n = {int(best['n_pairs'])})")
        section.add("**Reading.** " + "; ".join(parts) + ".")
        effects = effects.sort_values(["fraction", "condition", "cut"])
        section.table("yosinski", effects, pd.DataFrame({
            "fraction": effects["fraction"].map(fraction_text), "condition": effects["condition"],
            "cut": effects["cut"].astype(str), "n pairs": effects["n_pairs"].astype(str),
            **effect_cells(effects)}))
        section.add(*power_lines(effects, ["fraction", "condition"]))
    else:
        section.missing.append("Yosinski controls: no AnB/AnB+/BnB/BnB+ rows")
    surgical = pd.concat([load_results(p) for p in surgical_paths], ignore_index=True) if surgical_paths else None
    if surgical is not None and (surgical["condition"] == SURGICAL).any():
        rows = surgical[surgical["condition"] == SURGICAL]
        section.add("### Surgical fine-tuning (one block tuned, the rest frozen)", "",
                    store_line(surgical_paths, root, rows), "", init_note(rows), "",
                    "Test: Wilcoxon signed-rank on repeats paired by `repeat`, tuned block − head only; Holm "
                    "over the blocks of one study and fraction. Rank group `a`: the best block and those not "
                    "significantly worse (Holm over every pair of arms).", "")
        table = surgical_table(rows, n_boot, seed)
        for (study, fraction), at in table.groupby(["study", "fraction"], sort=True):
            best = at.sort_values(["rank", "cut"]).iloc[0]
            section.add(f"- **{study}, {fraction_text(fraction)}**: best median with {best['tuned']} "
                        f"({percent(best['median'])} %); {int(at['significant'].sum())} of "
                        f"{int(at['n_pairs'].notna().sum())} blocks significantly different from head only "
                        f"(n = {int(at['n_pairs'].max())} pairs).")
        section.table("surgical", table, pd.DataFrame({
            "study": table["study"], "fraction": table["fraction"].map(fraction_text), "tuned": table["tuned"],
            "runs": table["n"].astype(str), "median acc (%)": table["median"].map(percent),
            "rank group": table["group_label"], **effect_cells(table, label="Δ vs head only (points)")}))
        section.add(*power_lines(table, ["study", "fraction"]))
    else:
        section.missing.append("surgical fine-tuning: no 'surgical' rows")
    if present & (set(STRATEGIES) - {"baseline"}):
        table = transfer_conditions.strategy_summary(df)
        table = table.assign(study="strategies").rename(columns={"strategy": "arm"})
        section.add("### Fine-tuning strategies", "",
                    f"Test: {FAMILY_VS_BASELINE.replace('cut-vs-baseline', 'strategy-vs-baseline')}. "
                    "head_only: pretrained blocks frozen, new head; full_finetune: every layer trained; "
                    "random_frozen: random blocks frozen, new head.", "")
        section.add(reading(table, "strategies", "difference from the baseline", "strategies"), "")
        shown = summary_shown(table).rename(columns={"arm": "strategy"})
        section.table("strategies", table, shown)
        section.add(*power_lines(table, ["fraction"]))
    else:
        section.missing.append("fine-tuning strategies: no strategy rows")
    for tta_file in (p / "tta.csv" for p in paths if (p / "tta.csv").is_file()):
        tta = pd.read_csv(tta_file)
        section.missing.append(f"test-time augmentation (`{tta_file.relative_to(root).as_posix()}`): {len(tta)} "
                               f"rows, {tta['repeat'].nunique() if 'repeat' in tta else 0} repeat(s) — too few "
                               "for a paired test, not summarised")
    return section


def surgical_table(rows: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Per (study, fraction, tuned block): :func:`transfer_conditions.surgical_summary` (median, rank group)
    joined with the paired Δ to head only (:func:`stats.effect_vs_baseline`, Holm over the blocks)."""
    summary = transfer_conditions.surgical_summary(rows, alpha=ALPHA)
    n_blocks = rows.groupby("study")["cut"].max()
    labelled = rows.assign(arm=[transfer_conditions.block_label(c, n_blocks[s])
                                for s, c in zip(rows["study"], rows["cut"])])
    effect = stats.effect_vs_baseline(labelled, baseline="head only", by=("study", "fraction"), n_boot=n_boot,
                                      seed=seed, alpha=ALPHA).rename(columns={"arm": "tuned"})
    table = summary.merge(effect, on=["study", "fraction", "tuned"], how="left")
    table["significant"] = table["significant"].fillna(False).astype(bool)
    return table.sort_values(["study", "fraction", "cut"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- clustering
def clustering_table(cdf: pd.DataFrame, n_classes: int | None, n_boot: int, seed: int,
                     method: str = "agglomerative") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(median ARI per fraction × layer × model with bootstrap CI over repeats, skipped fractions).

    Whole-layer rows of ``method`` only; fractions whose subsets hold fewer than ``MIN_PER_CLASS`` images
    of a class (``clustering.per_class_size``) are skipped — every layer clusters a handful of images
    perfectly. Never pooled across fractions."""
    rows = cdf[cdf["method"] == method] if "method" in cdf else cdf
    if "channel" in rows:
        rows = rows[pd.to_numeric(rows["channel"], errors="coerce").fillna(-1) == -1]
    rows = rows.assign(per_class=_clustering.per_class_size(rows, n_classes),
                       model=rows["model"] if "model" in rows else "pretrained")
    small = rows.groupby("fraction")["per_class"].min()
    skipped = small[~(small >= MIN_PER_CLASS)].rename("images per class").reset_index()
    kept = rows[rows["fraction"].isin(small[small >= MIN_PER_CLASS].index)]
    layers = list(dict.fromkeys(rows["layer"]))
    models = sorted(kept["model"].unique(), key=lambda m: (m != "pretrained", str(m)))
    parts = [stats.bootstrap_ci(kept[kept["model"] == m], metric="ari", arm_col="layer", by=("fraction",),
                                n_boot=n_boot, seed=seed).assign(model=m) for m in models]
    if not parts:
        return pd.DataFrame(columns=["fraction", "layer", "model", "estimate", "low", "high", "n"]), skipped
    table = pd.concat(parts, ignore_index=True).rename(columns={"arm": "layer"})
    table = table.assign(per_class=table["fraction"].map(small), _l=table["layer"].map(layers.index),
                         _m=table["model"].map(models.index))
    return table.sort_values(["fraction", "_m", "_l"]).drop(columns=["_l", "_m"]).reset_index(drop=True), skipped


def clustering_section(folder: Path, root: Path, n_classes: int | None, n_boot: int, seed: int) -> Section:
    section = Section(f"Where class structure appears: layer-wise clustering ({folder.parent.parent.name})")
    cdf = load_clustering(folder)
    files = sorted({Path(s).name for s in cdf["source"].dropna()})
    section.add(f"Files: `{folder.relative_to(root).as_posix()}/` ({', '.join(files)}) — {len(cdf)} rows; "
                f"clusters k = number of classes, agglomerative (cosine, average linkage); ARI against the "
                f"labels; median over repeats with a percentile bootstrap 95 % CI (descriptive, no test). "
                f"Reported per fraction, never pooled; fractions with fewer than {MIN_PER_CLASS} images per "
                f"class are skipped.", "")
    table, skipped = clustering_table(cdf, n_classes, n_boot, seed)
    section.tables["clustering"], section.tables["skipped"] = table, skipped
    for fraction, per_class in zip(skipped["fraction"], skipped["images per class"]):
        section.missing.append(f"clustering at {fraction_text(fraction)}: {per_class:g} image(s) per class "
                               f"(< {MIN_PER_CLASS}), skipped")
    if skipped.size:
        section.add("Skipped: " + "; ".join(f"{fraction_text(f)} ({n:g} images per class)"
                                            for f, n in zip(skipped["fraction"], skipped["images per class"]))
                    + ".", "")
    for fraction, at in table.groupby("fraction", sort=True):
        pre = at[at["model"] == "pretrained"] if (at["model"] == "pretrained").any() else at
        top = pre.loc[pre["estimate"].idxmax()]
        section.add(f"**Reading ({fraction_text(fraction)}, {at['per_class'].iloc[0]:g} images per class, "
                    f"n = {int(pre['n'].max())} repeats).** Median ARI of the {pre['model'].iloc[0]} model goes "
                    f"from {number(pre['estimate'].iloc[0])} at {pre['layer'].iloc[0]} to "
                    f"{number(pre['estimate'].iloc[-1])} at {pre['layer'].iloc[-1]}; highest at {top['layer']} "
                    f"({number(top['estimate'])}).", "")
        section.table(f"ari {fraction}", at, pd.DataFrame({
            "fraction": at["fraction"].map(fraction_text), "model": at["model"], "layer": at["layer"],
            "repeats": at["n"].astype(str), "median ARI": at["estimate"].map(number),
            "95 % CI": [f"[{number(lo)}, {number(hi)}]" for lo, hi in zip(at["low"], at["high"])]}))
    for name, value, label in (("probes", "accuracy", "held-out accuracy of a linear probe"),
                               ("cka", "cka", "linear CKA, pretrained vs fine-tuned")):
        files = sorted(folder.glob(f"{name}_*.csv"))
        if not files:
            section.missing.append(f"{name}: no `{name}_*.csv` in `{folder.relative_to(root).as_posix()}`")
            continue
        data = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        section.tables[name] = data
        if "model" in data:
            order = list(dict.fromkeys(data["layer"]))
            data = data.pivot_table(index="layer", columns="model", values=value, aggfunc="first",
                                    sort=False).reindex(order).reset_index()
            models = [c for c in data.columns if c != "layer"]
        else:
            models = [value]
        section.add(f"**{name}** ({label}, one run; `{', '.join(f.name for f in files)}`):")
        section.table(f"{name} shown", data, data.assign(**{m: data[m].map(number) for m in models}))
    return section


# ----------------------------------------------------------------------------- repeats advisor
def repeats_section(paths: Sequence[Path], root: Path, condition: str = "FR", n_sim: int = 400,
                    seed: int = 0) -> Section:
    """For every comparison with the baseline that is not significant: the repeats that would settle it
    (:func:`power.advise_repeats`: resampled paired differences, exact test, Holm over the fraction's cuts)."""
    from functions.analysis import power

    section = Section("How many repeats would settle the open comparisons?")
    df = load_results(*paths)
    df = df[df["condition"].isin([condition, "baseline"])]
    section.add(f"Store(s): {_rel(paths, root)}. For each (study, fraction), the {condition} cuts whose gain "
                "over the baseline is not Holm-significant, and the repeats at which the study's own test "
                f"(exact Wilcoxon, Holm over the fraction's cuts) would reach 80 % power for the observed "
                f"median gain: the paired differences of the repeats every arm has, resampled jointly "
                f"({n_sim} simulations per number of repeats, seed {seed}). \"not within 64\": more than the "
                "largest number tried.", "")
    tables = []
    for (study, fraction), rows in df.groupby(["study", "fraction"], sort=True):
        if rows["arm"].nunique() < 2 or rows["repeat"].nunique() < 4:
            continue
        tables.append(power.advise_repeats(rows, study, fraction, n_sim=n_sim, seed=seed))
    if not tables:
        section.add("No (study, fraction) has enough repeats to resample.")
        return section
    advice = pd.concat(tables, ignore_index=True)
    section.tables["advice"] = advice
    open_rows = advice[~(advice["p_holm"] < ALPHA)]
    if open_rows.empty:
        section.add("Every comparison is already significant.")
        return section
    needed = [("not within 64" if pd.isna(n) else str(int(n))) for n in open_rows["repeats_needed"]]
    section.table("repeats", open_rows, pd.DataFrame({
        "study": open_rows["study"], "fraction": open_rows["fraction"].map(fraction_text), "cut": open_rows["arm"],
        "repeats now": open_rows["n_pairs"].astype(str), "Δ (points)": open_rows["median_gain"].map(points),
        "Holm p": open_rows["p_holm"].map(p_text),
        "power now": open_rows["power_now"].map(lambda v: f"{100 * v:.0f} %"),
        "repeats for 80 % power": needed}))
    return section

