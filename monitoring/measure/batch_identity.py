"""What identifies a batch: its digest and the time range its timestamps cover.

`BatchDigest` hashes each row (pandas' 64-bit row hash, independent of how the batch is
chunked) and adds the hashes up, twice (as they are and remixed, both modulo 2**64): a
digest of the batch's rows as a multiset. It does not depend on the rows' order, so a
SQL query without ORDER BY, a file rewritten in another order and a Spark DataFrame in any
number of partitions give the same digest for the same rows, and partial digests merge
by adding. The count of rows is part of it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.row_keys import remix
from monitoring.core.state import pack, unpack

DIGEST_LENGTH = 16  # hex characters shown and stored (`monitoring.batch_digest`)
_MASK = 0xFFFFFFFFFFFFFFFF


class BatchDigest:
    """The batch digest (see the module docstring)."""

    def __init__(self) -> None:
        self._sums = [0, 0]  # the row hashes' sum and their remixed sum, modulo 2**64
        self._rows = 0

    def update(self, chunk: Chunk) -> None:
        hashes = pd.util.hash_pandas_object(chunk.frame, index=False).to_numpy(np.uint64)
        self._add(int(hashes.sum(dtype=np.uint64)), int(remix(hashes).sum(dtype=np.uint64)))
        self._rows += len(hashes)

    def _add(self, first: int, second: int) -> None:
        self._sums = [(self._sums[0] + first) & _MASK, (self._sums[1] + second) & _MASK]

    def merge(self, other: BatchDigest) -> BatchDigest:
        self._add(*other._sums)
        self._rows += other._rows
        return self

    def result(self) -> str:
        text = f"{self._rows}:{self._sums[0]:016x}:{self._sums[1]:016x}"
        return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]

    def to_state(self) -> bytes:
        # JSON numbers lose integers above 2**53: the sums travel as hex text.
        return pack(rows=self._rows, sums=[f"{s:016x}" for s in self._sums])

    def from_state(self, state: bytes) -> BatchDigest:
        _, values = unpack(state)
        twin = BatchDigest()
        twin._rows = int(values["rows"])
        twin._sums = [int(s, 16) for s in values["sums"]]
        return twin


class TimeRange:
    """The earliest and latest timestamp of a column (unparseable values skipped)."""

    def __init__(self, column: str | None) -> None:
        self.column = column
        self.low: Any = None
        self.high: Any = None

    def update(self, chunk: Chunk) -> None:
        if not self.column or self.column not in chunk.frame.columns:
            return
        times = pd.to_datetime(chunk.frame[self.column], errors="coerce").dropna()
        if not times.empty:
            self._add(times.min(), times.max())

    def _add(self, low: Any, high: Any) -> None:
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def merge(self, other: TimeRange) -> TimeRange:
        if other.low is not None:
            self._add(other.low, other.high)
        return self

    def result(self) -> tuple[str, str] | None:
        if self.low is None:
            return None
        return pd.Timestamp(self.low).isoformat(), pd.Timestamp(self.high).isoformat()

    def to_state(self) -> bytes:
        return pack(range=self.result())

    def from_state(self, state: bytes) -> TimeRange:
        _, values = unpack(state)
        twin = TimeRange(self.column)
        if values["range"] is not None:
            twin._add(*(pd.Timestamp(t) for t in values["range"]))
        return twin
