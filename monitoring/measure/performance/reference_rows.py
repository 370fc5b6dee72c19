"""The reference's own performance, measured at fit with the batch's accumulators.

Its classes are only known once every chunk was read (they are what truth, predictions and
score columns name), so `OutputRows` keeps the reference's truth, predicted label and class
probabilities (cleaned, a few columns: the numeric collectors keep every value anyway), and
`reference_performance` then runs them through the `PerformanceAccumulator` that a batch
uses: the two sides are measured the same way.
"""

from __future__ import annotations

import pandas as pd

from monitoring.collect.columns import label_values, numeric_values
from monitoring.core.accumulator import Chunk
from monitoring.core.schema import Schema
from monitoring.core.state import arrow_bytes, arrow_frame, pack_many, unpack_many
from monitoring.measure.performance.outputs import ModelOutputs, PerformanceAccumulator
from monitoring.measure.performance.summary import PerformanceSummary, summarize

__all__ = ["OutputRows", "reference_performance"]


class OutputRows:
    """The truth, predicted label and score columns of every reference row (an accumulator)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.parts: list[pd.DataFrame] = []

    def _columns(self) -> tuple[list[str], list[str]]:
        """(label columns, numeric columns) to keep."""
        schema = self.schema
        outputs = [c for c in (schema.target, schema.prediction) if c]
        scores = list(schema.prediction_scores.values())
        if schema.task == "regression":
            return [], outputs
        return outputs, scores

    def update(self, chunk: Chunk) -> None:
        if not self.schema.target or self.schema.target not in chunk.frame.columns:
            return
        labels, numbers = self._columns()
        frame = chunk.frame
        kept = {c: label_values(frame[c]) for c in labels if c in frame.columns}
        for column in numbers:
            if column in frame.columns:
                kept[column] = pd.Series(
                    numeric_values(
                        frame[column], column=column, offset=chunk.offset, where=chunk.where
                    ),
                    index=frame.index,
                )
        self.parts.append(pd.DataFrame(kept).reset_index(drop=True))

    def merge(self, other: OutputRows) -> OutputRows:
        self.parts += other.parts
        return self

    def result(self) -> pd.DataFrame | None:
        if not self.parts:
            return None
        return pd.concat(self.parts, ignore_index=True) if len(self.parts) > 1 else self.parts[0]

    def to_state(self) -> bytes:
        rows = self.result()
        return pack_many([] if rows is None else [arrow_bytes(rows)])

    def from_state(self, state: bytes) -> OutputRows:
        twin = OutputRows(self.schema)
        twin.parts = [arrow_frame(part) for part in unpack_many(state)]
        return twin


def reference_performance(
    schema: Schema, classes: tuple[str, ...], rows: pd.DataFrame | None
) -> PerformanceSummary | None:
    """The performance of the reference's own predictions; None without truth, without a
    prediction (or, for a classifier, class probabilities), or when no row has truth."""
    if rows is None or not schema.target or schema.target not in rows.columns:
        return None
    scores = {k: c for k, c in schema.prediction_scores.items() if c in rows.columns}
    has_label = bool(schema.prediction and schema.prediction in rows.columns)
    if schema.task == "regression":
        if not has_label:
            return None
    elif (not has_label and not scores) or len(classes) < 2:
        return None
    outputs = ModelOutputs(
        task=schema.task,
        target=schema.target,
        prediction=schema.prediction or "",
        scores=scores,
        classes=classes,
    )
    if schema.task != "regression" and not has_label and outputs.score_matrix(
        Chunk(rows.iloc[:0], 0, "reference")
    ) is None:
        return None  # probabilities of only some classes: nothing to score
    accumulator = PerformanceAccumulator(outputs)
    accumulator.update(Chunk(rows, 0, "reference"))
    return summarize(accumulator.metrics)
