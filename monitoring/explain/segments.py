"""Where the error of a batch sits: per feature, per reference bin or category.

Accumulated in the streaming pass with the reference's own segments (its quantile bins,
its categories plus "unseen", and "missing"), so a segment means the same thing in every
batch and can be compared with the reference's error in it (when the reference carried
predictions and truth). With the reference's performance, each segment's error is tested
against the reference's in that segment, one-sided, as one family (`degraded`), so that a
drop confined to one region or category is named.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.performance_config import PerformanceConfig
from monitoring.core.state import pack, unpack
from monitoring.measure.batch_counts import CODES, SORTED
from monitoring.measure.drift import bin_labels
from monitoring.measure.performance.outputs import ROW_ERRORS
from monitoring.measure.performance.tests import fisher_less, mean_rise_pvalue
from monitoring.measure.reference import FEATURE, ColumnReference, Reference
from monitoring.stats.multiple_testing import adjust_p_values
from monitoring.stats.sorted_column import SortedColumn

# What the error of a row is, and the metric whose minimum drop a segment's rise must reach.
_KIND_METRIC = {"binary": "accuracy", "log_loss": "log_loss", "mae": "mae"}

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
    "error_rise",
    "rise_p_value",
    "rise_adjusted_p_value",
    "degraded",
]


class SegmentErrors:
    """Error sums, squared-error sums and row counts per segment of every input feature."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.profiles = {c: p for c, p in reference.profiles.items() if p.role == FEATURE}
        self.sums = {c: np.zeros(len(p.counts) + 1) for c, p in self.profiles.items()}
        self.rows = {
            c: np.zeros(len(p.counts) + 1, dtype=np.int64) for c, p in self.profiles.items()
        }
        self.squares = {c: np.zeros(len(p.counts) + 1) for c, p in self.profiles.items()}

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
        squared = errors * errors
        for column, profile in self.profiles.items():
            if column in numeric:
                sums, rows = numeric[column].bin_sums(profile.edges, errors)  # type: ignore[union-attr]
                squares, _ = numeric[column].bin_sums(profile.edges, squared)  # type: ignore[union-attr]
            elif column in codes:
                index = codes[column] if every else codes[column][known]
                size = len(profile.counts) + 1
                sums = np.bincount(index, weights=known_errors, minlength=size)
                rows = np.bincount(index, minlength=size)
                squares = np.bincount(index, weights=known_errors**2, minlength=size)
            else:
                continue
            self.sums[column] += sums
            self.rows[column] += rows
            self.squares[column] += squares

    def merge(self, other: SegmentErrors) -> SegmentErrors:
        for column in self.profiles:
            self.sums[column] += other.sums[column]
            self.rows[column] += other.rows[column]
            self.squares[column] += other.squares[column]
        return self

    def result(self) -> pd.DataFrame:
        return self.table()

    def to_state(self) -> bytes:
        arrays = {}
        for i, column in enumerate(self.profiles):
            arrays[f"sums{i}"], arrays[f"rows{i}"] = self.sums[column], self.rows[column]
            arrays[f"squares{i}"] = self.squares[column]
        return pack(arrays)

    def from_state(self, state: bytes) -> SegmentErrors:
        arrays, _ = unpack(state)
        twin = SegmentErrors(self.reference)
        for i, column in enumerate(self.profiles):
            twin.sums[column], twin.rows[column] = arrays[f"sums{i}"], arrays[f"rows{i}"]
            twin.squares[column] = arrays[f"squares{i}"]
        return twin

    def table(self, config: PerformanceConfig | None = None) -> pd.DataFrame:
        """One row per (feature, segment) with rows; sorted by share of the batch error.

        With `config` and the reference's performance, `degraded` flags the segments whose
        error rose significantly (see `_segment_tests`)."""
        records = []
        kind = self._error_kind() if config is not None else None
        min_rows = config.min_segment_rows if config is not None else 0
        p_values = {c: self._rise_p_values(c, kind, min_rows) for c in self.profiles}
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
                        "error_rise": mean - reference_error[i],
                        "rise_p_value": p_values[column][i],
                        "rise_adjusted_p_value": np.nan,
                        "degraded": False,
                    }
                )
        table = pd.DataFrame(records, columns=SEGMENT_COLUMNS)
        if config is not None and kind is not None:
            _flag_segments(table, kind, config)
        return table.sort_values(
            ["error_share", "lift"], ascending=False, kind="stable"
        ).reset_index(drop=True)


    def _error_kind(self) -> str | None:
        """How a row's error reads on both sides: `binary` (1 for a wrong label, Fisher's
        exact test), `log_loss` (cross-entropy) or `mae` (absolute error; Welch's z-test).
        None when the reference has no performance or the sides differ (a batch scored
        with probabilities against a reference without them): nothing is tested then."""
        performance = self.reference.performance
        if performance is None:
            return None
        if performance.task == "regression":
            return "mae"
        binary = all(np.array_equal(self.squares[c], self.sums[c]) for c in self.profiles)
        if binary == performance.with_scores:
            return None
        return "binary" if binary else "log_loss"

    def _rise_p_values(self, column: str, kind: str | None, min_rows: int) -> np.ndarray:
        """Per segment, the one-sided p-value that its error rose above the reference's in
        that segment; NaN where it cannot be tested (no reference errors, empty on either
        side, or under `min_rows` rows on either side for the z-test)."""
        profile = self.profiles[column]
        rows, sums = self.rows[column], self.sums[column]
        ref_sums, ref_rows = profile.segment_error_sum, profile.segment_error_count
        ref_squares = profile.segment_error_sq_sum
        if kind is None or ref_sums is None or ref_rows is None:
            return np.full(len(rows), np.nan)
        if kind == "binary":
            right, ref_right = np.rint(rows - sums), np.rint(ref_rows - ref_sums)
            testable = (rows > 0) & (ref_rows > 0)
            p = fisher_less(right.astype(np.int64), rows, ref_right.astype(np.int64), ref_rows)
            return np.where(testable, p, np.nan)
        if ref_squares is None:
            return np.full(len(rows), np.nan)
        testable = (rows >= max(min_rows, 2)) & (ref_rows >= max(min_rows, 2))
        _, p = mean_rise_pvalue(
            (rows, sums, self.squares[column]), (ref_rows, ref_sums, ref_squares)
        )
        return np.where(testable, p, np.nan)


def _flag_segments(table: pd.DataFrame, kind: str, config: PerformanceConfig) -> None:
    """Holm (or `performance.correction`) across every tested segment of every feature;
    `degraded` where the adjusted p-value is below alpha and the rise reaches the minimum
    drop of the metric the error stands for (accuracy, log loss or MAE)."""
    tested = table["rise_p_value"].notna().to_numpy()
    if not tested.any():
        return
    adjusted = adjust_p_values(table.loc[tested, "rise_p_value"].to_numpy(), config.correction)
    table.loc[tested, "rise_adjusted_p_value"] = adjusted
    metric = _KIND_METRIC[kind]
    reference = table.loc[tested, "reference_mean_error"].to_numpy(dtype=np.float64)
    rise = table.loc[tested, "error_rise"].to_numpy(dtype=np.float64)
    minimum = np.array([config.min_drop_for(metric, r) for r in reference])
    table.loc[tested, "degraded"] = (adjusted < config.alpha) & (rise >= minimum) & (rise > 0)


def _reference_mean_error(profile: ColumnReference) -> np.ndarray:
    size = len(profile.counts) + 1
    if profile.segment_error_sum is None or profile.segment_error_count is None:
        return np.full(size, np.nan)
    counts = profile.segment_error_count.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, profile.segment_error_sum / counts, np.nan)
