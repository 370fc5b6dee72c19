"""File sources: a CSV file, a Parquet file, or a folder of either, read in chunks.

Errors name the file at fault (and the line, for a malformed CSV row); a missing,
truncated or foreign file is a SourceError, never a raw pandas or pyarrow exception. A
header that names a column twice is refused with the names: pandas would silently rename
the copy (`x.1`) and every later message would name a column the user never wrote.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.collect.sources.base import (
    DEFAULT_CHUNK_SIZE,
    align_columns,
    check_chunk_size,
    number_rows,
)
from monitoring.errors import ConfigError, SourceError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
    "CsvSource",
    "FolderSource",
    "ParquetSource",
    "file_format",
]

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
_TSV_SUFFIXES = (".tsv", ".tsv.gz")
# Options that iter_chunks owns; letting read_options set them would break chunking.
_RESERVED_CSV_OPTIONS = frozenset({"filepath_or_buffer", "chunksize", "iterator"})
_LINE = re.compile(r"\bline (\d+)")
# pandas renames the second `x` of a header `x.1`, the third `x.2`...
_RENAMED_COPY = re.compile(r"^(?P<name>.*)\.[1-9][0-9]*$")
# The read_csv options that say where the header row is and how it is split.
_HEADER_OPTIONS = frozenset(
    {"sep", "delimiter", "quotechar", "quoting", "escapechar", "doublequote", "comment"}
    | {"skipinitialspace", "encoding", "encoding_errors", "compression", "skiprows"}
    | {"lineterminator", "dialect", "engine", "skip_blank_lines", "header"}
)


def file_format(path: str | os.PathLike[str]) -> str | None:
    """Return ``"csv"`` or ``"parquet"`` from the file name's suffix, or None."""
    name = Path(path).name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _require_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"file not found: {path}")
    if not path.is_file():
        raise SourceError(f"not a file: {path}")


class _FileSource:
    """What every file (or folder) source shares: its path, name, description and pass."""

    _path: Path
    read_ahead = True  # a pass opens and closes its own file: it may run in any thread

    @property
    def path(self) -> Path:
        """The file read."""
        return self._path

    @property
    def name(self) -> str:
        """The file name."""
        return self._path.name

    def describe(self) -> str:
        """The absolute path of the file."""
        return str(self._path.absolute())

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Yield the file's rows, ``chunk_size`` at a time."""
        return self._chunks(check_chunk_size(chunk_size), start=0)

    def _chunks(self, chunk_size: int, start: int) -> Iterator[pd.DataFrame]:
        raise NotImplementedError


class CsvSource(_FileSource):
    """A CSV (or TSV, optionally gzipped) file read with ``pandas.read_csv(chunksize=...)``.

    ``read_options`` are passed to ``read_csv`` (``sep``, ``dtype``, ``usecols``,
    ``parse_dates``...); a ``.tsv`` file gets ``sep="\\t"`` unless they say otherwise.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, read_options: Mapping[str, Any] | None = None
    ) -> None:
        self._path = Path(path)
        options = dict(read_options or {})
        reserved = sorted(_RESERVED_CSV_OPTIONS & options.keys())
        if reserved:
            raise ConfigError(
                f"`read_options` must not set {', '.join(reserved)}: "
                "the chunk size is the argument of iter_chunks()"
            )
        if self._path.name.lower().endswith(_TSV_SUFFIXES) and not {"sep", "delimiter"} & set(
            options
        ):
            options["sep"] = "\t"
        self._options = options

    def _chunks(self, chunk_size: int, start: int) -> Iterator[pd.DataFrame]:
        import pandas as pd

        _require_file(self._path)
        try:
            reader = pd.read_csv(self._path, chunksize=chunk_size, **self._options)
        except pd.errors.EmptyDataError:
            return  # a zero-byte file: no rows and no columns
        except (ValueError, OSError) as exc:
            raise self._error(exc) from exc
        with reader:
            checked = False
            try:
                for chunk in reader:
                    if not checked:
                        self._check_header(list(chunk.columns))
                        checked = True
                    yield number_rows(chunk, start)
                    start += len(chunk)
            except (ValueError, OSError) as exc:
                raise self._error(exc) from exc

    def _check_header(self, columns: list[Any]) -> None:
        """SourceError when the header names a column twice. pandas has renamed the copies
        by then, so the header row is read again, as written, only when a column's name
        looks like such a copy (`x.1` beside `x`)."""
        names = [str(c) for c in columns]
        copies = [c for c in names if (m := _RENAMED_COPY.match(c)) and m["name"] in names]
        if not copies:
            return
        header = self._header_as_written()
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise SourceError(
                f"{self._path}: the header names column(s) {', '.join(map(repr, duplicated))} "
                f"more than once (pandas would read the copies as {', '.join(map(repr, copies))}"
                "); give every column a unique name"
            )

    def _header_as_written(self) -> list[str]:
        """The names in the header row, duplicates kept ([] when read_options give the
        names or say there is no single header row)."""
        import pandas as pd

        header = self._options.get("header", "infer")
        if "names" in self._options or header is None or isinstance(header, list | tuple):
            return []
        row = 0 if header == "infer" else int(header)
        options = {k: v for k, v in self._options.items() if k in _HEADER_OPTIONS}
        options.update(header=None, nrows=row + 1, dtype=str, keep_default_na=False)
        rows = pd.read_csv(self._path, **options)
        return [str(v) for v in rows.iloc[row]] if len(rows) > row else []

    def _error(self, exc: Exception) -> SourceError:
        import pandas as pd

        detail = str(exc).strip().removeprefix("Error tokenizing data. C error: ")
        line = _LINE.search(detail)
        if isinstance(exc, pd.errors.ParserError) and line:
            return SourceError(f"{self._path}: malformed row at line {line.group(1)}: {detail}")
        return SourceError(f"{self._path}: cannot read as CSV: {detail}")


class ParquetSource(_FileSource):
    """A Parquet file read one record batch at a time (``ParquetFile.iter_batches``), in
    chunks of exactly ``chunk_size`` rows whatever its row groups (the last may be shorter)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

    def expected_rows(self) -> int | None:
        """The rows the file's footer announces (None if it cannot be read now: the pass
        will say why)."""
        import pyarrow as pa

        try:
            with open_parquet_file(self._path) as parquet:
                return int(parquet.metadata.num_rows)
        except (pa.ArrowException, OSError):
            return None

    def _chunks(self, chunk_size: int, start: int) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        _require_file(self._path)
        try:
            # pre_buffer=False: the default keeps every row group's bytes until the file is
            # closed, so memory would grow with the file instead of staying at one chunk.
            parquet = open_parquet_file(self._path, pre_buffer=False)
        except pa.ArrowMemoryError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{self._path}: not a readable Parquet file: {exc}") from exc
        with parquet:
            names = parquet.schema_arrow.names
            duplicated = sorted({name for name in names if names.count(name) > 1})
            if duplicated:
                raise SourceError(
                    f"{self._path}: the schema names column(s) "
                    f"{', '.join(map(repr, duplicated))} more than once; give every column "
                    "a unique name"
                )
            if parquet.metadata.num_rows == 0:
                yield parquet.schema_arrow.empty_table().to_pandas()
                return
            try:
                batches = parquet.iter_batches(batch_size=chunk_size)
                for table in regrouped(batches, chunk_size):
                    chunk = number_rows(table.to_pandas(), start)
                    start += len(chunk)
                    yield chunk
            except pa.ArrowMemoryError:
                raise  # out of memory is not a corrupt file
            except (pa.ArrowException, OSError) as exc:
                raise SourceError(f"{self._path}: corrupt Parquet data: {exc}") from exc


def regrouped(batches: Iterator[Any], size: int) -> Iterator[Any]:
    """Record batches regrouped into tables of `size` rows (the last may be shorter).

    pyarrow's batches end where row groups end: a file written in 10,000-row groups
    gives 10,000-row chunks whatever the chunk size, and every chunk has a fixed cost
    in the pass (measured: a 1,000,000-row batch 2.7 times slower). Slicing is
    zero-copy; only a chunk that spans two batches is copied, by `to_pandas`.
    """
    import pyarrow as pa

    pending: list[Any] = []
    rows = 0
    for batch in batches:
        if not pending and batch.num_rows == size:
            yield pa.Table.from_batches([batch])
            continue
        pending.append(batch)
        rows += batch.num_rows
        while rows >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            pending = table.slice(size).to_batches()
            rows -= size
    if rows:
        yield pa.Table.from_batches(pending)


def open_parquet_file(path: Path, **options: Any) -> Any:
    """``pyarrow.parquet.ParquetFile(path, **options)`` with its string columns read
    dictionary-encoded, so that pandas gets them as Categorical with the same values.

    Parquet stores such columns as a dictionary and codes already; reading them so skips
    building Python strings and hashing them again in every chunk (categories, labels).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)  # the footer, read once: ParquetFile reuses it
    strings = [
        f.name
        for f in metadata.schema.to_arrow_schema()
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return pq.ParquetFile(path, metadata=metadata, read_dictionary=strings or None, **options)


class FolderSource(_FileSource):
    """Every CSV or every Parquet file of a folder, in sorted name order, as one pass.

    Hidden files and those starting with ``_`` (Spark's ``_SUCCESS``) are skipped; any
    other file must have the same format as the rest. Every file must have the columns of
    the first one (in any order; chunks follow the first file's order). A chunk never
    spans two files, so chunks at a file's end may be shorter than ``chunk_size``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, read_options: Mapping[str, Any] | None = None
    ) -> None:
        self._path = Path(path)
        self._read_options = dict(read_options) if read_options else None

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Yield the rows of every file in turn, ``chunk_size`` at a time at most."""
        return self._chunks(check_chunk_size(chunk_size))

    def files(self) -> list[Path]:
        """The data files of the folder, sorted; SourceError if none or of mixed formats."""
        if not self._path.is_dir():
            raise SourceError(f"folder not found: {self._path}")
        files = sorted(
            p for p in self._path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        )
        if not files:
            raise SourceError(f"folder {self._path} holds no data files")
        formats = {p: file_format(p) for p in files}
        unknown = [p.name for p, fmt in formats.items() if fmt is None]
        if unknown:
            raise SourceError(
                f"folder {self._path} holds files that are neither CSV nor Parquet: "
                f"{', '.join(unknown[:5])}; supported: {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
        if len(set(formats.values())) > 1:
            first = {fmt: p.name for p, fmt in reversed(formats.items())}
            raise SourceError(
                f"folder {self._path} mixes CSV ({first['csv']}) and Parquet "
                f"({first['parquet']}) files; keep one format per folder"
            )
        if formats[files[0]] == "parquet" and self._read_options:
            raise SourceError(f"folder {self._path}: read_options apply to CSV files only")
        return files

    def _chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        columns: list[Any] | None = None
        kinds: dict[Any, tuple[str, Path]] = {}
        empty: pd.DataFrame | None = None
        rows = 0
        for file in self.files():
            member: CsvSource | ParquetSource = (
                CsvSource(file, read_options=self._read_options)
                if file_format(file) == "csv"
                else ParquetSource(file)
            )
            for chunk in member._chunks(chunk_size, start=rows):
                if columns is None:
                    columns = list(chunk.columns)
                aligned = align_columns(chunk, columns, str(file))
                kinds = _check_kinds(aligned, kinds, file)
                if aligned.empty:
                    empty = aligned if empty is None else empty
                    continue
                rows += len(aligned)
                yield aligned
        if rows == 0 and empty is not None:
            yield empty


def _kind(series: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def _check_kinds(
    chunk: pd.DataFrame, kinds: dict[Any, tuple[str, Path]], file: Path
) -> dict[Any, tuple[str, Path]]:
    """Fail when a column's kind of values changes from one file of a folder to the next
    (columns empty in a chunk say nothing and are skipped)."""
    for column in chunk.columns:
        if chunk[column].isna().all():
            continue
        kind = _kind(chunk[column])
        first = kinds.setdefault(column, (kind, file))
        if first[0] != kind:
            raise SourceError(
                f"{file}: column {column!r} holds {kind} values where {first[1].name} "
                f"holds {first[0]} ones"
            )
    return kinds
