"""What every section of the findings document shares: the :class:`Section` record, store and protocol
notes, completeness and power lines, the constants of the document's statistics."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from functions.analysis import protocols, stats
from functions.analysis.findings_format import (effect_cells, fraction_text, md_table, p_clause, percent,
                                                 points)
from functions.engine.protocols import DEFAULT_VARIANT, PROTOCOL_VARIANTS

ALPHA = 0.05
FAMILY_VS_BASELINE = ("Wilcoxon signed-rank on repeats paired by `repeat` (same subset); Holm over the "
                      "cut-vs-baseline comparisons of one fraction")


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


def _by_variant(df: pd.DataFrame, variants: list[str], then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows sorted by study, protocol (in ``variants`` order), then ``then``."""
    order = df["protocol_variant"].map({v: i for i, v in enumerate(variants)})
    return df.assign(_v=order).sort_values(["study", "_v", *then], kind="stable").drop(columns="_v")


def reading(table: pd.DataFrame, study: str, what: str = "gain over the baseline", unit: str = "cuts") -> str:
    """One sentence per study: the largest Δ at each fraction, its Holm p and n, and how many cuts are ✓."""
    parts = []
    for fraction, rows in table[(table["study"] == study) & (table["arm"] != "baseline")].groupby("fraction"):
        rows = rows.dropna(subset=["diff_vs_baseline"])
        if rows.empty:
            continue
        best = rows.loc[rows["diff_vs_baseline"].idxmax()]
        # a negative Δ is never "the largest gain": then every arm is below the reference
        largest = f"largest {what}" if best["diff_vs_baseline"] > 0 else "largest Δ (every arm below the reference)"
        parts.append(f"{'at' if parts else 'At'} {fraction_text(fraction)} the {largest} is {best['arm']}, "
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


def completeness_line(df: pd.DataFrame) -> str:
    """Per fraction, the repeats that hold every arm (the pairs every test can use) out of the repeats seen:
    a grid still running shows fewer."""
    arms = df.groupby("study")["arm"].nunique().rename("all")  # every arm the study runs, at any fraction
    per_repeat = df.groupby(["study", "fraction", "repeat"])["arm"].nunique().rename("arms").reset_index()
    per_repeat = per_repeat.join(arms, on="study").assign(full=lambda d: d["arms"] == d["all"])
    done = per_repeat.groupby(["study", "fraction"]).agg(repeats=("repeat", "size"),
                                                         complete=("full", "sum")).reset_index()
    parts = [f"{int(r.complete)} of {int(r.repeats)} at {fraction_text(r.fraction)}"
             + ("" if len(done["study"].unique()) == 1 else f" ({r.study})") for r in done.itertuples()]
    incomplete = (done["complete"] < done["repeats"]).any()
    return ("Repeats holding every arm: " + ", ".join(parts) + "."
            + (" Fewer than the repeats seen means the grid is still being computed; its tests use only "
               "the repeats each pair of arms shares." if incomplete else ""))

