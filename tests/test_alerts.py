"""Alert rules over a metric's series: windows, CUSUM, Page-Hinkley, false-alarm maths."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from scipy import stats

from monitoring.core.alert_rules import (
    DEFAULT_RULES,
    MIN_SD,
    AlertRule,
    alert_series,
    bad_series,
    cusum_statistic,
    false_alarm_probability,
    first_alert,
    mean_batches_to_false_alarm,
    page_hinkley_statistic,
    rules_from_config,
)
from monitoring.errors import ConfigError, InvalidValueError

F, T = False, True
DRIFT = "drift/dataset/drift"
ACCURACY = "perf/accuracy"

# --- windows: k of the last n batches -----------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        pytest.param(
            AlertRule(metric=DRIFT),
            [0, 0, 0, 1, 1, 1, 1, 0, 1],
            [F, F, F, F, F, T, T, F, F],
            id="3-of-3-third-drifted-batch",
        ),
        pytest.param(
            AlertRule(metric=DRIFT, k=2, n=3),
            [0, 1, 0, 1, 0, 0, 1, 1, 0, 0],
            [F, F, F, T, F, F, F, T, T, F],
            id="2-of-3-scattered",
        ),
        pytest.param(
            AlertRule(metric=DRIFT, k=2, n=3),
            [1, 1, 0, 0],
            [F, T, T, F],
            id="2-of-3-from-the-second-batch",
        ),
        pytest.param(
            AlertRule(metric=DRIFT, k=3, n=5),
            [1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1],
            [F, F, F, F, T, F, F, F, F, F, T],
            id="3-of-5",
        ),
        pytest.param(
            AlertRule(metric=DRIFT, k=1, n=1), [0, 1, 0, 1], [F, T, F, T], id="1-of-1-is-the-flag"
        ),
        pytest.param(
            AlertRule(metric="drift/age/psi", bad_above=0.2),
            [0.1, 0.25, 0.3, 0.22, 0.19],
            [F, F, F, T, F],
            id="psi-above-0.2",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="floor", floor=0.85),
            [0.91, 0.90, 0.84, 0.83, 0.86, 0.82, 0.81, 0.80],
            [F, F, F, F, F, F, F, T],
            id="floor-3-of-3",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="floor", floor=0.85, k=2),
            [0.91, 0.90, 0.84, 0.83, 0.86, 0.82, 0.81, 0.80],
            [F, F, F, T, T, T, T, T],
            id="floor-2-of-3",
        ),
        pytest.param(
            AlertRule(metric="perf/log_loss", kind="floor", floor=0.5, higher_is_better=False),
            [0.4, 0.6, 0.7, 0.8, 0.3],
            [F, F, F, T, F],
            id="floor-as-ceiling-when-lower-is-better",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="margin", margin=0.03, warmup=2),
            [0.90, 0.92, 0.89, 0.87, 0.86, 0.85],
            [F, F, F, F, F, T],
            id="margin-below-the-warmup-mean",
        ),
    ],
)
def test_window_rules_alert_exactly_where_expected(rule, values, expected):
    assert alert_series(rule, values).tolist() == expected


def test_margin_is_measured_from_the_given_baseline():
    rule = AlertRule(metric=ACCURACY, kind="margin", margin=0.03)
    values = [0.89, 0.86, 0.88, 0.85, 0.84, 0.80]
    assert bad_series(rule, values, baseline=0.90).tolist() == [F, T, F, T, T, T]
    assert alert_series(rule, values, baseline=0.90).tolist() == [F, F, F, F, F, T]


def test_margin_without_baseline_never_marks_the_warmup_bad():
    rule = AlertRule(metric=ACCURACY, kind="margin", margin=0.01, warmup=3)
    assert bad_series(rule, [0.80, 0.95, 0.95, 0.85]).tolist() == [F, F, F, T]


def test_first_alert_is_the_first_alerting_index_or_none():
    rule = AlertRule(metric=DRIFT)
    assert first_alert(rule, [0, 1, 1, 1, 1]) == 3
    assert first_alert(rule, [1, 1, 0, 1, 1]) is None


# --- missing values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        pytest.param(
            AlertRule(metric=DRIFT),
            [1, 1, np.nan, 1, 1, 1],
            [F, F, F, F, F, T],
            id="nan-breaks-a-run",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="floor", floor=0.85, k=2),
            [0.8, np.nan, 0.8],
            [F, F, T],
            id="nan-keeps-its-place-in-the-window",
        ),
    ],
)
def test_a_missing_batch_is_not_bad(rule, values, expected):
    assert alert_series(rule, values).tolist() == expected


@pytest.mark.parametrize("statistic", [cusum_statistic, page_hinkley_statistic])
@pytest.mark.parametrize("where", [pytest.param(5, id="in-warmup"), pytest.param(25, id="after")])
def test_a_missing_batch_leaves_the_sequential_statistic_where_it_was(statistic, where):
    values = np.random.default_rng(3).normal(0.9, 0.01, 40)
    values[30:] -= 0.02
    plain = statistic(values)
    with_gap = statistic(np.insert(values, where, np.nan))
    np.testing.assert_array_equal(with_gap, np.insert(plain, where, plain[where - 1]))


def test_infinite_values_are_refused():
    with pytest.raises(InvalidValueError, match="batch 1 of the series is inf"):
        alert_series(AlertRule(metric=DRIFT), [0.0, np.inf])


# --- CUSUM and Page-Hinkley ---------------------------------------------------------------

# Warmup -1, 0, 1: mean 0, sd 1 (ddof 1), so z = x when higher values are worse.
GOLDEN = [-1.0, 0.0, 1.0, 2.0, 2.0, -3.0, 0.5, 1.0]
NAN3 = [np.nan] * 3


@pytest.mark.parametrize(
    ("statistic", "values", "higher_is_better", "expected"),
    [
        # S = max(0, S + z - 0.5): 1.5, 3.0, 0, 0, 0.5
        pytest.param(
            cusum_statistic, GOLDEN, False, [*NAN3, 1.5, 3.0, 0.0, 0.0, 0.5], id="cusum-rise"
        ),
        pytest.param(
            cusum_statistic,
            [-v for v in GOLDEN],
            True,
            [*NAN3, 1.5, 3.0, 0.0, 0.0, 0.5],
            id="cusum-drop",
        ),
        # running means 0.5, 0.8, 1/6, 1.5/7, 2.5/8; m = 1.0, 1.7, -1.9667, -2.1810, -1.9935
        pytest.param(
            page_hinkley_statistic,
            GOLDEN,
            False,
            [*NAN3, 1.0, 1.7, 0.0, 0.0, 0.1875],
            id="page-hinkley-rise",
        ),
    ],
)
def test_sequential_statistics_match_a_hand_computation(
    statistic, values, higher_is_better, expected
):
    result = statistic(values, drift=0.5, warmup=3, higher_is_better=higher_is_better)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_a_constant_warmup_uses_the_sd_floor():
    result = cusum_statistic([0.9, 0.9, 0.9, 0.9 - 1e-5], warmup=3, drift=0.5)
    assert result[-1] == pytest.approx(1e-5 / MIN_SD - 0.5, rel=1e-6)


WARMUP, SHIFT_AT = 50, 70  # 50 warmup batches, 20 stationary tested batches, then a drop


def _accuracy_with_drop(seed: int, drop_sd: float) -> np.ndarray:
    values = np.random.default_rng(seed).normal(0.90, 0.01, SHIFT_AT + 60)
    values[SHIFT_AT:] -= drop_sd * 0.01
    return values


@pytest.mark.parametrize("kind", ["cusum", "page_hinkley"])
def test_a_one_sd_drop_is_detected_within_30_batches_and_not_before(kind):
    # seed 1; drift 0.5 sd, threshold 5 sd, warmup 50. Over seeds 0-499 this holds for 94%
    # (CUSUM) and 93% (Page-Hinkley) of them; the median delay is 9 batches (docs/alerts.md).
    rule = AlertRule(metric=ACCURACY, kind=kind, warmup=WARMUP)
    assert first_alert(rule, _accuracy_with_drop(1, 1.0)) in range(SHIFT_AT, SHIFT_AT + 30)


@pytest.mark.parametrize("kind", ["cusum", "page_hinkley"])
def test_a_long_stationary_series_raises_no_alert(kind):
    # seed 1, 50 warmup + 500 tested batches of N(0.90, 0.01), threshold 8 sd. Over seeds
    # 0-499, 83% (CUSUM) and 93% (Page-Hinkley) raise no alert; seed 0 does, at batch 239.
    # The false-alarm rate under the defaults is tested next.
    values = np.random.default_rng(1).normal(0.90, 0.01, WARMUP + 500)
    rule = AlertRule(metric=ACCURACY, kind=kind, warmup=WARMUP, threshold=8.0)
    assert first_alert(rule, values) is None


@pytest.mark.parametrize(
    ("kind", "documented"),
    [pytest.param("cusum", 0.27, id="cusum"), pytest.param("page_hinkley", 0.20, id="ph")],
)
def test_false_alarm_rate_on_stationary_series_matches_the_docs(kind, documented):
    # 400 series (seed 2024) of 20 warmup + 100 tested batches; the documented share alerting
    # within 100 batches came from 1,000 other series. Tolerance 0.09: about 4 standard errors.
    rng = np.random.default_rng(2024)
    rule = AlertRule(metric=ACCURACY, kind=kind)
    alerted = [first_alert(rule, rng.normal(0.9, 0.01, 120)) is not None for _ in range(400)]
    assert np.mean(alerted) == pytest.approx(documented, abs=0.09)


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(AlertRule(metric=ACCURACY, k=2, n=4, bad_above=0.9), id="k-of-n"),
        pytest.param(AlertRule(metric=ACCURACY, kind="floor", floor=0.9, k=2), id="floor"),
        pytest.param(AlertRule(metric=ACCURACY, kind="margin", margin=0.01), id="margin"),
        pytest.param(AlertRule(metric=ACCURACY, kind="cusum", warmup=5), id="cusum"),
        pytest.param(AlertRule(metric=ACCURACY, kind="page_hinkley", warmup=5), id="ph"),
    ],
)
def test_every_rule_is_causal(rule):
    values = _accuracy_with_drop(7, 1.5)
    values[[3, 40, 70]] = np.nan
    whole = alert_series(rule, values)
    prefixes = [alert_series(rule, values[: t + 1])[-1] for t in range(values.size)]
    assert prefixes == whole.tolist()
    assert whole.any()


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(AlertRule(metric=DRIFT), id="k-of-n"),
        pytest.param(AlertRule(metric=ACCURACY, kind="cusum"), id="cusum"),
        pytest.param(AlertRule(metric=ACCURACY, kind="page_hinkley"), id="ph"),
    ],
)
def test_an_empty_or_too_short_series_raises_no_alert(rule):
    assert alert_series(rule, []).tolist() == []
    assert alert_series(rule, [1.0, 0.0]).tolist() == [F, F]


def test_bad_series_refuses_sequential_kinds():
    with pytest.raises(ConfigError, match="plot cusum_statistic"):
        bad_series(AlertRule(metric=ACCURACY, kind="cusum"), [0.9, 0.9])


# --- false-alarm behaviour ----------------------------------------------------------------


def test_golden_numbers_for_3_of_3_at_alpha_0_05():
    assert false_alarm_probability(3, 3, 0.05) == pytest.approx(1.25e-4, rel=1e-12)
    assert mean_batches_to_false_alarm(3, 3, 0.05) == pytest.approx(8420.0, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.3])
@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 3), (3, 3), (3, 5), (7, 12)])
def test_per_batch_probability_is_the_binomial_tail(k, n, alpha):
    expected = stats.binom.sf(k - 1, n, alpha)
    assert false_alarm_probability(k, n, alpha) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("n", [1, 2, 3, 6, 12])
def test_run_length_for_k_equal_n_is_the_closed_form(n, alpha):
    expected = (1 - alpha**n) / ((1 - alpha) * alpha**n)
    assert mean_batches_to_false_alarm(n, n, alpha) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_run_length_for_k_equal_1_is_one_over_alpha(n):
    assert mean_batches_to_false_alarm(1, n, 0.05) == pytest.approx(20.0, rel=1e-9)


def test_run_length_matches_a_simulation_of_the_rule():
    # alpha 0.2, 2 of 3: exact 170/9 = 18.89. 4,000 Bernoulli series (seed 42) of 400
    # batches through first_alert; tolerance 4 standard errors of the simulated mean.
    rng = np.random.default_rng(42)
    rule = AlertRule(metric=DRIFT, k=2, n=3)
    lengths = [first_alert(rule, rng.random(400) < 0.2) + 1 for _ in range(4000)]
    standard_error = np.std(lengths, ddof=1) / np.sqrt(len(lengths))
    exact = mean_batches_to_false_alarm(2, 3, 0.2)
    assert exact == pytest.approx(170 / 9, rel=1e-9)
    assert abs(np.mean(lengths) - exact) < 4 * standard_error


# --- configuration ------------------------------------------------------------------------


def test_default_rules_are_3_of_3_drifted_and_2_of_3_degraded():
    drift, performance = DEFAULT_RULES
    assert drift == AlertRule(metric=DRIFT, kind="k_of_n", k=3, n=3)
    assert drift.label == "drift/dataset/drift > 0.5 in 3 of the last 3 batches"
    assert performance == AlertRule(metric="perf/degraded", kind="k_of_n", k=2, n=3)
    assert performance.label == "perf/degraded > 0.5 in 2 of the last 3 batches"


def test_default_performance_rule_false_alarm_rates_in_docs():
    """docs/alerts.md: 2 of 3 at the family's bound 0.05 and at its measured 0.013."""
    assert false_alarm_probability(2, 3, 0.05) == pytest.approx(7.25e-3, rel=1e-9)
    assert mean_batches_to_false_alarm(2, 3, 0.05) == pytest.approx(225.1, abs=0.05)
    assert mean_batches_to_false_alarm(2, 3, 0.013) == pytest.approx(3054.9, abs=0.05)


@pytest.mark.parametrize(
    ("rule", "label"),
    [
        pytest.param(
            AlertRule(metric=ACCURACY, kind="floor", floor=0.85, k=2),
            "perf/accuracy < 0.85 in 2 of the last 3 batches",
            id="floor",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="margin", margin=0.02),
            "perf/accuracy < baseline - 0.02 in 3 of the last 3 batches",
            id="margin",
        ),
        pytest.param(
            AlertRule(metric=ACCURACY, kind="cusum"), "perf/accuracy CUSUM drop > 5 sd", id="cusum"
        ),
        pytest.param(AlertRule(metric=DRIFT, name="drifting"), "drifting", id="named"),
    ],
)
def test_labels_describe_the_rule(rule, label):
    assert rule.label == label


def test_rules_from_toml():
    text = """
    [[alerts.rules]]
    metric = "drift/dataset/drift"
    kind = "k_of_n"
    k = 3
    n = 3

    [[alerts.rules]]
    metric = "perf/accuracy"
    kind = "floor"
    floor = 0.85
    k = 2
    """
    rules = rules_from_config(tomllib.loads(text)["alerts"]["rules"])
    assert rules == (DEFAULT_RULES[0], AlertRule(metric=ACCURACY, kind="floor", floor=0.85, k=2))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: AlertRule(metric=DRIFT, k=0),
            "`alerts.k` must be an integer >= 1, got 0",
            id="k-zero",
        ),
        pytest.param(
            lambda: AlertRule(metric=DRIFT, k=1, n=0),
            "`alerts.n` must be an integer >= 1, got 0",
            id="n-below-1",
        ),
        pytest.param(
            lambda: AlertRule(metric=DRIFT, k=4, n=3),
            "`alerts.k` must be an integer <= `alerts.n` (3), got 4",
            id="k-above-n",
        ),
        pytest.param(
            lambda: AlertRule(metric=DRIFT, kind="ewma"),
            "`alerts.kind` must be one of k_of_n, floor, margin, cusum, page_hinkley, got 'ewma'",
            id="unknown-kind",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="floor"),
            "`alerts.floor` must be set for kind 'floor', got None",
            id="floor-missing",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="margin"),
            "`alerts.margin` must be set for kind 'margin', got None",
            id="margin-missing",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, floor=0.8),
            "`alerts.floor` applies only to kind 'floor', not 'k_of_n'",
            id="floor-on-k-of-n",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="margin", margin=-0.1),
            "`alerts.margin` must be a finite number >= 0, got -0.1",
            id="negative-margin",
        ),
        pytest.param(
            lambda: AlertRule(metric=DRIFT, bad_above="0.5"),
            "`alerts.bad_above` must be a finite number, got '0.5'",
            id="bad-above-string",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="cusum", threshold=0),
            "`alerts.threshold` must be a finite number > 0, got 0",
            id="threshold-zero",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="cusum", drift=-0.5),
            "`alerts.drift` must be a finite number >= 0, got -0.5",
            id="negative-drift",
        ),
        pytest.param(
            lambda: bad_series(
                AlertRule(metric=ACCURACY, kind="margin", margin=0.1), [0.9], baseline=np.nan
            ),
            "`baseline` must be a finite number, got nan",
            id="baseline-nan",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, kind="cusum", warmup=1),
            "`alerts.warmup` must be an integer >= 2, got 1",
            id="warmup-one",
        ),
        pytest.param(
            lambda: AlertRule(metric=ACCURACY, higher_is_better="yes"),
            "`alerts.higher_is_better` must be true or false, got 'yes'",
            id="direction-string",
        ),
        pytest.param(
            lambda: AlertRule(metric=""), "`alerts.metric` must be a non-empty", id="no-metric"
        ),
        pytest.param(
            lambda: rules_from_config([{"metric": DRIFT, "kidn": "floor"}]),
            "[[alerts.rules]] number 1: unknown key `alerts.kidn`; known: metric, kind",
            id="unknown-key",
        ),
        pytest.param(
            lambda: rules_from_config([{"kind": "floor"}]),
            "[[alerts.rules]] number 1: `alerts.metric` is required",
            id="metric-required",
        ),
        pytest.param(
            lambda: rules_from_config([{"metric": DRIFT}, {"metric": DRIFT, "k": 4}]),
            "[[alerts.rules]] number 2: `alerts.k` must be an integer <= `alerts.n` (3), got 4",
            id="rule-number-in-message",
        ),
        pytest.param(
            lambda: rules_from_config({"metric": DRIFT}),
            "`alerts.rules` must be a list of tables",
            id="rules-not-a-list",
        ),
        pytest.param(
            lambda: cusum_statistic([0.9, 0.9, 0.8], warmup=1),
            "`warmup` must be an integer >= 2, got 1",
            id="statistic-warmup-one",
        ),
        pytest.param(
            lambda: page_hinkley_statistic([0.9, 0.9, 0.8], min_sd=0),
            "`min_sd` must be a finite number > 0, got 0",
            id="statistic-min-sd-zero",
        ),
        pytest.param(
            lambda: mean_batches_to_false_alarm(3, 13, 0.05),
            "`n` must be an integer <= 12 for the exact chain, got 13",
            id="arl-window-too-long",
        ),
        pytest.param(
            lambda: false_alarm_probability(4, 3, 0.05),
            "`k` must be an integer <= `n` (3), got 4",
            id="probability-k-above-n",
        ),
        pytest.param(
            lambda: false_alarm_probability(1, 1, 1.0),
            "`alpha` must be a number between 0 and 1 (exclusive), got 1.0",
            id="alpha-one",
        ),
    ],
)
def test_invalid_settings_name_the_setting(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert message in str(error.value)
