"""``open_source``: what a user types (a path, a database URL and a query) or passes from
Python, turned into the right source.

Its own module so that every reader, the PyTorch dataset included, can open a source
without importing the package that re-exports them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitoring.collect.sources.base import Source
from monitoring.collect.sources.files import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    CsvSource,
    FolderSource,
    ParquetSource,
    file_format,
)
from monitoring.collect.sources.frame import DataFrameSource
from monitoring.collect.sources.spark_frame import SparkFrameSource, is_spark_frame
from monitoring.collect.sources.sql import SqlSource, mask_url
from monitoring.errors import SourceError

__all__ = ["open_source"]

_SUPPORTED = (
    "a Source, a pandas DataFrame, a database URL such as sqlite:///data.db or "
    "postgresql+psycopg://user@host/db (with a query), an SQLAlchemy Engine or Connection "
    f"(with a query), a file ending {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}, "
    "a folder of such files, or a Spark DataFrame (monitoring[spark])"
)


def open_source(
    spec: Any,
    *,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    read_options: Mapping[str, Any] | None = None,
) -> Source:
    """Build the source that ``spec`` names: a Source (returned as is), a DataFrame, a
    database URL or an SQLAlchemy Engine or Connection (with ``query``), a CSV or Parquet
    file, or a folder of such files.

    ``query`` and ``params`` go with a database, ``read_options`` with CSV files; giving
    one where it does not apply is an error rather than silently ignored.
    """
    import pandas as pd

    if isinstance(spec, str) and "://" in spec:
        return _sql_source(spec, query, params, read_options)
    if isinstance(spec, str | os.PathLike):
        _reject(spec, query=query, params=params)
        return _file_source(Path(spec), read_options)
    _reject(spec, read_options=read_options)
    if isinstance(spec, pd.DataFrame):
        _reject(spec, query=query, params=params)
        return DataFrameSource(spec)
    if isinstance(spec, Source):
        _reject(spec, query=query, params=params)
        return spec
    if is_spark_frame(spec):
        _reject(spec, query=query, params=params)
        return SparkFrameSource(spec)
    from sqlalchemy.engine import Connection, Engine

    if isinstance(spec, Engine | Connection):
        return _sql_source(spec, query, params, read_options)
    raise SourceError(f"cannot read data from a {type(spec).__name__}; use {_SUPPORTED}")


def _sql_source(
    spec: Any,
    query: str | None,
    params: Mapping[str, object] | None,
    read_options: Mapping[str, Any] | None,
) -> SqlSource:
    _reject(spec, read_options=read_options)
    if query is None:
        raise SourceError(
            f"a database source needs a query (--query): got {mask_url(str(spec))} alone"
        )
    return SqlSource(spec, query, params)


def _file_source(path: Path, read_options: Mapping[str, Any] | None) -> Source:
    fmt = file_format(path)
    if fmt == "csv":
        return CsvSource(path, read_options=read_options)
    if fmt == "parquet":
        _reject(path, read_options=read_options)
        return ParquetSource(path)
    if path.is_dir():
        return FolderSource(path, read_options=read_options)
    state = "an unsupported file" if path.exists() else "no such file or folder"
    raise SourceError(f"cannot read {path}: {state}; use {_SUPPORTED}")


def _reject(spec: Any, **options: object) -> None:
    """Raise SourceError for options given that do not apply to ``spec``."""
    given = [name for name, value in options.items() if value]
    if given:
        what = spec if isinstance(spec, str | os.PathLike) else type(spec).__name__
        raise SourceError(
            f"{' and '.join(given)} cannot be used with {mask_url(str(what))}: "
            "query and params go with a database, read_options with CSV files"
        )
