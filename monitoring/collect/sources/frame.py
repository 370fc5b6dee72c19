"""An in-memory pandas DataFrame as a source, for notebooks and tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, check_chunk_size
from monitoring.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DataFrameSource"]


class DataFrameSource:
    """Row slices of a DataFrame; each chunk is a copy, so callers may modify it freely.

    The frame's own index is kept (it may carry data, such as timestamps).
    """

    def __init__(self, df: pd.DataFrame, *, name: str = "dataframe") -> None:
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise SourceError(f"DataFrameSource needs a pandas DataFrame, got {type(df).__name__}")
        self._df = df
        self._name = name

    @property
    def name(self) -> str:
        """The name given at construction."""
        return self._name

    def describe(self) -> str:
        """The name and the frame's shape."""
        rows, columns = self._df.shape
        return f"pandas DataFrame '{self._name}' ({rows} rows, {columns} columns)"

    def expected_rows(self) -> int:
        """The frame's rows."""
        return len(self._df)

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Yield consecutive slices of at most ``chunk_size`` rows."""
        return self._chunks(check_chunk_size(chunk_size))

    def _chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        df = self._df
        if df.empty:
            if len(df.columns):
                yield df.iloc[0:0].copy()
            return
        for start in range(0, len(df), chunk_size):
            yield df.iloc[start : start + chunk_size].copy()
