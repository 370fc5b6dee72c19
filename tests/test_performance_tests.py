"""Performance against the reference's (`measure/performance/tests.py`): the math against
scipy, closed forms, simulation and the bootstrap; the family's false alarms on
reference-like batches over many seeds; concept drift found end to end.

Tolerances: 1e-12 where the same formula is computed two ways; 1e-9 relative for p-values
against scipy; 10% for standard errors against simulation or the bootstrap (1,000 to
4,000 draws: the Monte Carlo error of a standard deviation is about 1.1-2.2%).
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

import monitoring
from monitoring.core.performance_config import PerformanceConfig
from monitoring.errors import ConfigError
from monitoring.measure.performance import ClassificationMetrics, RegressionMetrics
from monitoring.measure.performance.classification import binned_roc_auc
from monitoring.measure.performance.summary import PerformanceSummary, summarize
from monitoring.measure.performance.tests import (
    binned_auc_variance,
    confusion_metric,
    fisher_less,
    mean_rise_pvalue,
    p_text,
    performance_tests,
    z_pvalue,
)
from monitoring.measure.reference_files import load_reference_files, save_reference

CONCEPT_B = -0.52  # the x2 coefficient of the drifted concept: accuracy 0.74 -> 0.59


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    low = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


# --- the math ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        pytest.param((370, 500, 14800, 20000), id="reference-like"),
        pytest.param((2950, 5000, 14800, 20000), id="concept-drift"),
        pytest.param((3, 10, 9, 10), id="tiny"),
        pytest.param((10, 10, 5, 10), id="better"),
    ],
)
def test_fisher_less_equals_scipy_fisher_exact(table):
    s, n, r, m = table
    expected = stats.fisher_exact([[s, n - s], [r, m - r]], alternative="less").pvalue
    assert fisher_less(s, n, r, m) == pytest.approx(expected, rel=1e-9)


def test_z_pvalue_is_the_normal_upper_tail_and_handles_zero_variance():
    drops = np.array([-1.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(z_pvalue(drops, 0.25), stats.norm.sf(drops / 0.5), rtol=1e-12)
    np.testing.assert_array_equal(z_pvalue([0.1, 0.0, -0.1], 0.0), [0.0, 1.0, 1.0])


def test_mean_rise_is_welch_z_by_hand_and_near_scipy_welch_t():
    rng = np.random.default_rng(0)
    batch, reference = rng.exponential(1.1, 3000), rng.exponential(1.0, 8000)
    rise, p = mean_rise_pvalue(
        (batch.size, batch.sum(), batch @ batch),
        (reference.size, reference.sum(), reference @ reference),
    )
    se = np.sqrt(batch.var(ddof=1) / batch.size + reference.var(ddof=1) / reference.size)
    assert rise == pytest.approx(batch.mean() - reference.mean(), rel=1e-12)
    assert p == pytest.approx(stats.norm.sf(rise / se), rel=1e-9)
    welch = stats.ttest_ind(batch, reference, equal_var=False, alternative="greater").pvalue
    assert p == pytest.approx(welch, rel=0.05)  # z against t at ~4,000 degrees of freedom


@pytest.mark.parametrize("metric", ["precision", "recall", "f1"])
def test_confusion_metric_value_matches_sklearn_and_its_se_the_simulated_one(metric):
    cells = np.array([[0.40, 0.05, 0.05], [0.05, 0.20, 0.05], [0.02, 0.03, 0.15]]).ravel()
    rng = np.random.default_rng(1)
    confusion = rng.multinomial(2000, cells).reshape(3, 3)
    truth = np.repeat(np.repeat([0, 1, 2], 3), confusion.ravel())
    predicted = np.repeat(np.tile([0, 1, 2], 3), confusion.ravel())
    expected = skm.precision_recall_fscore_support(
        truth, predicted, average="macro", zero_division=0
    )[("precision", "recall", "f1").index(metric)]
    value, variance = confusion_metric(confusion, metric)
    simulated = [
        confusion_metric(rng.multinomial(2000, cells).reshape(3, 3), metric)[0] for _ in range(4000)
    ]
    assert value == pytest.approx(expected, rel=1e-12)
    assert np.sqrt(variance) == pytest.approx(np.std(simulated), rel=0.10)


def _delong_per_row(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """DeLong's AUC and variance from per-row scores (pairwise comparisons)."""
    psi = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives)
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size


def test_binned_auc_variance_is_delong_on_binned_scores():
    rng = np.random.default_rng(2)
    bins = 64
    positives = (np.floor(rng.beta(3, 2, 700) * bins) + 0.5) / bins  # at bin centres
    negatives = (np.floor(rng.beta(2, 3, 900) * bins) + 0.5) / bins
    index = np.minimum((positives * bins).astype(int), bins - 1)
    pos_hist = np.bincount(index, minlength=bins)
    neg_hist = np.bincount(np.minimum((negatives * bins).astype(int), bins - 1), minlength=bins)
    auc, variance = binned_auc_variance(pos_hist, neg_hist)
    expected_auc, expected_variance = _delong_per_row(positives, negatives)
    assert auc == pytest.approx(expected_auc, abs=1e-12)
    assert auc == pytest.approx(binned_roc_auc(pos_hist, neg_hist)[0], abs=1e-12)
    assert variance == pytest.approx(expected_variance, rel=1e-12)


def test_roc_auc_standard_error_matches_the_bootstrap_of_sklearn():
    """Continuous scores through the accumulator's 4,096 bins; 1,000 bootstrap resamples
    of the rows, sklearn's roc_auc_score on each; standard errors within 10%."""
    rng = np.random.default_rng(3)
    truth = rng.random(3000) < 0.4
    scores = 1 / (1 + np.exp(-(1.5 * truth - 0.75 + rng.normal(0, 1.2, 3000))))
    metrics = ClassificationMetrics(["n", "y"])
    metrics.update(np.where(truth, "y", "n"), None, np.column_stack([1 - scores, scores]))
    positives, negatives = metrics.auc_histograms()
    _, variance = binned_auc_variance(positives[0], negatives[0])
    draws = rng.integers(0, 3000, (1000, 3000))
    boot = [skm.roc_auc_score(truth[d], scores[d]) for d in draws]
    assert np.sqrt(variance) == pytest.approx(np.std(boot), rel=0.10)


def test_regression_moments_match_numpy_and_survive_merge_and_state():
    rng = np.random.default_rng(4)
    y, yhat = rng.normal(1e6, 3, 5000), rng.normal(1e6, 3, 5000)
    whole, first, second = RegressionMetrics(), RegressionMetrics(), RegressionMetrics()
    whole.update(y, yhat)
    first.update(y[:1234], yhat[:1234])
    second.update(y[1234:], yhat[1234:])
    merged = first.from_state(first.to_state()).merge(second.from_state(second.to_state()))
    errors = np.abs(y - yhat)
    for found in (whole.error_moments(), merged.error_moments()):
        for key, values in (("mae", errors), ("mse", errors**2)):
            n, mean, m2 = found[key]
            assert n == values.size
            assert mean == pytest.approx(values.mean(), rel=1e-12)
            assert m2 == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-9)


def test_regression_tests_are_welch_z_on_abs_and_squared_errors():
    """MAE on |e|, RMSE on e^2 (a rise of RMSE is a rise of MSE): p-values against the
    closed form, values against numpy."""
    rng = np.random.default_rng(5)
    y_r, y_b = rng.normal(0, 1, 4000), rng.normal(0, 1, 1500)
    e_r, e_b = rng.standard_t(6, 4000), 1.1 * rng.standard_t(6, 1500)
    reference, batch = RegressionMetrics(), RegressionMetrics()
    reference.update(y_r, y_r + e_r)
    batch.update(y_b, y_b + e_b)
    found = {
        t.metric: t for t in performance_tests(summarize(reference), batch, PerformanceConfig())
    }
    for metric, values_b, values_r in (
        ("mae", np.abs(e_b), np.abs(e_r)),
        ("rmse", e_b**2, e_r**2),
    ):
        se = np.sqrt(values_b.var(ddof=1) / values_b.size + values_r.var(ddof=1) / values_r.size)
        expected = stats.norm.sf((values_b.mean() - values_r.mean()) / se)
        assert found[metric].p_value == pytest.approx(expected, rel=1e-9)
    assert found["rmse"].value == pytest.approx(np.sqrt(np.mean(e_b**2)), rel=1e-12)
    assert found["mae"].reference == pytest.approx(np.mean(np.abs(e_r)), rel=1e-12)


def test_p_text():
    assert [p_text(p) for p in (0.2, 0.0123, 3e-8, 0.0)] == [
        "p = 0.200",
        "p = 0.012",
        "p < 1e-7",
        "p < 1e-300",
    ]


def test_min_drop_is_absolute_for_scores_and_relative_for_errors():
    config = PerformanceConfig(min_drop={"accuracy": 0.05})
    assert config.min_drop_for("accuracy", 0.9) == 0.05
    assert config.min_drop_for("roc_auc", 0.9) == 0.02
    assert config.min_drop_for("log_loss", 0.5) == pytest.approx(0.025)
    with pytest.raises(ConfigError, match="`performance.min_drop` must be keyed by"):
        PerformanceConfig(min_drop={"acuracy": 0.1})
    with pytest.raises(ConfigError, match="`performance.metrics` must be a list of"):
        PerformanceConfig(metrics=("r2",))


# --- the family on generated data -------------------------------------------------------


def _side(rng: np.random.Generator, n: int, task: str, concept: float = 1.0):
    """n rows of a fixed model: classification scores from logit 1.2 x1 + x2 with truth
    drawn from 1.2 x1 + concept x2; regression 2 x1 + x2 with t(5) errors."""
    x1, x2 = rng.standard_normal((2, n))
    if task == "regression":
        metrics = RegressionMetrics()
        metrics.update(2 * x1 + x2 + rng.standard_t(5, n), 2 * x1 + x2)
        return metrics
    scores = 1 / (1 + np.exp(-(1.2 * x1 + x2)))
    truth = rng.random(n) < 1 / (1 + np.exp(-(1.2 * x1 + concept * x2)))
    metrics = ClassificationMetrics(["a", "b"])
    metrics.update(np.where(truth, "b", "a"), None, np.column_stack([1 - scores, scores]))
    return metrics


@pytest.mark.parametrize(
    ("task", "rows", "seeds"),
    [
        pytest.param("classification", 500, 1000, id="classification-500"),
        pytest.param("classification", 5000, 400, id="classification-5000"),
        pytest.param("regression", 500, 1000, id="regression-500"),
        pytest.param("regression", 5000, 400, id="regression-5000"),
    ],
)
def test_reference_like_batches_false_alarm_at_most_alpha(task, rows, seeds):
    """A fresh 5,000-row reference and a batch from the same population per seed; the
    family (6 classification or 2 regression metrics, Holm, default minimum drops) flags
    the batch with probability at most alpha = 0.05. Measured (seeded, any metric flagged;
    95% Clopper-Pearson): classification 500 rows 11/1000 = 0.011 [0.006, 0.020], 5,000
    rows 5/400 = 0.013 [0.004, 0.029]; regression 500 rows 20/1000 = 0.020 [0.012, 0.031],
    5,000 rows 7/400 = 0.018 [0.007, 0.036]. The upper bound must stay under alpha."""
    rng = np.random.default_rng(11)
    config = PerformanceConfig()
    flagged = 0
    for _ in range(seeds):
        reference = summarize(_side(rng, 5000, task))
        flagged += any(
            t.flagged for t in performance_tests(reference, _side(rng, rows, task), config)
        )
    low, high = clopper_pearson(flagged, seeds)
    assert high <= config.alpha, (flagged, seeds, low, high)


# --- end to end ---------------------------------------------------------------------------


def _frame(n: int, rng: np.random.Generator, concept: float = 1.0, north_only: bool = False):
    """Inputs x1, x2 (standard normal) and region; the model's score from 1.2 x1 + x2; the
    truth from 1.2 x1 + concept x2 (everywhere, or in region "north" only). The inputs and
    the label rate do not depend on the concept."""
    x1, x2 = rng.standard_normal((2, n))
    region = rng.choice(["north", "south", "east", "west"], n)
    coefficient = np.where(region == "north", concept, 1.0) if north_only else concept
    truth = rng.random(n) < 1 / (1 + np.exp(-(1.2 * x1 + coefficient * x2)))
    score = 1 / (1 + np.exp(-(1.2 * x1 + x2)))
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "region": region,
            "label": np.where(truth, "yes", "no"),
            "prediction": np.where(score > 0.5, "yes", "no"),
            "proba_yes": score,
        }
    )


@pytest.fixture(scope="module")
def concept_reference() -> monitoring.Reference:
    return monitoring.fit_reference(
        _frame(20_000, np.random.default_rng(21)),
        config=monitoring.MonitoringConfig().replace(
            "schema",
            target="label",
            prediction="prediction",
            prediction_scores={"yes": "proba_yes"},
            task="classification",
        ),
    )


def test_reference_output_rows_merge_through_their_states():
    """The fit's collector of truth and outputs follows the accumulator protocol: two
    partitions sent through their states and merged give the same reference performance."""
    from monitoring.core.accumulator import Chunk
    from monitoring.core.schema import Schema
    from monitoring.measure.performance.reference_rows import OutputRows, reference_performance

    frame = _frame(3000, np.random.default_rng(71))
    schema = Schema(
        numerical=("x1", "x2"),
        categorical=("region",),
        target="label",
        prediction="prediction",
        prediction_scores={"yes": "proba_yes"},
        task="classification",
    )
    parts = []
    for start, stop in ((0, 1100), (1100, 3000)):
        rows = OutputRows(schema)
        rows.update(Chunk(frame.iloc[start:stop], start, "reference test"))
        parts.append(rows.from_state(rows.to_state()))
    whole = OutputRows(schema)
    whole.update(Chunk(frame, 0, "reference test"))
    classes = ("no", "yes")
    merged = reference_performance(schema, classes, parts[0].merge(parts[1]).result())
    expected = reference_performance(schema, classes, whole.result())
    assert merged is not None and expected is not None
    assert merged.metrics == pytest.approx(expected.metrics, rel=1e-12)
    np.testing.assert_array_equal(merged.confusion, expected.confusion)


def test_reference_keeps_its_performance_through_its_files(concept_reference):
    performance = concept_reference.performance
    assert isinstance(performance, PerformanceSummary)
    assert performance.metrics["accuracy"] == pytest.approx(0.74, abs=0.01)
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_reference_files(save_reference(concept_reference, folder))
    assert loaded.id == concept_reference.id
    assert loaded.performance.metrics == performance.metrics
    np.testing.assert_array_equal(loaded.performance.auc_positive, performance.auc_positive)


@pytest.mark.parametrize(
    ("rows", "batches"),
    [pytest.param(5000, 20, id="5000-rows"), pytest.param(50_000, 10, id="50000-rows")],
)
def test_concept_drift_is_degraded_and_named(concept_reference, rows, batches):
    """P(label | inputs) changes, inputs and label rate do not: accuracy 0.74 -> 0.59.
    Status `degraded` in at least 90% of the batches (measured: all of them), with
    accuracy among the flagged metrics and named in its reason."""
    rng = np.random.default_rng(rows)
    degraded = 0
    for _ in range(batches):
        report = monitoring.evaluate(_frame(rows, rng, concept=CONCEPT_B), concept_reference)
        accuracy = {t.metric: t for t in report.performance_tests}["accuracy"]
        degraded += report.status == "degraded" and accuracy.flagged
        assert accuracy.reason.startswith(
            f"accuracy {accuracy.value:.3g} against {accuracy.reference:.3g} on the reference"
        )
        assert accuracy.drop == pytest.approx(0.15, abs=0.03)
    assert degraded >= 0.9 * batches


def test_reference_like_batches_stay_ok_end_to_end(concept_reference):
    rng = np.random.default_rng(31)
    reports = [monitoring.evaluate(_frame(5000, rng), concept_reference) for _ in range(10)]
    assert sum(r.degraded for r in reports) <= 1
    assert all(len(r.performance_tests) == 6 for r in reports)


def test_a_drop_confined_to_one_region_is_named_in_segments(concept_reference):
    rng = np.random.default_rng(41)
    report = monitoring.evaluate(
        _frame(20_000, rng, concept=-1.0, north_only=True), concept_reference
    )
    segments = report.segments
    flagged = segments[segments["degraded"]]
    assert ("region", "north") in set(zip(flagged["feature"], flagged["segment"], strict=True))
    others = segments[(segments["feature"] == "region") & (segments["segment"] != "north")]
    assert not others["degraded"].any()


# --- what the user sees: MLflow, the CLI ---------------------------------------------------


def test_degraded_batch_run_in_mlflow_and_the_reference_run(client, concept_reference):
    from monitoring.track import load_reference, log_reference

    run_id = log_reference(client, concept_reference)
    assert client.get_run(run_id).data.metrics["perf/accuracy"] == pytest.approx(
        concept_reference.performance.metrics["accuracy"]
    )
    loaded = load_reference(client, concept_reference.id)  # its digest is checked on load
    assert loaded.performance.metrics == concept_reference.performance.metrics
    logged = monitoring.evaluate_and_log(
        _frame(5000, np.random.default_rng(51), concept=CONCEPT_B),
        reference=concept_reference,
        batch_id="day-1",
        model_name="churn",
    )
    run = client.get_run(logged.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    assert tags["monitoring.status"] == "degraded"
    assert metrics["perf/degraded"] == 1.0
    for key in ("reference", "drop", "adjusted_pvalue", "degraded"):
        assert f"perf/accuracy_{key}" in metrics
    assert "perf/accuracy_pvalue" not in metrics  # the raw one is in performance.csv
    assert metrics["perf/accuracy_reference"] == pytest.approx(
        concept_reference.performance.metrics["accuracy"]
    )
    assert metrics["perf/accuracy_drop"] == pytest.approx(0.15, abs=0.03)
    note = tags["mlflow.note.content"]
    assert "**Status: `degraded`**" in note
    assert "**Performance degraded**: accuracy 0." in note
    assert "| accuracy |" in note
    folder = client.download_artifacts(logged.run_id, "segments.csv")
    segments = pd.read_csv(folder)
    assert {"error_rise", "rise_p_value", "rise_adjusted_p_value", "degraded"} <= set(segments)


def test_cli_prints_the_degraded_reason_and_fails_on_it(client, concept_reference, tmp_path):
    from click.testing import CliRunner

    from monitoring.cli.main import main
    from monitoring.cli.options import EXIT_DRIFT
    from monitoring.track import log_reference

    log_reference(client, concept_reference)
    batch = tmp_path / "batch.csv"
    _frame(5000, np.random.default_rng(61), concept=CONCEPT_B).to_csv(batch, index=False)
    result = CliRunner().invoke(
        main,
        ["evaluate", str(batch), "--reference", concept_reference.id, "--fail-on-drift"],
    )
    assert result.exit_code == EXIT_DRIFT, result.output
    assert "status: degraded" in result.output
    assert "degraded: accuracy 0." in result.output
    assert "against 0.74" in result.output


@pytest.mark.parametrize(
    ("k", "total", "successes", "draws"),
    [(3, 20, 7, 8), (0, 10, 5, 5), (4000, 10_000, 8_000, 5_000), (3900, 10_000, 8_000, 5_000),
     (3300, 10_000, 7_000, 5_000), (70, 100, 90, 80), (45, 2_000_000, 100, 1_000_000)],  # fmt: skip
)
def test_the_hypergeometric_cdf_equals_scipy(k, total, successes, draws):
    """Within 1e-9 relative, in the body and far in the tails (p down to 1e-100)."""
    from monitoring.stats.hypergeometric import hypergeom_cdf

    expected = float(stats.hypergeom.cdf(k, total, successes, draws))
    assert hypergeom_cdf(k, total, successes, draws) == pytest.approx(
        expected, rel=1e-9, abs=1e-300
    )


def test_a_fresh_process_evaluates_a_batch_without_importing_scipy_stats(tmp_path):
    """scipy.stats costs 0.45 s to import: Fisher's test and the exact KS loop of unequal
    sizes no longer pull it in, so a batch evaluated in a fresh process does not pay it."""
    import subprocess
    import sys

    from conftest import make_frame

    make_frame(1500, seed=1).to_parquet(tmp_path / "r.parquet")
    make_frame(700, seed=2).iloc[:-3].to_parquet(tmp_path / "b.parquet")  # unequal sizes
    program = (
        "import sys\n"
        "from monitoring import evaluate\n"
        f"report = evaluate({str(tmp_path / 'b.parquet')!r}, {str(tmp_path / 'r.parquet')!r})\n"
        "assert report.performance_tests, 'the accuracy test (Fisher) must have run'\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    found = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "False"
