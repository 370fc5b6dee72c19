"""The k rows with the highest error, kept while the batch streams by (O(k) memory).

Order: highest error first; ties (hard labels give errors of 0 or 1) go to the more
unusual input (higher anomaly score), then to the earlier row, so the selection equals a
full stable sort of the batch by (error desc, anomaly score desc, row asc). Anomaly scores
are computed only for rows that can still enter the top k.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.state import arrow_bytes, arrow_frame, pack_many, unpack_many
from monitoring.measure.performance.outputs import ROW_ERRORS

ROW = "row"
ERROR = "error"
ANOMALY = "anomaly_score"
ANOMALOUS = "anomalous"
ANOMALY_FEATURES = "anomaly_features"


class Scorer(Protocol):
    """What ranks tied rows and explains the kept ones (`anomaly.AnomalyModel`)."""

    def assess(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]: ...

    def explain(self, rows: pd.DataFrame) -> list[str]: ...


class WorstSamples:
    """Keeps the top-k rows by error across chunks, scored for anomaly when a scorer is given.

    Rows that can still enter the top k wait unscored in `_pending`; they are scored and
    cut to k (`_compact`) only when more than `pending_limit` of them wait, or at the end.
    With continuous errors (scores, regression) a few rows per chunk qualify, so scoring
    runs once per batch instead of once per chunk; with tied errors (hard labels) a chunk
    can hold thousands of rows tied at the k-th error, and the limit keeps memory O(k).
    """

    def __init__(
        self,
        k: int,
        scorer: Scorer | None = None,
        pending_limit: int = 0,
        *,
        columns: Sequence[str] = (),
    ) -> None:
        self.k = k
        self.scorer = scorer
        self.columns = tuple(columns)  # kept for `update(chunk)`, where the chunk has them
        self.pending_limit = max(pending_limit, 4 * k, 1000)
        self._kept: pd.DataFrame | None = None  # <= k rows, scored
        self._pending: list[pd.DataFrame] = []  # candidates not scored yet
        self._errors = np.empty(0)  # errors of the kept and the pending rows

    def update(self, chunk: Chunk) -> None:
        """Offer a chunk's rows by the errors the performance step left (none: nothing)."""
        errors = chunk.derived.get(ROW_ERRORS)
        if errors is not None:
            present = set(map(str, chunk.frame.columns))
            rows = chunk.frame[[c for c in self.columns if c in present]]
            self.offer(rows, errors, offset=chunk.offset)

    def offer(self, rows: pd.DataFrame, errors: np.ndarray, *, offset: int) -> None:
        """Offer one chunk: `rows` (the columns to keep) and its per-row error (NaN = none)."""
        if self.k == 0:
            return
        errors = np.asarray(errors, dtype=np.float64)
        keep = ~np.isnan(errors)
        if self._errors.size >= self.k:
            keep &= errors >= self._floor()  # others cannot get in
        index = np.flatnonzero(keep)
        if index.size == 0:
            return
        # Ties at the k-th error are decided by anomaly score: keep every row tied with it.
        offered = errors[index]
        index = index[offered >= _kth_highest(offered, min(self.k, index.size))]
        self._pending.append(
            rows.iloc[index]
            .reset_index(drop=True)
            .assign(**{ROW: offset + index, ERROR: errors[index]})
        )
        self._errors = np.concatenate([self._errors, errors[index]])
        if self._errors.size > self.pending_limit:
            self._compact()

    def merge(self, other: WorstSamples) -> WorstSamples:
        """Hold the top k of both (rows keep their batch row numbers)."""
        for frame in ([] if other._kept is None else [other._kept]) + other._pending:
            self._pending.append(frame.drop(columns=[ANOMALY, ANOMALOUS], errors="ignore"))
        self._errors = np.concatenate([self._errors, other._errors])
        if self._errors.size > self.pending_limit:
            self._compact()
        return self

    def to_state(self) -> bytes:
        """The kept and pending rows (Arrow IPC, no pickle), unscored."""
        frames = ([] if self._kept is None else [self._kept]) + self._pending
        frames = [f.drop(columns=[ANOMALY, ANOMALOUS], errors="ignore") for f in frames]
        return pack_many([arrow_bytes(f) for f in frames])

    def from_state(self, state: bytes) -> WorstSamples:
        twin = WorstSamples(self.k, self.scorer, self.pending_limit, columns=self.columns)
        twin._pending = [arrow_frame(one) for one in unpack_many(state)]
        if twin._pending:
            twin._errors = np.concatenate([f[ERROR].to_numpy(np.float64) for f in twin._pending])
        return twin

    def _floor(self) -> float:
        """The k-th highest error kept or pending: rows below it cannot enter the top k."""
        return _kth_highest(self._errors, self.k)

    def _compact(self) -> None:
        """Score the pending rows that can still enter, and keep the top k of all."""
        if not self._pending:
            return
        floor = self._floor() if self._errors.size >= self.k else -np.inf
        pending = pd.concat(self._pending, ignore_index=True)
        pending = pending[pending[ERROR].to_numpy() >= floor].reset_index(drop=True)
        candidates = self._score(pending)
        merged = (
            candidates
            if self._kept is None
            else pd.concat([self._kept, candidates], ignore_index=True)
        )
        self._kept = _top(merged, self.k)
        self._pending = []
        self._errors = self._kept[ERROR].to_numpy(dtype=np.float64)

    def _score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        if self.scorer is None:
            return candidates
        scores, anomalous = self.scorer.assess(candidates)
        return candidates.assign(**{ANOMALY: scores, ANOMALOUS: anomalous})

    def result(self) -> pd.DataFrame:
        """The kept rows in order, with `row` (position in the batch), `error` and, when
        scored, `anomaly_score`, `anomalous` and `anomaly_features` first. Only the kept
        rows are explained, once, here."""
        self._compact()
        if self._kept is None:
            return pd.DataFrame(columns=[ROW, ERROR])
        kept = self._kept
        if self.scorer is not None:
            kept = kept.assign(**{ANOMALY_FEATURES: self.scorer.explain(kept)})
        front = [c for c in (ROW, ERROR, ANOMALY, ANOMALOUS, ANOMALY_FEATURES) if c in kept.columns]
        ordered = kept[front + [c for c in kept.columns if c not in front]]
        return ordered.reset_index(drop=True)


def _kth_highest(values: np.ndarray, k: int) -> float:
    """The k-th highest of `values` (1 <= k <= len(values)), without a full sort."""
    return float(-np.partition(-values, k - 1)[k - 1])


def _top(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    if ANOMALY in frame.columns:
        return frame.sort_values(
            [ERROR, ANOMALY, ROW], ascending=[False, False, True], kind="stable"
        ).head(k)
    return frame.sort_values([ERROR, ROW], ascending=[False, True], kind="stable").head(k)

