"""Evaluate a batch against a reference in one streaming pass: the library's main call.

    report = monitoring.evaluate(batch_df, reference_df, target="label")

Per chunk: check columns, run the model if the batch has no prediction, clean values,
update the drift profile, the performance accumulators and the worst-samples heap. Memory
is bounded by the reference and k, not by the batch. Nothing here talks to MLflow.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd

from monitoring.collect.columns import (
    ClassCoder,
    LabelCoder,
    label_values,
    numeric_values,
    score_matrix,
)
from monitoring.collect.inference import load_model, model_classes, predict_frame
from monitoring.collect.sources import Source, open_source
from monitoring.core.config import MonitoringConfig
from monitoring.core.parallel import blas_kept_to_one_thread, column_executor, read_ahead
from monitoring.core.schema import Schema, check_columns
from monitoring.errors import EmptyBatchError, InvalidValueError
from monitoring.evaluation.report import BatchReport
from monitoring.explain.segments import SegmentErrors
from monitoring.explain.worst_samples import WorstSamples
from monitoring.measure.batch_counts import BatchCounts
from monitoring.measure.drift import batch_free_nulls, decide_drift
from monitoring.measure.multivariate import DatasetDrift, MultivariatePass
from monitoring.measure.performance import (
    ClassificationMetrics,
    RegressionMetrics,
    classification_error,
    regression_error,
)
from monitoring.measure.reference import (
    FEATURE,
    NumericalReference,
    Reference,
    fit_reference_chunks,
)
from monitoring.stats.sorted_column import SortedColumn

DEFAULT_PREDICTION_COLUMN = "prediction"


def _with_roles(config: MonitoringConfig | None, **roles: Any) -> MonitoringConfig:
    config = config or MonitoringConfig()
    return config.replace("schema", **roles)


def fit_reference(
    source: pd.DataFrame | str | Source,
    *,
    target: str | None = None,
    prediction: str | None = None,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    task: str | None = None,
    config: MonitoringConfig | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
) -> Reference:
    """Fit a reference from a DataFrame, a file, a folder or a SQL query (one pass)."""
    config = _with_roles(
        config,
        target=target,
        prediction=prediction,
        numerical=numerical,
        categorical=categorical,
        task=task,
    )
    opened = open_source(source, query=query, params=params)
    return fit_reference_chunks(
        opened.iter_chunks(config.evaluation.chunk_size),
        schema=config.schema,
        drift=config.drift,
        source=opened.describe(),
    )


class _Pass:
    """State of one streaming pass over a batch."""

    def __init__(
        self,
        reference: Reference,
        config: MonitoringConfig,
        model: Any,
        where: str,
        ignored: frozenset[str] = frozenset(),
    ):
        self.reference = reference
        self.schema: Schema = reference.schema
        self.config = config
        self.model = model
        self.where = where
        self.profile = BatchCounts.empty(reference)
        self.worst = WorstSamples(config.evaluation.worst_k, reference.anomaly)
        self.segments = SegmentErrors(reference)
        self.digest = hashlib.sha256()
        self.offset = 0
        self.predicted_by_model = False
        self.prediction_column = self.schema.prediction or DEFAULT_PREDICTION_COLUMN
        self.score_columns = dict(self.schema.prediction_scores)
        self.has_prediction = False
        self.has_truth = False
        self.classes = reference.classes
        self.performance: ClassificationMetrics | RegressionMetrics | None = None
        self.ignored = ignored
        self.performance_kept: ClassificationMetrics | RegressionMetrics | None = None
        self.time_min: Any = None
        self.time_max: Any = None
        self.warnings: list[str] = []
        self.multivariate = MultivariatePass(reference, config.drift)
        self._coders = {
            c: LabelCoder(p.vocabulary)
            for c, p in reference.profiles.items()
            if not isinstance(p, NumericalReference)
        }
        self._class_coders: dict[str, ClassCoder] = {}  # per label column, made when read
        self.pool = column_executor(config.evaluation.threads)
        ahead = batch_free_nulls(reference, config.drift)
        self._ahead = [self.pool.submit(call) for call in ahead]
        self._last_chunk: Future[None] | None = None

    def close(self) -> None:
        """Let go of the worker threads (waiting for any task still running)."""
        self.pool.shutdown(wait=True)

    def finish(self) -> None:
        """Wait for the last chunk's work and what was started ahead of the decision
        (`drift.batch_free_nulls`)."""
        if self._last_chunk is not None:
            self._last_chunk.result()
        for task in self._ahead:
            task.result()

    def start(self, chunk: pd.DataFrame) -> None:
        """Decide, from the first chunk, where predictions come from."""
        check_columns(
            chunk, self.schema, where=self.where, need_prediction=False, need_target=False
        )
        present = set(map(str, chunk.columns))
        target = self.schema.target
        self.has_truth = bool(target and target in present and chunk[target].notna().any())
        if target and not self.has_truth:
            self.profile.columns.pop(target, None)  # label drift is not measurable yet
            self.warnings.append(
                f"the batch has no ground truth in {target!r} (absent or empty in its first "
                "chunk): label drift and performance are not measured"
            )
        given = [c for c in self.schema.prediction_columns if c in present]
        if given and self.model is not None and chunk[given].isna().all().all():
            given = []  # predictions not stored yet (all NULL): the model makes them
        if given and len(given) < len(self.schema.prediction_columns):
            missing = sorted(set(self.schema.prediction_columns) - present)
            raise InvalidValueError(
                f"{self.where} has some prediction columns but lacks {', '.join(missing)}"
            )
        if given:
            self.has_prediction = True
        elif self.model is not None:
            if isinstance(self.model, str):
                self.model = load_model(self.model)  # only when the batch needs it
            self.predicted_by_model = True
            self.has_prediction = True
            if self.schema.task == "classification":
                self.classes = model_classes(self.model, self.reference.classes)
                if not self.score_columns:
                    self.score_columns = {c: f"proba_{c}" for c in self.classes}
        else:
            for column in self.schema.prediction_columns:
                self.profile.columns.pop(column, None)  # prediction drift is not measurable
            self.warnings.append(
                "the batch has no prediction column and no model was given: prediction "
                "drift and performance are not measured"
            )
        if self.has_prediction and self.has_truth:
            self.performance = self._new_performance()
            if self.ignored:
                self.performance_kept = self._new_performance()

    def _new_performance(self) -> ClassificationMetrics | RegressionMetrics:
        if self.schema.task == "regression":
            return RegressionMetrics()
        return ClassificationMetrics(self.classes)

    def add(self, chunk: pd.DataFrame) -> None:
        if self.offset == 0:
            self.start(chunk)
        else:
            check_columns(
                chunk,
                self.schema,
                where=self.where,
                need_prediction=self.has_prediction and not self.predicted_by_model,
                need_target=self.has_truth,
            )
        if self.predicted_by_model:
            predictions = predict_frame(
                self.model,
                chunk,
                self.schema,
                self.classes,
                prediction_column=self.prediction_column,
                score_columns=self.score_columns,
            )
            chunk = chunk.assign(**{c: predictions[c] for c in predictions.columns})
        row_hashes = self.pool.submit(_row_hashes, chunk)
        tasks = [
            self.pool.submit(self._profile_column, column, chunk[column])
            for column in self.profile.columns
        ]
        labels: dict[str, pd.Categorical] = {}
        failure: Exception | None = None
        errors = None
        try:  # meanwhile, the work that needs no column profile
            self._check_labels(chunk, labels)
            errors = self._update_performance(chunk, labels)
            if errors is not None:
                self.worst.update(chunk[self._kept_columns(chunk)], errors, offset=self.offset)
            self._update_time(chunk)
        except Exception as exc:
            failure = exc
        numeric: dict[str, SortedColumn] = {}
        codes: dict[str, np.ndarray] = {}
        scores: dict[str, np.ndarray] = {}
        for task in tasks:  # a bad value is reported first, column by column, as before
            column, found, column_scores = task.result()
            if isinstance(found, SortedColumn):
                numeric[column] = found
            else:
                codes[column] = found
            if column_scores is not None:
                scores[column] = column_scores
        if failure is not None:
            raise failure
        self.digest.update(row_hashes.result())
        self.profile.n_rows += len(chunk)
        self._last_chunk = self.pool.submit(
            self._finish_chunk, self._last_chunk, numeric, codes, scores, errors
        )
        self.offset += len(chunk)

    def _finish_chunk(
        self,
        previous: Future[None] | None,
        numeric: dict[str, SortedColumn],
        codes: dict[str, np.ndarray],
        scores: dict[str, np.ndarray],
        errors: np.ndarray | None,
    ) -> None:
        """What needs all of a chunk's columns: the multivariate scores and the error per
        segment. Runs in the pool, after the previous chunk's, while the next chunk is
        profiled."""
        if previous is not None:
            previous.result()
        if self.multivariate.columns:
            self.multivariate.update_scores([scores[c] for c in self.multivariate.columns])
        if errors is not None:
            self.segments.update(numeric, codes, errors)

    def _profile_column(
        self, column: str, series: pd.Series
    ) -> tuple[str, SortedColumn | np.ndarray, np.ndarray | None]:
        """One column's share of a chunk: its profile summary updated, and what the rest of
        the pass reads of it (sorted values or category codes, normal scores). Runs in a
        worker thread: it touches this column's accumulators only."""
        profile = self.reference.profiles[column]
        summary = self.profile.columns[column]
        if not isinstance(profile, NumericalReference):
            codes = self._coders[column].codes(series)
            summary.update(codes)  # type: ignore[call-arg]
            return column, codes, None
        values = numeric_values(series, column=column, offset=self.offset, where=self.where)
        ordered = SortedColumn(values)
        summary.update(ordered, profile)  # type: ignore[call-arg]
        scores = None
        if column in self.multivariate.columns:
            model = self.multivariate.model
            scores = model.column_scores(model.columns.index(column), ordered)  # type: ignore[union-attr]
        return column, ordered, scores

    def _kept_columns(self, chunk: pd.DataFrame) -> list[str]:
        wanted = [
            self.schema.id,
            self.schema.timestamp,
            *self.schema.features,
            self.schema.target,
            self.prediction_column,
            *self.score_columns.values(),
        ]
        present = set(map(str, chunk.columns))
        return list(dict.fromkeys(c for c in wanted if c and c in present))

    def _labels(
        self, chunk: pd.DataFrame, labels: dict[str, pd.Categorical], column: str
    ) -> pd.Categorical:
        """Clean labels of `column`, converted once per chunk (kept in `labels`)."""
        if column not in labels:
            if column not in self._class_coders:
                self._class_coders[column] = ClassCoder(self.classes)
            labels[column] = self._class_coders[column].labels(chunk[column])
        return labels[column]

    def _check_labels(self, chunk: pd.DataFrame, labels: dict[str, pd.Categorical]) -> None:
        """Class labels the reference never saw cannot be scored: name them and their row."""
        if self.schema.task != "classification" or not self.classes:
            return
        known = set(self.classes)
        for role, column in (
            ("target", self.schema.target),
            ("prediction", self.prediction_column),
        ):
            if not column or column not in chunk.columns:
                continue
            found = self._labels(chunk, labels, column)
            strange = ~found.categories.isin(known)
            if strange.any():
                row = int(np.flatnonzero(np.append(strange, False)[found.codes])[0])
                raise InvalidValueError(
                    f"{self.where}: {role} column {column!r} holds label {found[row]!r} "
                    f"at row {self.offset + row} that the reference never saw; known labels: "
                    f"{', '.join(self.classes)}"
                )

    def _scores(self, chunk: pd.DataFrame) -> np.ndarray | None:
        return score_matrix(chunk, self.score_columns, self.classes)

    def _update_performance(
        self, chunk: pd.DataFrame, labels: dict[str, pd.Categorical]
    ) -> np.ndarray | None:
        if self.performance is None:
            return None
        truth = chunk[self.schema.target]
        if isinstance(self.performance, RegressionMetrics):
            truth_values = numeric_values(
                truth, column=self.schema.target, offset=self.offset, where=self.where
            )
            predicted = numeric_values(
                chunk[self.prediction_column],
                column=self.prediction_column,
                offset=self.offset,
                where=self.where,
            )
            self.performance.update(truth_values, predicted)
            if self.performance_kept is not None:
                kept = self._kept_rows(chunk)
                self.performance_kept.update(truth_values[kept], predicted[kept])
            return regression_error(truth_values, predicted)
        truth_labels = self._labels(chunk, labels, self.schema.target)
        scores = self._scores(chunk)
        predicted = (
            self._labels(chunk, labels, self.prediction_column)
            if self.prediction_column in chunk.columns
            else None
        )
        self.performance.update(truth_labels, predicted, scores)
        if self.performance_kept is not None:
            kept = self._kept_rows(chunk)
            self.performance_kept.update(
                truth_labels[kept],
                None if predicted is None else predicted[kept],
                None if scores is None else scores[kept],
            )
        return classification_error(truth_labels, predicted, scores, classes=self.classes)

    def _kept_rows(self, chunk: pd.DataFrame) -> np.ndarray:
        """Rows not marked anomaly-ignore: matched on the id column, else on the row number."""
        if self.schema.id and self.schema.id in chunk.columns:
            ids = label_values(chunk[self.schema.id]).astype(str).to_numpy()
        else:
            ids = np.arange(self.offset, self.offset + len(chunk)).astype(str)
        return ~np.isin(ids, list(self.ignored))

    def _update_time(self, chunk: pd.DataFrame) -> None:
        column = self.schema.timestamp
        if not column or column not in chunk.columns:
            return
        times = pd.to_datetime(chunk[column], errors="coerce").dropna()
        if times.empty:
            return
        low, high = times.min(), times.max()
        self.time_min = low if self.time_min is None else min(self.time_min, low)
        self.time_max = high if self.time_max is None else max(self.time_max, high)


def _row_hashes(chunk: pd.DataFrame) -> bytes:
    """One 64-bit hash per row (pandas'), the batch digest's input: chunking-invariant."""
    return pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes()


def evaluate(
    batch: pd.DataFrame | str | Source,
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
    `params` apply to a SQL batch. The column roles given here override the config's and
    matter only when the reference is fitted here. `ignored_samples` (ids, or row numbers
    without an id column) are left out of a second set of performance metrics, reported as
    `<metric>_excl_ignored` beside the full ones. `dataset_tests` are batch-level tests
    computed elsewhere (`monitoring.embedding_drift`): decided with the input features
    (multiple-testing control included) and logged as `drift/dataset/<method>`.
    `progress` is called with 0 when the pass starts, then with the rows read so far after
    each chunk.
    """
    started = time.perf_counter()
    config = _with_roles(
        config,
        target=target,
        prediction=prediction,
        numerical=numerical,
        categorical=categorical,
        task=task,
    )
    if not isinstance(reference, Reference):
        reference = fit_reference(reference, config=config)
    source = open_source(batch, query=query, params=params)
    ignored = frozenset(str(i) for i in ignored_samples)
    state = _Pass(reference, config, model, where=f"batch {source.name}", ignored=ignored)
    chunks = source.iter_chunks(config.evaluation.chunk_size)
    if progress is not None:
        progress(0)
    try:
        reader_threads = config.evaluation.threads if getattr(source, "read_ahead", False) else 1
        with blas_kept_to_one_thread():
            with read_ahead(chunks, reader_threads) as ahead:
                for chunk in ahead:
                    if len(chunk):
                        state.add(chunk)
                        if progress is not None:
                            progress(state.offset)
            if state.offset == 0:
                raise EmptyBatchError(f"batch {source.describe()} has no rows")
            state.finish()  # the last chunk's products, still with BLAS on one thread
        tests = (*state.multivariate.result(), *dataset_tests)
        columns, dataset = decide_drift(state.profile, config.drift, tests, pool=state.pool)
    finally:
        state.close()
    warnings = list(state.warnings) + state.multivariate.warnings + _data_warnings(columns)
    performance = state.performance.result() if state.performance is not None else {}
    if state.performance_kept is not None:
        kept = state.performance_kept.result()
        performance = {**performance, **{f"{k}_excl_ignored": v for k, v in kept.items()}}
    time_range = None
    if state.time_min is not None:
        time_range = (
            pd.Timestamp(state.time_min).isoformat(),
            pd.Timestamp(state.time_max).isoformat(),
        )
    return BatchReport(
        reference=reference,
        columns=columns,
        multivariate=dataset,
        n_rows=state.offset,
        performance=performance,
        worst_samples=state.worst.result(),
        segments=state.segments.table() if state.performance is not None else None,
        batch_digest=state.digest.hexdigest()[:16],
        source=source.describe(),
        source_name=source.name,
        profile=state.profile.to_dict(),
        time_range=time_range,
        batch_id=batch_id,
        predicted_by_model=state.predicted_by_model,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
    )


def _data_warnings(columns: Sequence[Any]) -> list[str]:
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
