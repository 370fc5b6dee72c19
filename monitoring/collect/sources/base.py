"""The contract every data source honours: one pass of pandas DataFrame chunks.

A source is anything with a display ``name``, a ``describe()`` safe to log, and an
``iter_chunks(chunk_size)`` that starts a fresh pass on each call. The rules, for every
implementation in this package:

- a chunk is a ``pandas.DataFrame`` of at most ``chunk_size`` rows, never empty, except
  that a pass over zero rows yields exactly one empty frame carrying the column names
  (so that an export can still write a header); a source that knows no columns either
  (an empty CSV file) yields nothing;
- file and SQL chunks are indexed by the row's position in the pass (0, 1, ...);
  a ``DataFrameSource`` keeps the frame's own index;
- ``chunk_size`` is checked when ``iter_chunks`` is called; files and databases are
  opened lazily, so their errors come from the first ``next()``;
- memory stays bounded by one chunk: nothing reads a whole file or result at once;
- a source whose ``read_ahead`` attribute is true may be iterated in a thread other than
  the caller's (the evaluation reads the next chunk while it works on this one); without
  the attribute, it is iterated in the caller's thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from monitoring.errors import ConfigError, SourceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_CHUNK_SIZE", "Source", "align_columns", "check_chunk_size", "number_rows"]

DEFAULT_CHUNK_SIZE = 100_000
"""Rows per chunk when the caller does not say: a few tens of MB for typical tables."""


@runtime_checkable
class Source(Protocol):
    """Where a batch or a reference comes from; yields DataFrame chunks, one pass per call."""

    @property
    def name(self) -> str:
        """Short display name: the file name, ``sql:<table>``, or a given name."""
        ...

    def describe(self) -> str:
        """Full description, safe to log to MLflow (passwords masked)."""
        ...

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Start a fresh pass and yield chunks of at most ``chunk_size`` rows."""
        ...


def expected_rows(source: object) -> int | None:
    """The rows a source says it will yield before its pass (a DataFrame's length, a
    Parquet footer's count), or None where it cannot know them."""
    announced = getattr(source, "expected_rows", None)
    return announced() if callable(announced) else None


def check_chunk_size(chunk_size: int) -> int:
    """Return ``chunk_size`` if it is an integer >= 1, else raise ConfigError."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"`chunk_size` must be an integer >= 1, got {chunk_size!r}")
    return chunk_size


def number_rows(frame: pd.DataFrame, start: int) -> pd.DataFrame:
    """Index ``frame`` by row position in the pass, unless it carries a real index.

    Readers give each chunk a fresh ``RangeIndex`` from 0; renumbering from ``start``
    makes the index mean "row n of this pass" across chunks. A named or non-range index
    (restored from Parquet metadata, or chosen with ``index_col``) is data and is kept.
    """
    import pandas as pd

    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def align_columns(chunk: pd.DataFrame, columns: list[Any], where: str) -> pd.DataFrame:
    """Return ``chunk`` with its columns in the order of ``columns``.

    Chunks of one pass must share their columns; when they do not, the SourceError
    starts with ``where`` (the file, or the row the chunk starts at) and lists the
    missing and unexpected columns.
    """
    if list(chunk.columns) == columns:
        return chunk
    missing = [c for c in columns if c not in chunk.columns]
    extra = [c for c in chunk.columns if c not in columns]
    if missing or extra or len(chunk.columns) != len(columns):
        raise SourceError(
            f"{where}: the columns differ from the first chunk's: "
            f"missing {missing}, unexpected {extra}"
        )
    return chunk[columns]
