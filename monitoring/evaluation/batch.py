"""Evaluate a batch against a reference in one streaming pass: the library's main call.

    report = monitoring.evaluate(batch_df, reference_df, target="label")

The engine runs the batch's accumulators (`batch_plan`) over its chunks: drift counts per
column, performance, worst samples, segments, multivariate tests, digest and time range.
Memory is bounded by the reference and k, not by the batch, except for the id column
(its distinct hashes, and every id for `samples.parquet`). Nothing here talks to MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from monitoring.collect.inference import load_model
from monitoring.collect.sources import Source, open_source
from monitoring.collect.sources.base import expected_rows
from monitoring.collect.sources.spark_frame import SparkFrameSource
from monitoring.core.config import MonitoringConfig
from monitoring.core.engine import Engine
from monitoring.core.schema import check_roles_against
from monitoring.errors import EmptyBatchError, SchemaError
from monitoring.evaluation.batch_plan import BatchPlan
from monitoring.evaluation.fit import fit_reference, with_roles
from monitoring.evaluation.plan_state import BATCH_ACCUMULATORS
from monitoring.evaluation.report import BatchReport
from monitoring.evaluation.spark_pass import refuse_embedding_layer, spark_pass
from monitoring.measure.drift import (
    ColumnDrift,
    batch_free_nulls,
    batch_size_nulls,
    decide_drift,
)
from monitoring.measure.multivariate import DatasetDrift
from monitoring.measure.performance.tests import performance_tests
from monitoring.measure.quality import decide_quality
from monitoring.measure.reference import FEATURE, Reference

__all__ = ["evaluate"]


def evaluate(
    batch: pd.DataFrame | str | Source | Any,
    reference: Reference | pd.DataFrame | str | Source,
    *,
    target: str | None = None,
    prediction: str | None = None,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    task: str | None = None,
    config: MonitoringConfig | None = None,
    model: Any = None,
    batch_id: str | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    progress: Callable[[int], None] | None = None,
    ignored_samples: Sequence[str] = (),
    dataset_tests: Sequence[DatasetDrift] = (),
) -> BatchReport:
    """Evaluate `batch` against `reference` (a fitted Reference, or data to fit one from).

    `model` is an MLflow model URI or a loaded module; it is loaded and run only when the
    batch has no prediction column (or only empty ones in its first chunk). `query` and
    `params` apply to a SQL batch. The column roles given here override the config's; with a
    fitted reference they must equal its own (ConfigError otherwise: its roles were fixed
    when it was fitted). Batch columns outside the reference's schema are reported once and
    not monitored (`schema.extra_columns = "error"` refuses them; `schema.exclude` silences
    them); they are kept in the worst samples. `ignored_samples` (ids, or row numbers
    without an id column) are left out of a second set of performance metrics, reported as
    `<metric>_excl_ignored` beside the full ones. `dataset_tests` are batch-level tests
    computed elsewhere (`monitoring.embedding_drift`): decided with the input features
    (multiple-testing control included) and logged as `drift/dataset/<method>`. With
    `drift.embedding_layer` set, `model` runs over the batch (and over the reference when it
    is fitted here) with that layer hooked, and the embedding test (`embedding_mmd`) is
    decided the same way; the reference may then have no feature columns (images, text).
    `progress` is called with 0 when the pass starts, then with the rows read so far after
    each chunk. `batch` (and `reference`, when it is fitted here) may be a Spark DataFrame
    (`monitoring[spark]`): its partitions are profiled in the executors and only their
    states come to this process (`evaluation.spark_pass`); the result equals this
    process's pass over the same rows.
    """
    started = time.perf_counter()
    config = with_roles(
        config,
        target=target,
        prediction=prediction,
        numerical=numerical,
        categorical=categorical,
        task=task,
    )
    if config.drift.embedding_layer is not None and isinstance(model, str):
        model = load_model(model)  # once, for the reference and the batch
    if isinstance(reference, Reference):
        check_roles_against(reference.schema, config.schema, reference=reference.id)
    else:
        reference = fit_reference(
            reference, config=config, model=model, require_features=not dataset_tests
        )
    _check_inputs_tested(reference, config, dataset_tests)
    source = open_source(batch, query=query, params=params)
    ignored = frozenset(str(i) for i in ignored_samples)
    plan = BatchPlan(reference, config, model, where=f"batch {source.name}", ignored=ignored)
    with Engine(config.evaluation.threads) as engine:
        calls = batch_free_nulls(reference, config.drift)
        rows = expected_rows(source)
        if rows is not None and engine.pool_idle_during(rows):
            calls += batch_size_nulls(reference, config.drift, rows)
        ahead = [engine.submit(call) for call in calls]
        if isinstance(source, SparkFrameSource):
            refuse_embedding_layer(config.drift.embedding_layer)
            n_rows = spark_pass(
                source,
                plan,
                BATCH_ACCUMULATORS,
                chunk_size=config.evaluation.chunk_size,
                progress=progress,
            )
        else:
            n_rows = engine.run(
                source.iter_chunks(config.evaluation.chunk_size),
                plan,
                read_ahead_chunks=bool(getattr(source, "read_ahead", False)),
                progress=progress,
            )
        if n_rows == 0:
            raise EmptyBatchError(f"batch {source.describe()} has no rows")
        for task in ahead:
            task.result()
        tests = (*plan.multivariate.result(), *plan.embedding.result(), *dataset_tests)
        columns, dataset = decide_drift(plan.counts, config.drift, tests, mapper=engine.map)
        quality = decide_quality(plan.quality(), config.quality)
    warnings = plan.warnings + plan.multivariate.warnings + plan.embedding.warnings
    warnings += _data_warnings(columns)
    assert plan.worst is not None
    return BatchReport(
        reference=reference,
        columns=columns,
        multivariate=dataset,
        n_rows=n_rows,
        performance=plan.performance_result(),
        estimated_performance=plan.estimated_result(),
        worst_samples=plan.worst.result(),
        segments=(
            plan.segments.table(config.performance) if plan.performance is not None else None
        ),
        batch_digest=plan.digest.result(),
        source=source.describe(),
        source_name=source.name,
        profile=plan.counts.to_dict(n_rows),
        time_range=plan.time_range.result(),
        batch_id=batch_id,
        predicted_by_model=plan.predicted_by_model,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
        # Performance against the reference's own (issue 22): one-sided tests, own family.
        performance_tests=performance_tests(
            reference.performance,
            plan.performance.metrics if plan.performance is not None else None,
            config.performance,
        ),
        quality=quality,
        samples=plan.samples.result() if plan.samples is not None else None,
    )


def _check_inputs_tested(
    reference: Reference, config: MonitoringConfig, dataset_tests: Sequence[DatasetDrift]
) -> None:
    """A reference without feature columns needs a batch-level test of the inputs."""
    if reference.schema.features or dataset_tests or config.drift.embedding_layer:
        return
    raise SchemaError(
        f"reference {reference.id} has no feature columns: the batch's inputs can only be "
        "tested by their embedding (`drift.embedding_layer` with the model) or by "
        "`dataset_tests`"
    )


def _data_warnings(columns: Sequence[ColumnDrift]) -> list[str]:
    out = []
    for c in columns:
        if c.n == 0:
            out.append(f"column {c.column!r} is entirely missing in the batch")
        if c.role == FEATURE and c.unseen_rate:
            out.append(
                f"column {c.column!r}: {c.unseen_rate:.1%} of values are categories the "
                "reference never saw"
            )
    return out
