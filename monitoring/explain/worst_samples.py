"""The k rows with the highest error, kept while the batch streams by (O(k) memory).

Order: highest error first; ties (hard labels give errors of 0 or 1) go to the more
unusual input (higher anomaly score), then to the earlier row, so the selection equals a
full stable sort of the batch by (error desc, anomaly score desc, row asc). Anomaly scores
are computed only for rows that can still enter the top k.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

ROW = "row"
ERROR = "error"
ANOMALY = "anomaly_score"
ANOMALOUS = "anomalous"
ANOMALY_FEATURES = "anomaly_features"


class Scorer(Protocol):
    """What ranks tied rows and explains the kept ones (`anomaly.AnomalyModel`)."""

    def score(self, rows: pd.DataFrame) -> np.ndarray: ...

    def is_anomalous(self, scores: np.ndarray) -> np.ndarray: ...

    def explain(self, rows: pd.DataFrame) -> list[str]: ...


class WorstSamples:
    """Keeps the top-k rows by error across chunks, scored for anomaly when a scorer is given.

    Rows that can still enter the top k wait unscored in `_pending`; they are scored and
    cut to k (`_compact`) only when more than `pending_limit` of them wait, or at the end.
    With continuous errors (scores, regression) a few rows per chunk qualify, so scoring
    runs once per batch instead of once per chunk; with tied errors (hard labels) a chunk
    can hold thousands of rows tied at the k-th error, and the limit keeps memory O(k).
    """

    def __init__(self, k: int, scorer: Scorer | None = None, pending_limit: int = 0) -> None:
        self.k = k
        self.scorer = scorer
        self.pending_limit = max(pending_limit, 4 * k, 1000)
        self._kept: pd.DataFrame | None = None  # <= k rows, scored
        self._pending: list[pd.DataFrame] = []  # candidates not scored yet
        self._errors = np.empty(0)  # errors of the kept and the pending rows

    def update(self, rows: pd.DataFrame, errors: np.ndarray, *, offset: int) -> None:
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
        scores = self.scorer.score(candidates)
        return candidates.assign(**{ANOMALY: scores, ANOMALOUS: self.scorer.is_anomalous(scores)})

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
