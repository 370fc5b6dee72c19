"""KS and Wasserstein between a reference sample and a streamed batch, without keeping the batch.

The reference keeps its sorted distinct values u_0 < ... < u_{m-1} and their counts (its
"support"). A batch is summarised against that support by `count_on_support`:

- `equal[j]`: batch values equal to u_j;
- `gap[j]`, `gap_sum[j]`: count and sum of batch values strictly between u_{j-1} and u_j
  (gap 0 is below u_0, gap m above u_{m-1}).

These summaries add up across chunks, so a batch of any size is one pass of O(m) memory.

KS statistic. Both empirical CDFs are step functions, and between two support points the
reference's is flat while the batch's only rises, so the supremum of |F_b - F_r| is reached
at u_j or just below it. The statistic is therefore exact: equal to
`scipy.stats.ks_2samp(reference, batch).statistic`.

Wasserstein-1 = integral of |F_b - F_r|. Below u_0 and above u_{m-1} it is exact from the
gap sums, and so is every interval where F_b stays on one side of the flat F_r. Where F_b
crosses F_r inside an interval (u_j, u_{j+1}), the batch values' order inside it is not
kept: that interval's term is taken as if its values all sat at their (exact) mean, which
is exact when they coincide (a count feature moved off its integers), clamped to the range
the interval's exact summary allows, and the distance from that range's ends is added to
the returned error bound. Batches on the reference's support (discrete features) are
exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.errors import InvalidValueError


@dataclass(frozen=True)
class SupportCounts:
    """A batch summarised on the reference support (see the module docstring)."""

    equal: np.ndarray
    gap: np.ndarray
    gap_sum: np.ndarray

    @property
    def n(self) -> int:
        return int(self.equal.sum() + self.gap.sum())

    def __add__(self, other: SupportCounts) -> SupportCounts:
        return SupportCounts(
            self.equal + other.equal, self.gap + other.gap, self.gap_sum + other.gap_sum
        )


def empty_support_counts(support_size: int) -> SupportCounts:
    """The summary of no values, to accumulate chunks into."""
    return SupportCounts(
        np.zeros(support_size, dtype=np.int64),
        np.zeros(support_size + 1, dtype=np.int64),
        np.zeros(support_size + 1, dtype=np.float64),
    )


def count_on_support(values: np.ndarray, support: np.ndarray) -> SupportCounts:
    """Summarise the non-missing `values` on the sorted distinct reference `support`."""
    x = np.asarray(values, dtype=np.float64)
    # Only counts are kept, so order does not matter: sorted queries make the binary
    # searches walk the support in order (several times faster than random lookups).
    return count_sorted_on_support(np.sort(x[~np.isnan(x)]), support)


MERGE_FROM_VALUES = 20_000
"""From this many sorted values on, `count_sorted_on_support` merges them with the support
(`_first_not_below`); fewer are binary-searched: as fast per value (0.11 against 0.10 ms
for 5,000 values on 5,000 points), without the uniqueness check that the index's first
lookup makes, which costs more than the searches on a small batch."""


def count_sorted_on_support(x: np.ndarray, support: np.ndarray | pd.Index) -> SupportCounts:
    """`count_on_support` of values already sorted, without NaN. `support` may be given
    as a `pd.Index` of it, built once for many calls (`support_index`)."""
    table = None
    if isinstance(support, pd.Index):
        table, support = support, support.to_numpy()
    m, n = len(support), len(x)
    if m == 0:
        return SupportCounts(np.zeros(0, np.int64), np.array([n], np.int64), np.array([x.sum()]))
    if 8 * m < n:
        return _search_support_in_values(x, support)
    if n < MERGE_FROM_VALUES:
        index = np.searchsorted(support, x, side="left")
    else:
        index = _first_not_below(support_index(support) if table is None else table, x)
    gap = np.bincount(index, minlength=m + 1).astype(np.int64)
    on_point = support[np.minimum(index, m - 1)] == x
    if on_point.any():
        equal = np.bincount(index[on_point], minlength=m).astype(np.int64)
        gap[:m] -= equal
        weights = np.where(on_point, 0.0, x)
    else:  # continuous values seldom equal a reference value: nothing to split off
        equal, weights = np.zeros(m, dtype=np.int64), x
    gap_sum = np.bincount(index, weights=weights, minlength=m + 1)
    return SupportCounts(equal, gap, gap_sum)


def support_index(support: np.ndarray) -> pd.Index:
    """The sorted distinct reference values as an index for `count_sorted_on_support`."""
    return pd.Index(np.asarray(support, dtype=np.float64), copy=False)


def _first_not_below(table: pd.Index, x: np.ndarray) -> np.ndarray:
    """`np.searchsorted(support, x, side="left")` for sorted `x`: per value, how many support
    points lie below it. pandas' backfill indexer (first index value >= each target) walks
    two sorted arrays in one linear merge, O(n + m), about twice as fast as n binary
    searches whose branches the CPU cannot predict; -1 (past the last point) becomes m."""
    found = table.get_indexer(x, method="backfill")
    found[found < 0] = len(table)
    return found


def _search_support_in_values(x: np.ndarray, support: np.ndarray) -> SupportCounts:
    """Few support points (a count or coded feature): 2 m binary searches in the sorted
    values instead of n in the support; each gap's sum is added up from its own values."""
    n, m = len(x), len(support)
    first = np.searchsorted(x, support, side="left")  # values < u_j
    after = np.searchsorted(x, support, side="right")  # values <= u_j
    starts = np.concatenate(([0], after))
    ends = np.concatenate((first, [n]))
    gap = (ends - starts).astype(np.int64)
    gap_sum = np.zeros(m + 1)
    filled = np.flatnonzero(gap)
    if filled.size:
        bounds = np.empty(2 * filled.size, dtype=np.intp)
        bounds[0::2], bounds[1::2] = starts[filled], ends[filled]
        # reduceat sums x[bounds[i]:bounds[i+1]]; the appended 0 lets an end equal n.
        gap_sum[filled] = np.add.reduceat(np.append(x, 0.0), bounds)[0::2]
    return SupportCounts((after - first).astype(np.int64), gap, gap_sum)


@dataclass(frozen=True)
class SupportCDFs:
    """Both empirical CDFs at every support point u_j (`support_cdfs`), shared by the KS
    statistic and the Wasserstein distance of one column."""

    ref_at: np.ndarray  # F_r(u_j)
    ref_below: np.ndarray  # F_r just below u_j
    batch_at: np.ndarray  # F_b(u_j)
    batch_below: np.ndarray  # F_b just below u_j
    n_batch: float


def support_cdfs(support_counts: np.ndarray, batch: SupportCounts) -> SupportCDFs:
    """The CDFs of the reference (its count per support point) and of the batch."""
    ref = np.asarray(support_counts, dtype=np.float64)
    n_r = ref.sum()
    n_b = float(batch.n)
    if n_r <= 0 or n_b <= 0:
        raise InvalidValueError("KS and Wasserstein need at least one value on each side")
    ref_at = np.cumsum(ref) / n_r
    ref_below = np.concatenate(([0.0], ref_at[:-1]))
    gaps_through = np.cumsum(batch.gap[:-1])  # values < u_j that are not on the support
    through = gaps_through + np.cumsum(batch.equal)  # values <= u_j
    batch_at = through / n_b
    through -= batch.equal  # values < u_j
    return SupportCDFs(ref_at, ref_below, batch_at, through / n_b, n_b)


def ks_statistic(
    support_counts: np.ndarray, batch: SupportCounts, cdfs: SupportCDFs | None = None
) -> float:
    """Two-sample KS statistic sup |F_b - F_r|, exact (see module docstring). `cdfs`:
    `support_cdfs` of the same arguments, when already computed."""
    c = cdfs or support_cdfs(support_counts, batch)
    above = np.max(np.abs(c.batch_at - c.ref_at))
    return float(max(above, np.max(np.abs(c.batch_below - c.ref_below))))


def ks_pvalue(statistic: float, n_reference: int, n_batch: int) -> float:
    """Two-sided p-value, as `scipy.stats.ks_2samp`'s default (`method="auto"`) gives it.

    Up to 10,000 rows on both sides, the exact distribution of the two-sample statistic
    (`kolmogorov.ks_2samp_exact_sf`, equal to scipy's). Above that, Smirnov's limit, as
    scipy's `method="asymp"`: the one-sample KS distribution `kstwo` at the effective size
    round(n m / (n + m)), here from `kolmogorov.kstwo_sf`.
    """
    # lazy: `monitoring.core.config` imports ecdf
    from monitoring.stats.kolmogorov import EXACT_TWO_SAMPLE_MAX_N, ks_2samp_exact_sf, kstwo_sf

    m, n = sorted([int(n_reference), int(n_batch)], reverse=True)
    if n >= 1 and m <= EXACT_TWO_SAMPLE_MAX_N:
        return ks_2samp_exact_sf(float(statistic), m, n)
    effective = max(np.round(float(m) * n / (m + n)), 1.0)  # scipy divides by zero at 0
    return kstwo_sf(float(statistic), int(effective))


def wasserstein_distance(
    support: np.ndarray,
    support_counts: np.ndarray,
    batch: SupportCounts,
    cdfs: SupportCDFs | None = None,
) -> tuple[float, float]:
    """Wasserstein-1 distance between reference and batch, and a bound on its error.

    Returns (distance, error_bound): the exact distance lies within error_bound of the
    returned one (error_bound is 0 when no interval needed the approximation). `cdfs`:
    `support_cdfs(support_counts, batch)`, when already computed.
    """
    u = np.asarray(support, dtype=np.float64)
    c = cdfs or support_cdfs(support_counts, batch)
    ref_at, batch_at, n_b = c.ref_at, c.batch_at, c.n_batch
    # Below u_0 (F_r = 0) and above u_{m-1} (F_r = 1): exact.
    total = (batch.gap[0] * u[0] - batch.gap_sum[0]) / n_b
    total += (batch.gap_sum[-1] - batch.gap[-1] * u[-1]) / n_b
    if len(u) < 2:
        return float(total), 0.0
    width = np.diff(u)
    level = ref_at[:-1]  # F_r on [u_j, u_{j+1})
    low = batch_at[:-1]  # F_b at u_j
    inner_count = batch.gap[1:-1]
    inner_sum = batch.gap_sum[1:-1]
    high = low + inner_count / n_b  # F_b just below u_{j+1}
    # Exact integral of F_b over each interval: every value <= u_j counts for the whole
    # width, a value v inside counts for u_{j+1} - v.
    signed = low * width + (inner_count * u[1:] - inner_sum) / n_b - level * width
    crossing = (low < level) & (level < high)
    distance = np.abs(signed)
    if not crossing.any():
        return float(total + distance.sum()), 0.0
    # Crossing intervals (where F_b passes F_r inside): the values inside taken at their
    # mean v (F_b = low before v, high after it), exact when they coincide (a discrete
    # batch moved off the support), clamped to what is possible.
    j = np.flatnonzero(crossing)  # each has values inside (low < high)
    below, above = level[j] - low[j], high[j] - level[j]
    mean = inner_sum[j] / inner_count[j]
    at_mean = (mean - u[j]) * below + (u[j + 1] - mean) * above
    upper = width[j] * np.maximum(below, above)
    floor = distance[j]
    approx = np.clip(at_mean, floor, upper)
    distance[j] = approx
    bound = float(np.sum(np.maximum(upper - approx, approx - floor)))
    return float(total + distance.sum()), bound
