"""Kernel MMD two-sample test: golden numbers, calibration, power, subsampling, bad input.

Tolerances: the statistic is computed in float32 and checked against a float64 brute force
to 1e-5 absolute; the median-heuristic bandwidth is float64 throughout (1e-12 relative).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from monitoring.errors import InvalidValueError
from monitoring.stats.mmd import MMDResult, _split_statistics, _zero_diagonal_kernel, mmd_test

ALPHA = 0.05


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 by the definition, in float64, one kernel block at a time."""

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-squared / (2.0 * bandwidth**2))

    n, m = len(x), len(y)
    kxx = kernel(x, x)
    kyy = kernel(y, y)
    within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within_x + within_y - 2.0 * kernel(x, y).mean())


def _correlated(rho: float, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Two standard-normal columns with correlation `rho`."""
    return rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=rows)


# --- golden numbers --------------------------------------------------------------------------


@pytest.mark.parametrize("bandwidth", [0.7, 1.3, 4.0], ids=["h0.7", "h1.3", "h4"])
def test_statistic_equals_brute_force(bandwidth):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(30, 3))
    y = rng.normal(0.3, 1.2, size=(40, 3))
    result = mmd_test(x, y, bandwidth=bandwidth, permutations=20, device="cpu")
    assert result.statistic == pytest.approx(_brute_force_mmd2(x, y, bandwidth), abs=1e-5)
    assert result.bandwidth == bandwidth


def test_default_bandwidth_is_median_pairwise_distance_of_pooled_rows():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(30, 3))
    y = rng.normal(size=(40, 3))
    pooled = np.vstack([x, y])
    i, j = np.triu_indices(len(pooled), k=1)
    median = np.median(np.linalg.norm(pooled[i] - pooled[j], axis=1))
    result = mmd_test(x, y, permutations=20)
    assert result.bandwidth == pytest.approx(median, rel=1e-12)
    assert result.statistic == pytest.approx(_brute_force_mmd2(x, y, median), abs=1e-5)


def test_offset_and_scale_of_inputs_do_not_change_the_test():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(200, 4))
    y = rng.normal(0.2, 1.0, size=(200, 4))
    plain = mmd_test(x, y, permutations=50)
    moved = mmd_test(1e4 + 300.0 * x, 1e4 + 300.0 * y, permutations=50)
    assert moved.statistic == pytest.approx(plain.statistic, abs=1e-5)
    assert moved.bandwidth == pytest.approx(300.0 * plain.bandwidth, rel=1e-9)


def test_all_rows_equal_gives_zero_statistic_and_p_one():
    result = mmd_test(np.ones((20, 2)), np.ones((20, 2)), permutations=30)
    assert (result.statistic, result.p_value) == (pytest.approx(0.0, abs=1e-6), 1.0)


def test_result_is_frozen_python_numbers_on_the_default_device():
    rng = np.random.default_rng(14)
    result = mmd_test(rng.normal(size=(20, 2)), rng.normal(size=(25, 2)), permutations=10)
    expected_device = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert result.device == expected_device
    assert [type(getattr(result, f.name)) for f in dataclasses.fields(MMDResult)] == [
        float, float, float, float, int, int, int, str,
    ]  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.statistic = 0.0  # type: ignore[misc]


def test_every_permuted_split_uses_the_same_unbiased_estimator():
    rng = np.random.default_rng(15)
    x = rng.normal(size=(12, 2))
    y = rng.normal(size=(17, 2))
    pooled = np.vstack([x, y])
    points = torch.from_numpy(pooled / 1.1).float()
    kernel = _zero_diagonal_kernel(points)
    labels = rng.permuted(np.tile(np.repeat([1.0, 0.0], [12, 17]), (5, 1)), axis=1)
    got = _split_statistics(
        kernel, kernel.sum(dtype=torch.float64), labels.astype(np.float32), 12, 17
    )
    expected = [_brute_force_mmd2(pooled[row == 1], pooled[row == 0], 1.1) for row in labels]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


# --- calibration and power -------------------------------------------------------------------


def test_identical_distributions_reject_at_about_alpha():
    repetitions, permutations = 60, 100
    rng = np.random.default_rng(20)
    p_values = np.array(
        [
            mmd_test(
                rng.normal(size=(100, 5)),
                rng.normal(size=(100, 5)),
                permutations=permutations,
                seed=seed,
                device="cpu",
            ).p_value
            for seed in range(repetitions)
        ]
    )
    assert np.all((p_values > 0.0) & (p_values <= 1.0))
    # The fitted permutation null rejects (p <= alpha) with probability about alpha under H0
    # (tests/test_mmd_null.py measures it).
    bound = stats.binom.ppf(0.999, repetitions, ALPHA)
    assert np.count_nonzero(p_values <= ALPHA) <= bound


def test_mean_shift_in_two_of_five_columns_is_detected():
    rng = np.random.default_rng(21)
    reference = rng.normal(size=(500, 5))
    batch = rng.normal(size=(500, 5)) + np.array([0.5, 0.5, 0.0, 0.0, 0.0])
    result = mmd_test(reference, batch, alpha=ALPHA)
    assert result.p_value < 0.01
    assert result.statistic > result.threshold


@pytest.mark.parametrize("batch_rho", [-0.8, 0.0], ids=["corr-flipped", "corr-removed"])
def test_correlation_change_with_equal_marginals_is_detected(batch_rho):
    rng = np.random.default_rng(22)
    reference = _correlated(0.8, 1000, rng)
    batch = _correlated(batch_rho, 1000, rng)
    result = mmd_test(reference, batch)
    assert result.p_value < 0.01
    assert result.statistic > result.threshold


# --- subsampling and seeds -------------------------------------------------------------------


def test_large_inputs_are_subsampled_to_max_samples_per_side():
    rng = np.random.default_rng(30)
    reference = rng.normal(size=(5000, 3))
    batch = rng.normal(size=(5000, 3))
    result = mmd_test(reference, batch, max_samples=200, permutations=50)
    assert (result.n_reference, result.n_batch, result.permutations) == (200, 200, 50)


def test_same_seed_gives_same_result_and_another_seed_another_subsample():
    rng = np.random.default_rng(31)
    reference = rng.normal(size=(5000, 3))
    batch = rng.normal(size=(5000, 3))
    run = dict(max_samples=200, permutations=50, device="cpu")
    first = mmd_test(reference, batch, seed=7, **run)
    assert mmd_test(reference, batch, seed=7, **run) == first
    assert mmd_test(reference, batch, seed=8, **run).statistic != first.statistic


def test_sides_smaller_than_max_samples_are_used_whole():
    rng = np.random.default_rng(32)
    result = mmd_test(rng.normal(size=(150, 2)), rng.normal(size=(60, 2)), max_samples=100)
    assert (result.n_reference, result.n_batch) == (100, 60)


# --- bad input -------------------------------------------------------------------------------

GOOD = np.zeros((20, 3))
WITH_NAN = np.zeros((20, 3))
WITH_NAN[[1, 9], [2, 0]] = np.nan
WITH_INF = np.zeros((20, 3))
WITH_INF[19, 2] = -np.inf


@pytest.mark.parametrize(
    ("reference", "batch", "message"),
    [
        pytest.param(np.zeros(20), GOOD, r"`reference` must be two-dim.*\(20,\)", id="1-d"),
        pytest.param(GOOD, np.zeros((2, 10, 3)), r"`batch` must be two-dim", id="3-d"),
        pytest.param(GOOD, np.zeros((20, 0)), r"`batch` must have at least one col", id="0-col"),
        pytest.param(GOOD, np.zeros((20, 4)), r"same number of columns, got 3 and 4", id="cols"),
        pytest.param(WITH_NAN, GOOD, r"`reference` has 2 non-finite.*2 NaN, 0 inf", id="nan"),
        pytest.param(WITH_NAN, GOOD, r"first at row 1, column 2", id="nan-position"),
        pytest.param(GOOD, WITH_INF, r"`batch` has 1 non-finite.*0 NaN, 1 inf", id="inf"),
        pytest.param(GOOD, WITH_INF, r"first at row 19, column 2", id="inf-position"),
        pytest.param(np.zeros((9, 3)), GOOD, r"`reference` .* at least 10 rows, got 9", id="rows"),
        pytest.param([["a"] * 3] * 20, GOOD, r"`reference` must be an array of numbers", id="text"),
    ],
)
def test_bad_data_raises_naming_the_side_and_the_problem(reference, batch, message):
    with pytest.raises(InvalidValueError, match=message):
        mmd_test(reference, batch)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"permutations": 0}, r"`permutations` must be an integer >= 1", id="perm-0"),
        pytest.param({"permutations": 2.5}, r"`permutations` must be an integer", id="perm-float"),
        pytest.param({"alpha": 0.0}, r"`alpha` must be in \(0, 1\), got 0.0", id="alpha-0"),
        pytest.param({"alpha": 1.0}, r"`alpha` must be in \(0, 1\)", id="alpha-1"),
        pytest.param({"alpha": float("nan")}, r"`alpha` must be in", id="alpha-nan"),
        pytest.param({"max_samples": 9}, r"`max_samples` must be an integer >= 10", id="max-9"),
        pytest.param({"bandwidth": 0.0}, r"`bandwidth` must be a finite number > 0", id="h-0"),
        pytest.param({"bandwidth": float("inf")}, r"`bandwidth` must be a finite", id="h-inf"),
        pytest.param({"bandwidth": 1e-30}, r"`bandwidth` is too small", id="h-tiny"),
        pytest.param({"seed": -1}, r"`seed` must be an integer >= 0", id="seed"),
        pytest.param({"device": "nowhere"}, r"`device` 'nowhere' is not a torch", id="device"),
    ],
)
def test_bad_option_raises_naming_the_option(options, message):
    reference = np.arange(60.0).reshape(20, 3)
    with pytest.raises(InvalidValueError, match=message):
        mmd_test(reference, reference[::-1], **options)
