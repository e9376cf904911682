"""Paired statistics over repeats: exact Wilcoxon signed-rank tests with Holm correction, Hodges–Lehmann
intervals, rank groups, bootstrap confidence intervals, effects against the baseline, and power warnings.

Repeats are paired across arms by ``pair_col`` (the repeat index, which seeds the training subset), so
every comparison is a paired one on the repeats both arms have. Every function works per group of
``by`` columns (default: one group per study and fraction) and returns a tidy frame. The test itself
(Pratt zeros, midranks, exact up to 20 nonzero differences) lives in :mod:`functions.analysis.signed_rank`.
"""
from __future__ import annotations

import gc
import string
import zlib
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from functions.analysis.results import arm_sort_key, sort_arms
from functions.analysis.signed_rank import (EXACT_MAX_N, MC_DRAWS, clean_differences, hodges_lehmann,
                                            signed_rank_test)

BOOTSTRAP_STATS = ("median", "iqm", "mean")
DEFAULT_BY = ("study", "fraction")


# ----------------------------------------------------------------------------- power
def min_wilcoxon_p(n: int, max_exact: int = EXACT_MAX_N, draws: int = MC_DRAWS) -> float:
    """Smallest two-sided p :func:`signed_rank_test` can give with ``n`` nonzero paired differences.

    Exact (n ≤ ``max_exact``): ``2**(1-n)``, when all differences have one sign (one of the ``2**n``
    equally likely sign patterns at each tail). Monte-Carlo beyond: never below ``1/(1+draws)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer ≥ 1 (number of pairs), got {n!r}")
    exact = float(2.0 ** (1 - int(n)))
    return exact if n <= max_exact else max(exact, 1.0 / (1 + draws))


def power_warning(n_pairs: int, n_comparisons: int = 1, alpha: float = 0.05, n_zero: int = 0) -> str | None:
    """A message when no comparison can be significant, else None.

    With Holm's correction the smallest p-value is multiplied by the number of comparisons, so the best
    attainable adjusted p is ``min(1, n_comparisons * min_wilcoxon_p(n))``; when that is ≥ ``alpha`` no
    difference can ever be declared significant, whatever the data. ``n_zero`` paired differences that
    are zero carry no sign, so only ``n_pairs - n_zero`` count (Pratt).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(n_comparisons, bool) or not isinstance(n_comparisons, (int, np.integer)) or n_comparisons < 1:
        raise ValueError(f"n_comparisons must be an integer ≥ 1, got {n_comparisons!r}")
    if n_pairs < 1:
        return "no paired repeats: nothing can be tested"
    if n_zero >= n_pairs:
        return f"all {n_pairs} paired differences are zero: nothing can be significant"
    smallest = min_wilcoxon_p(int(n_pairs - n_zero))
    repeats = f"{n_pairs} paired repeats" + (f" ({n_zero} with zero difference)" if n_zero else "")
    if n_comparisons == 1:
        if smallest < alpha:
            return None
        return (f"with {repeats} the smallest two-sided exact Wilcoxon p is {smallest:g} "
                f"≥ {alpha:g}: no difference can be significant")
    adjusted = min(1.0, smallest * n_comparisons)
    if adjusted < alpha:
        return None
    return (f"with {repeats} the smallest two-sided exact Wilcoxon p is {smallest:g}, "
            f"×{n_comparisons} comparisons (Holm) = {adjusted:g} ≥ {alpha:g}: no difference can be significant")


# ----------------------------------------------------------------------------- helpers
def _normalise_by(by: str | Iterable[str] | None) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _check_frame(df: pd.DataFrame, metric: str, arm_col: str, by: list[str], pair_col: str | None) -> None:
    """Clear errors for missing columns and for rows that make pairing ambiguous."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    named = {"metric": metric, "arm_col": arm_col, **{f"by[{i}]": c for i, c in enumerate(by)}}
    if pair_col is not None:
        named["pair_col"] = pair_col
    missing = {arg: col for arg, col in named.items() if col not in df.columns}
    if missing:
        raise ValueError(f"df has no column(s) {missing}; columns: {list(df.columns)}")
    if pair_col is None:
        return
    keys = by + [arm_col, pair_col]
    duplicated = df[df[metric].notna()].duplicated(keys, keep=False)
    if duplicated.any():
        examples = df[df[metric].notna()][duplicated][keys].drop_duplicates().head(3).to_dict("records")
        raise ValueError(
            f"several rows share one (by…, {arm_col}, {pair_col}), e.g. {examples}: pairing is ambiguous. "
            "Add the column that tells them apart to `by` (e.g. 'condition', 'lr'), or call "
            "functions.analysis.results.expand_baselines(df) and use by=('study', 'setting', 'fraction')")


def _groups(df: pd.DataFrame, by: list[str]) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """(key tuple, rows) per group of ``by``; the whole frame when ``by`` is empty."""
    if not by:
        yield (), df
        return
    for key, rows in df.groupby(by, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), rows


def _norm_key(values: Iterable) -> tuple:
    """A group key usable for lookups: NaN (which never equals itself) becomes None."""
    return tuple(None if not isinstance(v, str) and pd.isna(v) else v for v in values)


def _arms(rows: pd.DataFrame, arm_col: str, metric: str) -> list:
    """Arms with at least one value of ``metric``, baseline first then by cut."""
    return sorted(rows.loc[rows[metric].notna(), arm_col].unique(), key=arm_sort_key)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _paired(rows: pd.DataFrame, metric: str, arm_col: str, pair_col: str) -> pd.DataFrame:
    """Metric as a pair × arm table (NaN where an arm lacks that repeat)."""
    present = rows[rows[metric].notna()]
    return present.pivot(index=pair_col, columns=arm_col, values=metric)


# ----------------------------------------------------------------------------- tests
TEST_COLUMNS = ["arm_a", "arm_b", "n_pairs", "n_dropped", "n_effective", "n_zero", "median_a", "median_b",
                "median_diff", "statistic", "p", "p_method", "p_holm", "significant", "warning"]


def wilcoxon_p(differences: Iterable[float]) -> tuple[float, float]:
    """(statistic, two-sided p) of :func:`signed_rank_test` on paired differences (NaN dropped).

    No differences → (NaN, NaN); all differences zero → (0, 1).
    """
    result = signed_rank_test(differences)
    return result["statistic"], result["p"]


def paired_tests(df: pd.DataFrame, metric: str = "test_acc", arm_col: str = "arm",
                 by: str | Iterable[str] = DEFAULT_BY, pair_col: str = "repeat",
                 alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of arms within each group, Holm-corrected per group.

    One row per (group…, arm_a, arm_b), arms in baseline, cut 0, cut 1 … order. Only repeats present in
    both arms are used (``n_pairs``); repeats present in just one are dropped and counted (``n_dropped``).
    ``median_a``/``median_b`` are the medians of those paired values, ``median_diff`` the median of the
    paired differences a − b. ``statistic``, ``p``, ``p_method``, ``n_effective`` (nonzero differences) and
    ``n_zero`` come from :func:`~functions.analysis.signed_rank.signed_rank_test` (exact, Pratt zeros);
    ``p_holm`` is Holm's step-down adjustment (statsmodels) over the comparisons of the group that could be
    tested; ``significant`` is ``p_holm < alpha``; ``warning`` is :func:`power_warning` for that
    comparison's pairs (less its zero differences) and the group's number of comparisons.
    """
    by = _normalise_by(by)
    _check_frame(df, metric, arm_col, by, pair_col)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    records = []
    for key, rows in _groups(df, by):
        arms = _arms(rows, arm_col, metric)
        table = _paired(rows, metric, arm_col, pair_col)
        group_records = []
        for i, arm_a in enumerate(arms):
            for arm_b in arms[i + 1:]:
                both = table[[arm_a, arm_b]]
                complete = both.dropna()
                n_dropped = int(both.notna().any(axis=1).sum()) - len(complete)
                a, b = complete[arm_a].to_numpy(float), complete[arm_b].to_numpy(float)
                group_records.append({
                    **dict(zip(by, key)), "arm_a": arm_a, "arm_b": arm_b, "n_pairs": len(complete),
                    "n_dropped": n_dropped,
                    "median_a": float(np.median(a)) if a.size else np.nan,
                    "median_b": float(np.median(b)) if b.size else np.nan,
                    "median_diff": float(np.median(a - b)) if a.size else np.nan,
                    **signed_rank_test(a - b),
                })
        tested = [r for r in group_records if not np.isnan(r["p"])]
        adjusted = holm([r["p"] for r in tested])
        for record, p_holm in zip(tested, adjusted):
            record["p_holm"] = float(p_holm)
        for record in group_records:
            record.setdefault("p_holm", np.nan)
            record["significant"] = bool(record["p_holm"] < alpha)
            record["warning"] = power_warning(record["n_pairs"], max(1, len(tested)), alpha, record["n_zero"])
        records.extend(group_records)
    if not records:
        return _empty(by + TEST_COLUMNS)
    return pd.DataFrame(records, columns=by + TEST_COLUMNS)


def _letters(index: int) -> str:
    """0 → a, 25 → z, 26 → aa, …"""
    letters = string.ascii_lowercase
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = letters[rest] + label
    return label


def _significance_lookup(tests: pd.DataFrame, by: list[str]) -> dict[tuple, dict[frozenset, bool]]:
    """{group key: {frozenset({arm_a, arm_b}): significant}} from a :func:`paired_tests` frame."""
    lookup: dict[tuple, dict[frozenset, bool]] = {}
    for row in tests.to_dict("records"):
        key = _norm_key(row[c] for c in by)
        lookup.setdefault(key, {})[frozenset((row["arm_a"], row["arm_b"]))] = bool(row["significant"])
    return lookup


def _warnings_by_arm(tests: pd.DataFrame, by: list[str]) -> dict[tuple, str]:
    """{(group…, arm): warning} when every comparison of that arm carries one (the best-powered one's)."""
    found: dict[tuple, tuple[int, str | None, bool]] = {}
    for row in tests.sort_values("n_pairs", kind="stable").to_dict("records"):
        for arm in (row["arm_a"], row["arm_b"]):
            key = _norm_key(row[c] for c in by) + (arm,)
            _, _, all_warned = found.get(key, (0, None, True))
            found[key] = (row["n_pairs"], row["warning"], all_warned and row["warning"] is not None)
    return {key: message for key, (_, message, all_warned) in found.items() if all_warned}


def rank_groups(df: pd.DataFrame, tests: pd.DataFrame | None = None, metric: str = "test_acc",
                arm_col: str = "arm", by: str | Iterable[str] = DEFAULT_BY, alpha: float = 0.05,
                pair_col: str = "repeat", higher_is_better: bool = True) -> pd.DataFrame:
    """Rank the arms of each group by median and group those not significantly different.

    One row per (group…, arm): ``n``, ``median`` (over all its values), ``rank`` (1 = best median, ties
    share the lower rank), ``group``/``group_label`` and ``warning``. Groups follow a simple
    compact-letter rule: walk the arms from best to worst median; the first arm opens group 1 ("a"), and
    each next arm joins the current group unless it differs significantly (Holm-adjusted, from ``tests``)
    from the *first* arm of that group, in which case it opens the next group ("b", …). Untested pairs
    count as not different. Because "not different" is not transitive, neighbouring groups can still hold
    arms that are not significantly different from each other; read the labels with the p-values.
    ``tests`` defaults to :func:`paired_tests` with the same arguments.
    """
    by = _normalise_by(by)
    _check_frame(df, metric, arm_col, by, None)
    if tests is None:
        tests = paired_tests(df, metric=metric, arm_col=arm_col, by=by, pair_col=pair_col, alpha=alpha)
    missing = [c for c in by + ["arm_a", "arm_b", "significant", "warning", "n_pairs"] if c not in tests.columns]
    if missing:
        raise ValueError(f"tests lacks columns {missing}; pass the frame returned by paired_tests")
    significant = _significance_lookup(tests, by)
    warned = _warnings_by_arm(tests, by)
    records = []
    for key, rows in _groups(df, by):
        values = rows[rows[metric].notna()].groupby(arm_col)[metric]
        summary = pd.DataFrame({"n": values.size(), "median": values.median()})
        if summary.empty:
            continue
        direction = -1.0 if higher_is_better else 1.0
        order = sorted(summary.index, key=lambda arm: (direction * summary.loc[arm, "median"], arm_sort_key(arm)))
        ranks = (direction * summary["median"]).rank(method="min").astype(int)
        pairs = significant.get(_norm_key(key), {})
        group, leader = 1, order[0]
        for arm in order:
            if arm != leader and pairs.get(frozenset((leader, arm)), False):
                group, leader = group + 1, arm
            records.append({
                **dict(zip(by, key)), "arm": arm, "n": int(summary.loc[arm, "n"]),
                "median": float(summary.loc[arm, "median"]), "rank": int(ranks[arm]),
                "group": group, "group_label": _letters(group - 1),
                "warning": warned.get(_norm_key(key) + (arm,)),
            })
    columns = by + ["arm", "n", "median", "rank", "group", "group_label", "warning"]
    return pd.DataFrame(records, columns=columns) if records else _empty(columns)


# ----------------------------------------------------------------------------- bootstrap
def _stat_function(stat: str):
    """Vectorised statistic over the last axis."""
    if stat == "median":
        return lambda x: np.median(x, axis=-1)
    if stat == "mean":
        return lambda x: np.mean(x, axis=-1)
    if stat == "iqm":  # interquartile mean: mean of the middle 50 %
        return lambda x: sps.trim_mean(x, 0.25, axis=-1)
    raise ValueError(f"stat {stat!r} is unknown; allowed: {list(BOOTSTRAP_STATS)}")


def _group_rng(seed: int, key: tuple) -> np.random.Generator:
    """A generator per group, so a group's interval does not depend on which other groups are present."""
    return np.random.default_rng([int(seed), zlib.crc32(repr(key).encode())])


def _bootstrap(values: np.ndarray, stat: str, n_boot: int, ci: float,
               rng: np.random.Generator) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap interval of ``stat`` by resampling ``values``.

    ``scipy.stats.bootstrap`` (``method="percentile"``, vectorised) drawing from ``rng``, so one group's
    interval depends only on its own generator. Resamples are drawn in batches of about 4M numbers to
    bound memory for large samples. One value (or none): the interval is that value (scipy would refuse).
    """
    function = _stat_function(stat)
    estimate = float(function(values))
    if values.size < 2:
        return estimate, estimate, estimate
    batch = max(1, min(n_boot, 4_000_000 // values.size))
    result = sps.bootstrap((values,), lambda x, axis=-1: function(x), n_resamples=n_boot, batch=batch,
                           confidence_level=ci, method="percentile", vectorized=True, rng=rng)
    return estimate, float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_median(values: Iterable[float], n_boot: int = 2000, seed: int = 0, key: tuple = (),
                     ci: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high) of ``values`` with its percentile bootstrap CI; ``key`` names the group so its
    interval does not depend on which other groups are computed (as in :func:`bootstrap_ci`)."""
    _check_bootstrap_args("median", n_boot, ci)
    return _bootstrap(np.asarray(list(values), dtype=float), "median", n_boot, ci, _group_rng(seed, tuple(key)))


def _check_bootstrap_args(stat: str, n_boot: int, ci: float) -> None:
    _stat_function(stat)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer ≥ 1, got {n_boot!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")


def bootstrap_ci(df: pd.DataFrame, metric: str = "test_acc", arm_col: str = "arm",
                 by: str | Iterable[str] = DEFAULT_BY, stat: str = "median", n_boot: int = 2000,
                 ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Percentile bootstrap CI of ``stat`` (median, iqm = mean of the middle 50 %, mean) per (group…, arm).

    ``scipy.stats.bootstrap`` (percentile, vectorised) resamples the arm's repeats with replacement;
    reproducible with ``seed`` (each group draws from its own generator seeded by ``seed`` and the group's
    key). With one value the interval is that value. Columns: group…, arm, stat, estimate, low, high, n.
    """
    by = _normalise_by(by)
    _check_frame(df, metric, arm_col, by, None)
    _check_bootstrap_args(stat, n_boot, ci)
    records = []
    for key, rows in _groups(df, by):
        present = rows[rows[metric].notna()]
        for arm in sorted(present[arm_col].unique(), key=arm_sort_key):
            values = present.loc[present[arm_col] == arm, metric].to_numpy(float)
            estimate, low, high = _bootstrap(values, stat, n_boot, ci, _group_rng(seed, tuple(key) + (arm,)))
            records.append({**dict(zip(by, key)), "arm": arm, "stat": stat, "estimate": estimate,
                            "low": low, "high": high, "n": int(values.size)})
    columns = by + ["arm", "stat", "estimate", "low", "high", "n"]
    return pd.DataFrame(records, columns=columns) if records else _empty(columns)


FAMILIES = ("vs_baseline", "all_pairs")
INTERVALS = ("hl", "bootstrap")
EFFECT_COLUMNS = ["arm", "n_pairs", "n_effective", "n_zero", "median_diff", "hl_estimate", "low", "high",
                  "ci_level", "ci_note", "p_holm", "significant"]


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: statsmodels'
    ``multipletests(p, method="holm")``, the one Holm of the package.

    NaN p-values (comparisons that could not be tested) stay NaN and are not counted in the family.
    statsmodels runs ``gc.collect()`` on every Holm call (≈80 ms with pandas, matplotlib and torch loaded;
    over half the explorer's redraw time was spent there), so the objects that exist already are frozen
    out of that collection for the duration of the call.
    """
    p = np.asarray(list(p_values), dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        gc.freeze()
        try:
            adjusted[tested] = multipletests(p[tested], method="holm")[1]
        finally:
            gc.unfreeze()
    return adjusted


def _baseline_family_p(tests: pd.DataFrame, by: list[str], baseline: str, alpha: float) -> dict:
    """(group…, arm, baseline) → (Holm p over the group's arm-vs-baseline tests, significant)."""
    lookup = {}
    against = tests[(tests["arm_a"] == baseline) | (tests["arm_b"] == baseline)]
    against = against[against["p"].notna()]
    for _, rows in (against.groupby(by, sort=False, dropna=False) if by else [((), against)]):
        for row, p_holm in zip(rows.to_dict("records"), holm(rows["p"])):
            key = _norm_key(row[c] for c in by)
            arm = row["arm_b"] if row["arm_a"] == baseline else row["arm_a"]
            lookup[key + (arm, baseline)] = (float(p_holm), bool(p_holm < alpha))
    return lookup


def effect_vs_baseline(df: pd.DataFrame, metric: str = "test_acc", arm_col: str = "arm",
                       baseline: str = "baseline", by: str | Iterable[str] = DEFAULT_BY, n_boot: int = 2000,
                       seed: int = 0, ci: float = 0.95, pair_col: str = "repeat", alpha: float = 0.05,
                       tests: pd.DataFrame | None = None, family: str = "vs_baseline",
                       interval: str = "hl") -> pd.DataFrame:
    """Paired effect of each arm against ``baseline`` per group: arm − baseline on shared repeats.

    Columns: group…, arm, n_pairs, n_effective/n_zero (nonzero/zero paired differences), median_diff (median
    of the paired differences, the headline), hl_estimate (Hodges–Lehmann shift), low/high, ci_level,
    ci_note, p_holm and significant (exact Wilcoxon p-values of :func:`paired_tests`). ``interval="hl"``
    (default): low/high is the exact Wilcoxon-inverted interval of the Hodges–Lehmann shift — the interval
    that matches the test — ``ci_level`` its achieved level (≥ ``ci``), and below 6 pairs (at 95 %) NaN with
    ``ci_note`` "n too small" (:func:`~functions.analysis.signed_rank.hodges_lehmann`);
    ``interval="bootstrap"``: the percentile bootstrap CI of the median difference (``n_boot``, ``seed``).
    ``family`` is what Holm corrects over within a group: ``"vs_baseline"`` (default) the arm-vs-baseline
    comparisons only — the many-to-one family that answers "does this arm beat the baseline?" — or
    ``"all_pairs"``, every pairwise comparison (the family the rank groups use; more conservative). Groups
    without the baseline arm are left out.
    """
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is unknown; allowed: {list(FAMILIES)}")
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r} is unknown; allowed: {list(INTERVALS)}")
    by = _normalise_by(by)
    _check_frame(df, metric, arm_col, by, pair_col)
    _check_bootstrap_args("median", n_boot, ci)
    if not (df[arm_col] == baseline).any():
        raise ValueError(f"baseline {baseline!r} is not a value of {arm_col!r}; "
                         f"values: {sort_arms(df[arm_col].dropna())}")
    if tests is None:
        tests = paired_tests(df, metric=metric, arm_col=arm_col, by=by, pair_col=pair_col, alpha=alpha)
    p_lookup = _baseline_family_p(tests, by, baseline, alpha) if family == "vs_baseline" else {}
    if family == "all_pairs":
        for row in tests.to_dict("records"):
            key = _norm_key(row[c] for c in by)
            p_lookup[key + (row["arm_a"], row["arm_b"])] = p_lookup[key + (row["arm_b"], row["arm_a"])] = (
                row["p_holm"], row["significant"])
    records = []
    for key, rows in _groups(df, by):
        table = _paired(rows, metric, arm_col, pair_col)
        if baseline not in table.columns:
            continue
        for arm in sorted(table.columns, key=arm_sort_key):
            if arm == baseline:
                continue
            complete = table[[arm, baseline]].dropna()
            diffs = (complete[arm] - complete[baseline]).to_numpy(float)
            rng = _group_rng(seed, tuple(key) + (arm, baseline))
            p_holm, significant = p_lookup.get(_norm_key(key) + (arm, baseline), (np.nan, False))
            records.append({**dict(zip(by, key)), "arm": arm, **_paired_effect(diffs, interval, n_boot, ci, rng),
                            "p_holm": p_holm, "significant": bool(significant)})
    columns = by + EFFECT_COLUMNS
    return pd.DataFrame(records, columns=columns) if records else _empty(columns)


def _paired_effect(diffs: np.ndarray, interval: str, n_boot: int, ci: float, rng: np.random.Generator) -> dict:
    """The effect columns of one arm's paired differences: counts, median, Hodges–Lehmann, interval."""
    nonzero = int(np.count_nonzero(clean_differences(diffs)))
    hl = hodges_lehmann(diffs, ci)
    out = {"n_pairs": int(diffs.size), "n_effective": nonzero, "n_zero": int(diffs.size) - nonzero,
           "median_diff": float(np.median(diffs)) if diffs.size else np.nan, "hl_estimate": hl["estimate"],
           "low": hl["low"], "high": hl["high"], "ci_level": hl["achieved"], "ci_note": hl["note"]}
    if interval == "bootstrap" and diffs.size:
        _, low, high = _bootstrap(diffs, "median", n_boot, ci, rng)
        out.update(low=low, high=high, ci_level=ci, ci_note=None)
    return out


def _baseline_family_warnings(table: pd.DataFrame, by: list[str], alpha: float) -> pd.Series:
    """Per row: :func:`power_warning` for its arm-vs-baseline comparison, the family being every arm of the
    group compared with the baseline (zero differences left out, as the test does); rows without such a
    comparison keep their warning."""
    compared = table["n_pairs"].notna()
    sizes = compared.groupby([table[c] for c in by], dropna=False).transform("sum") if by else \
        pd.Series(int(compared.sum()), index=table.index)
    return pd.Series([power_warning(int(n), max(1, int(m)), alpha, int(zero)) if has else old
                      for has, n, zero, m, old in zip(compared, table["n_pairs"], table["n_zero"], sizes,
                                                      table["warning"])],
                     index=table.index, dtype=object)


def summarize(df: pd.DataFrame, metric: str = "test_acc", arm_col: str = "arm",
              by: str | Iterable[str] = DEFAULT_BY, pair_col: str = "repeat", baseline: str = "baseline",
              alpha: float = 0.05, stat: str = "median", n_boot: int = 2000, ci: float = 0.95,
              seed: int = 0, higher_is_better: bool = True, family: str = "vs_baseline",
              interval: str = "hl") -> pd.DataFrame:
    """One row per (group…, arm): what a visualisations notebook prints.

    Rank groups use every pairwise comparison of a group; ``p_holm_vs_baseline`` is Holm-corrected over
    ``family`` (default: the arm-vs-baseline comparisons, see :func:`effect_vs_baseline`).

    Columns: n, median, rank, group, group_label; ``estimate``/``low``/``high`` (bootstrap CI of ``stat``);
    ``diff_vs_baseline`` (median paired difference)/``diff_low``/``diff_high`` (``interval``: the exact
    Hodges–Lehmann interval by default)/``diff_hl``/``diff_ci_level``/``diff_ci_note``/``n_pairs``/
    ``n_effective``/``n_zero``/``p_holm_vs_baseline``/``significant_vs_baseline`` (from
    :func:`effect_vs_baseline`; NaN for the baseline itself or when there is no baseline); ``warning``: for
    an arm compared with the baseline, the power warning of the family its ✓ is corrected over (``family``),
    for the baseline itself that of the rank groups.
    """
    by = _normalise_by(by)
    tests = paired_tests(df, metric=metric, arm_col=arm_col, by=by, pair_col=pair_col, alpha=alpha)
    ranked = rank_groups(df, tests=tests, metric=metric, arm_col=arm_col, by=by, alpha=alpha,
                         higher_is_better=higher_is_better)
    cis = bootstrap_ci(df, metric=metric, arm_col=arm_col, by=by, stat=stat, n_boot=n_boot, ci=ci, seed=seed)
    keys = by + ["arm"]
    table = ranked.merge(cis.drop(columns="n"), on=keys, how="left")
    effect_columns = ["diff_vs_baseline", "diff_low", "diff_high", "diff_hl", "diff_ci_level", "diff_ci_note",
                      "n_pairs", "n_effective", "n_zero", "p_holm_vs_baseline", "significant_vs_baseline"]
    if (df[arm_col] == baseline).any():
        effects = effect_vs_baseline(df, metric=metric, arm_col=arm_col, baseline=baseline, by=by,
                                     n_boot=n_boot, seed=seed, ci=ci, pair_col=pair_col, alpha=alpha,
                                     tests=tests, family=family, interval=interval)
        effects = effects.rename(columns={"median_diff": "diff_vs_baseline", "low": "diff_low",
                                          "high": "diff_high", "hl_estimate": "diff_hl",
                                          "ci_level": "diff_ci_level", "ci_note": "diff_ci_note",
                                          "p_holm": "p_holm_vs_baseline", "significant": "significant_vs_baseline"})
        table = table.merge(effects, on=keys, how="left")
        if family == "vs_baseline":
            table["warning"] = _baseline_family_warnings(table, by, alpha)
    else:
        for column in effect_columns:
            table[column] = np.nan
    for column in ("n_pairs", "n_effective", "n_zero"):
        table[column] = table[column].astype("Int64")
    order = ["n", "median", "stat", "estimate", "low", "high", "rank", "group", "group_label"]
    table = table[keys + order + effect_columns + ["warning"]]
    table["_arm_order"] = table["arm"].map(arm_sort_key)
    return table.sort_values(by + ["_arm_order"], kind="stable").drop(columns="_arm_order").reset_index(drop=True)
