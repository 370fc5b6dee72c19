"""Calibrated thresholds, multiple testing, effect sizes and the multivariate test.

References: scipy (quantiles, `false_discovery_control`, `wasserstein_distance`), hand
computations, and Monte Carlo rates held within binomial bounds (stated per test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import monitoring
from monitoring.core.config import DriftConfig, MonitoringConfig
from monitoring.errors import ConfigError
from monitoring.measure.multivariate import ReconstructionModel
from monitoring.stats.calibration import (
    histogram_nulls,
    simulate_histogram_null,
    wasserstein_null,
)
from monitoring.stats.divergence import (
    HISTOGRAM_DIVERGENCES,
    divergence_rows,
    hellinger_distance,
    jensen_shannon_distance,
    kl_divergence,
    population_stability_index,
    total_variation_distance,
)
from monitoring.stats.multiple_testing import adjust_p_values, reject

SCALAR = {
    "kl": kl_divergence,
    "psi": population_stability_index,
    "js": jensen_shannon_distance,
    "hellinger": hellinger_distance,
    "tvd": total_variation_distance,
}


def _upper_binomial(n: int, rate: float) -> int:
    """Largest count of events consistent with `rate` (0.999 quantile)."""
    return int(stats.binom.ppf(0.999, n, rate))


@pytest.mark.parametrize("name", HISTOGRAM_DIVERGENCES)
def test_row_divergences_equal_the_scalar_ones(name):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 50, size=(20, 7))
    batch = rng.integers(0, 50, size=(20, 7))
    rows = divergence_rows(name, reference, batch, smoothing=0.5)
    expected = [SCALAR[name](r, b, smoothing=0.5) for r, b in zip(reference, batch, strict=True)]
    np.testing.assert_allclose(rows, expected, rtol=1e-12, atol=1e-15)


def test_total_variation_by_hand():
    # p = (0.5, 0.5), q = (0.8, 0.2) without smoothing: TV = 0.3.
    assert total_variation_distance([5, 5], [8, 2], smoothing=0) == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("n", [200, 5_000, 500_000])
@pytest.mark.parametrize(
    "counts",
    [np.full(10, 500), np.array([3000, 1000, 500, 300, 100, 50, 30, 15, 5, 0])],
    ids=["uniform-bins", "skewed-categories"],
)
def test_fitted_thresholds_match_empirical_quantiles(counts, n):
    """The moment-matched fit of 2,000 simulations against the empirical quantile of
    40,000 independent ones: within 6% at alpha = 0.05 and 0.0025 for every divergence."""
    fits = histogram_nulls(counts, n, smoothing=0.5)
    for name in HISTOGRAM_DIVERGENCES:
        big = simulate_histogram_null(name, counts, n, smoothing=0.5, simulations=40_000, seed=11)
        for alpha in (0.05, 0.0025):
            empirical = np.quantile(big, 1 - alpha)
            assert fits[name].threshold(alpha) == pytest.approx(empirical, rel=0.06), (name, alpha)
        assert fits[name].p_value(fits[name].threshold(0.05)) == pytest.approx(0.05, rel=1e-6)


def test_psi_p_values_are_calibrated_over_fresh_references():
    """Reference (2,000) and batch (300) from one distribution, 400 times: PSI p < 0.05 at
    most at the 0.999 binomial quantile of rate 0.05, and at least at its 0.001 one."""
    rng = np.random.default_rng(3)
    truth = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.03, 0.02])
    hits = 0
    reps = 400
    for _ in range(reps):
        reference = rng.multinomial(2_000, truth)
        batch = rng.multinomial(300, truth)
        fit = histogram_nulls(reference, 300, smoothing=0.5, simulations=1000)["psi"]
        hits += fit.p_value(population_stability_index(reference, batch)) < 0.05
    assert int(stats.binom.ppf(0.001, reps, 0.05)) <= hits <= _upper_binomial(reps, 0.05)


def test_wasserstein_threshold_is_calibrated_against_scipy_samples():
    """Fresh normal references (1,000) and batches (400), 300 times: scipy's W1 exceeds the
    bridge threshold at alpha = 0.05 within the binomial bounds of rate 0.05."""
    rng = np.random.default_rng(5)
    hits, reps = 0, 300
    for _ in range(reps):
        reference = rng.lognormal(0, 0.5, 1_000)
        batch = rng.lognormal(0, 0.5, 400)
        support, counts = np.unique(reference, return_counts=True)
        null = wasserstein_null(support, counts, simulations=1000)
        hits += stats.wasserstein_distance(reference, batch) > null.threshold(0.05, 400)
    assert int(stats.binom.ppf(0.001, reps, 0.05)) <= hits <= _upper_binomial(reps, 0.05)


@pytest.mark.parametrize("level", [0.3, 0.5, 0.998, 0.0005])
def test_bridge_null_of_one_interval_has_the_closed_form_quantiles(level):
    """Two reference values, width 2: the integral is 2 |B(level)|, B(level) ~ N(0, level
    (1 - level)), so its quantiles are 2 sqrt(level (1 - level)) z_((1 + q) / 2). The
    shared grid interpolates |B| between its levels: within 4% at q = 0.5, 0.95 and 0.99
    with 40,000 bridges (measured: within 1% but for a lone interval at level 0.0005, 2-3%
    low, where the interpolation smooths most)."""
    m = 100_000
    below = round(level * m)
    null = wasserstein_null(np.array([0.0, 2.0]), np.array([below, m - below]), simulations=40_000)
    q = np.array([0.5, 0.95, 0.99])
    exact = 2 * np.sqrt(level * (1 - level)) * stats.norm.ppf((1 + q) / 2)
    np.testing.assert_allclose(np.quantile(null.values, q), exact, rtol=0.04)


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_bridge_null_mean_holds_in_long_tails(sigma):
    """E integral |B(F(x))| dx = sum_j width_j sqrt(2 F_j (1 - F_j) / pi), in closed form.
    Lognormal columns put their widest intervals in the tails, where an even grid made the
    mean 3% low; within 1% wanted with 40,000 bridges (MC error about 0.4%)."""
    values = np.random.default_rng(3).lognormal(0, sigma, 3_000)
    support, counts = np.unique(values, return_counts=True)
    levels = np.cumsum(counts)[:-1] / counts.sum()
    exact = np.sum(np.diff(support) * np.sqrt(2 * levels * (1 - levels) / np.pi))
    null = wasserstein_null(support, counts, simulations=40_000)
    assert null.values.mean() == pytest.approx(exact, rel=0.01)


def test_bridges_drawn_ahead_are_drawn_once_and_are_the_ones_the_nulls_use():
    """A fit draws the shared bridges in a background thread during its pass; a null asked
    for meanwhile waits for that drawing instead of making its own."""
    from monitoring.stats import calibration

    before = calibration._drawn_bridge_grid.cache_info().misses
    calibration.draw_bridges_ahead(seed=123, simulations=64)
    support, counts = np.array([0.0, 1.0, 3.0]), np.array([2, 5, 3])
    null = wasserstein_null(support, counts, simulations=64, seed=123)
    assert calibration._drawn_bridge_grid.cache_info().misses == before + 1
    grid = calibration._bridge_grid(123, 64)
    weights = calibration.bridge_weights(np.array([0.2, 0.7]), np.array([1.0, 2.0]))
    expected = np.sort(grid @ weights)
    np.testing.assert_array_equal(null.values, expected)


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(adjust_p_values(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_p_values(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(adjust_p_values(p, "none"), p)
    assert list(reject(p, 0.05, "holm")) == [True, False, False, True]


def test_benjamini_hochberg_equals_scipy():
    p = np.random.default_rng(1).uniform(0, 0.2, 30)
    np.testing.assert_allclose(
        adjust_p_values(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )


def test_unknown_correction_is_refused():
    with pytest.raises(ValueError, match="unknown correction 'sidak'"):
        adjust_p_values([0.1], "sidak")


def _frame(n, rng, *, shift=0.0, scale=1.0, rho=0.8, missing=0.0):
    z = rng.standard_normal((n, 2))
    frame = pd.DataFrame(
        {
            "a": z[:, 0],
            "b": rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1],
            **{f"x{i}": rng.standard_normal(n) for i in range(6)},
            "c": rng.choice(["u", "v", "w"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    frame["x0"] = frame["x0"] * scale + shift
    if missing:
        frame.loc[rng.random(n) < missing, "x1"] = np.nan
    return frame


@pytest.fixture(scope="module")
def reference():
    return monitoring.fit_reference(_frame(20_000, np.random.default_rng(0)))


def test_report_carries_calibrated_thresholds_p_values_and_effects(reference):
    report = monitoring.evaluate(_frame(2_000, np.random.default_rng(1)), reference)
    column = report.column("x0")
    for score in column.scores:
        if score.method != "missing_delta":
            assert score.p_value is not None and 0 < score.p_value <= 1, score
    psi = column.score("psi")
    assert psi.threshold < 0.2  # calibrated at 2,000 rows, far below the rule of thumb
    assert column.effect_method == "wasserstein_scaled"
    assert column.effect is not None and column.effect >= 0
    assert column.adjusted_p_value >= column.p_value
    [test] = report.multivariate
    assert test.method == "reconstruction" and 0 < test.p_value <= 1


def test_a_real_shift_drifts_and_a_negligible_one_only_tests_significant(reference):
    rng = np.random.default_rng(2)
    shifted = monitoring.evaluate(_frame(5_000, rng, shift=0.3), reference)
    assert shifted.drifted_features == ["x0"]
    assert shifted.column("x0").effect > 0.2
    # 0.04 sd at 400,000 rows: statistically real, too small to matter (min effect 0.075).
    tiny = monitoring.evaluate(_frame(400_000, rng, shift=0.04), reference)
    x0 = tiny.column("x0")
    assert x0.significant and not x0.drifted
    assert x0.effect < 0.075
    # The same batch with the gate off: drifted.
    off = MonitoringConfig(drift=DriftConfig(min_effect_numerical=0.0))
    assert (
        monitoring.evaluate(_frame(400_000, rng, shift=0.04), reference, config=off)
        .column("x0")
        .drifted
    )


def test_correlation_change_is_found_only_by_the_multivariate_test(reference):
    report = monitoring.evaluate(_frame(5_000, np.random.default_rng(3), rho=0.0), reference)
    assert report.drifted_features == []
    [test] = report.multivariate
    assert test.drifted and test.p_value < 1e-6 and test.effect > 0.1
    assert report.dataset_drift and report.status == "drift"


def test_a_missing_rate_change_is_data_quality_when_significant_and_large(reference):
    """30% missing against none is a quality finding, not drift (its rows are anomalous
    too: the reference never misses x1); 2% is too small to matter
    (drift.missing_rate_threshold 0.1) however significant."""
    rng = np.random.default_rng(4)
    report = monitoring.evaluate(_frame(3_000, rng, missing=0.3), reference)
    assert report.drifted_features == []
    found = {(q.feature, q.check) for q in report.quality_findings}
    assert found == {("x1", "missing"), ("dataset", "anomalous_rows")}
    assert report.status == "quality"
    small = monitoring.evaluate(_frame(3_000, rng, missing=0.02), reference)
    check = next(q for q in small.quality if (q.feature, q.check) == ("x1", "missing"))
    assert check.adjusted_p_value < 1e-50 and not check.flagged
    assert check.reason.endswith("significant but too small to matter")


def test_fixed_mode_keeps_the_rule_of_thumb(reference):
    config = MonitoringConfig(drift=DriftConfig(decision_mode="fixed", multivariate=()))
    report = monitoring.evaluate(
        _frame(5_000, np.random.default_rng(6), shift=0.3), reference, config=config
    )
    psi = report.column("x0").score("psi")
    assert psi.threshold == 0.2 and psi.p_value is None
    assert report.drifted_features == []  # PSI of a 0.3 sd shift is about 0.09 < 0.2
    assert report.multivariate == ()
    # The multivariate test still decides, alone at alpha, when it is configured.
    fixed = MonitoringConfig(drift=DriftConfig(decision_mode="fixed"))
    flat = monitoring.evaluate(
        _frame(5_000, np.random.default_rng(6), rho=0.0), reference, config=fixed
    )
    assert flat.multivariate[0].drifted and flat.dataset_drift


def test_reconstruction_model_round_trips_and_streams(reference):
    model = reference.multivariate
    assert isinstance(model, ReconstructionModel)
    again = ReconstructionModel.from_dict(model.to_dict())
    frame = _frame(1_000, np.random.default_rng(7))
    values = {c: frame[c].to_numpy(dtype=float) for c in model.columns}
    np.testing.assert_allclose(again.errors(values), model.errors(values), rtol=1e-12)
    halves = [{c: v[:300] for c, v in values.items()}, {c: v[300:] for c, v in values.items()}]
    assert sum(model.errors(h).sum() for h in halves) == pytest.approx(model.errors(values).sum())
    # The streaming pass stacks a chunk's scores one feature per row: same errors.
    z = model.scores(values)
    np.testing.assert_allclose(
        model.errors_of_columns(np.ascontiguousarray(z.T)),
        model.errors_of_scores(z),
        rtol=1e-12,
        atol=1e-12,
    )


def test_reconstruction_p_values_are_calibrated_over_fresh_references():
    """60 fresh references x 5 batches of 500 rows: p < 0.05 within the binomial bound."""
    rng = np.random.default_rng(8)
    hits = reps = 0
    for _ in range(60):
        reference = monitoring.fit_reference(_frame(3_000, rng))
        for _ in range(5):
            report = monitoring.evaluate(_frame(500, rng), reference)
            hits += report.multivariate[0].p_value < 0.05
            reps += 1
    assert hits <= _upper_binomial(reps, 0.05)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 1.5}, "`drift.alpha` must be a number between 0 and 1"),
        ({"correction": "sidak"}, "`drift.correction` must be one of holm, bh"),
        ({"decision_mode": "auto"}, "`drift.decision_mode` must be one of calibrated, fixed"),
        ({"min_effect_numerical": -1}, "`drift.min_effect_numerical` must be a number >= 0"),
        ({"multivariate": ["pca"]}, "`drift.multivariate` must be a list of reconstruction, mmd"),
        ({"numerical_effect": "ks"}, "`drift.numerical_effect` must be a distance method"),
        ({"simulations": 10}, "`drift.simulations` must be an integer >= 100"),
    ],
)
def test_bad_calibration_settings_are_named(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        DriftConfig(**changes)
