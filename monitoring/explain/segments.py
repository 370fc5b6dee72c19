"""Where the error of a batch sits: per feature, per reference bin or category.

Accumulated in the streaming pass with the reference's own segments (its quantile bins,
its categories plus "unseen", and "missing"), so a segment means the same thing in every
batch and can be compared with the reference's error in it (when the reference carried
predictions and truth).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, unpack
from monitoring.measure.batch_counts import CODES, SORTED
from monitoring.measure.drift import bin_labels
from monitoring.measure.performance.outputs import ROW_ERRORS
from monitoring.measure.reference import FEATURE, ColumnReference, Reference
from monitoring.stats.sorted_column import SortedColumn

SEGMENT_COLUMNS = [
    "feature",
    "segment",
    "rows",
    "row_share",
    "reference_row_share",
    "mean_error",
    "error_share",
    "lift",
    "reference_mean_error",
]


class SegmentErrors:
    """Error sums and row counts per segment of every input feature."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.profiles = {c: p for c, p in reference.profiles.items() if p.role == FEATURE}
        self.sums = {c: np.zeros(len(p.counts) + 1) for c, p in self.profiles.items()}
        self.rows = {
            c: np.zeros(len(p.counts) + 1, dtype=np.int64) for c, p in self.profiles.items()
        }

    def update(self, chunk: Chunk) -> None:
        """Add a chunk, from what its column and performance steps left in `derived`."""
        errors = chunk.derived.get(ROW_ERRORS)
        if errors is None:
            return
        numeric = {
            c: chunk.derived[SORTED, c] for c in self.profiles if (SORTED, c) in chunk.derived
        }
        codes = {c: chunk.derived[CODES, c] for c in self.profiles if (CODES, c) in chunk.derived}
        self.add(numeric, codes, errors)

    def add(
        self,
        numeric: Mapping[str, SortedColumn],
        codes: Mapping[str, np.ndarray],
        errors: np.ndarray,
    ) -> None:
        """Add one chunk: per feature, its values sorted once (numeric: binned on the
        profile's edges) or its category codes (the profile's categories, unseen, then
        missing), and the per-row error (NaN rows skipped)."""
        known = ~np.isnan(errors)
        every = bool(known.all())
        known_errors = errors if every else errors[known]
        for column, profile in self.profiles.items():
            if column in numeric:
                sums, rows = numeric[column].bin_sums(profile.edges, errors)  # type: ignore[union-attr]
            elif column in codes:
                index = codes[column] if every else codes[column][known]
                size = len(profile.counts) + 1
                sums = np.bincount(index, weights=known_errors, minlength=size)
                rows = np.bincount(index, minlength=size)
            else:
                continue
            self.sums[column] += sums
            self.rows[column] += rows

    def merge(self, other: SegmentErrors) -> SegmentErrors:
        for column in self.profiles:
            self.sums[column] += other.sums[column]
            self.rows[column] += other.rows[column]
        return self

    def result(self) -> pd.DataFrame:
        return self.table()

    def to_state(self) -> bytes:
        arrays = {}
        for i, column in enumerate(self.profiles):
            arrays[f"sums{i}"], arrays[f"rows{i}"] = self.sums[column], self.rows[column]
        return pack(arrays)

    def from_state(self, state: bytes) -> SegmentErrors:
        arrays, _ = unpack(state)
        twin = SegmentErrors(self.reference)
        for i, column in enumerate(self.profiles):
            twin.sums[column], twin.rows[column] = arrays[f"sums{i}"], arrays[f"rows{i}"]
        return twin

    def table(self) -> pd.DataFrame:
        """One row per (feature, segment) with rows; sorted by share of the batch error."""
        records = []
        for column, profile in self.profiles.items():
            total_rows, total_error = self.rows[column].sum(), self.sums[column].sum()
            if total_rows == 0:
                continue
            overall = total_error / total_rows
            labels = (*bin_labels(profile), "(missing)")
            reference_rows = np.append(profile.counts, profile.n_missing)
            reference_rows = reference_rows / max(reference_rows.sum(), 1)
            reference_error = _reference_mean_error(profile)
            for i, label in enumerate(labels):
                rows = int(self.rows[column][i])
                if rows == 0:
                    continue
                mean = self.sums[column][i] / rows
                records.append(
                    {
                        "feature": column,
                        "segment": label,
                        "rows": rows,
                        "row_share": rows / total_rows,
                        "reference_row_share": float(reference_rows[i]),
                        "mean_error": mean,
                        "error_share": self.sums[column][i] / total_error if total_error else 0.0,
                        "lift": mean / overall if overall else float("nan"),
                        "reference_mean_error": reference_error[i],
                    }
                )
        table = pd.DataFrame(records, columns=SEGMENT_COLUMNS)
        return table.sort_values(
            ["error_share", "lift"], ascending=False, kind="stable"
        ).reset_index(drop=True)


def _reference_mean_error(profile: ColumnReference) -> np.ndarray:
    size = len(profile.counts) + 1
    if profile.segment_error_sum is None or profile.segment_error_count is None:
        return np.full(size, np.nan)
    counts = profile.segment_error_count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, profile.segment_error_sum / counts, np.nan)
