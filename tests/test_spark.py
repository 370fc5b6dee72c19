"""The Spark engine (`monitoring[spark]`) on a `local[2]` session: a batch evaluated and a
reference fitted in Spark equal the single-process pass over the same rows in the
DataFrame's order (counts, digests and worst samples exactly; statistics and sums to
rel 1e-12; the estimated-performance intervals, quantiles of seeded normal draws whose
covariance moves with its last bits, to 1e-9), with 1 to 16 partitions; bad input gets the
same errors; the CLI reads Parquet and a Spark SQL table with a bound filter."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import make_frame

pytest.importorskip(
    "pyspark", reason="monitoring[spark] is not installed (scripts/setup.sh dev installs it)"
)
if shutil.which("java") is None:  # .ci/run installs a Java runtime where it is absent
    pytest.fail("the Spark tests need a Java 17+ runtime (`java` is not on PATH)")

from monitoring import MonitoringConfig, evaluate, fit_reference  # noqa: E402
from monitoring.collect.sources.spark_frame import spark_session  # noqa: E402
from monitoring.errors import (  # noqa: E402
    ColumnNotFoundError,
    ConfigError,
    EmptyBatchError,
    MonitoringError,
)

REL = 1e-12


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark")


def _mixed(n: int, seed: int, shift: float) -> pd.DataFrame:
    """make_frame with missing values and categories the reference never saw."""
    frame = make_frame(n, seed=seed, shift=shift)
    rng = np.random.default_rng(seed + 100)
    frame.loc[rng.random(n) < 0.04, "x"] = np.nan
    frame.loc[rng.random(n) < 0.03, "color"] = None
    frame.loc[rng.random(n) < 0.05, "color"] = "purple"
    return frame


DATASETS = {
    "numeric-and-categorical": lambda: make_frame(3000, seed=2, shift=0.3),
    "missing-and-unseen": lambda: _mixed(3000, seed=5, shift=0.0),
}


@pytest.fixture(scope="module")
def reference(folder):
    path = folder / "reference.parquet"
    make_frame(4000, seed=1).to_parquet(path)
    config = MonitoringConfig().replace("drift", multivariate=("reconstruction", "mmd"))
    return fit_reference(str(path), config=config, target="label", prediction="prediction")


def _in_order(spark_frame, path: Path) -> str:
    """The Spark DataFrame's rows, in its order (partition by partition), as Parquet."""
    pq.write_table(spark_frame.toArrow(), path)
    return str(path)


def _assert_close(found, expected, where: str) -> None:
    """Nested dicts and lists equal, floats to rel 1e-12 (sums over other chunk bounds)."""
    if isinstance(expected, dict):
        assert found.keys() == expected.keys(), where
        for key in expected:
            _assert_close(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(found) == len(expected), where
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=REL, nan_ok=True), where
    else:
        assert found == expected, where


def _assert_same_report(spark_report, single) -> None:
    assert spark_report.n_rows == single.n_rows
    assert spark_report.batch_digest == single.batch_digest
    _assert_close(spark_report.profile, single.profile, "profile")
    assert spark_report.time_range == single.time_range
    assert spark_report.warnings == single.warnings
    assert spark_report.performance.keys() == single.performance.keys()
    for key, value in single.performance.items():
        assert spark_report.performance[key] == pytest.approx(value, rel=REL, nan_ok=True), key
    pd.testing.assert_frame_equal(
        spark_report.drift_table, single.drift_table, rtol=REL, check_exact=False
    )
    pd.testing.assert_frame_equal(spark_report.worst_samples, single.worst_samples)
    if single.segments is not None:
        pd.testing.assert_frame_equal(
            spark_report.segments, single.segments, rtol=REL, check_exact=False
        )
    assert (spark_report.samples is None) == (single.samples is None)
    if single.samples is not None:
        assert spark_report.samples.equals(single.samples)
    assert [(m.method, m.n) for m in spark_report.multivariate] == [
        (m.method, m.n) for m in single.multivariate
    ]
    for a, b in zip(spark_report.multivariate, single.multivariate, strict=True):
        assert a.statistic == pytest.approx(b.statistic, rel=REL)
        assert a.p_value == pytest.approx(b.p_value, rel=REL)
    assert [(q.check, q.feature, q.flagged) for q in spark_report.quality] == [
        (q.check, q.feature, q.flagged) for q in single.quality
    ]
    assert spark_report.estimated_performance.keys() == single.estimated_performance.keys()
    for key, e in single.estimated_performance.items():
        found = spark_report.estimated_performance[key]
        assert found.value == pytest.approx(e.value, rel=REL), key
        assert (found.lower, found.upper) == pytest.approx((e.lower, e.upper), abs=1e-9), key
    assert spark_report.status == single.status


@pytest.mark.parametrize("partitions", [1, 3, 16])
@pytest.mark.parametrize("dataset", DATASETS, ids=str)
def test_a_batch_in_spark_equals_the_single_process_pass(
    spark, folder, reference, dataset, partitions
):
    path = folder / f"{dataset}.parquet"
    if not path.exists():
        DATASETS[dataset]().to_parquet(path)
    frame = spark.read.parquet(str(path))
    frame = frame.coalesce(1) if partitions == 1 else frame.repartition(partitions)
    assert frame.rdd.getNumPartitions() == partitions
    config = MonitoringConfig().replace("drift", multivariate=("reconstruction", "mmd"))
    config = config.replace("evaluation", chunk_size=700)  # chunks cross the partitions
    ordered = _in_order(frame, folder / f"{dataset}-{partitions}-ordered.parquet")
    single = evaluate(ordered, reference, config=config, ignored_samples=["5", "17"])
    in_spark = evaluate(frame, reference, config=config, ignored_samples=["5", "17"])
    _assert_same_report(in_spark, single)
    if partitions == 1:  # the file's own order: the file read in one process
        assert in_spark.batch_digest == evaluate(str(path), reference).batch_digest


@pytest.mark.parametrize("partitions", [1, 7])
def test_a_reference_fitted_in_spark_equals_the_single_process_fit(spark, folder, partitions):
    path = folder / "fit.parquet"
    _mixed(5000, seed=9, shift=0.0).to_parquet(path)
    frame = spark.read.parquet(str(path))
    frame = frame.coalesce(1) if partitions == 1 else frame.repartition(partitions)
    config = MonitoringConfig().replace("evaluation", chunk_size=900)
    ordered = _in_order(frame, folder / f"fit-{partitions}.parquet")
    single = fit_reference(ordered, config=config, target="label", prediction="prediction")
    in_spark = fit_reference(frame, config=config, target="label", prediction="prediction")
    assert in_spark.id == single.id  # a digest of every fitted number: equal to the bit
    assert in_spark.n_rows == single.n_rows == 5000
    for column, profile in single.profiles.items():
        np.testing.assert_array_equal(in_spark.profiles[column].counts, profile.counts)


def test_the_model_runs_in_the_executors(spark, folder):
    from monitoring.demo.data import generate_frame
    from monitoring.demo.model import train_classifier
    from monitoring.demo.run import (
        DEMO_FEATURES_CATEGORICAL,
        DEMO_FEATURES_NUMERIC,
        DEMO_TARGET,
        demo_config,
        with_predictions,
    )

    training = generate_frame(2000, start=datetime(2026, 1, 1), days=10, seed=1)
    model = train_classifier(
        training,
        numeric=DEMO_FEATURES_NUMERIC,
        categorical=DEMO_FEATURES_CATEGORICAL,
        target=DEMO_TARGET,
        epochs=2,
    )
    config = demo_config()
    reference = fit_reference(with_predictions(model, training), config=config)
    batch = generate_frame(2500, start=datetime(2026, 2, 1), days=1, seed=2, drift=0.6)
    path = folder / "loans.parquet"
    batch.to_parquet(path, coerce_timestamps="us")  # Spark reads no nanosecond timestamps
    frame = spark.read.parquet(str(path)).repartition(5)
    ordered = _in_order(frame, folder / "loans-ordered.parquet")
    single = evaluate(ordered, reference, config=config, model=model)
    in_spark = evaluate(frame, reference, config=config, model=model)
    assert in_spark.predicted_by_model and single.predicted_by_model
    assert in_spark.performance["accuracy"] > 0.5
    _assert_same_report(in_spark, single)


@pytest.mark.parametrize("breakage", ["missing-column", "changed-type", "empty"])
def test_bad_input_gets_the_same_error_as_in_one_process(spark, folder, reference, breakage):
    from pyspark.sql import functions as F

    path = folder / "bad.parquet"
    make_frame(500, seed=3).to_parquet(path)
    frame = spark.read.parquet(str(path)).repartition(3)
    frame = {
        "missing-column": lambda f: f.drop("size"),
        "changed-type": lambda f: f.withColumn("x", F.concat(F.lit("v"), F.col("x"))),
        "empty": lambda f: f.limit(0),
    }[breakage](frame)
    local = frame.toArrow().to_pandas()
    with pytest.raises(MonitoringError) as in_one:
        evaluate(local, reference)
    with pytest.raises(MonitoringError) as in_spark:
        evaluate(frame, reference)
    assert type(in_spark.value) is type(in_one.value)
    named = {"missing-column": "'size'", "changed-type": "'x'", "empty": "has no rows"}[breakage]
    assert named in str(in_one.value) and named in str(in_spark.value)
    if breakage == "missing-column":
        assert isinstance(in_spark.value, ColumnNotFoundError)
    if breakage == "empty":
        assert isinstance(in_spark.value, EmptyBatchError)


def test_the_embedding_layer_is_refused_with_spark(spark, folder):
    path = folder / "plain.parquet"
    make_frame(300, seed=4).to_parquet(path)
    config = MonitoringConfig().replace("drift", embedding_layer="hidden")
    with pytest.raises(ConfigError, match="not supported with the Spark engine"):
        fit_reference(spark.read.parquet(str(path)), config=config)


def test_the_cli_fits_and_evaluates_a_spark_table_with_a_bound_filter(
    spark, folder, tracking_uri, monkeypatch
):
    from monitoring.cli.main import main as cli

    frame = pd.concat(
        [make_frame(1500, seed=1).assign(day=0), make_frame(800, seed=2, shift=1.0).assign(day=1)]
    )
    spark.createDataFrame(frame).createOrReplaceTempView("predictions")
    runner = CliRunner()
    roles = ["--target", "label", "--prediction", "prediction", "--exclude", "day"]
    fitted = runner.invoke(
        cli,
        ["reference", "fit", "--engine", "spark", "--table", "predictions"]
        + ["--where", "day = :day", "--param", "day=0", *roles],
    )
    assert fitted.exit_code == 0, fitted.output
    reference_id = fitted.stdout.strip().splitlines()[-1]
    hostile = "0 OR 1=1"  # bound as a value: it matches no row, it is not SQL
    empty = runner.invoke(
        cli,
        ["evaluate", "--engine", "spark", "--table", "predictions", "--where", "day = :day"]
        + ["--param", f"day={hostile}", "--reference", reference_id, "--model-name", "m"],
    )
    assert empty.exit_code == 1, empty.output
    assert "Spark could not read spark table predictions where day = :day" in empty.output
    assert "'0 OR 1=1'" in empty.output  # the value, compared as a value: no row, no SQL
    result = runner.invoke(
        cli,
        ["evaluate", "--engine", "spark", "--table", "predictions", "--where", "day = :day"]
        + ["--param", "day=1", "--reference", reference_id, "--model-name", "m"],
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"status: (drift|degraded) \(800 rows", result.output), result.output
    local = fit_reference(
        frame[frame["day"] == 0],
        target="label",
        prediction="prediction",
        task=None,
        config=MonitoringConfig().replace("schema", exclude=("day",)),
    )
    assert local.id == reference_id  # the same rows fitted in one process


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--table", "t"], "--table go with --engine spark"),
        (["--engine", "spark", "--query", "SELECT 1", "x.parquet"], "--query reads a database"),
        (["--engine", "spark"], "reads a Parquet file or folder (SOURCE) or --table"),
        (["--engine", "spark", "--table", "t;drop table x"], "is not a table name"),
    ],
)
def test_the_cli_refuses_engine_options_that_do_not_go_together(spark, arguments, message):
    from monitoring.cli.main import main as cli

    result = CliRunner().invoke(cli, ["reference", "fit", *arguments])
    assert result.exit_code == 1
    assert message in result.output


def test_without_pyspark_the_spark_engine_says_what_to_install(monkeypatch):
    import builtins

    from monitoring.collect.sources.spark_frame import require_pyspark

    real_import = builtins.__import__

    def no_pyspark(name, *args, **kwargs):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError("No module named 'pyspark'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    with pytest.raises(ConfigError, match=r"pip install 'monitoring\[spark\]'"):
        require_pyspark()


def test_evaluate_and_log_takes_a_spark_dataframe_and_logs_one_run(
    spark, folder, reference, client
):
    import monitoring

    path = folder / "logged.parquet"
    make_frame(900, seed=6, shift=1.0).to_parquet(path)
    frame = spark.read.parquet(str(path)).repartition(4)
    logged = monitoring.evaluate_and_log(
        frame, reference=reference, batch_id="day-1", model_name="spark-model"
    )
    run = client.get_run(logged.run_id)
    assert run.data.tags["monitoring.batch_digest"] == logged.report.batch_digest
    assert run.data.tags["monitoring.batch_digest"] == evaluate(str(path), reference).batch_digest
    assert run.data.params["source.description"].startswith("spark dataframe over ")
    assert run.data.metrics["data/n_rows"] == 900


def test_wrong_counts_are_replaced_by_the_profiling_jobs_own(spark, folder, reference, monkeypatch):
    from monitoring.errors import DataError
    from monitoring.evaluation import spark_pass

    path = folder / "counted.parquet"
    make_frame(1200, seed=8).to_parquet(path)
    frame = spark.read.parquet(str(path)).repartition(3)
    expected = evaluate(_in_order(frame, folder / "counted-ordered.parquet"), reference)
    monkeypatch.setattr(spark_pass, "partition_offsets", lambda _frame: {0: (0, 1200)})
    _assert_same_report(evaluate(frame, reference), expected)
    # A DataFrame that gives other rows on every read (here: the second read drops a row)
    # cannot be profiled exactly: refused, not evaluated on rows numbered wrongly.
    real, calls = spark_pass.profile_partitions, []

    def rows_change(*args, **kwargs):
        states, counted = real(*args, **kwargs)
        calls.append(1)
        return states, {p: n - (len(calls) > 1) for p, n in counted.items()}

    monkeypatch.setattr(spark_pass, "profile_partitions", rows_change)
    with pytest.raises(DataError, match="not deterministic"):
        evaluate(frame, reference)
