"""The accumulators behind the batch-level data-quality checks (`measure.quality`).

`DuplicateIds` hashes the id column (pandas' 64-bit hash) and keeps the distinct hashes,
compacted as it goes: 8 bytes per distinct id, the one check whose memory grows with the
batch (about 80 MB per 10 million rows). `AnomalyFlags` counts the rows the anomaly model
flags, scored from the values and category codes the column steps already derived: every
row of the first SCORE_EVERY_ROW rows, then one row in four, chosen by a hash of the row
number (so the sample depends neither on the rows' content nor on how the batch is chunked
or partitioned). The share flagged among the scored rows is a uniform sample's, and a
million-row batch scores about 290,000 rows instead of all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, unpack
from monitoring.measure.anomaly import AnomalyModel, NumericSurprise, surprise_matrix_of
from monitoring.measure.batch_counts import CODES, SORTED

COMPACT_AT = 1_000_000  # hashes held unsorted before they are made distinct
SCORE_EVERY_ROW = 50_000  # rows of a batch that are all scored for anomalous rows
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of row numbers


def scored_rows(first_row: int, rows: int) -> np.ndarray | None:
    """Positions in a chunk (whose first row is `first_row` of the batch) that are scored
    for anomalous rows; None: all of them."""
    if first_row + rows <= SCORE_EVERY_ROW:
        return None
    numbers = np.arange(first_row, first_row + rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        kept = (numbers < SCORE_EVERY_ROW) | ((numbers * _GOLDEN) >> np.uint64(62) == 0)
    return np.flatnonzero(kept)


class DuplicateIds:
    """Rows whose id repeats an earlier row's (missing ids are not counted)."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.rows = 0
        self.repeated = 0
        self._distinct = np.empty(0, dtype=np.uint64)
        self._pending: list[np.ndarray] = []
        self._held = 0

    def update(self, chunk: Chunk) -> None:
        if self.column not in chunk.frame.columns:
            return
        ids = chunk.frame[self.column]
        present = ids[ids.notna()]
        self.rows += len(present)
        self._add(pd.util.hash_pandas_object(present, index=False).to_numpy())

    def _add(self, hashes: np.ndarray) -> None:
        self._pending.append(hashes)
        self._held += len(hashes)
        if self._held >= COMPACT_AT:
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        pooled = np.concatenate([self._distinct, *self._pending])
        self._distinct = np.unique(pooled)
        self.repeated += len(pooled) - len(self._distinct)
        self._pending, self._held = [], 0

    def merge(self, other: DuplicateIds) -> DuplicateIds:
        other._compact()
        self.rows += other.rows
        self.repeated += other.repeated
        self._add(other._distinct)
        return self

    def result(self) -> int:
        """Rows whose id was seen before in the batch."""
        self._compact()
        return self.repeated

    def to_state(self) -> bytes:
        self._compact()
        return pack({"distinct": self._distinct}, rows=self.rows, repeated=self.repeated)

    def from_state(self, state: bytes) -> DuplicateIds:
        arrays, values = unpack(state)
        twin = DuplicateIds(self.column)
        twin.rows, twin.repeated = values["rows"], values["repeated"]
        twin._distinct = arrays["distinct"]
        return twin


class AnomalyFlags:
    """Rows the anomaly model flags, out of the rows scored (runs after the column steps,
    whose sorted values and category codes it reads from `chunk.derived`)."""

    def __init__(self, model: AnomalyModel) -> None:
        self.model = model
        self.rows = 0
        self.flagged = 0

    def update(self, chunk: Chunk) -> None:
        keep = scored_rows(chunk.offset, len(chunk))
        columns = {}
        for feature in self.model.features:
            if isinstance(feature, NumericSurprise):
                found = chunk.derived[SORTED, feature.column].values
            else:
                found = chunk.derived[CODES, feature.column]
            columns[feature.column] = found if keep is None else found[keep]
        _, flags = self.model.assess_matrix(surprise_matrix_of(columns, self.model.features))
        self.rows += len(flags)
        self.flagged += int(flags.sum())

    def merge(self, other: AnomalyFlags) -> AnomalyFlags:
        self.rows += other.rows
        self.flagged += other.flagged
        return self

    def result(self) -> tuple[int, int]:
        """(flagged rows, rows scored)."""
        return self.flagged, self.rows

    def to_state(self) -> bytes:
        return pack(rows=self.rows, flagged=self.flagged)

    def from_state(self, state: bytes) -> AnomalyFlags:
        _, values = unpack(state)
        twin = AnomalyFlags(self.model)
        twin.rows, twin.flagged = values["rows"], values["flagged"]
        return twin
