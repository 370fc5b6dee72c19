"""Drift statistics against scipy and hand computations (tolerances stated per test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import spatial, stats

from monitoring.stats import (
    METHODS,
    bin_counts,
    category_counts,
    chi2_homogeneity,
    count_on_support,
    hellinger_distance,
    jensen_shannon_distance,
    kl_divergence,
    ks_pvalue,
    ks_statistic,
    population_stability_index,
    quantile_edges,
    smoothed_proportions,
    support_cdfs,
    wasserstein_distance,
)
from monitoring.stats.ecdf import empty_support_counts
from monitoring.stats.registry import Comparison, get_method

RNG = np.random.default_rng(20261127)


def _support(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(reference, return_counts=True)


# --- histograms ---------------------------------------------------------------------------


def test_quantile_edges_split_reference_into_equal_bins():
    reference = np.arange(1000, dtype=float)
    edges = quantile_edges(reference, bins=10)
    assert len(edges) == 9
    np.testing.assert_array_equal(bin_counts(reference, edges), np.full(10, 100))


def test_values_beyond_reference_range_land_in_outer_bins():
    edges = np.array([0.0, 1.0])
    np.testing.assert_array_equal(
        bin_counts(np.array([-100.0, 0.5, 1e9, np.nan]), edges), [1, 1, 1]
    )


def test_category_counts_put_unseen_last_and_skip_missing():
    counts = category_counts(np.array(["a", "b", "z", None, "a"], dtype=object), ["a", "b"])
    np.testing.assert_array_equal(counts, [2, 1, 1])


# --- divergences: hand computations, tolerance 1e-12 --------------------------------------

REF = np.array([40, 30, 20, 10])
BATCH = np.array([10, 20, 30, 40])


def test_smoothing_adds_pseudo_counts_to_every_bin():
    np.testing.assert_allclose(
        smoothed_proportions(np.array([0, 2]), smoothing=1.0), [1 / 4, 3 / 4]
    )


def test_kl_divergence_matches_hand_computation_and_scipy_entropy():
    p, q = REF / 100, BATCH / 100
    expected = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    value = kl_divergence(REF, BATCH, smoothing=0.0)
    assert value == pytest.approx(expected, abs=1e-12)
    assert value == pytest.approx(stats.entropy(q, p), abs=1e-12)


def test_psi_matches_hand_computation():
    p, q = REF / 100, BATCH / 100
    expected = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    assert population_stability_index(REF, BATCH, smoothing=0.0) == pytest.approx(
        expected, abs=1e-12
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_jensen_shannon_matches_scipy(smoothing):
    p = smoothed_proportions(REF, smoothing=smoothing)
    q = smoothed_proportions(BATCH, smoothing=smoothing)
    expected = spatial.distance.jensenshannon(p, q, base=2)
    assert jensen_shannon_distance(REF, BATCH, smoothing=smoothing) == pytest.approx(
        expected, abs=1e-12
    )


def test_hellinger_matches_closed_form():
    p, q = REF / 100, BATCH / 100
    expected = np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / math.sqrt(2)
    assert hellinger_distance(REF, BATCH, smoothing=0.0) == pytest.approx(expected, abs=1e-12)


def test_smoothing_keeps_psi_moderate_on_disjoint_support():
    # One sigma apart would give ~1 with sane smoothing; tiny epsilons give hundreds.
    value = population_stability_index(np.array([1000, 0]), np.array([0, 1000]))
    assert 5 < value < 20


# --- KS: exact against scipy, statistic 1e-12, p-value 1e-9 -------------------------------

KS_CASES = [
    pytest.param(RNG.normal(size=500), RNG.normal(size=300), id="continuous-null"),
    pytest.param(RNG.normal(size=800), RNG.normal(0.3, 1.2, size=2000), id="continuous-shift"),
    pytest.param(
        RNG.integers(0, 5, 600).astype(float),
        RNG.integers(0, 7, 400).astype(float),
        id="discrete-ties-and-unseen-values",
    ),
    pytest.param(RNG.normal(size=200), RNG.normal(10, 1, size=50), id="disjoint"),
]


@pytest.mark.parametrize(("reference", "batch"), KS_CASES)
def test_ks_statistic_and_pvalue_match_scipy(reference, batch):
    support, counts = _support(reference)
    summary = count_on_support(batch, support)
    expected = stats.ks_2samp(reference, batch)  # method "auto": exact here
    statistic = ks_statistic(counts, summary)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ks_pvalue(statistic, len(reference), len(batch)) == pytest.approx(
        expected.pvalue, abs=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=2, max_size=60),
    st.lists(st.integers(-25, 25), min_size=2, max_size=60),
    st.integers(1, 7),
)
def test_ks_in_chunks_equals_scipy_on_any_split(reference, batch, n_chunks):
    ref = np.array(reference, dtype=float) / 2
    values = np.array(batch, dtype=float) / 3
    support, counts = _support(ref)
    summary = empty_support_counts(len(support))
    for chunk in np.array_split(values, n_chunks):
        summary = summary + count_on_support(chunk, support)
    expected = stats.ks_2samp(ref, values, method="asymp").statistic
    assert ks_statistic(counts, summary) == pytest.approx(expected, abs=1e-12)


# --- Wasserstein: against scipy within the returned error bound ---------------------------


@pytest.mark.parametrize(("reference", "batch"), KS_CASES)
def test_wasserstein_within_bound_of_scipy(reference, batch):
    support, counts = _support(reference)
    distance, bound = wasserstein_distance(support, counts, count_on_support(batch, support))
    expected = stats.wasserstein_distance(reference, batch)
    assert abs(distance - expected) <= bound + 1e-9
    assert bound <= 0.05 * max(expected, 1e-3) + 0.05  # the approximation stays small


@pytest.mark.parametrize(("reference", "batch"), KS_CASES)
def test_ks_and_wasserstein_share_one_computation_of_the_cdfs(reference, batch):
    support, counts = _support(reference)
    summary = count_on_support(batch, support)
    cdfs = support_cdfs(counts, summary)
    assert ks_statistic(counts, summary, cdfs=cdfs) == ks_statistic(counts, summary)
    shared = wasserstein_distance(support, counts, summary, cdfs=cdfs)
    assert shared == wasserstein_distance(support, counts, summary)


def test_wasserstein_exact_when_batch_lies_on_reference_support():
    reference = RNG.integers(0, 10, 1000).astype(float)
    batch = RNG.integers(2, 10, 700).astype(float)
    support, counts = _support(reference)
    distance, bound = wasserstein_distance(support, counts, count_on_support(batch, support))
    assert bound == 0.0
    assert distance == pytest.approx(stats.wasserstein_distance(reference, batch), abs=1e-12)


def test_wasserstein_of_a_constant_shift_is_the_shift():
    reference = RNG.normal(size=2000)
    support, counts = _support(reference)
    distance, bound = wasserstein_distance(
        support, counts, count_on_support(reference + 2.5, support)
    )
    assert abs(distance - 2.5) <= bound + 1e-9
    assert bound < 0.01


# --- chi-squared: against scipy, 1e-9 -----------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "batch"),
    [
        pytest.param([50, 30, 20, 0], [20, 30, 40, 10], id="unseen-category-in-batch"),
        pytest.param([500, 300, 200], [48, 31, 21], id="similar"),
        pytest.param([10, 0, 5, 0], [3, 0, 9, 2], id="empty-columns-dropped"),
    ],
)
def test_chi2_matches_scipy(reference, batch):
    table = np.array([reference, batch])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    statistic, p_value = chi2_homogeneity(np.array(reference), np.array(batch))
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_chi2_on_one_informative_category_says_nothing():
    assert chi2_homogeneity(np.array([10, 0]), np.array([5, 0])) == (0.0, 1.0)


# --- contract battery over every registered method ----------------------------------------


def _comparison(reference: np.ndarray, batch: np.ndarray, numeric: bool) -> Comparison:
    if not numeric:
        vocabulary = sorted(set(reference.astype(str)))
        return Comparison(
            category_counts(reference, vocabulary), category_counts(batch, vocabulary), 0.5
        )
    edges = quantile_edges(reference, bins=10)
    support, counts = _support(reference)
    return Comparison(
        bin_counts(reference, edges),
        bin_counts(batch, edges),
        0.5,
        support=support,
        support_counts=counts,
        batch_support=count_on_support(batch, support),
        reference_std=float(np.std(reference)),
    )


def _score(name: str, reference: np.ndarray, batch: np.ndarray, numeric: bool) -> float:
    result = get_method(name).compute(_comparison(reference, batch, numeric))
    return result.statistic


NUMERIC_METHODS = sorted(
    name for name, spec in METHODS.items() if "numerical" in spec.feature_types
)
CATEGORICAL_METHODS = sorted(
    name for name, spec in METHODS.items() if "categorical" in spec.feature_types
)
BASE = RNG.normal(size=3000)
CATS = RNG.choice(np.array(list("abcde")), size=3000, p=[0.4, 0.3, 0.15, 0.1, 0.05])


@pytest.mark.parametrize("name", NUMERIC_METHODS)
def test_numeric_method_contract(name):
    identical = _score(name, BASE, BASE.copy(), True)
    small = _score(name, BASE, BASE + 0.25, True)
    large = _score(name, BASE, BASE + 1.0, True)
    disjoint = _score(name, BASE, BASE + 100.0, True)
    assert identical == pytest.approx(0.0, abs=1e-9)
    assert identical < small < large
    assert math.isfinite(disjoint)


@pytest.mark.parametrize("name", CATEGORICAL_METHODS)
def test_categorical_method_contract(name):
    mild = np.where(np.arange(3000) < 300, "a", CATS)
    strong = np.where(np.arange(3000) < 1500, "e", CATS)
    unseen = np.full(3000, "zz")
    identical = _score(name, CATS, CATS.copy(), False)
    assert identical == pytest.approx(0.0, abs=1e-9)
    assert identical < _score(name, CATS, mild, False) < _score(name, CATS, strong, False)
    assert math.isfinite(_score(name, CATS, unseen, False))


def test_unknown_method_lists_registered_names():
    with pytest.raises(Exception, match="psi") as error:
        get_method("nope")
    assert "nope" in str(error.value)


def test_every_divergence_row_equals_its_own_computation():
    """The simulated nulls compute every divergence from one smoothing of the draws: each
    must be bit-identical to `divergence_rows` of its name."""
    from monitoring.stats.divergence import (
        HISTOGRAM_DIVERGENCES,
        divergence_rows,
        every_divergence_rows,
    )

    rng = np.random.default_rng(4)
    reference = rng.multinomial(900, np.full(7, 1 / 7), size=50)
    batch = rng.multinomial(300, np.full(7, 1 / 7), size=50)
    every = every_divergence_rows(reference, batch, smoothing=0.5)
    assert set(every) == set(HISTOGRAM_DIVERGENCES)
    for name in HISTOGRAM_DIVERGENCES:
        np.testing.assert_array_equal(every[name], divergence_rows(name, reference, batch))
