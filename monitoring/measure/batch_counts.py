"""A batch summarised against a fitted reference, chunk by chunk, in O(reference) memory.

Every accumulator here only adds counts, so two profiles of disjoint parts of a batch
can be merged (`merge`), which is what lets partitions be profiled in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.measure.reference import CategoricalReference, NumericalReference, Reference
from monitoring.stats.ecdf import (
    SupportCounts,
    count_sorted_on_support,
    empty_support_counts,
    support_index,
)
from monitoring.stats.sorted_column import SortedColumn


@dataclass
class NumericalCounts:
    """Counts of one numeric column of the batch on the reference's bins and support."""

    counts: np.ndarray
    support: SupportCounts
    n_missing: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    _support_index: pd.Index | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, profile: NumericalReference) -> NumericalCounts:
        return cls(
            np.zeros(len(profile.counts), dtype=np.int64),
            empty_support_counts(len(profile.support)),
        )

    def update(self, column: SortedColumn, profile: NumericalReference) -> None:
        """Add one chunk's values, sorted once (`sorted_column.SortedColumn`)."""
        present = column.sorted
        self.counts += column.bin_counts(profile.edges)
        self.n_missing += column.n_missing
        if self._support_index is None:
            self._support_index = support_index(profile.support)  # once per column and pass
        self.support = self.support + count_sorted_on_support(present, self._support_index)
        self.total += float(present.sum())
        self.total_sq += float(np.dot(present, present))

    def merge(self, other: NumericalCounts) -> None:
        self.counts += other.counts
        self.support = self.support + other.support
        self.n_missing += other.n_missing
        self.total += other.total
        self.total_sq += other.total_sq

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


@dataclass
class CategoricalCounts:
    """Counts of one categorical column over the reference vocabulary + unseen bucket."""

    counts: np.ndarray
    n_missing: int = 0

    @classmethod
    def empty(cls, profile: CategoricalReference) -> CategoricalCounts:
        return cls(np.zeros(len(profile.vocabulary) + 1, dtype=np.int64))

    def update(self, codes: np.ndarray) -> None:
        """Add category codes (`columns.label_codes`: unseen, then missing, last)."""
        tally = np.bincount(codes, minlength=len(self.counts) + 1)
        self.counts += tally[:-1]
        self.n_missing += int(tally[-1])

    def merge(self, other: CategoricalCounts) -> None:
        self.counts += other.counts
        self.n_missing += other.n_missing

    @property
    def n(self) -> int:
        return int(self.counts.sum())


ColumnCounts = NumericalCounts | CategoricalCounts


@dataclass
class BatchCounts:
    """Per-column summaries of a batch, on the reference's scale."""

    reference: Reference
    columns: dict[str, ColumnCounts] = field(default_factory=dict)
    n_rows: int = 0

    @classmethod
    def empty(cls, reference: Reference) -> BatchCounts:
        columns: dict[str, ColumnCounts] = {}
        for column, profile in reference.profiles.items():
            if isinstance(profile, NumericalReference):
                columns[column] = NumericalCounts.empty(profile)
            else:
                columns[column] = CategoricalCounts.empty(profile)
        return cls(reference, columns)

    def update(
        self,
        numeric: Mapping[str, SortedColumn],
        codes: Mapping[str, np.ndarray],
        n_rows: int,
    ) -> None:
        """Add one chunk: numeric columns sorted once, and per categorical column its
        category codes (`columns.label_codes`: unseen, then missing, last)."""
        for column, summary in self.columns.items():
            if isinstance(summary, NumericalCounts):
                if column in numeric:
                    summary.update(numeric[column], self.reference.profiles[column])  # type: ignore[arg-type]
            elif column in codes:
                summary.update(codes[column])
        self.n_rows += n_rows

    def merge(self, other: BatchCounts) -> None:
        for column, summary in self.columns.items():
            summary.merge(other.columns[column])  # type: ignore[arg-type]
        self.n_rows += other.n_rows

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready profile: histograms and counts per column (the `profile.json` artifact)."""
        out: dict[str, object] = {"n_rows": self.n_rows, "reference_id": self.reference.id}
        columns: dict[str, object] = {}
        for column, summary in self.columns.items():
            profile = self.reference.profiles[column]
            entry: dict[str, object] = {
                "role": profile.role,
                "kind": profile.kind,
                "n": summary.n,
                "n_missing": summary.n_missing,
                "counts": summary.counts.tolist(),
                "reference_counts": profile.counts.tolist(),
            }
            if isinstance(profile, NumericalReference):
                entry["edges"] = profile.edges.tolist()
                entry["mean"] = summary.mean  # type: ignore[union-attr]
                entry["reference_mean"] = profile.mean
            else:
                entry["categories"] = [*profile.vocabulary, "(unseen)"]
            columns[column] = entry
        out["columns"] = columns
        return out
