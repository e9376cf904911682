"""How many repeats a comparison needs: the power of the study's own test, simulated from pilot data.

The verdict of a (study, fraction) is the exact Wilcoxon signed-rank test of every arm against the baseline,
Holm-corrected over those arms (:func:`functions.analysis.stats.effect_vs_baseline`). Its power at n
repeats is estimated here by simulation: draw n repeats with replacement from the observed ones — jointly
across the arms, because the design pairs every arm with the baseline by repeat — run the test per arm,
apply Holm, and count how often the arm of interest comes out significant. From the curve of power over n
come the repeats needed for 80 % power, for the observed effect or for an effect the reader names (the
arm's differences shifted so their median equals it). The observed effect is only the pilot's estimate:
a curve at the observed effect says what the pilot's own numbers would need, not what the truth needs,
which is why the named effect is there.

The simulated test is the study's test, with one documented shortcut: up to ``EXACT_MAX_N`` differences
the p is exact (Pratt zeros, midranks; resampled differences tie a lot, so the exact null is counted for
each sample's own tie pattern), beyond that the normal approximation with the exact tie-corrected variance
stands in for the study's Monte-Carlo p — 200,000 sign draws per sample would make a curve take hours,
and with more than 20 differences the two agree closely.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.special import ndtr

from functions.analysis.figures_common import use_style
from functions.analysis.results import arm_sort_key
from functions.analysis.signed_rank import (EXACT_MAX_N, clean_differences, exact_signed_rank_p, pratt_ranks2,
                                            signed_rank_test)
from functions.analysis.stats import holm

DEFAULT_N = (4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
TARGET = 0.8
CURVE_COLUMNS = ["arm", "effect_kind", "effect", "n", "power", "mcse", "alpha", "family_size", "n_sim",
                 "p_method"]
# A sampler draws differences: sampler(rng, (n_sim, n)) → array (n_sim, n) for one arm, (n_sim, n, k) for k.
Sampler = Callable[[np.random.Generator, tuple], np.ndarray]


# ----------------------------------------------------------------------------- the simulated test
def normal_signed_rank_p(d: np.ndarray) -> np.ndarray:
    """Two-sided signed-rank p per row of ``d`` from the normal approximation, Pratt zeros and midranks.

    Under the sign-flip null the positive-rank sum has mean Σr/2 and variance Σr²/4 over the nonzero
    ranks r — the exact variance for this tie pattern, so no separate tie correction is needed. No
    continuity correction. Only for simulating power with more than ``EXACT_MAX_N`` differences.
    """
    ranks2 = pratt_ranks2(np.atleast_2d(d)).astype(float)
    positive = np.where(np.atleast_2d(d) > 0, ranks2, 0.0).sum(axis=1)
    total, spread = ranks2.sum(axis=1), np.sqrt((ranks2 ** 2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(2 * positive - total) / spread  # doubled ranks: (T − Σr/2)/(√Σr²/2) in halves
    return np.where(spread > 0, np.minimum(1.0, 2 * ndtr(-z)), 1.0)


def simulated_p(d: np.ndarray) -> tuple[np.ndarray, str]:
    """(p per row of ``d``, method): exact up to ``EXACT_MAX_N`` columns, normal approximation beyond.

    The exact counts are computed in chunks of rows so memory stays near 16 MB whatever ``n_sim``.
    """
    d = np.round(np.atleast_2d(d), 12)  # float noise ties, as in the study's test
    n = d.shape[1]
    if n > EXACT_MAX_N:
        return normal_signed_rank_p(d), "normal"
    chunk = max(1, 2_000_000 // (n * (n + 1) + 1))
    return np.concatenate([exact_signed_rank_p(d[i:i + chunk]) for i in range(0, len(d), chunk)]), "exact"


def holm_rows(p: np.ndarray, family_size: int | None = None) -> np.ndarray:
    """Holm-adjusted p per row of ``p`` (n_sim × k), vectorised; the same step-down rule as
    :func:`functions.analysis.stats.holm`.

    ``family_size`` m ≥ k counts comparisons of the family that are not simulated; they are taken as never
    significant (p = 1), so the k simulated ones face the multipliers m, m−1, … — with k = 1 this is the
    Bonferroni bound p·m, what Holm asks of the smallest p.
    """
    k = p.shape[1]
    m = k if family_size is None else int(family_size)
    if m < k:
        raise ValueError(f"family_size must be ≥ the {k} simulated arms, got {family_size!r}")
    order = np.argsort(p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1) * (m - np.arange(k))[None, :]
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=1))
    adjusted = np.empty_like(adjusted_sorted)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=1)
    return adjusted


def family_power(samples: np.ndarray, alpha: float, family_size: int | None = None) -> tuple[np.ndarray, str]:
    """(share of simulations in which each arm is Holm-significant, method) for ``samples`` (n_sim × n × k)."""
    n_sim, n, k = samples.shape
    p, method = simulated_p(samples.transpose(0, 2, 1).reshape(n_sim * k, n))
    return (holm_rows(p.reshape(n_sim, k), family_size) < alpha).mean(axis=0), method


# ----------------------------------------------------------------------------- inputs
def as_family(diffs_by_arm: Mapping[str, Iterable[float]] | Iterable[float]) -> tuple[list[str], np.ndarray]:
    """(arm names, differences as a repeats × arms matrix) from a dict of arrays or one array.

    The arrays of a dict are paired by position (the repeat), so they must have one length and no NaN.
    """
    if not isinstance(diffs_by_arm, Mapping):
        diffs_by_arm = {"arm": diffs_by_arm}
    if not diffs_by_arm:
        raise ValueError("diffs_by_arm is empty: pass one array of paired differences or a dict of them")
    columns = {str(arm): np.asarray(list(d), dtype=float) for arm, d in diffs_by_arm.items()}
    lengths = {arm: d.size for arm, d in columns.items()}
    if len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"diffs_by_arm must hold one nonempty array per arm, all of one length (paired by "
                         f"repeat); lengths: {lengths}")
    with_nan = [arm for arm, d in columns.items() if np.isnan(d).any()]
    if with_nan:
        raise ValueError(f"diffs_by_arm has NaN for arms {with_nan}: keep the repeats every arm has")
    return list(columns), np.column_stack(list(columns.values()))


def bootstrap_sampler(matrix: np.ndarray) -> Sampler:
    """Draws whole repeats (rows of ``matrix``) with replacement: the arms stay paired by repeat."""
    def sample(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        return matrix[rng.integers(0, len(matrix), size=shape)]
    return sample


def shifted(matrix: np.ndarray, column: int, effect: float) -> np.ndarray:
    """``matrix`` with one arm's differences moved so their median is ``effect`` (the spread is kept)."""
    out = matrix.copy()
    out[:, column] += effect - np.median(matrix[:, column])
    return out


def _check_args(n_values: Iterable[int], alpha: float, n_sim: int) -> list[int]:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)) or n_sim < 1:
        raise ValueError(f"n_sim must be an integer ≥ 1, got {n_sim!r}")
    values = sorted({int(n) for n in n_values})
    if not values or values[0] < 1 or any(float(n) != int(n) for n in n_values):
        raise ValueError(f"n_values must be integers ≥ 1 (numbers of repeats), got {list(n_values)!r}")
    return values


# ----------------------------------------------------------------------------- curves
def _draw(sample: Sampler, rng: np.random.Generator, n_sim: int, n: int) -> np.ndarray:
    """A sampler's draws as n_sim × n × k, with a clear error for a wrong shape."""
    draws = np.asarray(sample(rng, (n_sim, n)), dtype=float)
    draws = draws[..., None] if draws.ndim == 2 else draws
    if draws.ndim != 3 or draws.shape[:2] != (n_sim, n):
        raise ValueError(f"sampler(rng, {(n_sim, n)}) must return shape (n_sim, n) or (n_sim, n, k), "
                         f"got {np.shape(draws)}")
    return draws


def _curve_rows(sample: Sampler, names: list[str], keep: list[int], medians: list[float] | None,
                kind: str, n_values: list[int], alpha: float, n_sim: int, seed: int,
                family_size: int | None) -> list[dict]:
    """One row per (kept arm, n). Each n draws from its own generator seeded by (seed, n), so the power at
    n does not depend on which other n are asked for."""
    rows = []
    for n in n_values:
        draws = _draw(sample, np.random.default_rng([seed, n]), n_sim, n)
        if draws.shape[2] != len(names):
            raise ValueError(f"the sampler draws {draws.shape[2]} arms but {len(names)} are named: {names}")
        powers, method = family_power(draws, alpha, family_size)
        drawn = np.median(draws.reshape(-1, draws.shape[2]), axis=0)
        for j in keep:
            power = float(powers[j])
            rows.append({"arm": names[j], "effect_kind": kind,
                         "effect": float(drawn[j] if medians is None else medians[j]), "n": n, "power": power,
                         "mcse": float(np.sqrt(power * (1 - power) / n_sim)), "alpha": alpha,
                         "family_size": family_size or len(names), "n_sim": n_sim, "p_method": method})
    return rows


def power_curve(diffs_by_arm: Mapping[str, Iterable[float]] | Iterable[float] | None = None,
                arm: str | None = None, n_values: Iterable[int] = DEFAULT_N, alpha: float = 0.05,
                n_sim: int = 2000, seed: int = 0, effect: float | None = None, family_size: int | None = None,
                sampler: Sampler | None = None) -> pd.DataFrame:
    """Power of the study's test (exact Wilcoxon per arm, Holm over the family) against repeats n.

    ``diffs_by_arm``: the pilot's paired differences (arm − baseline), one array, or a dict {arm: array}
    paired by position — the family the verdict corrects over; repeats are resampled jointly across arms
    (seeded). ``family_size`` adds comparisons that are not simulated (taken as never significant; with one
    array: Holm's smallest-p bound p·m < alpha). ``effect``: shift the arm's differences so their median is
    ``effect`` (one simulation per shifted arm); ``sampler(rng, (n_sim, n))`` replaces the resampling (a
    known distribution; ``effect`` then is not available). ``arm`` keeps one arm (default: every arm).

    Columns: arm, effect_kind ("observed" / "named" / "sampler"), effect (median of the differences drawn
    from), n, power, mcse (its Monte-Carlo standard error), alpha, family_size, n_sim, p_method.
    """
    n_values = _check_args(n_values, alpha, n_sim)
    if sampler is not None:
        if effect is not None:
            raise ValueError("effect cannot shift a sampler's draws: shift them in the sampler")
        k = _draw(sampler, np.random.default_rng(seed), 1, 1).shape[2]
        names = list(diffs_by_arm) if isinstance(diffs_by_arm, Mapping) else (
            ["arm"] if k == 1 else [f"arm {j}" for j in range(k)])
        rows = _curve_rows(sampler, names, _keep(names, arm), None, "sampler", n_values, alpha, n_sim, seed,
                           family_size)
        return pd.DataFrame(rows, columns=CURVE_COLUMNS)
    if diffs_by_arm is None:
        raise ValueError("pass diffs_by_arm (the pilot's paired differences) or a sampler")
    names, matrix = as_family(diffs_by_arm)
    keep = _keep(names, arm)
    if effect is None:
        rows = _curve_rows(bootstrap_sampler(matrix), names, keep, list(np.median(matrix, axis=0)), "observed",
                           n_values, alpha, n_sim, seed, family_size)
    else:
        rows = [row for j in keep for row in _curve_rows(
            bootstrap_sampler(shifted(matrix, j, float(effect))), names, [j], [float(effect)] * len(names),
            "named", n_values, alpha, n_sim, seed, family_size)]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _keep(names: list[str], arm: str | None) -> list[int]:
    if arm is None:
        return list(range(len(names)))
    if str(arm) not in names:
        raise ValueError(f"arm {arm!r} is not in the family; arms: {names}")
    return [names.index(str(arm))]


def repeats_needed(curve: pd.DataFrame, target: float = TARGET, arm: str | None = None,
                   effect_kind: str | None = None) -> int | None:
    """The smallest n of ``curve`` (:func:`power_curve`) whose power reaches ``target``; None when even the
    largest n tried falls short (more repeats are needed than were simulated).

    ``arm``/``effect_kind`` pick one curve when ``curve`` holds several.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target!r}")
    rows = curve
    for column, value in (("arm", arm), ("effect_kind", effect_kind)):
        if value is not None:
            rows = rows[rows[column] == value]
        elif rows[column].nunique() > 1:
            raise ValueError(f"curve holds several {column} values {sorted(rows[column].unique())}: pass {column}=")
    if rows.empty:
        raise ValueError(f"curve has no rows for arm={arm!r}, effect_kind={effect_kind!r}")
    reached = rows.loc[rows["power"] >= target, "n"]
    return int(reached.min()) if len(reached) else None


# ----------------------------------------------------------------------------- advisor
def family_differences(df: pd.DataFrame, study: str, fraction: float, metric: str = "test_acc",
                       arm_col: str = "arm", pair_col: str = "repeat", baseline: str = "baseline") -> pd.DataFrame:
    """Repeat × arm table of the paired differences arm − baseline of one (study, fraction), arms in cut
    order; NaN where an arm or the baseline lacks the repeat."""
    missing = [c for c in ("study", "fraction", arm_col, pair_col, metric) if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}; columns: {list(df.columns)}")
    rows = df[(df["study"] == study) & np.isclose(df["fraction"].astype(float), float(fraction))
              & df[metric].notna()]
    if rows.empty:
        raise ValueError(f"df has no {metric} rows for study {study!r} at fraction {fraction!r}; studies: "
                         f"{sorted(df['study'].dropna().unique())}, fractions: {sorted(df['fraction'].unique())}")
    if rows.duplicated([arm_col, pair_col]).any():
        raise ValueError(f"several rows share one ({arm_col}, {pair_col}) for {study!r} at {fraction!r}: pairing "
                         "is ambiguous; keep one condition / setting / lr (e.g. filter on 'condition') first")
    wide = rows.pivot(index=pair_col, columns=arm_col, values=metric)
    if baseline not in wide.columns:
        raise ValueError(f"baseline {baseline!r} is not a value of {arm_col!r} there; values: {list(wide.columns)}")
    arms = sorted((a for a in wide.columns if a != baseline), key=arm_sort_key)
    return wide[arms].sub(wide[baseline], axis=0)


def family_curves(df: pd.DataFrame, study: str, fraction: float, effect: float | None = None,
                  n_values: Iterable[int] = DEFAULT_N, alpha: float = 0.05, n_sim: int = 1000, seed: int = 0,
                  **columns) -> pd.DataFrame:
    """:func:`power_curve` of every arm of one (study, fraction) against the baseline, the family being those
    arms, on the repeats every arm has; the current number of repeats is added to ``n_values``. With
    ``effect`` the named-effect curves follow the observed ones. ``columns``: metric, arm_col, pair_col,
    baseline of :func:`family_differences`. Columns: study, fraction, then :func:`power_curve`'s."""
    joint = family_differences(df, study, fraction, **columns).dropna()
    if joint.empty:
        raise ValueError(f"no repeat of {study!r} at {fraction!r} has every arm and the baseline")
    diffs = {str(arm): joint[arm].to_numpy(float) for arm in joint.columns}
    n_values = sorted(set(int(n) for n in n_values) | {len(joint)})
    parts = [power_curve(diffs, n_values=n_values, alpha=alpha, n_sim=n_sim, seed=seed)]
    if effect is not None:
        parts.append(power_curve(diffs, n_values=n_values, alpha=alpha, n_sim=n_sim, seed=seed, effect=effect))
    curves = pd.concat(parts, ignore_index=True)
    curves.insert(0, "fraction", fraction)
    curves.insert(0, "study", study)
    return curves


def _gain_text(value: float, metric: str) -> str:
    """Accuracy differences in percentage points (+0.6 points), anything else as it is."""
    return f"{100 * value:+.1f} points" if metric.endswith("_acc") else f"{value:+.3g}"


def _advice(arm: str, gain: str, fraction: float, needed: int | None, largest: int, n_now: int,
            power_now: float, target: float) -> str:
    """The sentence of one arm: the repeats needed for ``target`` power, and where the pilot stands."""
    at = f"{arm}: to confirm the {gain} at {100 * fraction:g} %"
    now = f"power now {100 * power_now:.0f} % with {n_now} repeats"
    if needed is None:
        return f"{at} you need more than {largest} repeats ({100 * target:.0f} % power not reached; {now})"
    return f"{at} you need about {needed} repeats for {100 * target:.0f} % power ({now})"


def advise_repeats(df: pd.DataFrame, study: str, fraction: float, effect: float | None = None,
                   target: float = TARGET, n_values: Iterable[int] = DEFAULT_N, alpha: float = 0.05,
                   n_sim: int = 1000, seed: int = 0, metric: str = "test_acc", arm_col: str = "arm",
                   pair_col: str = "repeat", baseline: str = "baseline",
                   curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per arm of one (study, fraction): how its comparison with the baseline stands, and how many repeats
    would make it conclusive.

    Columns: study, fraction, arm, n_pairs (repeats the arm shares with the baseline), n_joint (repeats
    every arm has: what the simulation resamples), median_gain (median paired difference, metric units),
    p (exact Wilcoxon on the n_pairs), p_holm (Holm over the arms, as the verdict), power_now (simulated at
    n_joint), repeats_needed (for ``target`` power at the observed effect; NA: not reached by the largest
    n), named_effect/repeats_for_named (with ``effect``), advice (a sentence). ``curves``: the
    :func:`family_curves` of the same call, to reuse them (e.g. for :func:`power_figure`).
    """
    columns = dict(metric=metric, arm_col=arm_col, pair_col=pair_col, baseline=baseline)
    wide = family_differences(df, study, fraction, **columns)
    if curves is None:
        curves = family_curves(df, study, fraction, effect, n_values, alpha, n_sim, seed, **columns)
    n_joint, largest = len(wide.dropna()), int(curves["n"].max())
    p = [signed_rank_test(wide[arm].dropna())["p"] for arm in wide.columns]
    records = []
    for arm, p_arm, p_holm in zip(wide.columns, p, holm(p)):
        mine = curves[curves["arm"] == str(arm)]
        observed = mine[mine["effect_kind"] == "observed"]
        gain = float(np.median(clean_differences(wide[arm]))) if wide[arm].notna().any() else np.nan
        needed = repeats_needed(observed, target)
        at_now = observed.loc[observed["n"] == n_joint, "power"]
        power_now = float(at_now.iloc[0]) if len(at_now) else np.nan  # curves passed in may lack n_joint
        advice = _advice(str(arm), _gain_text(gain, metric), fraction, needed, largest, n_joint, power_now, target)
        named = repeats_needed(mine[mine["effect_kind"] == "named"], target) if effect is not None else None
        if effect is not None:
            advice += (f"; for {_gain_text(effect, metric)} about {named} repeats" if named is not None
                       else f"; for {_gain_text(effect, metric)} more than {largest}")
        records.append({"study": study, "fraction": fraction, "arm": arm, "n_pairs": int(wide[arm].notna().sum()),
                        "n_joint": n_joint, "median_gain": gain, "p": p_arm, "p_holm": float(p_holm),
                        "power_now": power_now, "repeats_needed": needed,
                        "named_effect": np.nan if effect is None else float(effect), "repeats_for_named": named,
                        "advice": advice})
    out = pd.DataFrame(records)
    for column in ("repeats_needed", "repeats_for_named"):
        out[column] = out[column].astype("Int64")
    return out


# ----------------------------------------------------------------------------- figure
def power_figure(curves: pd.DataFrame, target: float = TARGET, ax=None, title: str | None = None) -> Figure:
    """Power against repeats, one line per arm (dashed: a named effect), the ``target`` line across.

    ``curves``: :func:`power_curve` or :func:`family_curves`. The x axis is logarithmic in repeats, so the
    small n where the test cannot reject at all stay readable.
    """
    missing = [c for c in ("arm", "effect_kind", "effect", "n", "power") if c not in curves.columns]
    if missing or curves.empty:
        raise ValueError(f"curves must be a nonempty power_curve frame; missing columns {missing}")
    use_style()
    fig, ax = (plt.subplots(figsize=(6, 4), layout="constrained") if ax is None else (ax.figure, ax))
    arms = sorted(curves["arm"].unique(), key=arm_sort_key)
    colors = dict(zip(arms, plt.get_cmap("viridis_r")(np.linspace(0.2, 0.95, len(arms)))))
    for (arm, kind), line in curves.groupby(["arm", "effect_kind"], sort=False):
        line = line.sort_values("n")
        label = f"{arm} (median {100 * line['effect'].iloc[0]:+.1f} pts" + (", named)" if kind == "named" else ")")
        ax.plot(line["n"], line["power"], marker="o", ms=3, color=colors[arm],
                linestyle="--" if kind == "named" else "-", label=label)
    ax.axhline(target, color="0.3", linewidth=1, linestyle=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(curves["n"].unique()), [str(n) for n in sorted(curves["n"].unique())])
    ax.set(xlabel="paired repeats", ylabel="power (Holm-significant)", ylim=(0, 1.02))
    ax.set_title(title or f"power of the exact Wilcoxon + Holm; {100 * target:.0f} % line")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def advise_study(df: pd.DataFrame, condition: str | None = None, n_sim: int = 400, seed: int = 0,
                 min_repeats: int = 4) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The advisor for a study notebook: :func:`advise_repeats` of every (study, fraction) with at least
    ``min_repeats`` repeats (rows of ``condition`` and the baseline when ``condition`` is given), and the
    :func:`family_curves` of the fraction whose open comparisons need the most repeats (None when every
    comparison is settled or too few repeats exist). Returns (advice, curves)."""
    rows = df if condition is None else df[df["condition"].isin([condition, "baseline"])]
    tables, curves, worst = [], None, -1
    for (study, fraction), part in rows.groupby(["study", "fraction"], sort=True):
        if part["arm"].nunique() < 2 or part["repeat"].nunique() < min_repeats:
            continue
        fam = family_curves(part, study, fraction, n_sim=n_sim, seed=seed)
        advice = advise_repeats(part, study, fraction, n_sim=n_sim, seed=seed, curves=fam)
        tables.append(advice)
        open_needed = advice.loc[~(advice["p_holm"] < 0.05), "repeats_needed"].fillna(10 ** 6)
        if len(open_needed) and open_needed.max() > worst:
            worst, curves = open_needed.max(), fam
    advice = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["study", "fraction", "arm",
                                                                                       "advice"])
    return advice, curves
