"""Fit a reference: one pass of the engine over the reference's chunks, then the fitted
columns, the anomaly and reconstruction models and the Wasserstein nulls, made in the
engine's pool (`evaluation.threads`).

The first chunk decides the schema (roles given, the rest inferred from dtypes) and so
the accumulators (`measure.reference_fit`): one collector per monitored column and a
sample of rows. The reference's id is a digest of what was fitted, so the same data and
settings give the same id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import pandas as pd

from monitoring.collect.sources import Source, open_source
from monitoring.collect.sources.spark_frame import SparkFrameSource
from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig, MonitoringConfig, SchemaConfig
from monitoring.core.engine import Engine, Steps
from monitoring.core.parallel import thread_count
from monitoring.core.schema import Schema, check_columns, infer_schema
from monitoring.errors import DataError, EmptyBatchError, InvalidValueError, SchemaError
from monitoring.evaluation.embedding_fit import EmbeddingFit, embedding_fit, with_embedding
from monitoring.evaluation.fit_models import (
    anomaly_model,
    multivariate_model,
    submit_wasserstein_nulls,
)
from monitoring.evaluation.plan_state import FIT_ACCUMULATORS
from monitoring.evaluation.spark_pass import refuse_embedding_layer, spark_pass
from monitoring.measure.performance.estimator_fit import ERROR_SAMPLE_ROWS, fit_estimator
from monitoring.measure.performance.reference_rows import OutputRows, reference_performance
from monitoring.measure.quality_counts import DuplicateIds
from monitoring.measure.reference import (
    FEATURE,
    ColumnReference,
    NumericalReference,
    Reference,
)
from monitoring.measure.reference_fit import (
    REFERENCE_ERRORS,
    CategoryCollector,
    NumericCollector,
    RowSample,
    categorical_profile,
    numeric_profile,
    reference_columns,
    reference_errors,
    role_of,
    vocabulary_of,
)
from monitoring.stats.calibration import draw_bridges_ahead

ANOMALY_SAMPLE_ROWS = 10_000  # reference rows kept to calibrate the anomaly score
MIN_REFERENCE_ROWS = 10
"""The fewest rows a reference may have: with fewer, quantile bin edges (10 bins by
default), category vocabularies and the thresholds calibrated at the reference's size
describe a handful of values, not a distribution (a one-row reference made every numeric
column constant, so nothing was monitored and every batch came out `ok`). The MMD test
needs as many (`stats.mmd.MIN_ROWS`)."""


def with_roles(config: MonitoringConfig | None, **roles: object) -> MonitoringConfig:
    """The config with the column roles given as arguments (None: the config's own)."""
    return (config or MonitoringConfig()).replace("schema", **roles)


def fit_reference(
    source: pd.DataFrame | str | Source | Any,
    *,
    target: str | None = None,
    prediction: str | None = None,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    task: str | None = None,
    config: MonitoringConfig | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    model: Any = None,
    require_features: bool = True,
) -> Reference:
    """Fit a reference from a DataFrame, a file, a folder, a SQL query (one pass) or a
    Spark DataFrame (its partitions collected in the executors: `evaluation.spark_pass`).

    With `drift.embedding_layer` set, `model` (a loaded module or an MLflow model URI) runs
    over the reference and a sample of that layer's activations is kept with it
    (`evaluation.embedding_fit`); the reference may then have no feature columns (images,
    text). `require_features=False` allows that too, for batch-level tests given otherwise
    (`evaluate(..., dataset_tests=...)`)."""
    config = with_roles(
        config,
        target=target,
        prediction=prediction,
        numerical=numerical,
        categorical=categorical,
        task=task,
    )
    opened = open_source(source, query=query, params=params)
    if isinstance(opened, SparkFrameSource):
        return _fit_in_spark(opened, config, require_features)
    embedding = embedding_fit(model, config.drift)
    reference = fit_reference_chunks(
        opened.iter_chunks(config.evaluation.chunk_size),
        schema=config.schema,
        drift=config.drift,
        source=opened.describe(),
        threads=config.evaluation.threads,
        read_ahead_chunks=bool(getattr(opened, "read_ahead", False)),
        embedding=embedding,
        require_features=require_features and embedding is None,
    )
    return with_embedding(reference, embedding)


def _fit_in_spark(
    source: SparkFrameSource, config: MonitoringConfig, require_features: bool
) -> Reference:
    """The reference fitted from a Spark DataFrame: its partitions collected in the
    executors (`evaluation.spark_pass`), the rest as for any fit."""
    refuse_embedding_layer(config.drift.embedding_layer)
    where = f"reference {source.describe()}"
    plan = _FitPlan(config.schema, config.drift, where, None, require_features)
    names = FIT_ACCUMULATORS
    rows = spark_pass(source, plan, names, chunk_size=config.evaluation.chunk_size)
    with Engine(config.evaluation.threads) as engine:
        return finish_fit(plan, rows, engine, schema=config.schema, source=source.describe())


class _FitPlan:
    """The fit's accumulators, made from the first chunk once its schema is known."""

    def __init__(
        self,
        schema: SchemaConfig | Schema | None,
        drift: DriftConfig,
        where: str,
        embedding: EmbeddingFit | None = None,
        require_features: bool = True,
    ):
        self.hints = schema
        self.drift = drift
        self.where = where
        self.embedding = embedding  # the embedding layer's activations, captured in prepare
        self.require_features = require_features
        self.schema: Schema | None = schema if isinstance(schema, Schema) else None
        self.notes: list[str] = []
        self.numeric: dict[str, NumericCollector] = {}
        self.categorical: dict[str, CategoryCollector] = {}
        self.sample: RowSample | None = None
        self.outputs: OutputRows | None = None  # truth and predictions: its own performance
        self.error_sample: RowSample | None = None  # a regressor's rows: its error model
        self.duplicates: DuplicateIds | None = None
        self.columns: tuple[list[str], list[str]] = ([], [])  # numeric, labels (`decide`)

    def __call__(self, first: pd.DataFrame) -> Steps:
        self.decide(first)
        return self.steps()

    def decide(self, first: pd.DataFrame) -> None:
        """The schema (inferred from the first chunk unless given) and the columns each
        collector takes: decided once, on the driver of a distributed pass."""
        if self.schema is None:
            hints = self.hints if isinstance(self.hints, SchemaConfig) else SchemaConfig()
            self.schema, self.notes = infer_schema(
                first, hints, require_features=self.require_features
            )
        self.columns = reference_columns(self.schema, first)

    def steps(self) -> Steps:
        """The pass's steps, with fresh collectors (after `decide`)."""
        schema = self.schema
        assert schema is not None
        numeric_columns, label_columns = self.columns
        features = set(schema.features)
        self.numeric = {c: NumericCollector(c, with_errors=c in features) for c in numeric_columns}
        self.categorical = {
            c: CategoryCollector(c, with_errors=c in features) for c in label_columns
        }
        self.sample = RowSample(ANOMALY_SAMPLE_ROWS, seed=self.drift.seed, columns=schema.features)
        self.outputs = OutputRows(schema)
        collectors = [*self.numeric.values(), *self.categorical.values(), self.sample]
        collectors.append(self.outputs)
        if schema.task == "regression" and schema.target and schema.prediction:
            wanted = [*schema.features, schema.target, schema.prediction]
            self.error_sample = RowSample(ERROR_SAMPLE_ROWS, seed=self.drift.seed, columns=wanted)
            collectors.append(self.error_sample)
        if schema.id:
            self.duplicates = DuplicateIds(schema.id)
            collectors.append(self.duplicates)
        return Steps(prepare=self.prepare, inline=[c.update for c in collectors])

    def prepare(self, frame: pd.DataFrame, offset: int) -> Chunk:
        """Check the chunk's columns; each row's error of the reference's own predictions."""
        assert self.schema is not None
        check_columns(frame, self.schema, where=self.where, need_prediction=False)
        chunk = Chunk(frame, offset, self.where)
        errors = reference_errors(self.schema, frame, offset=offset, where=self.where)
        chunk.derived[REFERENCE_ERRORS] = errors
        if self.embedding is not None:
            self.embedding.prepare(chunk, self.schema)
        return chunk


def fit_reference_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    schema: SchemaConfig | Schema | None = None,
    drift: DriftConfig | None = None,
    source: str = "dataframe",
    threads: int = 0,
    read_ahead_chunks: bool = False,
    embedding: EmbeddingFit | None = None,
    require_features: bool = True,
) -> Reference:
    """Fit a reference from chunks of one source, in one pass.

    `embedding` captures the embedding layer's activations while the pass runs the model;
    the caller adds them to the result (`embedding_fit.with_embedding`, as `fit_reference`
    does). Without it, a reference with no feature column is refused unless
    `require_features` is False.

    `schema` is either resolved already (a Schema) or the roles to infer the rest from.
    Numeric columns that are constant in the reference are dropped when inferred (noted),
    and refused when listed explicitly; an all-missing column is an error. `threads` is
    `evaluation.threads`.
    """
    drift = drift or DriftConfig()
    plan = _FitPlan(schema, drift, f"reference {source}", embedding, require_features)
    with Engine(threads) as engine:  # its pool, if any, limits malloc's arenas first
        if drift.needs_wasserstein_null and thread_count(threads) > 1:
            draw_bridges_ahead(drift.seed, drift.simulations)  # while the pass runs
        n_rows = engine.run(chunks, plan, read_ahead_chunks=read_ahead_chunks)
        return finish_fit(plan, n_rows, engine, schema=schema, source=source)


def finish_fit(
    plan: _FitPlan,
    n_rows: int,
    engine: Engine,
    *,
    schema: SchemaConfig | Schema | None,
    source: str,
) -> Reference:
    """The reference from a fit plan whose collectors have seen every row (`n_rows`)."""
    drift = plan.drift
    if plan.schema is None or n_rows == 0:
        raise EmptyBatchError(f"reference {source} has no rows")
    if n_rows < MIN_REFERENCE_ROWS:
        raise DataError(
            f"reference {source} has {n_rows} row{'s' * (n_rows > 1)}; a reference "
            f"needs at least {MIN_REFERENCE_ROWS} (MIN_REFERENCE_ROWS) for its bins, "
            "vocabularies and thresholds to describe a distribution"
        )
    numerical_given = isinstance(schema, Schema) or (
        isinstance(schema, SchemaConfig) and schema.numerical is not None
    )
    assert plan.sample is not None and plan.outputs is not None
    outputs = plan.outputs.result()
    error_rows = plan.error_sample.rows if plan.error_sample is not None else None
    reference, estimating, estimator_notes = _assemble(
        plan.schema,
        plan.numeric,
        plan.categorical,
        n_rows,
        drift,
        source,
        plan.notes,
        numerical_given,
        plan.sample.rows,
        engine,
        outputs,
        error_rows,
    )
    estimator = estimating.result()
    notes = (*reference.notes, *estimator_notes)
    reference = dataclasses.replace(reference, estimator=estimator, notes=notes)
    repeated = plan.duplicates.result() if plan.duplicates is not None else None
    return dataclasses.replace(reference, id_duplicate_rows=repeated)


def _assemble(
    schema: Schema,
    numeric: dict[str, NumericCollector],
    categorical: dict[str, CategoryCollector],
    n_rows: int,
    drift: DriftConfig,
    source: str,
    notes: list[str],
    numerical_given: bool,
    sample: pd.DataFrame | None,
    engine: Engine,
    outputs: pd.DataFrame | None,
    error_rows: pd.DataFrame | None,
) -> tuple[Reference, Future[Any], list[str]]:
    """The reference from the collected columns; its performance estimator (being fitted)
    and that fit's notes, to add once it is done. Numeric profiles are made in the engine's
    pool (inline after a small pass), and the Wasserstein nulls taken there; the estimator
    is fitted in the pool (`submit_long`: 20 ms at 5,000 rows, 0.15 s at 100,000) while
    this thread fits the anomaly and reconstruction models and takes the digest. In the
    engine, BLAS is held to one thread: the estimator's bootstrap takes 2 ms so, and a
    second in OpenBLAS's spinning threads on a busy machine."""
    numeric_tasks: dict[str, Future[NumericalReference]] = {}
    dropped: list[str] = []
    for column, collector in numeric.items():
        values = collector.values()
        if values.size == 0:
            raise InvalidValueError(f"reference column {column!r} is entirely missing")
        if values.min() == values.max() and role_of(schema, column) == FEATURE:
            if numerical_given:
                raise SchemaError(
                    f"reference column {column!r} is constant ({values[0].item()!r} in "
                    "every row): drift on it cannot be scaled; remove it from the "
                    "numerical features"
                )
            notes.append(f"column {column!r} is constant in the reference: not monitored")
            dropped.append(column)
            continue
        role = role_of(schema, column)
        numeric_tasks[column] = engine.submit(
            numeric_profile, column, role, collector, drift, values
        )
    label_columns = {c for c in (schema.target, schema.prediction) if c}
    classes: tuple[str, ...] = ()
    if schema.task == "classification":
        seen: set[str] = set(schema.prediction_scores)
        for column in label_columns & set(categorical):
            seen |= set(categorical[column].counts)
        classes = tuple(sorted(seen))
    categorical_profiles: dict[str, ColumnReference] = {}
    for column, collector in categorical.items():
        if not collector.counts:
            raise InvalidValueError(f"reference column {column!r} is entirely missing")
        if column in label_columns and classes:
            vocabulary = classes
        else:
            vocabulary = vocabulary_of(collector.counts, drift.max_categories)
        role = role_of(schema, column)
        categorical_profiles[column] = categorical_profile(column, role, collector, vocabulary)
    profiles: dict[str, ColumnReference] = {c: task.result() for c, task in numeric_tasks.items()}
    profiles.update(categorical_profiles)
    nulls = submit_wasserstein_nulls(engine, profiles, drift)
    if dropped:
        schema = dataclasses.replace(
            schema,
            numerical=tuple(c for c in schema.numerical if c not in dropped),
            ignored=schema.ignored + tuple(dropped),
        )
    estimator_notes: list[str] = []
    estimating = engine.submit_long(
        fit_estimator, schema, classes, outputs, error_rows, seed=drift.seed, notes=estimator_notes
    )
    reference = Reference(
        schema=schema,
        profiles=profiles,
        n_rows=n_rows,
        classes=classes,
        bins=drift.bins,
        smoothing=float(drift.smoothing),
        max_categories=drift.max_categories,
        source=source,
        notes=tuple(notes),
        anomaly=anomaly_model(profiles, sample, drift, notes),
        multivariate=multivariate_model(profiles, sample, drift, notes),
        performance=reference_performance(schema, classes, outputs),
    )
    # The id leaves the nulls out (derived data), so it is taken before they are in.
    reference = dataclasses.replace(reference, id=reference.digest(), notes=tuple(notes))
    with_nulls = {
        c: dataclasses.replace(p, wasserstein_null=nulls[c].result()) if c in nulls else p  # type: ignore[type-var]
        for c, p in profiles.items()
    }
    return dataclasses.replace(reference, profiles=with_nulls), estimating, estimator_notes
