"""Split a source into its partitions (one value of a column each), for a backfill.

A SQL source is split by the database:

- a query with a `:<column>` placeholder (`... WHERE day = :day`) is run once per value,
  bound; the values are the inclusive range `start`..`end` (integers step 1, ISO dates a
  day apart), since nothing else says which values exist;
- a query without it is wrapped: `SELECT DISTINCT` lists the column's values, and each
  partition is `SELECT * FROM (<query>) AS q WHERE q.<column> = :value`.

A file (or folder) is read once, chunk by chunk, and each chunk's rows are appended to a
Parquet file per value in a scratch folder: memory stays bounded by a chunk, whatever the
number of partitions, and the partitions are then read like any file, with the dtypes the
file reader gave them. Values are visited in ascending order; `start` and `end` bound them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, Source
from monitoring.collect.sources.sql import SqlSource, query_placeholders
from monitoring.errors import ConfigError, SourceError

if TYPE_CHECKING:
    import pandas as pd

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_RANGE = 100_000
"""The most values a `start`..`end` range may hold (a typo guard: 10**9 daily batches)."""


@dataclass(frozen=True)
class Partition:
    """One value of the partition column and the source of its rows."""

    column: str
    value: Any
    source: Source

    @property
    def label(self) -> str:
        """`column=value`, the default batch id."""
        return f"{self.column}={_text(self.value)}"


class PartitionSource:
    """The rows of one partition: reads like `inner`, named and described as `outer`'s part."""

    def __init__(self, inner: Source, outer: Source, column: str, value: Any) -> None:
        self._inner, self._outer = inner, outer
        self._where = f"{column} = {_text(value)}"
        self.read_ahead = getattr(inner, "read_ahead", False)
        self.shares_connection = getattr(inner, "shares_connection", False)

    @property
    def name(self) -> str:
        return self._outer.name

    def describe(self) -> str:
        return f"{self._outer.describe()}\nwhere {self._where}"

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        return self._inner.iter_chunks(chunk_size)


def _text(value: Any) -> str:
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:-9] if text.endswith("T00:00:00") else text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_column(column: str) -> str:
    """A partition column must be a plain identifier: it is written into SQL, quoted."""
    if not isinstance(column, str) or not _IDENTIFIER.fullmatch(column):
        raise ConfigError(
            f"--partition-by must name one column (letters, digits, _), got {column!r}"
        )
    return column


def value_range(start: str | None, end: str | None, column: str) -> list[Any]:
    """The inclusive range start..end: integers step 1, or ISO dates one day apart."""
    if start is None or end is None:
        raise ConfigError(
            f"the query binds :{column}, so --from and --to must say which values to run "
            f"(or write the query without :{column} to run every value the data holds)"
        )
    try:
        first, last = int(start), int(end)
        values: list[Any] = list(range(first, last + 1))
    except ValueError:
        try:
            first_day, last_day = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        except ValueError:
            raise ConfigError(
                f"--from {start!r} and --to {end!r} must both be integers or ISO dates (2026-01-31)"
            ) from None
        span = (last_day - first_day).days
        values = [(first_day + dt.timedelta(days=n)).isoformat() for n in range(span + 1)]
    if not values:
        raise ConfigError(f"--from {start!r} is after --to {end!r}: no partition to run")
    if len(values) > MAX_RANGE:
        raise ConfigError(f"--from {start!r} --to {end!r} spans {len(values):,} values")
    return values


def sql_partitions(
    url: Any,
    query: str,
    column: str,
    *,
    params: Mapping[str, object] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[Partition]:
    """The partitions of a SQL query by `column` (see the module docstring)."""
    check_column(column)
    params = dict(params or {})
    if column in params:
        raise ConfigError(f"--param {column}=... is set by the backfill: leave it out")
    if column in query_placeholders(query):
        return [
            Partition(column, value, SqlSource(url, query, {**params, column: value}))
            for value in value_range(start, end, column)
        ]
    from sqlalchemy.engine import make_url

    whole = SqlSource(url, query, params)

    quoted = make_url(url).get_dialect()().identifier_preparer.quote(column)
    inner = whole.query.rstrip().rstrip(";")
    listing = SqlSource(url, f"SELECT DISTINCT q.{quoted} FROM ({inner}) AS q ORDER BY 1", params)
    values = [v for chunk in listing.iter_chunks() for v in chunk.iloc[:, 0].tolist()]
    values = [None if v is None or v != v else v for v in values]  # NaN is a NULL too
    if any(v is None for v in values):
        raise SourceError(f"column {column!r} is NULL on some rows: they belong to no partition")
    values = _bounded(values, start, end)
    bind = "monitoring_partition"
    part_query = f"SELECT * FROM ({inner}) AS q WHERE q.{quoted} = :{bind}"
    return [
        Partition(
            column,
            value,
            PartitionSource(
                SqlSource(url, part_query, {**params, bind: value}), whole, column, value
            ),
        )
        for value in values
    ]


def _bounded(values: list[Any], start: str | None, end: str | None) -> list[Any]:
    """`values` (sorted) from `start` to `end`, each bound read as the values' type."""
    import pandas as pd

    if not values:
        return values
    sample = values[0]

    def as_value(text: str) -> Any:
        try:
            if isinstance(sample, pd.Timestamp | dt.datetime):
                return pd.Timestamp(text)
            if isinstance(sample, dt.date):
                return dt.date.fromisoformat(text)
            if isinstance(sample, float):
                return float(text)
            if isinstance(sample, int) and not isinstance(sample, bool):
                return int(text)
        except ValueError:
            raise ConfigError(
                f"--from/--to {text!r} is not a value of the partition column "
                f"(its values look like {_text(sample)!r})"
            ) from None
        return text

    low = as_value(start) if start is not None else None
    high = as_value(end) if end is not None else None
    return [v for v in values if (low is None or v >= low) and (high is None or v <= high)]


def file_partitions(
    source: Source,
    column: str,
    folder: str | Path,
    *,
    start: str | None = None,
    end: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> list[Partition]:
    """Spool `source`'s rows into one Parquet file per value of `column` under `folder`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from monitoring.collect.sources.opening import open_source

    check_column(column)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[Any, pq.ParquetWriter] = {}
    paths: dict[Any, Path] = {}
    try:
        for chunk in source.iter_chunks(chunk_size):
            if column not in chunk.columns:
                raise SourceError(f"{source.describe()} has no column {column!r} to partition by")
            if chunk[column].isna().any():
                row = chunk.index[chunk[column].isna()][0]
                raise SourceError(
                    f"{source.describe()}: column {column!r} is empty at row {row}: "
                    "every row must belong to a partition"
                )
            for key, rows in chunk.groupby(column, sort=False):
                value = key.item() if isinstance(key, np.generic) else key
                table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
                if value not in writers:
                    paths[value] = folder / f"part-{len(paths):06d}.parquet"
                    writers[value] = pq.ParquetWriter(paths[value], table.schema)
                writers[value].write_table(table.cast(writers[value].schema))
    finally:
        for writer in writers.values():
            writer.close()
    values = _bounded(sorted(paths), start, end)
    return [
        Partition(
            column, value, PartitionSource(open_source(str(paths[value])), source, column, value)
        )
        for value in values
    ]
