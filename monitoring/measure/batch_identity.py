"""What identifies a batch: its digest and the time range its timestamps cover.

`BatchDigest` hashes each row (pandas' 64-bit row hash, independent of how the batch is
chunked) into a sha256 over the rows in order. A sha256 cannot be resumed elsewhere, so a
state holds finished segments: the digest of a single stream is that stream's sha256; the
merge of several streams (partitions, in order) is the sha256 of their segments' digests.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, unpack

DIGEST_LENGTH = 16  # hex characters shown and stored (`monitoring.batch_digest`)


class BatchDigest:
    """The batch digest (see the module docstring)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._rows = 0
        self._done: list[tuple[int, str]] = []  # finished segments: (rows, sha256 hex)

    def update(self, chunk: Chunk) -> None:
        self._hash.update(pd.util.hash_pandas_object(chunk.frame, index=False).to_numpy().tobytes())
        self._rows += len(chunk.frame)

    def _segments(self) -> list[tuple[int, str]]:
        if not self._rows:
            return list(self._done)
        return [*self._done, (self._rows, self._hash.hexdigest())]

    def merge(self, other: BatchDigest) -> BatchDigest:
        self._done = self._segments() + other._segments()
        self._hash, self._rows = hashlib.sha256(), 0
        return self

    def result(self) -> str:
        segments = self._segments()
        if len(segments) == 1:
            return segments[0][1][:DIGEST_LENGTH]
        joined = hashlib.sha256("".join(hex_ for _, hex_ in segments).encode())
        return joined.hexdigest()[:DIGEST_LENGTH]

    def to_state(self) -> bytes:
        return pack(segments=self._segments())

    def from_state(self, state: bytes) -> BatchDigest:
        _, values = unpack(state)
        twin = BatchDigest()
        twin._done = [(int(rows), str(hex_)) for rows, hex_ in values["segments"]]
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
