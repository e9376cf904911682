"""Cell formatting for the findings document: fractions, points, CIs, p-values and ✓ as text.

Small pure functions, so every table of ``docs/findings.md`` writes a number the same way.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from functions.engine.conditions import arm_cut


def fraction_text(fraction: float) -> str:
    """0.001 → ``0.1 %``."""
    return f"{100 * float(fraction):g} %"


def points(value: float) -> str:
    """An accuracy difference in percentage points, signed, one decimal (``–`` when missing)."""
    return "–" if value is None or not np.isfinite(value) else f"{100 * float(value):+.1f}"


def percent(value: float) -> str:
    """An accuracy in per cent, one decimal."""
    return "–" if value is None or not np.isfinite(value) else f"{100 * float(value):.1f}"


def ci_text(low: float, high: float) -> str:
    """``[+1.2, +3.4]`` in points."""
    return f"[{points(low)}, {points(high)}]" if np.isfinite(low) and np.isfinite(high) else "–"


def p_text(p: float) -> str:
    """``0.008``, ``< 0.001`` or ``–`` (not tested)."""
    if p is None or not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_clause(p: float) -> str:
    """``p = 0.008`` or ``p < 0.001`` (``p = –`` when not tested): a p-value inside a sentence."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def number(value: float, digits: int = 3) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{float(value):.{digits}f}"


def mark(significant) -> str:
    """✓ where ``significant`` is True."""
    return "✓" if bool(significant) else ""


def delta_cells(t: pd.DataFrame, diff: str = "median_diff", significant: str = "significant") -> list[str]:
    """One cell per row: the difference in points, followed by ✓ where it is significant (``+9.4 ✓``)."""
    return [f"{points(d)} {mark(s)}".rstrip() for d, s in zip(t[diff], t[significant])]


def effect_cells(t: pd.DataFrame, diff: str = "median_diff", low: str = "low", high: str = "high",
                 p_holm: str = "p_holm", significant: str = "significant", label: str = "Δ (points)") -> dict:
    """Formatted Δ, 95 % CI, Holm p and ✓ columns of an effect table."""
    notes = t["ci_note"] if "ci_note" in t else pd.Series(None, index=t.index)
    cis = [note if isinstance(note, str) and not np.isfinite(lo) else ci_text(lo, hi)
           for lo, hi, note in zip(t[low], t[high], notes)]
    return {label: t[diff].map(points), "95 % CI": cis,
            "Holm p": t[p_holm].map(p_text),
            "✓": t[significant].map(lambda v: mark(v) if isinstance(v, (bool, np.bool_)) else "")}


def md_table(df: pd.DataFrame) -> str:
    """A pipe table of already formatted cells (tabulate's number parsing off, so ``+1.0`` stays)."""
    return df.to_markdown(index=False, disable_numparse=True)


def cut_number(arm: str) -> int:
    """The cut of an arm label (``cut 3`` → 3), read back by the engine's one rule."""
    return arm_cut(arm)
