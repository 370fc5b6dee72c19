"""Export a source to one CSV or Parquet file, chunk by chunk and atomically.

The library side of ``monitoring export``: a query (or any source) whose result is small
enough to keep becomes a file. Rows are written as they arrive, so memory holds one chunk.
The file is written under a temporary name in the destination folder and renamed at the
end: a failure part-way leaves neither a half-written file nor a temporary one, and an
existing file at ``out`` is replaced only by a complete export.

Parquet needs one schema for the whole file, while pandas infers types chunk by chunk.
Each chunk is cast to the schema so far (an integer column that holds a NULL in one chunk
arrives as float and is cast back losslessly). When a chunk cannot be cast, the column is
widened (a column that was all NULL gets the type seen later; int becomes float; a decimal
gets more digits) and what was written so far is rewritten with the wider schema; a column
whose types cannot be reconciled (numbers, then text) is a SourceError naming it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, Source, align_columns
from monitoring.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["ExportSummary", "export_source"]


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: the file, its row count and columns, and how long it took."""

    path: Path
    rows: int
    columns: tuple[str, ...]
    seconds: float


def export_source(
    source: Source,
    out: str | os.PathLike[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write every row of ``source`` to ``out`` (``.csv``, or ``.parquet``/``.pq``).

    ``progress`` is called with 0 at the start, then after each chunk with the number of
    rows written so far.
    The index of the chunks is not written. A source with zero rows gives a file with
    the header (CSV) or the schema (Parquet); one that knows no columns either is a
    SourceError. The destination folder must exist.
    """
    out = Path(out)
    sink_type = _SINKS.get(out.suffix.lower())
    if sink_type is None:
        raise SourceError(
            f"cannot export to {out}: the file name must end with {', '.join(_SINKS)}"
        )
    if not out.parent.is_dir():
        raise SourceError(f"cannot export to {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise SourceError(f"cannot export to {out}: it is a folder")
    started = time.perf_counter()
    sink = sink_type(out)
    try:
        rows, columns = _copy(source, sink, chunk_size, progress)
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    return ExportSummary(out, rows, columns, time.perf_counter() - started)


def _copy(
    source: Source,
    sink: _Sink,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, tuple[str, ...]]:
    """Stream the chunks into ``sink``; return the row count and the column names."""
    columns: list[Any] | None = None
    rows = 0
    if progress is not None:
        progress(0)
    for chunk in source.iter_chunks(chunk_size):
        if columns is None:
            columns = list(chunk.columns)
            duplicated = sorted({str(c) for c in columns if columns.count(c) > 1})
            if duplicated:
                raise SourceError(f"{source.name}: duplicate column names {duplicated}")
        sink.write(align_columns(chunk, columns, f"{source.name}, row {rows}"), rows)
        rows += len(chunk)
        if progress is not None:
            progress(rows)
    if columns is None:
        raise SourceError(f"{source.name}: query returned no rows and no columns")
    return rows, tuple(str(c) for c in columns)


class _Sink:
    """A file being written under temporary names next to ``out``, renamed on commit."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._temps: list[Path] = []
        self._path = self._new_temp()

    def _new_temp(self) -> Path:
        path = self.out.with_name(f".{self.out.name}.{uuid.uuid4().hex[:12]}.tmp")
        self._temps.append(path)
        return path

    def write(self, chunk: pd.DataFrame, row: int) -> None:
        """Append ``chunk``, whose first row is row ``row`` of the export."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close the temporary file."""

    def commit(self) -> None:
        """Close, then move the temporary file to ``out``."""
        self.close()
        os.replace(self._path, self.out)
        self._temps.remove(self._path)
        self.discard()

    def discard(self) -> None:
        """Close and delete every temporary file; safe to call twice."""
        try:
            self.close()
        finally:
            for path in self._temps:
                path.unlink(missing_ok=True)
            self._temps.clear()


class _CsvSink(_Sink):
    """CSV: the header with the first chunk, then rows appended."""

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self._started = False

    def write(self, chunk: pd.DataFrame, row: int) -> None:
        chunk.to_csv(
            self._path, mode="a" if self._started else "w", header=not self._started, index=False
        )
        self._started = True


class _ParquetSink(_Sink):
    """Parquet: one row group per chunk, the schema from the first chunk, widened on need."""

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, chunk: pd.DataFrame, row: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = _decoded(pa.Table.from_pandas(chunk, preserve_index=False))
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise SourceError(f"rows from {row} cannot be written to Parquet: {exc}") from exc
        if self._writer is None or self._schema is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._path, self._schema)
        else:
            arrays, failed = _cast(table, self._schema)
            if failed:
                self._widen(table, failed, row)
                arrays, failed = _cast(table, self._schema)
            if failed:
                name, exc = next(iter(failed.items()))
                raise SourceError(f"column {name!r} from row {row}: {exc}") from exc
            table = pa.Table.from_arrays(arrays, schema=self._schema)
        self._writer.write_table(table)

    def _widen(self, table: pa.Table, failed: dict[str, Exception], row: int) -> None:
        """Widen the failed columns' types and rewrite what is written with them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self._schema is not None and self._writer is not None
        schema = self._schema
        for name in failed:
            index = schema.get_field_index(name)
            old, new = schema.field(index), table.schema.field(name)
            try:
                wider = pa.unify_schemas(
                    [pa.schema([old]), pa.schema([new])], promote_options="permissive"
                ).field(0)
            except (pa.ArrowException, ValueError, TypeError) as exc:
                raise SourceError(
                    f"column {name!r} is {new.type} from row {row} but {old.type} before; "
                    "cast it in the query so that every row has one type"
                ) from exc
            schema = schema.set(index, wider)
        self._writer.close()
        written = self._path
        self._path = self._new_temp()
        self._writer = pq.ParquetWriter(self._path, schema)
        self._schema = schema
        try:
            with pq.ParquetFile(written) as done:
                for group in range(done.num_row_groups):
                    self._writer.write_table(done.read_row_group(group).cast(schema))
        except (pa.ArrowException, ValueError) as exc:
            raise SourceError(f"cannot widen columns {sorted(failed)} to {schema}: {exc}") from exc
        written.unlink()
        self._temps.remove(written)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _decoded(table: pa.Table) -> pa.Table:
    """Categorical columns (Parquet sources read strings so) written as their values: each
    chunk has its own dictionary, and the file keeps the plain types it was read with."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            plain = table.column(index).cast(field.type.value_type)
            table = table.set_column(index, pa.field(field.name, plain.type), plain)
    return table


def _cast(table: pa.Table, schema: pa.Schema) -> tuple[list[Any], dict[str, Exception]]:
    """Cast each column of ``table`` to ``schema``; return the arrays and the failures."""
    import pyarrow as pa

    arrays: list[Any] = []
    failed: dict[str, Exception] = {}
    for field in schema:
        try:
            arrays.append(table.column(field.name).cast(field.type))
        except (pa.ArrowException, ValueError, TypeError) as exc:
            failed[field.name] = exc
    return arrays, failed


_SINKS: dict[str, type[_Sink]] = {".csv": _CsvSink, ".parquet": _ParquetSink, ".pq": _ParquetSink}
