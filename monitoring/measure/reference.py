"""The fitted reference's types: fitted once, then every batch is measured on its scale.

Fitting (`evaluation.fit`) reads the reference source in one pass and keeps, per monitored
column, what the statistics need: quantile bin edges and counts, the sorted distinct values
for exact KS and Wasserstein (at most `drift.max_support` of them, a seeded subsample beyond
that), category vocabularies, missing counts, mean and standard deviation. The result is
identified by a digest of that content, so the same data and settings give the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.core.schema import Schema
from monitoring.measure.anomaly import AnomalyModel
from monitoring.measure.multivariate import ReconstructionModel
from monitoring.measure.performance.summary import PerformanceSummary
from monitoring.stats.calibration import BridgeNull

FEATURE, PREDICTION, TARGET = "feature", "prediction", "target"
MISSING_KEY = "\x00missing"  # stands for a missing value among category keys


@dataclass(frozen=True)
class NumericalReference:
    """A numeric column of the reference, summarised for every numeric method."""

    column: str
    role: str
    edges: np.ndarray
    counts: np.ndarray
    support: np.ndarray
    support_counts: np.ndarray
    n: int
    n_missing: int
    mean: float
    std: float
    segment_error_sum: np.ndarray | None = None
    segment_error_count: np.ndarray | None = None
    segment_error_sq_sum: np.ndarray | None = None  # each segment's sum of squared errors
    # Derived from the support, simulated once at fit so that batches skip it; not part
    # of the reference's id (see `drift.wasserstein_null_of`).
    wasserstein_null: BridgeNull | None = None
    # The smallest and largest value (the support may be a subsample): the data-quality
    # range check. Not part of the id, so references fitted before it keep theirs.
    minimum: float | None = None
    maximum: float | None = None
    kind: str = field(default="numerical", init=False)

    @property
    def missing_rate(self) -> float:
        return self.n_missing / max(self.n + self.n_missing, 1)


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical column: counts over the vocabulary, then the unseen bucket (always 0)."""

    column: str
    role: str
    vocabulary: tuple[str, ...]
    counts: np.ndarray
    n: int
    n_missing: int
    segment_error_sum: np.ndarray | None = None
    segment_error_count: np.ndarray | None = None
    segment_error_sq_sum: np.ndarray | None = None  # each segment's sum of squared errors
    # Categories seen exactly once: the Good-Turing estimate of how often a reference-like
    # row brings a category never seen (the unseen-category check). Not part of the id.
    singletons: int | None = None
    kind: str = field(default="categorical", init=False)

    @property
    def missing_rate(self) -> float:
        return self.n_missing / max(self.n + self.n_missing, 1)


ColumnReference = NumericalReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class EmbeddingReference:
    """The activations of one layer of the model over the reference rows, captured while the
    model ran at fit: a uniform sample of at most `drift.mmd_max_samples` rows (float32,
    one per sample), what the embedding MMD test compares each batch's sample with."""

    layer: str
    sample: np.ndarray
    n_rows: int  # reference rows the sample was drawn from

    def update_digest(self, h: Any) -> None:
        """Add this to a reference's digest."""
        h.update(f"embedding|{self.layer}|{self.n_rows}|{self.sample.shape}".encode())
        h.update(np.ascontiguousarray(self.sample, dtype=np.float32).tobytes())


@dataclass(frozen=True)
class Reference:
    """A fitted reference (make one with `monitoring.fit_reference`); `id` is its digest."""

    schema: Schema
    profiles: Mapping[str, ColumnReference]
    n_rows: int
    classes: tuple[str, ...]
    bins: int
    smoothing: float
    max_categories: int
    source: str
    notes: tuple[str, ...] = ()
    id: str = ""
    anomaly: AnomalyModel | None = None
    multivariate: ReconstructionModel | None = None
    # Rows of the reference whose id repeats an earlier row's (None: no id column); the
    # duplicated-ids check compares a batch with it. Not part of the id.
    id_duplicate_rows: int | None = None
    # The reference's own performance when it carries truth and predictions: what each
    # batch's performance is tested against. Part of the id when present (it is not
    # implied by the columns' profiles), so files from before it keep theirs.
    performance: PerformanceSummary | None = None
    # The embedding layer's activations (`drift.embedding_layer`, fitted with the model).
    # Part of the id when present, so files from before it keep theirs.
    embedding: EmbeddingReference | None = None
    # How a batch's performance is estimated without labels (`performance.estimator_fit`):
    # derived from the reference's rows like the Wasserstein nulls, so not part of the id.
    estimator: Any = None

    def profile(self, column: str) -> ColumnReference:
        return self.profiles[column]

    def columns_with_role(self, role: str) -> list[str]:
        return [c for c, p in self.profiles.items() if p.role == role]

    def digest(self) -> str:
        """sha256 over the fitted content (not the source description)."""
        h = hashlib.sha256()
        meta = {
            "schema": self.schema.to_dict(),
            "classes": list(self.classes),
            "bins": self.bins,
            "smoothing": self.smoothing,
            "max_categories": self.max_categories,
            "n_rows": self.n_rows,
        }
        h.update(json.dumps(meta, sort_keys=True).encode())
        if self.anomaly is not None:
            h.update(json.dumps(self.anomaly.to_dict(), sort_keys=True).encode())
        if self.multivariate is not None:
            h.update(json.dumps(self.multivariate.to_dict(), sort_keys=True).encode())
        for column in sorted(self.profiles):
            p = self.profiles[column]
            h.update(f"{column}|{p.role}|{p.kind}|{p.n}|{p.n_missing}".encode())
            if isinstance(p, NumericalReference):
                for array in (p.edges, p.counts, p.support, p.support_counts):
                    h.update(np.ascontiguousarray(array).tobytes())
            else:
                h.update("\x1f".join(p.vocabulary).encode())
                h.update(np.ascontiguousarray(p.counts).tobytes())
            for array in (p.segment_error_sum, p.segment_error_count, p.segment_error_sq_sum):
                if array is not None:
                    h.update(np.ascontiguousarray(array).tobytes())
        if self.performance is not None:
            self.performance.update_digest(h)
        if self.embedding is not None:
            self.embedding.update_digest(h)
        return h.hexdigest()[:16]


