"""What fitting a reference accumulates over its chunks, and the fitted columns made of it.

Per numeric column a `NumericCollector` (its values, kept whole: the quantiles and the
exact support need them), per label-like column a `CategoryCollector` (counts per
category), and a `RowSample` of rows for the anomaly and reconstruction models. Each is
an accumulator (`core.accumulator`). When the reference carries predictions and truth,
each row's error (`reference_errors`, left in `chunk.derived[REFERENCE_ERRORS]`) is summed
per segment, so that a batch's segments can be compared with the reference's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitoring.collect.columns import label_categories, label_values, numeric_values, score_matrix
from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig
from monitoring.core.row_keys import row_keys
from monitoring.core.schema import Schema
from monitoring.core.state import arrow_bytes, arrow_frame, pack, pack_many, unpack, unpack_many
from monitoring.measure.performance import classification_error, regression_error
from monitoring.measure.reference import (
    FEATURE,
    MISSING_KEY,
    PREDICTION,
    TARGET,
    CategoricalReference,
    NumericalReference,
)
from monitoring.stats.histogram import quantile_edges
from monitoring.stats.sorted_column import SortedColumn

REFERENCE_ERRORS = "reference_errors"  # chunk.derived: each row's error (None: no truth)


class NumericCollector:
    """One numeric column of the reference: its present values, kept whole for the
    quantiles and the support, and the error of each row when the reference has one."""

    def __init__(self, column: str, *, with_errors: bool) -> None:
        self.column = column
        self.with_errors = with_errors  # an input feature: its segments carry the error
        self.parts: list[np.ndarray] = []
        self.error_parts: list[np.ndarray] = []
        self.missing_errors: list[np.ndarray] = []
        self.n_missing = 0

    def update(self, chunk: Chunk) -> None:
        if self.column not in chunk.frame.columns:
            return
        values = numeric_values(
            chunk.frame[self.column], column=self.column, offset=chunk.offset, where=chunk.where
        )
        self.add(values, chunk.derived.get(REFERENCE_ERRORS) if self.with_errors else None)

    def merge(self, other: NumericCollector) -> NumericCollector:
        self.parts += other.parts
        self.error_parts += other.error_parts
        self.missing_errors += other.missing_errors
        self.n_missing += other.n_missing
        return self

    def result(self) -> NumericCollector:
        return self

    def to_state(self) -> bytes:
        arrays = {"values": self.values()}
        if self.error_parts:
            arrays["errors"] = np.concatenate(self.error_parts)
            arrays["missing_errors"] = np.concatenate(self.missing_errors)
        return pack(arrays, n_missing=self.n_missing)

    def from_state(self, state: bytes) -> NumericCollector:
        arrays, values = unpack(state)
        twin = NumericCollector(self.column, with_errors=self.with_errors)
        twin.parts = [arrays["values"]]
        if "errors" in arrays:
            twin.error_parts, twin.missing_errors = [arrays["errors"]], [arrays["missing_errors"]]
        twin.n_missing = values["n_missing"]
        return twin

    def add(self, values: np.ndarray, errors: np.ndarray | None = None) -> None:
        missing = np.isnan(values)
        self.n_missing += int(missing.sum())
        self.parts.append(values[~missing])
        if errors is not None:
            self.error_parts.append(errors[~missing])
            self.missing_errors.append(errors[missing])

    def values(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.empty(0)

    def segment_errors(self, bins: np.ndarray, size: int) -> tuple[np.ndarray, ...] | None:
        """Error sums, counts and sums of squares per bin, then for missing values (rows
        with an error); `bins` holds each present value's bin (in `self.values()` order)."""
        if not self.error_parts:
            return None
        errors = np.concatenate(self.error_parts)
        known = ~np.isnan(errors)
        index = bins[known]
        missing = np.concatenate(self.missing_errors)
        missing = missing[~np.isnan(missing)]
        sums = np.append(np.bincount(index, weights=errors[known], minlength=size), missing.sum())
        counts = np.append(np.bincount(index, minlength=size), missing.size)
        squares = np.bincount(index, weights=errors[known] ** 2, minlength=size)
        return sums, counts.astype(np.int64), np.append(squares, missing @ missing)


class CategoryCollector:
    """One label-like column of the reference: counts per category, and each row's error
    with its category (kept whole, as `NumericCollector` keeps values) when the reference
    has errors: the per-category sums are made once, over every row in row order, so they
    do not depend on how the rows were split (chunks, Spark partitions)."""

    def __init__(self, column: str, *, with_errors: bool) -> None:
        self.column = column
        self.with_errors = with_errors
        self.counts: Counter[str] = Counter()
        self.error_names: dict[str, int] = {}  # category (or MISSING_KEY) -> error code
        self.error_codes: list[np.ndarray] = []
        self.error_values: list[np.ndarray] = []
        self.has_errors = False
        self.n_missing = 0

    def update(self, chunk: Chunk) -> None:
        if self.column not in chunk.frame.columns:
            return
        errors = chunk.derived.get(REFERENCE_ERRORS) if self.with_errors else None
        self.add(label_categories(chunk.frame[self.column]), errors)

    def merge(self, other: CategoryCollector) -> CategoryCollector:
        self.counts.update(other.counts)
        if other.error_codes:
            remap = self._codes_of(list(other.error_names))
            self.error_codes += [remap[codes] for codes in other.error_codes]
            self.error_values += other.error_values
        self.has_errors = self.has_errors or other.has_errors
        self.n_missing += other.n_missing
        return self

    def result(self) -> CategoryCollector:
        return self

    def _codes_of(self, names: list[str]) -> np.ndarray:
        """Each name's error code, new names added."""
        for name in names:
            self.error_names.setdefault(name, len(self.error_names))
        return np.array([self.error_names[name] for name in names], dtype=np.int32)

    def _errors(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.error_codes:
            return np.empty(0, np.int32), np.empty(0)
        return np.concatenate(self.error_codes), np.concatenate(self.error_values)

    def to_state(self) -> bytes:
        codes, values = self._errors()
        return pack(
            {"error_codes": codes, "error_values": values},
            counts=dict(self.counts),
            error_names=list(self.error_names),
            has_errors=self.has_errors,
            n_missing=self.n_missing,
        )

    def from_state(self, state: bytes) -> CategoryCollector:
        arrays, values = unpack(state)
        twin = CategoryCollector(self.column, with_errors=self.with_errors)
        twin.counts.update(values["counts"])
        twin._codes_of(values["error_names"])
        if arrays["error_codes"].size:
            twin.error_codes, twin.error_values = [arrays["error_codes"]], [arrays["error_values"]]
        twin.has_errors, twin.n_missing = values["has_errors"], values["n_missing"]
        return twin

    def add(self, labels: pd.Categorical, errors: np.ndarray | None = None) -> None:
        """Add one chunk's labels (`columns.label_categories`): counted on their integer
        codes, not on the strings; the rows' errors kept with their category's code."""
        codes = np.asarray(labels.codes, dtype=np.intp)
        names = labels.categories
        present = codes >= 0
        self.n_missing += int(codes.size - np.count_nonzero(present))
        tally = np.bincount(codes[present], minlength=len(names))
        self.counts.update({names[i]: int(tally[i]) for i in np.flatnonzero(tally)})
        if errors is None:
            return
        self.has_errors = True
        known = ~np.isnan(errors)
        lookup = self._codes_of([*names, MISSING_KEY])  # code -1: the last
        self.error_codes.append(lookup[codes[known]])
        self.error_values.append(errors[known])

    def segment_errors(self, vocabulary: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
        """Error sums, counts and sums of squares per category, the unseen bucket, then
        missing values: one weighted count over every row, in row order."""
        if not self.has_errors:
            return None
        position = {name: i for i, name in enumerate(vocabulary)}
        unseen, missing = len(vocabulary), len(vocabulary) + 1
        bucket_of = np.array(
            [
                missing if name == MISSING_KEY else position.get(name, unseen)
                for name in self.error_names
            ],
            dtype=np.intp,
        )
        codes, values = self._errors()
        buckets = bucket_of[codes] if codes.size else np.empty(0, np.intp)
        size = len(vocabulary) + 2
        sums = np.bincount(buckets, weights=values, minlength=size)
        counts = np.bincount(buckets, minlength=size).astype(np.int64)
        squares = np.bincount(buckets, weights=values**2, minlength=size)
        return sums, counts, squares


def numeric_profile(
    column: str, role: str, collector: NumericCollector, drift: DriftConfig, values: np.ndarray
) -> NumericalReference:
    """`values` is `collector.values()`, concatenated once by the caller.

    Sorted once: the quantiles then read order statistics from a sorted array (4x faster
    than selecting them from the raw values, and the same numbers), the bin counts are one
    binary search per edge, and each value's bin comes from its rank. Every number is the
    one `quantile_edges`, `bin_counts` and a search per value give."""
    ordered = SortedColumn(values)
    edges = quantile_edges(ordered.sorted, bins=drift.bins)
    counts = ordered.bin_counts(edges)
    sample = values
    if values.size > drift.max_support:
        rng = np.random.default_rng(drift.seed)
        sample = rng.choice(values, size=drift.max_support, replace=False)
    support, support_counts = np.unique(sample, return_counts=True)
    segments = None
    if collector.error_parts:
        segments = collector.segment_errors(ordered.bin_codes(edges), len(edges) + 1)
    return NumericalReference(
        column=column,
        role=role,
        edges=edges,
        counts=counts,
        support=support,
        support_counts=support_counts.astype(np.int64),
        n=int(values.size),
        n_missing=collector.n_missing,
        mean=float(values.mean()),
        std=float(values.std()),
        minimum=float(ordered.sorted[0]),
        maximum=float(ordered.sorted[-1]),
        segment_error_sum=segments[0] if segments else None,
        segment_error_count=segments[1] if segments else None,
        segment_error_sq_sum=segments[2] if segments else None,
    )


def categorical_profile(
    column: str, role: str, collector: CategoryCollector, vocabulary: tuple[str, ...]
) -> CategoricalReference:
    counts = np.array([collector.counts.get(v, 0) for v in vocabulary] + [0], dtype=np.int64)
    rare = sum(n for v, n in collector.counts.items() if v not in set(vocabulary))
    counts[-1] = rare  # categories beyond max_categories share the last bucket with unseen ones
    segments = collector.segment_errors(vocabulary)
    return CategoricalReference(
        column=column,
        role=role,
        vocabulary=vocabulary,
        counts=counts,
        n=int(sum(collector.counts.values())),
        n_missing=collector.n_missing,
        singletons=sum(1 for n in collector.counts.values() if n == 1),
        segment_error_sum=segments[0] if segments else None,
        segment_error_count=segments[1] if segments else None,
        segment_error_sq_sum=segments[2] if segments else None,
    )


def vocabulary_of(counts: Counter[str], limit: int) -> tuple[str, ...]:
    """The `limit` most frequent categories (ties by name), in name order."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(sorted(v for v, _ in ranked[:limit]))


ANOMALY_SAMPLE_ROWS = 10_000  # reference rows kept to calibrate the anomaly score


class RowSample:
    """A uniform sample of up to `size` rows of a stream: the smallest keys win, each a hash
    of the row's number (`core.row_keys`), so any split of the stream keeps the same rows."""

    def __init__(self, size: int, *, seed: int, columns: Sequence[str] = ()) -> None:
        self.size = size
        self.seed = seed
        self.columns = tuple(columns)  # what `update(chunk)` keeps of a chunk
        self.rows: pd.DataFrame | None = None
        self.keys = np.empty(0)

    def update(self, chunk: Chunk) -> None:
        present = set(map(str, chunk.frame.columns))
        rows = chunk.frame[[c for c in self.columns if c in present]]
        self._keep(rows, row_keys(self.seed, chunk.offset, len(rows)))

    def _keep(self, chunk: pd.DataFrame, new_keys: np.ndarray) -> None:
        keys = np.concatenate([self.keys, new_keys])
        rows = chunk.reset_index(drop=True)
        rows = rows if self.rows is None else pd.concat([self.rows, rows], ignore_index=True)
        keep = np.argsort(keys, kind="stable")[: self.size]
        self.rows, self.keys = rows.iloc[keep].reset_index(drop=True), keys[keep]


    def merge(self, other: RowSample) -> RowSample:
        if other.rows is not None:
            self._keep(other.rows, other.keys)
        return self

    def result(self) -> pd.DataFrame | None:
        return self.rows

    def to_state(self) -> bytes:
        rows = [] if self.rows is None else [arrow_bytes(self.rows)]
        return pack_many([pack({"keys": self.keys}), *rows])

    def from_state(self, state: bytes) -> RowSample:
        twin = RowSample(self.size, seed=self.seed, columns=self.columns)
        keys, *rows = unpack_many(state)
        if rows:
            twin.rows, twin.keys = arrow_frame(rows[0]), unpack(keys)[0]["keys"]
        return twin


def reference_errors(
    schema: Schema, chunk: pd.DataFrame, *, offset: int, where: str
) -> np.ndarray | None:
    """Per-row error of the reference's own predictions (None without truth or prediction),
    measured as for a batch, so segments can be compared with the reference."""
    present = set(map(str, chunk.columns))
    if not schema.target or schema.target not in present:
        return None
    has_label = bool(schema.prediction and schema.prediction in present)
    if schema.task == "regression":
        if not has_label:
            return None
        truth = numeric_values(
            chunk[schema.target], column=schema.target, offset=offset, where=where
        )
        predicted = numeric_values(
            chunk[schema.prediction], column=str(schema.prediction), offset=offset, where=where
        )
        return regression_error(truth, predicted)
    labels = label_values(chunk[schema.prediction]).to_numpy() if has_label else None
    truth = label_values(chunk[schema.target]).to_numpy()
    seen = set(truth[pd.notna(truth)]) | set(schema.prediction_scores)
    if labels is not None:
        seen |= set(labels[pd.notna(labels)])
    classes = sorted(seen)
    scores = score_matrix(chunk, schema.prediction_scores, classes)
    if scores is None and labels is None:
        return None
    return classification_error(truth, labels, scores, classes=classes)


def reference_columns(schema: Schema, chunk: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and label-like columns to profile, with their roles decided by the task."""
    numeric = list(schema.numerical)
    labels = list(schema.categorical)
    present = set(map(str, chunk.columns))
    outputs = [c for c in (schema.target, schema.prediction) if c and c in present]
    if schema.task == "regression":
        numeric += outputs
    else:
        labels += outputs
    numeric += [c for c in schema.prediction_scores.values() if c in present]
    return numeric, labels


def role_of(schema: Schema, column: str) -> str:
    """A column's role in the reference: the target, a prediction, or an input feature."""
    if column == schema.target:
        return TARGET
    if column in schema.prediction_columns:
        return PREDICTION
    return FEATURE
