"""SortedColumn gives exactly what the unsorted computations give, in the chunk's order."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.collect.columns import bin_codes
from monitoring.stats import ecdf
from monitoring.stats.ecdf import count_on_support, count_sorted_on_support, support_index
from monitoring.stats.sorted_column import SortedColumn


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    continuous = rng.lognormal(size=5000)
    continuous[rng.random(5000) < 0.1] = np.nan
    counts = rng.poisson(3, size=5000).astype(float)  # many ties, values on the edges
    return [
        continuous,
        counts,
        np.array([np.nan, np.nan]),
        np.array([2.0]),
        np.array([], dtype=float),
    ]


IDS = ["continuous", "counts", "all-nan", "one", "empty"]


@pytest.mark.parametrize("values", _cases(), ids=IDS)
@pytest.mark.parametrize(
    "edges",
    [np.array([0.5, 1.0, 2.0, 3.0, 3.0, 7.5]), np.array([2.0]), np.array([], dtype=float)],
    ids=["repeated-edge", "one-edge", "no-edge"],
)
def test_bin_codes_and_counts_equal_the_unsorted_lookup(values, edges):
    column = SortedColumn(values)
    expected = bin_codes(values, edges)
    np.testing.assert_array_equal(column.bin_codes(edges), expected)
    tally = np.bincount(expected, minlength=len(edges) + 2)
    np.testing.assert_array_equal(column.bin_counts(edges), tally[:-1])
    assert column.n_missing == tally[-1] == int(np.isnan(values).sum())


@pytest.mark.parametrize("values", _cases(), ids=IDS)
@pytest.mark.parametrize(
    "edges",
    [np.array([0.5, 1.0, 2.0, 3.0, 3.0, 7.5]), np.array([2.0]), np.array([], dtype=float)],
    ids=["repeated-edge", "one-edge", "no-edge"],
)
@pytest.mark.parametrize("unknown", [0.0, 0.3, 1.0], ids=["all-weights", "some-nan", "no-weight"])
def test_bin_sums_equal_a_bincount_over_the_bin_codes(values, edges, unknown):
    rng = np.random.default_rng(5)
    weights = rng.random(len(values))
    weights[rng.random(len(values)) < unknown] = np.nan
    known = ~np.isnan(weights)
    codes = bin_codes(values, edges)[known]
    size = len(edges) + 2
    sums, rows = SortedColumn(values).bin_sums(edges, weights)
    # Summed in sorted order, not row order: equal up to rounding (5000 values < 1).
    np.testing.assert_allclose(
        sums, np.bincount(codes, weights=weights[known], minlength=size), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_array_equal(rows, np.bincount(codes, minlength=size))
    assert rows.dtype == np.int64


@pytest.mark.parametrize("values", _cases()[:2], ids=IDS[:2])
def test_interp_equals_numpy_in_row_order(values):
    xp = np.array([0.2, 1.0, 1.5, 3.0, 6.0])
    fp = np.array([-2.0, -0.5, 0.0, 0.7, 2.1])
    expected = np.where(np.isnan(values), 0.0, np.interp(values, xp, fp))
    np.testing.assert_array_equal(SortedColumn(values).interp(xp, fp, missing=0.0), expected)


def test_support_counts_of_sorted_values_equal_the_unsorted_ones():
    values = _cases()[1]
    support = np.array([0.0, 1.0, 2.5, 3.0, 9.0])
    column = SortedColumn(values)
    direct = count_on_support(values, support)
    fast = count_sorted_on_support(column.sorted, support)
    for name in ("equal", "gap", "gap_sum"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(direct, name))


@pytest.mark.parametrize("merged", [False, True], ids=["searched", "merged"])
@pytest.mark.parametrize("as_index", [False, True], ids=["array", "index"])
@pytest.mark.parametrize("n", [1, 50, 3000])
def test_support_counts_on_a_large_support_equal_a_brute_force_count(
    n, as_index, merged, monkeypatch
):
    """Continuous values on a support larger than the chunk (binary searches below
    ecdf.MERGE_FROM_VALUES values, the linear merge from there on: both forced here), with
    values equal to support points, below the first and above the last."""
    monkeypatch.setattr(ecdf, "MERGE_FROM_VALUES", 0 if merged else 10**9)
    rng = np.random.default_rng(9)
    support = np.unique(rng.normal(size=2000).round(3))
    values = np.concatenate(
        [rng.normal(size=n), rng.choice(support, n), [support[0] - 1, support[-1] + 1, -0.0]]
    )
    x = np.sort(values)
    summary = count_sorted_on_support(x, support_index(support) if as_index else support)
    below = (support[None, :] < x[:, None]).sum(axis=1)  # per value: support points below it
    on_point = (support[None, :] == x[:, None]).any(axis=1)
    m = len(support)
    np.testing.assert_array_equal(summary.equal, np.bincount(below[on_point], minlength=m))
    np.testing.assert_array_equal(summary.gap, np.bincount(below[~on_point], minlength=m + 1))
    np.testing.assert_allclose(
        summary.gap_sum,
        np.bincount(below[~on_point], weights=x[~on_point], minlength=m + 1),
        rtol=0,
        atol=1e-12,
    )
