"""The k rows with the highest error, kept while the batch streams by (O(k) memory).

Ties are broken by position in the batch, earliest first, so the selection equals a full
stable sort of the batch by descending error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ROW = "row"
ERROR = "error"


class WorstSamples:
    """Keeps the top-k rows by error across chunks."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._kept: pd.DataFrame | None = None

    def update(self, rows: pd.DataFrame, errors: np.ndarray, *, offset: int) -> None:
        """Offer one chunk: `rows` (the columns to keep) and its per-row error (NaN = none)."""
        if self.k == 0:
            return
        candidates = rows.reset_index(drop=True).assign(
            **{ROW: np.arange(offset, offset + len(rows)), ERROR: errors}
        )
        candidates = candidates[candidates[ERROR].notna()]
        if candidates.empty:
            return
        candidates = _top(candidates, self.k)
        if self._kept is None:
            self._kept = candidates
            return
        self._kept = _top(pd.concat([self._kept, candidates], ignore_index=True), self.k)

    def result(self) -> pd.DataFrame:
        """The kept rows, highest error first, with `row` (position in the batch) and `error`."""
        if self._kept is None:
            return pd.DataFrame(columns=[ROW, ERROR])
        front = [ROW, ERROR]
        ordered = self._kept[front + [c for c in self._kept.columns if c not in front]]
        return ordered.reset_index(drop=True)


def _top(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    return frame.sort_values([ERROR, ROW], ascending=[False, True], kind="stable").head(k)
