"""The findings document (``docs/findings.md``): every number and every ✓ computed from the results stores.

:func:`build_findings` reads the stores of a repository laid out as :data:`LAYOUT` into sections (:class:`Section`);
:func:`render` writes the markdown (header, conventions, sections); ``tools/make_findings.py`` runs both. Each
section keeps the tables its numbers come from (``Section.tables``), computed by ``functions.analysis``
(``stats``, ``protocols``, ``transfer_conditions``), so tests can check the text against them. Only the fixed
sentence templates are written by hand; the statistical conventions are stated once, in :func:`render`.
"""
from __future__ import annotations

import datetime as _dt
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from functions.analysis import clustering as _clustering
from functions.analysis import protocols, stats, transfer_conditions
from functions.analysis.findings_format import (cut_number, effect_cells, fraction_text, md_table, number,
                                                 p_clause, p_text, percent, points)
from functions.analysis.results import arm_sort_key, load_clustering, load_results
from functions.engine.conditions import STRATEGIES, SURGICAL, YOSINSKI, arm_signature
from functions.engine.protocols import DEFAULT_VARIANT, PROTOCOL_VARIANTS

ALPHA = 0.05
COMMAND = "python tools/make_findings.py"
# Where the shipped stores live, relative to the repository root (one entry per section that reads them).
LAYOUT = {
    "protocols": ("MNIST/results/protocols", "cross_domain/results/protocols"),
    # the stores of the original protocol without common random numbers, set apart from the default ones
    "original": ("MNIST/results/original_protocol", "FashionMNIST/results/original_protocol",
                 "cross_domain/results/original_protocol"),
    "mnist": ("MNIST/results",),
    "fashion": ("FashionMNIST/results",),
    "cross_domain": ("cross_domain/results",),
    "conditions": ("MNIST/results/conditions",),
    "surgical": ("MNIST/results/conditions", "cross_domain/results/surgical"),
    "clustering": ("MNIST/results/clustering", "FashionMNIST/results/clustering",
                   "cross_domain/results/clustering"),
}
CLASSES_FROM = {"MNIST/results/clustering": "mnist", "FashionMNIST/results/clustering": "fashion"}
MIN_PER_CLASS = _clustering.MIN_PER_CLASS  # subsets with fewer images per class are not clustered
FAMILY_VS_BASELINE = ("Wilcoxon signed-rank on repeats paired by `repeat` (same subset); Holm over the "
                      "cut-vs-baseline comparisons of one fraction")


# ----------------------------------------------------------------------------- sections
@dataclass
class Section:
    """One section of the document: its title, markdown lines and the tables its numbers come from."""
    title: str
    lines: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    shown: dict[str, pd.DataFrame] = field(default_factory=dict)  # the printed cells of tables[name]
    missing: list[str] = field(default_factory=list)  # what could not be computed, and why

    def add(self, *lines: str) -> None:  # noqa: D102
        self.lines.extend(lines)

    def table(self, name: str, computed: pd.DataFrame, shown: pd.DataFrame) -> None:
        """Keep ``computed`` under ``name`` and print ``shown`` (its formatted cells, row by row)."""
        self.tables[name], self.shown[name] = computed, shown
        self.lines.extend(["", md_table(shown), ""])

    def markdown(self) -> str:
        return "\n".join([f"## {self.title}", ""] + self.lines).rstrip() + "\n"


def _existing(root: Path, relative: Iterable[str]) -> tuple[list[Path], list[str]]:
    found, absent = [], []
    for rel in relative:
        path = root / rel
        has_store = path.is_dir() and any(path.glob("*.jsonl")) or path.is_file()
        (found if has_store else absent).append(path if has_store else rel)
    return found, absent


def _rel(paths: Sequence[Path], root: Path) -> str:
    return ", ".join(f"`{p.relative_to(root).as_posix()}`" for p in paths)


def store_line(paths: Sequence[Path], root: Path, df: pd.DataFrame) -> str:
    """``Stores: `X` — N runs (24 baseline, 96 FR).`` from the rows."""
    counts = df["condition"].value_counts()
    order = sorted(counts.index, key=lambda c: (c != "baseline", str(c)))
    detail = ", ".join(f"{int(counts[c])} {c}" for c in order)
    return f"Store(s): {_rel(paths, root)} — {len(df)} runs ({detail})."


def init_note(df: pd.DataFrame) -> str:
    """What the rows say about shared initial weights (``init: crn``), counted from the data."""
    n = len(df)
    crn = int((df["init"] == "crn").sum()) if "init" in df.columns else 0
    groups = df.groupby(["study", "fraction", "repeat"])["seed"].nunique(dropna=False)
    shared = f"{int((groups == 1).sum())} of {len(groups)}"
    if crn == n:
        return (f"All {n} runs carry `init: crn` (common random numbers): the arms of one repeat start every "
                f"freshly initialised layer from the same weights (one `seed` per (fraction, repeat) in "
                f"{shared} groups).")
    if crn == 0:
        return (f"None of the {n} runs carries `init: crn`: they predate common random numbers, so the arms "
                "of one repeat are paired on the same training subset but do **not** share their initial "
                "weights.")
    return (f"{crn} of {n} runs carry `init: crn`; the other {n - crn} predate common random numbers and do "
            "not share initial weights across arms.")


def protocol_note(df: pd.DataFrame) -> str:
    """Which protocol variant the rows were trained under (as the engine wrote it) and the repeats per
    fraction: every section names the protocol its numbers come from."""
    variants = protocols.protocol_variant(df)
    parts = []
    for label, count in variants.value_counts(sort=False).items():
        record = PROTOCOL_VARIANTS.get(label)
        kind = ("the fair default" if label == DEFAULT_VARIANT else "fair" if record and record.fair
                else "not fair to the baseline")
        parts.append(f"**{label}** ({kind}: {record.description if record else 'unregistered'}; {count} runs)")
    base = df[df["cut"] == -1] if (df["cut"] == -1).any() else df
    repeats = base.groupby("fraction")["repeat"].nunique()
    per_fraction = ", ".join(f"{int(n)} at {fraction_text(f)}" for f, n in repeats.items())
    return f"Protocol: {'; '.join(parts)}. Repeats: {per_fraction}."


def _completeness(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: runs, repeats, and repeats holding every arm of the group (the complete pairs)."""
    per_repeat = df.groupby(keys + ["repeat"])["arm"].nunique().rename("arms").reset_index()
    per_repeat = per_repeat.join(df.groupby(keys)["arm"].nunique().rename("all"), on=keys)
    per_repeat["full"] = per_repeat["arms"] == per_repeat["all"]
    return per_repeat.groupby(keys).agg(repeats=("repeat", "size"), complete=("full", "sum")).reset_index()


# ----------------------------------------------------------------------------- protocol sensitivity
def _by_variant(df: pd.DataFrame, variants: list[str], then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows sorted by study, protocol (in ``variants`` order), then ``then``."""
    order = df["protocol_variant"].map({v: i for i, v in enumerate(variants)})
    return df.assign(_v=order).sort_values(["study", "_v", *then], kind="stable").drop(columns="_v")


def protocol_section(paths: Sequence[Path], root: Path, n_boot: int, seed: int) -> Section:
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
    for study, rows in gains.groupby("study", sort=True):
        deepest = max(rows["arm"], key=cut_number)
        smallest = rows["fraction"].min()
        at = rows[(rows["arm"] == deepest) & (rows["fraction"] == smallest)].set_index("protocol_variant")
        n_sig = int(at["significant"].sum())
        parts = [f"{points(at.loc[v, 'median_diff'])} ({v}, n = {int(at.loc[v, 'n_pairs'])})"
                 for v in variants if v in at.index]
        section.add(f"**Reading ({study}).** At {fraction_text(smallest)}, the paired gain of {deepest} over the "
                    f"baseline of the same protocol is {', '.join(parts)} points; significant under {n_sig} of "
                    f"{len(at)} protocols.", "")
    section.add("### Verdict", "", protocols.verdict(gains, shift if not shift.empty else None), "")
    complete = _completeness(df, ["study", "protocol_variant", "fraction"])
    section.tables["completeness"] = complete
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
    split = protocols.protocol_vs_data_shifts(df, alpha=ALPHA)
    section.tables["protocol vs data"] = split
    if len(split):
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
    chosen = protocols.chosen_learning_rates(df)
    if len(chosen):
        section.tables["chosen lr"] = chosen
        section.add("### Learning rates the tuned runs chose", "", "Runs per rate (each arm picks on its own "
                    "carved validation split; ties go to the lower validation loss).", "")
        shown = chosen.reset_index().drop(columns="protocol_variant").astype(str)
        section.table("chosen lr", chosen, shown.assign(fraction=chosen.reset_index()["fraction"].map(fraction_text)))
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
    return section


# ----------------------------------------------------------------------------- transfer studies
def reading(table: pd.DataFrame, study: str, what: str = "gain over the baseline", unit: str = "cuts") -> str:
    """One sentence per study: the largest Δ at each fraction, its Holm p and n, and how many cuts are ✓."""
    parts = []
    for fraction, rows in table[(table["study"] == study) & (table["arm"] != "baseline")].groupby("fraction"):
        rows = rows.dropna(subset=["diff_vs_baseline"])
        if rows.empty:
            continue
        best = rows.loc[rows["diff_vs_baseline"].idxmax()]
        parts.append(f"{'at' if parts else 'At'} {fraction_text(fraction)} the largest {what} is {best['arm']}, "
                     f"{points(best['diff_vs_baseline'])} points (Holm {p_clause(best['p_holm_vs_baseline'])}, "
                     f"n = {int(best['n_pairs'])} pairs; {int(rows['significant_vs_baseline'].sum())} of "
                     f"{len(rows)} {unit} ✓)")
    return f"**Reading ({study}).** " + ("; ".join(parts) + "." if parts else "no paired comparison.")


def summary_shown(table: pd.DataFrame) -> pd.DataFrame:
    """The formatted cells of a :func:`stats.summarize` table (one row per fraction × arm)."""
    return pd.DataFrame({
        "fraction": table["fraction"].map(fraction_text), "arm": table["arm"], "runs": table["n"].astype(str),
        "median acc (%)": table["median"].map(percent),
        **effect_cells(table, "diff_vs_baseline", "diff_low", "diff_high", "p_holm_vs_baseline",
                       "significant_vs_baseline"),
        "n pairs": table["n_pairs"].map(lambda n: "–" if pd.isna(n) else str(int(n)))})


def power_lines(table: pd.DataFrame, keys: Sequence[str], n_col: str = "n_pairs") -> list[str]:
    """One line per group of ``keys`` (one Holm family) where no comparison can reach Holm p < ALPHA
    whatever the data: :func:`stats.power_warning` with the group's most pairs and its comparisons."""
    lines = []
    tested = table[pd.to_numeric(table[n_col], errors="coerce").fillna(0) > 0]
    for key, rows in tested.groupby(list(keys), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        warning = stats.power_warning(int(rows[n_col].max()), len(rows), ALPHA)
        if warning:
            label = ", ".join(fraction_text(v) if k == "fraction" else str(v) for k, v in zip(keys, key))
            lines.append(f"- {label}: {warning}.")
    return ["Power (no ✓ is possible in these families):", *lines, ""] if lines else []


def transfer_section(title: str, paths: Sequence[Path], root: Path, condition: str, n_boot: int,
                     seed: int) -> Section:
    section = Section(title)
    df = load_results(*paths)
    section.add(store_line(paths, root, df), "", protocol_note(df), "", init_note(df), "",
                f"Test: {FAMILY_VS_BASELINE}. Δ = {condition} cut k − from-scratch baseline.", "")
    # stats.summarize per (study, fraction): medians, CIs, paired Δ, Holm over the cut-vs-baseline family
    table = stats.summarize(df[df["condition"].isin([condition, "baseline"])], by=("study", "fraction"),
                            n_boot=n_boot, seed=seed, alpha=ALPHA)
    for study in sorted(table["study"].unique()):
        rows = table[table["study"] == study]
        section.add(reading(table, study), "")
        section.table(f"{condition} {study}", rows, summary_shown(rows))
        section.add(*power_lines(rows, ["fraction"]))
    budget_lines(section, df[df["condition"].isin([condition, "baseline"])])
    return section


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


def change_text(original: pd.Series, default: pd.Series) -> str:
    """What the default protocol changes in one conclusion: ✓ cuts won or lost, in words."""
    changes = []
    for kind in ("gains", "losses"):
        lost = sorted(set(original[kind]) - set(default[kind]))
        won = sorted(set(default[kind]) - set(original[kind]))
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
    both["change"] = [change_text(pd.Series({"gains": r.gains_original, "losses": r.losses_original}),
                                  pd.Series({"gains": r.gains_default, "losses": r.losses_default}))
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
        "what changed": table["change"]}))
    changed = table[table["change"] != "same ✓ cuts"]
    section.add(f"**Reading.** {len(changed)} of {len(table)} (setting, fraction) conclusions change their ✓ cuts "
                "under the default protocol" + (": " + "; ".join(
                    f"{r.study} at {fraction_text(r.fraction)} ({r.change})" for r in changed.itertuples())
                    if len(changed) else "") + ".", "")
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


# ----------------------------------------------------------------------------- the document
STORE_SUFFIXES = (".jsonl", ".json", ".csv")


def git_state(root: Path, stores: Iterable[str] = ()) -> tuple[str, list[str]]:
    """(short commit of HEAD or ``unknown``, store files that differ from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        listed = git("status", "--porcelain", "--untracked-files=all", "--", *stores).splitlines() if stores else []
        # only files the tables are read from count (figures written beside the stores do not)
        changed = [line[3:] for line in listed if line[3:].endswith(STORE_SUFFIXES)]
    except (OSError, subprocess.CalledProcessError):
        return "unknown", []
    return commit, changed


def build_findings(root: str | Path, n_boot: int = 2000, seed: int = 0,
                   layout: dict[str, Sequence[str]] | None = None) -> list[Section]:
    """Every section, from the stores under ``root`` laid out as ``layout`` (default :data:`LAYOUT`); a
    missing store becomes a line of the last section (``What could not be computed``)."""
    root = Path(root).resolve()
    layout = {**LAYOUT, **(layout or {})}
    sections: list[Section] = []
    missing: list[str] = []

    def run(key: str, make):
        found, absent = _existing(root, layout[key])
        missing.extend(f"no results store at `{a}`" for a in absent)
        if found:
            sections.append(make(found))

    run("mnist", lambda p: transfer_section("MNIST 0–4 → 5–9: frozen transfer (FR) vs from scratch", p, root,
                                            "FR", n_boot, seed))
    run("protocols", lambda p: protocol_section(p, root, n_boot, seed))
    originals, _ = _existing(root, layout["original"])
    protocol_stores, _ = _existing(root, layout["protocols"])
    defaults = [p for key in ("mnist", "fashion", "cross_domain") for p in _existing(root, layout[key])[0]]
    if defaults and (originals or protocol_stores):
        sections.append(original_vs_default_section(originals, protocol_stores, defaults, root, n_boot, seed))
    run("fashion", lambda p: transfer_section("FashionMNIST class split: frozen transfer (FR) vs from scratch",
                                              p, root, "FR", n_boot, seed))
    run("mnist", lambda p: ft_vs_fr_section(p, root, n_boot, seed))
    run("cross_domain", lambda p: transfer_section("Cross-domain: MNIST ↔ FashionMNIST (FR)", p, root, "FR",
                                                   n_boot, seed))
    conditions, absent = _existing(root, layout["conditions"])
    surgical, absent_s = _existing(root, layout["surgical"])
    missing.extend(f"no results store at `{a}`" for a in dict.fromkeys(absent + absent_s))
    if conditions or surgical:
        sections.append(conditions_section(conditions, surgical, root, n_boot, seed))
    for rel in layout["clustering"]:
        folder = root / rel
        if folder.is_dir() and any(folder.glob("clustering_*.csv")):
            k = _fine_tune_classes(root, layout, CLASSES_FROM.get(rel))
            sections.append(clustering_section(folder, root, k, n_boot, seed))
        else:
            missing.append(f"no clustering results at `{rel}`")
    tail = Section("What could not be computed")
    for s in sections:
        missing.extend(s.missing)
    tail.add(*(f"- {m}" for m in missing) if missing else ["- nothing: every store listed above was read."])
    sections.append(tail)
    return sections


def _fine_tune_classes(root: Path, layout: dict, key: str | None) -> int | None:
    """k of a clustered split: the number of fine-tuning classes of the study store ``layout[key]``."""
    found, _ = _existing(root, layout[key]) if key else ([], [])
    classes = load_results(*found)["finetune_classes"].dropna() if found else []
    return len(classes.iloc[0]) if len(classes) else None


def render(sections: Sequence[Section], root: str | Path, n_boot: int, seed: int,
           now: _dt.datetime | None = None) -> str:
    """The whole document: header (generated by, commit, time), conventions, contents, sections."""
    root = Path(root).resolve()
    stores = sorted({s for rels in LAYOUT.values() for s in rels})
    commit, changed = git_state(root, stores)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    head = ["# Findings", "",
            f"<!-- Generated file: do not edit. Regenerate with `{COMMAND}`. -->", "",
            f"Generated by `{COMMAND}` from commit `{commit}` on {now:%Y-%m-%d %H:%M} UTC, from the results "
            "stores shipped in the repository. Every number and every ✓ below is computed by "
            "`functions.analysis` (see `functions/analysis/findings.py`); only the sentence templates are "
            "written by hand."]
    if changed:
        head += ["", f"The stores were read from the working tree, which differed from that commit in "
                     f"{len(changed)} store file(s) (uncommitted rows): {', '.join(f'`{c}`' for c in changed)}."]
    head += ["", "**Conventions.** Δ is the median over repeats of the paired difference (arm − reference, "
             "same `repeat` = same training subset), in percentage points of test accuracy. p-values are "
             "two-sided exact Wilcoxon signed-rank tests on the paired differences (zero differences ranked "
             "with the others, then dropped — Pratt; midranks for ties; every sign pattern enumerated up to 20 "
             "nonzero differences, a seeded Monte-Carlo beyond), Holm-corrected over the family named in each "
             f"section; ✓ marks Holm p < {ALPHA:g}. The 95 % CI is the interval that matches the test: the "
             "exact Wilcoxon-inverted interval of the Hodges–Lehmann shift (median of the Walsh averages; its "
             "achieved level is at least 95 %), \"n too small\" below 6 pairs. Only repeats present in both "
             "arms are paired (`n pairs`). Descriptive intervals of single medians (clustering) are percentile "
             f"bootstraps ({n_boot} resamples, seed {seed}).", "", "**Sections.**", ""]
    head += [f"{i}. {s.title}" for i, s in enumerate(sections, 1)]
    return "\n".join(head) + "\n\n" + "\n".join(s.markdown() for s in sections)
