"""A Spark DataFrame as a batch or reference source, and the Spark session that reads one.

The rows stay in Spark: `evaluation.spark_pass` profiles each partition in the executors.
Only the first chunk comes to the driver, to decide the pass (`first_chunk`), and each
partition's Arrow record batches become pandas chunks as the file readers make them
(`arrow_chunks`: strings dictionary-encoded, as Parquet gives them), so that a Spark pass
sees the same frames as a single-process pass over the same Parquet data.

pyspark is an optional dependency (`pip install 'monitoring[spark]'`); nothing here
imports it at module level.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, number_rows
from monitoring.collect.sources.files import regrouped
from monitoring.errors import ConfigError, SourceError

SPARK_EXTRA = "pip install 'monitoring[spark]' (pyspark 4 and a Java 17+ runtime)"
DEFAULT_MASTER = "local[*]"


@contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Spark's own errors (a table not found, a value that cannot be cast to the column's
    type) as a SourceError naming what was read, with Spark's first line."""
    from pyspark.errors import PySparkException

    try:
        yield
    except PySparkException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"Spark could not read {what}: {first}") from exc


def is_spark_frame(spec: Any) -> bool:
    """Whether `spec` is a pyspark DataFrame (classic or Spark Connect), without importing
    pyspark."""
    kind = type(spec)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pyspark.sql")


def require_pyspark() -> Any:
    """The pyspark module, or a ConfigError saying what to install."""
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(f"the Spark engine needs pyspark: {SPARK_EXTRA}") from exc
    return pyspark


def spark_session(master: str | None = None, app_name: str = "monitoring") -> Any:
    """The active Spark session, or a new one: on `master`, else on the master that
    `spark-submit` gave this driver, else on every local core.

    A session started here on a local master runs its Python workers with this interpreter
    (so they import the same monitoring and pyarrow) and keeps timestamps in UTC; one that
    `spark-submit` configured is left as configured."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.appName(app_name)
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # launched by spark-submit
    if master is not None or not submitted:
        master = master or DEFAULT_MASTER
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    return builder.getOrCreate()


class SparkFrameSource:
    """A Spark DataFrame, named for display (`name`) and described for the run."""

    def __init__(self, frame: Any, name: str = "spark", description: str | None = None):
        self.frame = frame
        self._name = name
        self._description = description

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        """The given description, or the DataFrame's input files: listed once (a lake's
        listing is remote I/O), though the pass, the fit and the report all ask."""
        if self._description is None:
            self._description = _files_of(self.frame)
        return self._description

    def first_chunk(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> pd.DataFrame:
        """The first `chunk_size` rows (in partition order), brought to the driver."""
        table = self.frame.limit(chunk_size).toArrow()
        chunks = list(arrow_chunks(table.to_batches(), chunk_size, 0))
        if not chunks:
            return _empty_frame(table)
        return chunks[0]

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        raise SourceError(
            "a Spark DataFrame is evaluated in Spark, partition by partition "
            "(monitoring.evaluate and fit_reference do so); it is not read into this process"
        )


def _files_of(frame: Any) -> str:
    try:
        files = frame.inputFiles()
    except Exception:  # noqa: BLE001 - Spark Connect and some plans cannot list them
        files = []
    if not files:
        return "spark dataframe"
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    return f"spark dataframe over {', '.join(files[:3])}{more}"


def _empty_frame(table: Any) -> pd.DataFrame:
    return _as_pandas(table.schema.empty_table())


def arrow_chunks(batches: Iterable[Any], chunk_size: int, first_row: int) -> Iterator[pd.DataFrame]:
    """Arrow record batches as pandas chunks of `chunk_size` rows (the last may be shorter),
    indexed by row number from `first_row`, converted as the Parquet reader converts."""
    for table in regrouped(iter(batches), chunk_size):
        chunk = number_rows(_as_pandas(table), first_row)
        first_row += len(chunk)
        yield chunk


def _as_pandas(table: Any) -> pd.DataFrame:
    """Strings dictionary-encoded (pandas Categorical, as from Parquet); timestamps that
    Spark gives in its session time zone made naive again (UTC)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = pc.dictionary_encode(column.cast(pa.string()))
        elif pa.types.is_timestamp(kind) and kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit))
        columns.append(column)
    return pa.table(columns, names=table.column_names).to_pandas()


def read_spark(
    spark: Any,
    *,
    path: str | None = None,
    table: str | None = None,
    where: str | None = None,
    params: Mapping[str, object] | None = None,
) -> SparkFrameSource:
    """A Parquet file or folder (`path`), or a Spark SQL table (`table`, `db.name`) with an
    optional filter whose `:name` placeholders are bound to `params` by Spark SQL."""
    if (path is None) == (table is None):
        raise ConfigError("give the Spark engine either a Parquet path or --table, not both")
    if path is not None:
        if where:
            raise ConfigError("--where filters a --table; filter Parquet files before")
        with spark_errors(str(path)):
            frame = spark.read.parquet(str(path))
        name = os.path.basename(str(path).rstrip("/")) or str(path)
        return SparkFrameSource(frame, name=name, description=f"spark parquet {path}")
    assert table is not None
    _check_table_name(table)
    if where:
        statement = f"SELECT * FROM {table} WHERE {where}"
        with spark_errors(f"table {table}"):
            frame = spark.sql(statement, args=dict(params or {}))
        shown = f"spark table {table} where {where}" + (f" ({_bound(params)})" if params else "")
    else:
        if params:
            raise ConfigError("--param binds the placeholders of --where; give --where too")
        with spark_errors(f"table {table}"):
            frame = spark.table(table)
        shown = f"spark table {table}"
    return SparkFrameSource(frame, name=f"spark:{table}", description=shown)


def _check_table_name(table: str) -> None:
    parts = table.split(".")
    if not all(part.replace("_", "").isalnum() for part in parts) or len(parts) > 3:
        raise ConfigError(
            f"--table {table!r} is not a table name (name, db.name or catalog.db.name; "
            "letters, digits and underscores)"
        )


def _bound(params: Mapping[str, object] | None) -> str:
    return ", ".join(f":{k} = {v!r}" for k, v in (params or {}).items())
