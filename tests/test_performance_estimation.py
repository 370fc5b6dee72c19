"""Estimated classification performance without labels (issue 18): hand computations,
the calibration map fitted and checked on disjoint rows, and the intervals' coverage."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

import monitoring
from monitoring.core.accumulator import Chunk
from monitoring.measure.performance.calibration_map import (
    ClassificationEstimator,
    apply_maps,
    calibration_test,
    fit_classification_estimator,
    fit_isotonic,
    split_rows,
)
from monitoring.measure.performance.classification import ClassificationMetrics
from monitoring.measure.performance.estimates import estimate_errors, estimate_metrics
from monitoring.measure.performance.estimation import EstimatedClassification
from monitoring.measure.performance.expected_counts import SCORE_BINS
from monitoring.measure.performance.outputs import ModelOutputs
from monitoring.measure.reference_files import load_reference_files, save_reference

Z = NormalDist().inv_cdf(0.975)
W = np.array([1.0, -0.7, 0.5, 0.3])


def _outputs(classes: tuple[str, ...]) -> ModelOutputs:
    return ModelOutputs(
        task="classification",
        target="y",
        prediction="prediction",
        scores={c: f"proba_{c}" for c in classes},
        classes=classes,
    )


def _frame(prob: np.ndarray, classes: tuple[str, ...], pred: np.ndarray | None = None):
    pred = prob.argmax(axis=1) if pred is None else pred
    frame = pd.DataFrame({f"proba_{c}": prob[:, i] for i, c in enumerate(classes)})
    frame["prediction"] = np.asarray(classes)[pred]
    return frame


def _identity(classes: tuple[str, ...]) -> ClassificationEstimator:
    return ClassificationEstimator(classes, 1, (None,) * len(classes))


def _binary(rng, n, *, shift=0.0, temperature=1.0, flip=0.0):
    """A binary batch whose true P(y=1 | x) is sigmoid(x.W); the model says
    sigmoid(temperature * x.W); `flip` of the labels are flipped (concept drift)."""
    x = rng.standard_normal((n, len(W)))
    x[:, 0] += shift
    true = 1 / (1 + np.exp(-(x @ W)))
    y = (rng.random(n) < true).astype(int)
    y = np.where(rng.random(n) < flip, 1 - y, y)
    said = 1 / (1 + np.exp(-temperature * (x @ W)))
    frame = _frame(np.column_stack([1 - said, said]), ("0", "1"))
    frame["y"] = y.astype(str)
    return frame, x


def test_binary_estimates_equal_a_hand_computation():
    classes = ("0", "1")
    p1 = np.array([0.9, 0.8, 0.35, 0.6, 0.1, 0.45])
    prob = np.column_stack([1 - p1, p1])
    pred = np.array([1, 1, 0, 0, 0, 1])  # the stored prediction, not always the argmax
    accumulator = EstimatedClassification(_identity(classes), _outputs(classes))
    accumulator.update(Chunk(_frame(prob, classes, pred), 0, "test"))
    found = accumulator.result()

    p_pred = prob[np.arange(6), pred]
    accuracy = p_pred.mean()
    half = Z * np.sqrt((p_pred * (1 - p_pred)).sum()) / 6
    assert found["accuracy"].value == pytest.approx(accuracy, abs=1e-12)
    assert found["accuracy"].lower == pytest.approx(max(accuracy - half, 0.0), abs=1e-12)
    assert found["accuracy"].upper == pytest.approx(min(accuracy + half, 1.0), abs=1e-12)

    tp = np.array([prob[pred == k, k].sum() for k in (0, 1)])
    n_pred = np.array([(pred == k).sum() for k in (0, 1)])
    n_true = prob.sum(axis=0)
    assert found["precision_macro"].value == pytest.approx((tp / n_pred).mean(), abs=1e-12)
    assert found["recall_macro"].value == pytest.approx((tp / n_true).mean(), abs=1e-12)
    f1 = (2 * tp / (n_pred + n_true)).mean()
    assert found["f1_macro"].value == pytest.approx(f1, abs=1e-12)

    # Expected ROC AUC: every (positive, negative) weight pair, ranked by the score's bin,
    # pairs in one bin (the row with itself included) counting 1/2.
    bins = np.minimum((p1 * SCORE_BINS).astype(int), SCORE_BINS - 1)
    wins = sum(
        p1[i] * (1 - p1[j]) * (1.0 if bins[i] > bins[j] else 0.5 if bins[i] == bins[j] else 0.0)
        for i in range(6)
        for j in range(6)
    )
    auc = wins / (p1.sum() * (1 - p1).sum())
    assert found["roc_auc"].value == pytest.approx(auc, abs=1e-12)
    for e in found.values():
        assert 0.0 <= e.lower <= e.value <= e.upper <= 1.0


def test_multiclass_counts_equal_a_hand_computation():
    classes = ("a", "b", "c")
    rng = np.random.default_rng(3)
    prob = rng.dirichlet([1.0, 1.0, 1.0], size=40)
    accumulator = EstimatedClassification(_identity(classes), _outputs(classes))
    accumulator.update(Chunk(_frame(prob, classes), 0, "test"))
    pred = prob.argmax(axis=1)
    tp = np.array([prob[pred == k, k].sum() for k in range(3)])
    n_pred = np.bincount(pred, minlength=3)
    n_true = prob.sum(axis=0)
    found = accumulator.result()
    assert found["accuracy"].value == pytest.approx(prob.max(axis=1).mean(), abs=1e-12)
    recall = (tp / n_true).mean()
    assert found["recall_macro"].value == pytest.approx(recall, abs=1e-12)
    assert found["precision_macro"].value == pytest.approx((tp / n_pred).mean(), abs=1e-12)
    # the covariance the intervals draw from: sum over rows of diag(p) - p p^T
    assert np.allclose(accumulator.pp, prob.T @ prob, atol=1e-12)


def test_partitions_through_their_states_equal_one_pass():
    rng = np.random.default_rng(5)
    frame, _ = _binary(rng, 3000)
    estimator = _identity(("0", "1"))
    whole = EstimatedClassification(estimator, _outputs(("0", "1")))
    whole.update(Chunk(frame, 0, "whole"))
    empty = EstimatedClassification(estimator, _outputs(("0", "1")))
    left, right = (
        EstimatedClassification(estimator, _outputs(("0", "1"))) for _ in range(2)
    )
    left.update(Chunk(frame.iloc[:1200], 0, "left"))
    right.update(Chunk(frame.iloc[1200:], 1200, "right"))
    merged = empty.from_state(left.to_state()).merge(empty.from_state(right.to_state()))
    for name in ("n_pred", "exp_tp", "exp_true", "pp", "q", "pos", "count", "var"):
        assert np.allclose(getattr(merged, name), getattr(whole, name), rtol=0, atol=1e-9)
    # The sums agree to rounding; the interval's quantiles of seeded draws from them, to
    # a little more (a covariance's eigenvectors move with its last bits).
    for name, e in whole.result().items():
        other = merged.result()[name]
        assert (other.value, other.lower, other.upper) == pytest.approx(
            (e.value, e.lower, e.upper), abs=1e-9
        )


def test_calibration_map_is_fitted_and_checked_on_disjoint_rows():
    fit, check = split_rows(1001, seed=4)
    assert not set(fit) & set(check) and len(fit) + len(check) == 1001
    rng = np.random.default_rng(0)
    frame, _ = _binary(rng, 6000, temperature=2.5)  # over-confident: the check fails
    truth = frame["y"].astype(int).to_numpy()
    pred = (frame["prediction"] == "1").astype(int).to_numpy()
    scores = frame[["proba_0", "proba_1"]].to_numpy()
    estimator = fit_classification_estimator(("0", "1"), truth, pred, scores, seed=4)
    assert estimator is not None and not estimator.calibrated
    assert estimator.check["p_value_raw"] < 1e-6
    assert estimator.check["n_fit"] + estimator.check["n_check"] == 6000
    # Labels of the check rows changed: the map (fitted on the other rows) stays the same,
    # and only the check's figures move.
    fit, check = split_rows(6000, seed=4)
    changed = truth.copy()
    changed[check] = 1 - changed[check]
    again = fit_classification_estimator(("0", "1"), changed, pred, scores, seed=4)
    assert again is not None
    assert np.array_equal(again.maps[1][0], estimator.maps[1][0])
    assert np.array_equal(again.maps[1][1], estimator.maps[1][1])
    assert again.check["ece_mapped"] > estimator.check["ece_mapped"] + 0.1


def test_isotonic_map_recovers_the_true_probability():
    rng = np.random.default_rng(1)
    z = rng.standard_normal(40_000)
    true = 1 / (1 + np.exp(-z))
    hits = rng.random(z.size) < true
    said = 1 / (1 + np.exp(-3 * z))  # over-confident, same ranking
    x, y = fit_isotonic(said, hits)
    assert np.all(np.diff(y) >= 0) and np.all(np.diff(x) >= 0)
    grid = np.linspace(-2, 2, 9)
    mapped = apply_maps(np.column_stack([1 - 1 / (1 + np.exp(-3 * grid)),
                                         1 / (1 + np.exp(-3 * grid))]), [None, (x, y)])  # fmt: skip
    assert np.abs(mapped[:, 1] - 1 / (1 + np.exp(-grid))).max() < 0.04
    assert np.allclose(mapped.sum(axis=1), 1.0)


def test_multiclass_maps_keep_rows_summing_to_one():
    rng = np.random.default_rng(2)
    prob = rng.dirichlet([2.0, 1.0, 1.0], size=100)
    maps = [(np.array([0.0, 1.0]), np.array([0.1, 0.5])), None, None]
    mapped = apply_maps(prob, maps)
    assert np.allclose(mapped.sum(axis=1), 1.0, atol=1e-12)


def test_calibration_test_holds_its_level_and_finds_miscalibration():
    rng = np.random.default_rng(7)
    rejected = 0
    for _ in range(40):
        p = rng.uniform(0.02, 0.98, 3000)
        truth = (rng.random(3000) < p).astype(int)
        rejected += calibration_test(np.column_stack([1 - p, p]), truth, [1])["p_value"] < 0.05
    assert rejected <= 6  # 5% level: 2 expected of 40; 6 has probability < 1% under it
    p = rng.uniform(0.02, 0.98, 3000)
    truth = (rng.random(3000) < 0.5 + 0.6 * (p - 0.5)).astype(int)  # less extreme than said
    assert calibration_test(np.column_stack([1 - p, p]), truth, [1])["p_value"] < 1e-6


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_intervals_cover_the_realized_metrics_under_covariate_shift(temperature):
    """Over 60 batches of 2,000 rows, moved up to 1.5 sd along the first input, the 95%
    intervals cover the realized accuracy, F1 and ROC AUC in at least 88% of batches (a
    90% coverage has a 5% chance to fall under 88% in 60 draws), for a calibrated model and
    an over-confident one corrected by its map; the mean error of accuracy is under 0.012."""
    rng = np.random.default_rng(11)
    reference, _ = _binary(rng, 20_000, temperature=temperature)
    truth = reference["y"].astype(int).to_numpy()
    pred = (reference["prediction"] == "1").astype(int).to_numpy()
    scores = reference[["proba_0", "proba_1"]].to_numpy()
    estimator = fit_classification_estimator(("0", "1"), truth, pred, scores, seed=0)
    assert estimator is not None and estimator.calibrated == (temperature == 1.0)
    covered: dict[str, list[bool]] = {}
    errors = []
    for i in range(60):
        batch, _ = _binary(rng, 2000, shift=1.5 * i / 60, temperature=temperature)
        accumulator = EstimatedClassification(estimator, _outputs(("0", "1")))
        accumulator.update(Chunk(batch, 0, "batch"))
        realized = ClassificationMetrics(("0", "1"))
        realized.update(batch["y"], batch["prediction"], batch[["proba_0", "proba_1"]])
        found, actual = accumulator.result(), realized.result()
        for name in ("accuracy", "f1_macro", "roc_auc"):
            covered.setdefault(name, []).append(found[name].covers(actual[name]))
        errors.append(abs(found["accuracy"].value - actual["accuracy"]))
    for name, hits in covered.items():
        assert np.mean(hits) >= 0.88, (name, np.mean(hits))
    assert np.mean(errors) < 0.012


def test_concept_drift_puts_the_realized_accuracy_outside_the_interval():
    rng = np.random.default_rng(12)
    reference, _ = _binary(rng, 20_000)
    estimator = fit_classification_estimator(
        ("0", "1"),
        reference["y"].astype(int).to_numpy(),
        (reference["prediction"] == "1").astype(int).to_numpy(),
        reference[["proba_0", "proba_1"]].to_numpy(),
    )
    outside = 0
    for _ in range(20):
        batch, _ = _binary(rng, 5000, flip=0.25)
        accumulator = EstimatedClassification(estimator, _outputs(("0", "1")))
        accumulator.update(Chunk(batch, 0, "batch"))
        realized = ClassificationMetrics(("0", "1"))
        realized.update(batch["y"], batch["prediction"])
        errors = estimate_errors(accumulator.result(), realized.result())
        outside += errors["perf_est_error/accuracy_outside"] == 1.0
        assert errors["perf_est_error/accuracy"] < 0
    assert outside == 20


def test_the_reference_keeps_its_estimator_and_a_batch_reports_estimates(tmp_path):
    rng = np.random.default_rng(21)
    reference_rows, x = _binary(rng, 4000)
    reference_rows[["x0", "x1"]] = x[:, :2]
    reference = monitoring.fit_reference(reference_rows, target="y", prediction="prediction")
    assert isinstance(reference.estimator, ClassificationEstimator)
    assert any("estimated performance: calibration checked" in n for n in reference.notes)
    loaded = load_reference_files(save_reference(reference, tmp_path / "ref"))
    assert loaded.estimator.to_dict() == reference.estimator.to_dict()
    batch, x = _binary(rng, 1500, shift=0.5)
    batch[["x0", "x1"]] = x[:, :2]
    without = monitoring.evaluate(batch.drop(columns="y"), loaded)
    with_labels = monitoring.evaluate(batch, loaded)
    assert without.performance == {}
    assert set(without.estimated_performance) >= {"accuracy", "f1_macro", "roc_auc"}
    assert without.estimated_performance == with_labels.estimated_performance
    keys = estimate_metrics(without.estimated_performance)
    assert {"perf_est/accuracy", "perf_est/accuracy_lower", "perf_est/accuracy_upper"} <= set(keys)


def test_no_estimator_without_probabilities():
    rng = np.random.default_rng(22)
    rows, x = _binary(rng, 1000)
    rows = rows.drop(columns=["proba_0", "proba_1"]).assign(x0=x[:, 0], x1=x[:, 1])
    reference = monitoring.fit_reference(rows, target="y", prediction="prediction")
    assert reference.estimator is None
    assert any(n.startswith("no estimated performance") for n in reference.notes)


def test_a_held_out_gap_is_corrected_only_beyond_its_noise():
    from monitoring.measure.performance.estimation import shrunk_gap

    assert shrunk_gap(0.003, 0.004) == 0.0  # within its noise: a calibrated model's
    assert shrunk_gap(-0.02, 0.004) == pytest.approx(-0.02 * (1 - 0.04), abs=1e-15)
    assert shrunk_gap(0.0, 0.004) == 0.0
    classes = ("0", "1")
    estimator = ClassificationEstimator(
        classes, 1, (None, None), metric_se={"accuracy": 0.004}, metric_gap={"accuracy": -0.02}
    )
    p1 = np.full(1000, 0.8)
    accumulator = EstimatedClassification(estimator, _outputs(classes))
    accumulator.update(Chunk(_frame(np.column_stack([1 - p1, p1]), classes), 0, "test"))
    found = accumulator.result()["accuracy"]
    applied = -0.02 * (1 - 0.04)
    assert found.value == pytest.approx(0.8 + applied, abs=1e-12)
    extra = np.hypot(Z * 0.004, -0.02 - applied)
    half = np.hypot(Z * np.sqrt(1000 * 0.16) / 1000, extra)
    assert found.upper - found.value == pytest.approx(half, abs=1e-12)


def test_the_auc_interval_matches_the_spread_of_simulated_labels():
    """The delta method's sd of the AUC against 3,000 simulated label draws from the same
    probabilities (binned like the realized AUC): within 10%."""
    from monitoring.measure.performance.expected_counts import binned_auc

    rng = np.random.default_rng(8)
    p1 = 1 / (1 + np.exp(-1.5 * rng.standard_normal(2000)))
    classes = ("0", "1")
    accumulator = EstimatedClassification(_identity(classes), _outputs(classes))
    accumulator.update(Chunk(_frame(np.column_stack([1 - p1, p1]), classes), 0, "test"))
    auc, sd = accumulator._auc()
    bins = np.minimum((p1 * SCORE_BINS).astype(int), SCORE_BINS - 1)
    hits = rng.random((3000, p1.size)) < p1
    every = np.bincount(bins, minlength=SCORE_BINS)
    pos = np.stack([np.bincount(bins[h], minlength=SCORE_BINS) for h in hits]).astype(float)
    simulated = binned_auc(pos, every - pos)
    assert auc == pytest.approx(simulated.mean(), abs=0.002)
    assert sd == pytest.approx(simulated.std(ddof=1), rel=0.10)


def test_pool_adjacent_violators_equals_scipy():
    from scipy.optimize import isotonic_regression

    from monitoring.measure.performance.calibration_map import pool_adjacent_violators

    rng = np.random.default_rng(9)
    for size in (1, 2, 7, 500, 5000):
        values = np.sort(rng.random(size)) + 0.3 * rng.standard_normal(size)
        weights = rng.integers(1, 5, size).astype(float)
        expected = isotonic_regression(values, weights=weights).x
        np.testing.assert_allclose(pool_adjacent_violators(values, weights), expected, atol=1e-12)
    ties = np.array([0.5, 0.5, 0.2, 0.9, 0.9, 0.1])  # equal neighbours pool or not: same fit
    np.testing.assert_allclose(
        pool_adjacent_violators(ties, np.ones(6)), isotonic_regression(ties).x, atol=1e-12
    )


def test_the_gaps_spread_resampled_on_a_subsample_matches_every_row(monkeypatch):
    """A large check half resamples BOOTSTRAP_ROWS of its rows, the spread scaled by
    sqrt(those rows / check rows). Against resampling all 60,000 check rows (a 120,000-row
    reference): each metric's spread within 30% (two bootstraps of 100 resamples differ by
    about 10% sd; a missing scale would be 2.4x off). The gaps are taken on every row
    either way, so they are equal."""
    from monitoring.measure.performance import calibration_map

    frame, _ = _binary(np.random.default_rng(7), 120_000, temperature=1.3)
    truth = frame["y"].astype(int).to_numpy()
    pred = (frame["prediction"] == "1").astype(int).to_numpy()
    scores = frame[["proba_0", "proba_1"]].to_numpy()
    sampled = fit_classification_estimator(("0", "1"), truth, pred, scores, seed=2)
    monkeypatch.setattr(calibration_map, "BOOTSTRAP_ROWS", 10**9)
    every = fit_classification_estimator(("0", "1"), truth, pred, scores, seed=2)
    assert sampled is not None and every is not None
    assert sampled.metric_gap == every.metric_gap
    assert set(sampled.metric_se) == set(every.metric_se) >= {"accuracy", "roc_auc"}
    for name, spread in every.metric_se.items():
        assert sampled.metric_se[name] == pytest.approx(spread, rel=0.3), name
