"""Which accumulators evaluate a batch, decided from its first chunk.

The first chunk says where predictions come from (stored columns, or the model run over
each chunk) and whether ground truth is there; that fixes the steps of the whole pass:

    prepare   check the chunk's columns, run the model when the batch has no prediction
              (or for `drift.embedding_layer`, its activations captured as it runs)
    parallel  one `batch_counts` accumulator per column; the batch digest; the id column's
              duplicates and every sample id (`samples.parquet`)
    inline   the labels checked, performance (every row; rows not ignored), worst samples,
             the time range, the sample of the embedding layer's activations
    deferred  the multivariate tests, the anomalous rows and the error per segment (they
              need every column)
"""

from __future__ import annotations

import contextlib
from typing import Any

import pandas as pd

from monitoring.collect.inference import load_model, model_classes, predict_frame, run_model
from monitoring.core.accumulator import Chunk
from monitoring.core.config import MonitoringConfig
from monitoring.core.engine import Steps
from monitoring.core.schema import Schema, check_columns
from monitoring.errors import ConfigError, InvalidValueError
from monitoring.explain.segments import SegmentErrors
from monitoring.explain.worst_samples import WorstSamples
from monitoring.measure.batch_counts import BatchCounts
from monitoring.measure.batch_identity import BatchDigest, TimeRange
from monitoring.measure.embedding_sample import EmbeddingPass
from monitoring.measure.multivariate_pass import MultivariatePass
from monitoring.measure.performance.calibration_map import ClassificationEstimator
from monitoring.measure.performance.estimates import Estimate
from monitoring.measure.performance.estimation import EstimatedClassification
from monitoring.measure.performance.outputs import (
    ModelOutputs,
    PerformanceAccumulator,
    rows_not_ignored,
)
from monitoring.measure.quality import QualityCheck, batch_quality
from monitoring.measure.quality_counts import AnomalyFlags, DuplicateIds
from monitoring.measure.reference import Reference
from monitoring.measure.sample_table import SampleTable

DEFAULT_PREDICTION_COLUMN = "prediction"


class BatchPlan:
    """The accumulators of one batch evaluation, and the steps that feed them."""

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
        self.ignored = ignored
        self.multivariate = MultivariatePass(reference, config.drift)
        self.embedding = EmbeddingPass(reference.embedding, config.drift)
        self.hook: Any = None  # on the embedding layer while the model runs (`_hook_layer`)
        self.counts = BatchCounts.empty(
            reference, self.multivariate.scorers(), range_margin=config.quality.range_margin
        )
        self.digest = BatchDigest()
        self.time_range = TimeRange(self.schema.timestamp)
        self.segments = SegmentErrors(reference)
        self.duplicates = DuplicateIds(self.schema.id) if self.schema.id else None
        self.samples = SampleTable(self.schema.id) if self.schema.id else None
        self.anomalies = AnomalyFlags(reference.anomaly) if reference.anomaly else None
        self.prediction_column = self.schema.prediction or DEFAULT_PREDICTION_COLUMN
        self.score_columns = dict(self.schema.prediction_scores)
        self.classes = reference.classes
        self.predicted_by_model = False
        self.has_prediction = False
        self.has_truth = False
        self.performance: PerformanceAccumulator | None = None
        self.performance_kept: PerformanceAccumulator | None = None
        self.estimated: Any = None  # estimated performance (`performance.estimation`)
        self.worst: WorstSamples | None = None
        self.warnings: list[str] = []
        self.unmonitored: list[str] = []  # batch columns outside the reference's schema

    def __call__(self, first: pd.DataFrame) -> Steps:
        """Decide, from the first chunk, where predictions come from; the pass's steps."""
        self.decide(first)
        return self.steps()

    def decide(self, first: pd.DataFrame) -> None:
        """What the batch's first chunk decides for the whole pass (columns checked, where
        predictions come from, whether there is ground truth). A distributed pass decides
        once, on the driver, and sends the decided plan to every partition."""
        self._start(first)

    def steps(self) -> Steps:
        """The pass's steps, with fresh accumulators (after `decide`)."""
        outputs = ModelOutputs(
            task=self.schema.task,
            target=self.schema.target,
            prediction=self.prediction_column,
            scores=self.score_columns,
            classes=self.classes,
        )
        inline: list[Any] = [outputs.check_labels]
        if self.has_prediction and self.has_truth:
            self.performance = PerformanceAccumulator(outputs, row_errors=True)
            inline.append(self.performance.update)
            if self.ignored:
                keep = rows_not_ignored(self.ignored, self.schema.id)
                self.performance_kept = PerformanceAccumulator(outputs, keep=keep)
                inline.append(self.performance_kept.update)
        self.estimated = self._estimated(outputs)
        if self.estimated is not None:
            inline.append(self.estimated.update)
        self.worst = WorstSamples(
            self.config.evaluation.worst_k, self.reference.anomaly, columns=self._kept_columns()
        )
        inline += [self.worst.update, self.time_range.update, self.embedding.update]
        deferred = [self.multivariate.update]
        if self.anomalies is not None:
            deferred.append(self.anomalies.update)
        if self.performance is not None:
            deferred.append(self.segments.update)
        parallel = [*self.counts.update_steps(), self.digest.update]
        if self.duplicates is not None:
            parallel.append(self.duplicates.update)
        if self.samples is not None:
            parallel.append(self.samples.update)
        return Steps(
            prepare=self.prepare,
            parallel=parallel,
            inline=inline,
            deferred=deferred,
        )

    def _estimated(self, outputs: ModelOutputs) -> Any:
        """The accumulator of estimated performance, when the reference has an estimator
        for these outputs (a model whose classes differ from the reference's has none)."""
        estimator = self.reference.estimator
        if estimator is None or not self.has_prediction:
            return None
        if isinstance(estimator, ClassificationEstimator):
            if estimator.classes != tuple(outputs.classes):
                return None
            return EstimatedClassification(estimator, outputs)
        return estimator.accumulator()

    def _start(self, chunk: pd.DataFrame) -> None:
        self.unmonitored = self._check(chunk, need_prediction=False, need_target=False)
        extra = [c for c in self.unmonitored if c not in self.config.schema.exclude]
        if extra:
            self.warnings.append(
                f"column(s) {', '.join(map(repr, extra))} are not in the reference: not "
                'monitored (kept in worst_samples.csv; `schema.extra_columns = "error"` '
                "refuses them)"
            )
        present = set(map(str, chunk.columns))
        target = self.schema.target
        self.has_truth = bool(target and target in present and chunk[target].notna().any())
        if target and not self.has_truth:
            self.counts.columns.pop(target, None)  # label drift is not measurable yet
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
                self.counts.columns.pop(column, None)  # prediction drift is not measurable
            holder = "the batch" if self.schema.prediction_columns else "the reference's schema"
            self.warnings.append(
                f"{holder} has no prediction column and no model was given: prediction "
                "drift and performance are not measured"
            )
        if self.samples is not None and self.has_prediction:
            self.samples.keep_predictions(
                self.prediction_column,
                self.score_columns if self.schema.task == "classification" else {},
                numeric=self.schema.task == "regression",
            )
        if self.embedding.active:
            self._hook_layer()

    def _hook_layer(self) -> None:
        """Hook the embedding layer: the model then runs on every chunk, for its predictions
        or, when the batch stores them, for the activations alone."""
        from monitoring.measure.embeddings import LayerHook  # torch, only when a model runs

        layer = self.config.drift.embedding_layer
        if self.model is None:
            raise ConfigError(
                f"`drift.embedding_layer` is {layer!r} but no model was given to capture it: "
                "give the model (`--model-uri`, or `model=`)"
            )
        if isinstance(self.model, str):
            self.model = load_model(self.model)
        self.hook = LayerHook(self.model, str(layer))

    def prepare(self, frame: pd.DataFrame, offset: int) -> Chunk:
        """Check a chunk's columns; add the model's predictions when it makes them."""
        if offset:
            self._check(
                frame,
                need_prediction=self.has_prediction and not self.predicted_by_model,
                need_target=self.has_truth,
            )
        chunk = Chunk(frame, offset, self.where)
        hooked = self.hook.capturing(chunk) if self.hook is not None else contextlib.nullcontext()
        with hooked:  # the embedding layer's activations go to chunk.derived
            if self.predicted_by_model:
                predictions = predict_frame(
                    self.model,
                    frame,
                    self.schema,
                    self.classes,
                    prediction_column=self.prediction_column,
                    score_columns=self.score_columns,
                )
                chunk.frame = frame.assign(**{c: predictions[c] for c in predictions.columns})
            elif self.hook is not None:
                run_model(self.model, frame, self.schema)  # predictions stored: activations
        return chunk

    def _check(self, frame: pd.DataFrame, *, need_prediction: bool, need_target: bool):
        """The chunk's columns checked; those outside the reference's schema."""
        return check_columns(
            frame,
            self.schema,
            where=self.where,
            need_prediction=need_prediction,
            need_target=need_target,
            exclude=self.config.schema.exclude,
            extra_columns=self.config.schema.extra_columns,
        )

    def _kept_columns(self) -> list[str]:
        """The worst samples' columns: id, time, features, truth and outputs, then the
        batch's columns outside the schema (so that the rows can be found)."""
        wanted = [
            self.schema.id,
            self.schema.timestamp,
            *self.schema.features,
            self.schema.target,
            self.prediction_column,
            *self.score_columns.values(),
            *self.unmonitored,
        ]
        return list(dict.fromkeys(c for c in wanted if c))

    def quality(self) -> list[QualityCheck]:
        """The data-quality checks the pass can decide (undecided; `decide_quality`)."""
        return batch_quality(
            self.counts, self.config, duplicates=self.duplicates, anomalies=self.anomalies
        )

    def estimated_result(self) -> dict[str, Estimate]:
        """Estimated performance, from the outputs alone (empty without an estimator)."""
        return self.estimated.result() if self.estimated is not None else {}

    def performance_result(self) -> dict[str, float]:
        """Performance on every row, and on the rows not ignored (`_excl_ignored`)."""
        if self.performance is None:
            return {}
        found = self.performance.result()
        if self.performance_kept is not None:
            kept = self.performance_kept.result()
            found = {**found, **{f"{k}_excl_ignored": v for k, v in kept.items()}}
        return found
