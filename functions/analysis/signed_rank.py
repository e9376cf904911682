"""The Wilcoxon signed-rank test done exactly, and the Hodges–Lehmann interval that matches it.

Test accuracies are multiples of 1/n_test, so paired differences tie and are often exactly zero; scipy's
Wilcoxon then falls back to a normal approximation. Here zero differences follow Pratt (ranked with the
others, then left out of the statistic), ties get midranks, and the two-sided p is exact — counted over
all 2**n' sign patterns of the n' nonzero differences — up to ``EXACT_MAX_N`` of them, a seeded
Monte-Carlo over ``MC_DRAWS`` sign draws beyond. :mod:`functions.analysis.stats` builds its paired tests
and vs-baseline intervals on these; :mod:`functions.analysis.power` simulates them.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import numpy as np
from scipy import stats as sps

# Differences are rounded before ranking so that accuracies that differ only by float noise count as
# ties (accuracies are multiples of 1/n_test; 1e-12 is far below any real difference).
DIFF_DECIMALS = 12
EXACT_MAX_N = 20  # exact counts up to 2**20 sign patterns; a Monte-Carlo beyond
MC_DRAWS = 200_000
TOO_SMALL = "n too small"  # the note of a Hodges–Lehmann interval that cannot reach the asked level


def clean_differences(differences: Iterable[float]) -> np.ndarray:
    """Paired differences as floats, NaN dropped, rounded so float noise ties (see ``DIFF_DECIMALS``)."""
    d = np.round(np.asarray(list(differences), dtype=float), DIFF_DECIMALS)
    return d[~np.isnan(d)]


def pratt_ranks2(d: np.ndarray) -> np.ndarray:
    """Twice the Pratt midranks of ``|d|`` along the last axis, as integers; 0 where ``d`` is zero.

    Zeros are ranked with the rest (so they push the others' ranks up) and then carry no rank. Doubling
    keeps midranks (k + ½) whole, so every sum below is exact integer arithmetic.
    """
    ranks2 = np.rint(2 * sps.rankdata(np.abs(d), axis=-1)).astype(np.int64)
    return np.where(d == 0, 0, ranks2)


def sign_counts(ranks2: np.ndarray) -> np.ndarray:
    """Per row of ``ranks2`` (batch × n, integers ≥ 0): how many of the 2**n sign patterns give each value
    of the positive-rank sum (columns 0 … max row sum).

    The generating function ∏(1 + x**r) expanded one rank at a time — the same counts as enumerating every
    sign pattern, in n vectorised steps. A zero rank doubles every count, which leaves proportions intact.
    """
    ranks2 = np.atleast_2d(ranks2)
    width = int(ranks2.sum(axis=1).max()) + 1
    counts = np.zeros((ranks2.shape[0], width))
    counts[:, 0] = 1.0
    columns, rows = np.arange(width), np.arange(ranks2.shape[0])[:, None]
    for r in ranks2.T:
        source = columns[None, :] - r[:, None]
        counts = counts + np.where(source >= 0, counts[rows, np.maximum(source, 0)], 0.0)
    return counts


def _extreme(values: np.ndarray, total: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Positive-rank sums at least as far from their null mean (total / 2) as the observed one."""
    return np.abs(2 * values - total) >= np.abs(2 * observed - total)


def exact_signed_rank_p(d: np.ndarray) -> np.ndarray:
    """Exact two-sided Pratt signed-rank p for each row of ``d`` (batch × n; keep n ≤ ``EXACT_MAX_N``).

    p = share of the 2**n sign patterns whose positive-rank sum lies at least as far from the null mean
    as the observed one (the null distribution is symmetric, so this is the usual doubled tail).
    """
    d = np.atleast_2d(d)
    ranks2 = pratt_ranks2(d)
    counts = sign_counts(ranks2)
    total = ranks2.sum(axis=1, keepdims=True)
    observed = np.where(d > 0, ranks2, 0).sum(axis=1, keepdims=True)
    values = np.arange(counts.shape[1])[None, :]
    return np.minimum(1.0, (counts * _extreme(values, total, observed)).sum(axis=1) / 2.0 ** d.shape[1])


def _monte_carlo_p(ranks2: np.ndarray, positive: np.ndarray, draws: int, seed: int) -> float:
    """(1 + extreme draws) / (1 + draws) over ``draws`` random sign patterns, drawn in batches."""
    rng = np.random.default_rng(seed)
    total, observed = ranks2.sum(), ranks2[positive].sum()
    extreme, done = 0, 0
    while done < draws:
        size = min(20_000, draws - done)
        values = rng.integers(0, 2, size=(size, ranks2.size)) @ ranks2
        extreme, done = extreme + int(_extreme(values, total, observed).sum()), done + size
    return (1 + extreme) / (1 + draws)


def signed_rank_test(differences: Iterable[float], max_exact: int = EXACT_MAX_N, draws: int = MC_DRAWS,
                     seed: int = 0) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired differences, Pratt zeros and midranks for ties.

    Returns ``statistic`` (the smaller of the positive and negative rank sums, Pratt ranks), ``p``,
    ``n_effective`` (nonzero differences), ``n_zero`` and ``p_method``: ``"exact"`` (n_effective ≤
    ``max_exact``), ``"monte carlo"`` (seeded, ``draws`` sign patterns, p = (1 + extreme)/(1 + draws)) or
    ``"none"`` (no differences: NaN). All differences zero → statistic 0, p 1.
    """
    d = clean_differences(differences)
    nonzero = d[d != 0]
    result = {"statistic": np.nan, "p": np.nan, "n_effective": int(nonzero.size),
              "n_zero": int(d.size - nonzero.size), "p_method": "none"}
    if d.size == 0:
        return result
    if nonzero.size == 0:  # every sign pattern gives the same (empty) statistic
        return {**result, "statistic": 0.0, "p": 1.0, "p_method": "exact"}
    ranks2 = pratt_ranks2(d)[d != 0]
    plus = ranks2[nonzero > 0].sum()
    result["statistic"] = float(min(plus, ranks2.sum() - plus)) / 2
    if nonzero.size <= max_exact:
        return {**result, "p": float(exact_signed_rank_p(d)[0]), "p_method": "exact"}
    return {**result, "p": float(min(1.0, _monte_carlo_p(ranks2, nonzero > 0, draws, seed))),
            "p_method": "monte carlo"}


@lru_cache(maxsize=None)
def signed_rank_null(n: int) -> np.ndarray:
    """Counts of the positive-rank sum 0 … n(n+1)/2 over the 2**n sign patterns, ranks 1 … n (no ties)."""
    return sign_counts(np.arange(1, n + 1)[None, :])[0]


def hodges_lehmann(differences: Iterable[float], ci: float = 0.95) -> dict:
    """Hodges–Lehmann shift (median of the Walsh averages (d_i + d_j)/2, i ≤ j) with its exact
    Wilcoxon-inverted interval.

    With M Walsh averages sorted, the interval is [W_(k), W_(M+1−k)], k the number of values t with
    P(T ≤ t) ≤ (1 − ci)/2 under the exact no-tie null of the signed-rank statistic T for n differences
    (:func:`signed_rank_null`). Because T is discrete the ``achieved`` level 1 − 2·P(T ≤ k−1) is at least
    ``ci``. When even k = 1 is too wide a tail (n < 6 at 95 %) bounds are NaN and ``note`` says ``"n too
    small"``. Keys: estimate, low, high, achieved, note, n.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    d = clean_differences(differences)
    out = {"estimate": np.nan, "low": np.nan, "high": np.nan, "achieved": np.nan, "note": "no pairs", "n": d.size}
    if d.size == 0:
        return out
    i, j = np.triu_indices(d.size)
    walsh = np.sort((d[i] + d[j]) / 2)
    cdf = np.cumsum(signed_rank_null(int(d.size))) / 2.0 ** d.size
    k = int(np.searchsorted(cdf, (1 - ci) / 2, side="right"))
    out.update(estimate=float(np.median(walsh)), note=TOO_SMALL if k == 0 else None)
    if k:
        out.update(low=float(walsh[k - 1]), high=float(walsh[walsh.size - k]), achieved=float(1 - 2 * cdf[k - 1]))
    return out
