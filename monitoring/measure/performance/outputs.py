"""Performance over a batch's chunks: the model's outputs read from each chunk, checked, and
counted by the metrics accumulators.

`ModelOutputs` knows which columns hold the truth, the predicted label and the class
probabilities, reads a chunk's labels once (kept in `chunk.derived`) and refuses a label
the reference never saw. `PerformanceAccumulator` feeds one metrics accumulator, on every
row or on the rows a filter keeps (samples marked anomaly-ignore left out); the one over
every row also leaves each row's error in `chunk.derived[ROW_ERRORS]` for the worst samples
and the segments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.collect.columns import ClassCoder, label_values, numeric_values, score_matrix
from monitoring.core.accumulator import Chunk
from monitoring.errors import InvalidValueError
from monitoring.measure.performance.classification import ClassificationMetrics
from monitoring.measure.performance.regression import RegressionMetrics
from monitoring.measure.performance.sample_error import classification_error, regression_error

ROW_ERRORS = "row_errors"  # chunk.derived[ROW_ERRORS]: each row's error (NaN: none)
_LABELS = "labels"  # chunk.derived[_LABELS, column]: the column's labels as a Categorical
_SCORES = "scores"  # chunk.derived[_SCORES]: the class probabilities (rows x classes)

Metrics = ClassificationMetrics | RegressionMetrics
RowFilter = Callable[[Chunk], np.ndarray]


@dataclass
class ModelOutputs:
    """Where a batch's truth and model outputs are, and how to read them from a chunk."""

    task: str
    target: str | None  # None: the schema has no target
    prediction: str
    scores: Mapping[str, str]  # class -> probability column
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        self._coders: dict[str, ClassCoder] = {}  # per label column, made when first read

    def labels(self, chunk: Chunk, column: str) -> pd.Categorical:
        """Clean labels of `column`, converted once per chunk."""
        key = (_LABELS, column)
        if key not in chunk.derived:
            if column not in self._coders:
                self._coders[column] = ClassCoder(self.classes)
            chunk.derived[key] = self._coders[column].labels(chunk.frame[column])
        return chunk.derived[key]

    def check_labels(self, chunk: Chunk) -> None:
        """Class labels the reference never saw cannot be scored: name them and their row."""
        if self.task != "classification" or not self.classes:
            return
        known = set(self.classes)
        for role, column in (("target", self.target), ("prediction", self.prediction)):
            if not column or column not in chunk.frame.columns:
                continue
            found = self.labels(chunk, column)
            strange = ~found.categories.isin(known)
            if strange.any():
                row = int(np.flatnonzero(np.append(strange, False)[found.codes])[0])
                raise InvalidValueError(
                    f"{chunk.where}: {role} column {column!r} holds label {found[row]!r} "
                    f"at row {chunk.offset + row} that the reference never saw; known labels: "
                    f"{', '.join(self.classes)}"
                )

    def new_metrics(self) -> Metrics:
        if self.task == "regression":
            return RegressionMetrics()
        return ClassificationMetrics(self.classes)

    def numbers(self, chunk: Chunk, column: str) -> np.ndarray:
        return numeric_values(
            chunk.frame[column], column=column, offset=chunk.offset, where=chunk.where
        )

    def score_matrix(self, chunk: Chunk) -> np.ndarray | None:
        """The chunk's class probabilities (`columns.score_matrix`), read once per chunk:
        realized and estimated performance both need them."""
        if _SCORES not in chunk.derived:
            chunk.derived[_SCORES] = score_matrix(chunk.frame, self.scores, self.classes)
        return chunk.derived[_SCORES]


class PerformanceAccumulator:
    """One metrics accumulator over a batch's rows (see the module docstring)."""

    def __init__(
        self, outputs: ModelOutputs, *, keep: RowFilter | None = None, row_errors: bool = False
    ) -> None:
        self.outputs = outputs
        self.metrics: Metrics = outputs.new_metrics()
        self.keep = keep
        self.row_errors = row_errors

    def update(self, chunk: Chunk) -> None:
        outputs = self.outputs
        kept = self.keep(chunk) if self.keep is not None else None
        if isinstance(self.metrics, RegressionMetrics):
            assert outputs.target is not None
            truth = outputs.numbers(chunk, outputs.target)
            predicted = outputs.numbers(chunk, outputs.prediction)
            if kept is None:
                self.metrics.update(truth, predicted)
            else:
                self.metrics.update(truth[kept], predicted[kept])
            if self.row_errors:
                chunk.derived[ROW_ERRORS] = regression_error(truth, predicted)
            return
        assert outputs.target is not None
        truth_labels = outputs.labels(chunk, outputs.target)
        scores = outputs.score_matrix(chunk)
        predicted_labels = (
            outputs.labels(chunk, outputs.prediction)
            if outputs.prediction in chunk.frame.columns
            else None
        )
        if kept is None:
            self.metrics.update(truth_labels, predicted_labels, scores)
        else:
            self.metrics.update(
                truth_labels[kept],
                None if predicted_labels is None else predicted_labels[kept],
                None if scores is None else scores[kept],
            )
        if self.row_errors:
            chunk.derived[ROW_ERRORS] = classification_error(
                truth_labels, predicted_labels, scores, classes=outputs.classes
            )

    def merge(self, other: PerformanceAccumulator) -> PerformanceAccumulator:
        self.metrics = self.metrics.merge(other.metrics)  # type: ignore[arg-type]
        return self

    def result(self) -> dict[str, float]:
        return self.metrics.result()

    def to_state(self) -> bytes:
        return self.metrics.to_state()

    def from_state(self, state: bytes) -> PerformanceAccumulator:
        twin = PerformanceAccumulator(self.outputs, keep=self.keep, row_errors=self.row_errors)
        twin.metrics = self.metrics.from_state(state)
        return twin


def rows_not_ignored(ignored: frozenset[str], id_column: str | None) -> RowFilter:
    """Rows not marked anomaly-ignore: matched on the id column, else on the row number."""
    wanted = list(ignored)

    def keep(chunk: Chunk) -> np.ndarray:
        frame = chunk.frame
        if id_column and id_column in frame.columns:
            ids = label_values(frame[id_column]).astype(str).to_numpy()
        else:
            ids = np.arange(chunk.offset, chunk.offset + len(frame)).astype(str)
        return ~np.isin(ids, wanted)

    return keep
