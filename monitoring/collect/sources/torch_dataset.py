"""PyTorch glue: an ``IterableDataset`` over any source, and ``chunk_loader``, a DataLoader
of its chunks read by worker processes (``loader_source.LoaderSource`` reads them back).

    loader = chunk_loader("batch/", chunk_size=50_000, num_workers=4, features=["x", "y"])
    for chunk in loader:                       # Chunk(part, offset, frame, tensors, last)
        scores = model(chunk.tensors)
    report = monitoring.evaluate(LoaderSource(loader), reference)

Every row of the source is yielded exactly once, by one DataLoader worker
(``torch.utils.data.get_worker_info()``; in the main process there is one "worker"):

- a ``FolderSource``: file i goes to worker i % n, which reads only its own files;
- a ``ParquetSource``: row group i goes to worker i % n, which reads only its own row groups
  (offsets come from the file's metadata, no data is read for them);
- any other source (a CSV file, a SQL query, a DataFrame): chunk i of the source goes to
  worker i % n. Every worker reads the whole source and drops the other workers' chunks, so
  the data is read (and a query run) n times: for parallel reading, write a folder of files
  or a Parquet file with several row groups, which shard properly.

Order: chunks of different workers arrive interleaved, so the order of items is not the
source's. Each ``Chunk`` carries its position: ``part`` (the file's index in a folder, 0
otherwise) and ``offset`` (the row where the chunk starts, counted within its part), so
sorting by ``(part, offset)`` restores the source order; ``LoaderSource(ordered=True)`` does
it while streaming. Evaluation results do not depend on the order of rows, except the
``row`` numbers of the worst samples and the batch digest.

Connections: a reader never closes a connection it did not open, and worker processes
cannot share one. A ``SqlSource`` built from a URL opens its own engine in each worker; one
built from an Engine or a Connection is refused with ``num_workers > 0``.

``torch`` is imported when this module is; ``monitoring.collect.sources`` does not import it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from monitoring.collect.sources.base import (
    DEFAULT_CHUNK_SIZE,
    Source,
    align_columns,
    check_chunk_size,
    number_rows,
)
from monitoring.collect.sources.files import (
    CsvSource,
    FolderSource,
    ParquetSource,
    file_format,
    open_parquet_file,
)
from monitoring.collect.sources.opening import open_source
from monitoring.collect.sources.sql import SqlSource
from monitoring.errors import ColumnNotFoundError, ConfigError, InvalidValueError, SourceError

__all__ = ["Chunk", "ChunkDataset", "chunk_loader"]

_T = TypeVar("_T")
# DataLoader arguments that chunk_loader owns: changing them would batch, shuffle or drop
# chunks, or keep workers (and their connections) alive between passes.
_RESERVED_LOADER_OPTIONS = frozenset(
    {
        "dataset",
        "batch_size",
        "shuffle",
        "sampler",
        "batch_sampler",
        "drop_last",
        "collate_fn",
        "num_workers",
        "persistent_workers",
    }
)


@dataclass(frozen=True, eq=False)
class Chunk:
    """One chunk of a source, with its position in the source and its tensors.

    ``(part, offset)`` orders rows globally: ``part`` is the file's index in a folder (0 for
    any other source) and ``offset`` the row of the part where ``frame`` starts. ``frame``
    is indexed by row within its part, unless the data carries its own index (a
    DataFrame's, or one restored from Parquet metadata). ``tensors`` is what the dataset's
    ``transform`` returned, or the ``features`` tensor, or None. ``last`` is True on the
    final chunk of its part, so that an ordered reader can move on to the next part
    without waiting for the end of the pass; an empty file of a folder, or a source with
    no rows, gives one chunk with an empty frame and ``last=True``.

    Chunks compare by identity (``eq=False``): comparing DataFrames has no single truth value.
    """

    part: int
    offset: int
    frame: pd.DataFrame
    tensors: Any = None
    last: bool = False

    @property
    def position(self) -> tuple[int, int]:
        """``(part, offset)``: sort chunks by it to restore the source's row order."""
        return (self.part, self.offset)


class ChunkDataset(IterableDataset[Chunk]):
    """The chunks of a source as a PyTorch ``IterableDataset``, sharded across workers.

    ``source`` is anything ``open_source`` accepts (a Source, a path, a folder, a database
    URL with ``query`` and ``params``, a DataFrame). Iterating yields ``Chunk`` items of at
    most ``chunk_size`` rows, each row once over all DataLoader workers (see the module
    docstring for how each kind of source is split, and for order). ``tensors`` is
    ``transform(frame)`` when ``transform`` is given, else a float32 tensor of the
    ``features`` columns (rows x features, NaN where a value is missing), else None.
    Chunks never span two files of a folder or two row groups of a Parquet file.

    With worker processes started by ``spawn`` or ``forkserver``, the dataset (and so
    ``transform``) must be picklable; the default ``fork`` on Linux has no such need.
    """

    def __init__(
        self,
        source: Source | str | Path | pd.DataFrame,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        query: str | None = None,
        params: Mapping[str, object] | None = None,
        features: Sequence[str] | None = None,
        transform: Callable[[pd.DataFrame], Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(features, str):
            raise ConfigError(f"`features` must be a list of column names, got {features!r}")
        if features is not None and not features:
            raise ConfigError("`features` must name at least one column, got an empty list")
        if features is not None and transform is not None:
            raise ConfigError(
                "give `features` or `transform`, not both: `transform` receives the whole "
                "chunk and can select the features itself"
            )
        self._source = open_source(source, query=query, params=params)
        self._chunk_size = check_chunk_size(chunk_size)
        self._features = None if features is None else list(features)
        self._transform = transform

    @property
    def source(self) -> Source:
        """The source read."""
        return self._source

    @property
    def chunk_size(self) -> int:
        """The most rows a chunk holds."""
        return self._chunk_size

    @property
    def features(self) -> list[str] | None:
        """The columns turned into the ``tensors`` of each chunk, if any."""
        return None if self._features is None else list(self._features)

    def __iter__(self) -> Iterator[Chunk]:
        """Yield this worker's share of the source's chunks (all of them outside workers)."""
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None and _lends_connection(self._source):
            raise SourceError(_SHARED_CONNECTION.format(name=self._source.name))
        if isinstance(self._source, FolderSource):
            pieces = self._files(self._source, worker, workers)
        elif isinstance(self._source, ParquetSource):
            pieces = self._row_groups(self._source, worker, workers)
        else:
            pieces = self._strided(worker, workers)
        for part, offset, frame, last in pieces:
            yield Chunk(part, offset, frame, self._tensors(frame, part, offset), last)

    def _tensors(self, frame: pd.DataFrame, part: int, offset: int) -> Any:
        if self._transform is not None:
            return self._transform(frame)
        if self._features is None:
            return None
        where = f"{self._source.name} (part {part}, row {offset})"
        return _feature_tensor(frame, self._features, where)

    def _strided(self, worker: int, workers: int) -> Iterator[tuple[int, int, pd.DataFrame, bool]]:
        """Chunk i of the whole pass goes to worker i % workers; every worker reads all."""
        offset = 0
        chunks = _flag_last(self._source.iter_chunks(self._chunk_size))
        for index, (frame, last) in enumerate(chunks):
            if index % workers == worker:
                yield 0, offset, frame, last
            offset += len(frame)

    def _row_groups(
        self, source: ParquetSource, worker: int, workers: int
    ) -> Iterator[tuple[int, int, pd.DataFrame, bool]]:
        """Row group i goes to worker i % workers; offsets come from the metadata."""
        import pyarrow as pa

        parquet = _open_parquet(source.path)
        with parquet:
            metadata = parquet.metadata
            total = metadata.num_rows
            if total == 0:
                if worker == 0:
                    yield 0, 0, parquet.schema_arrow.empty_table().to_pandas(), True
                return
            start = 0
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                offset, start = start, start + rows
                if group % workers != worker:
                    continue
                try:
                    batches = parquet.iter_batches(batch_size=self._chunk_size, row_groups=[group])
                    for batch in batches:
                        frame = number_rows(batch.to_pandas(), offset)
                        yield 0, offset, frame, offset + len(frame) == total
                        offset += len(frame)
                except (pa.ArrowException, OSError) as exc:
                    raise SourceError(f"{source.path}: corrupt Parquet data: {exc}") from exc

    def _files(
        self, folder: FolderSource, worker: int, workers: int
    ) -> Iterator[tuple[int, int, pd.DataFrame, bool]]:
        """File i goes to worker i % workers; offsets count rows within each file."""
        # FolderSource has no public accessor for its CSV read options.
        read_options = folder._read_options
        members = [_member(file, read_options) for file in folder.files()]
        columns = _first_columns(members)
        for part, member in enumerate(members):
            if part % workers != worker:
                continue
            offset = 0
            for frame, last in _flag_last(_non_empty(member.iter_chunks(self._chunk_size))):
                yield part, offset, align_columns(frame, columns, str(member.path)), last
                offset += len(frame)
            if offset == 0:  # no rows: still mark the part as done, for ordered readers
                yield part, 0, pd.DataFrame(columns=columns), True


def chunk_loader(
    source: Source | str | Path | pd.DataFrame,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    num_workers: int = 0,
    features: Sequence[str] | None = None,
    transform: Callable[[pd.DataFrame], Any] | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    **loader_options: Any,
) -> DataLoader[Chunk]:
    """A DataLoader of ``Chunk`` items over ``source``, read by ``num_workers`` processes.

    The chunks are the batches (``batch_size=None``) and pass through unchanged (no
    collation); workers are started afresh for each pass (``persistent_workers=False``), and
    each opens its own files and database connections. ``loader_options`` go to
    ``DataLoader`` (``pin_memory``, ``prefetch_factor``, ``timeout``,
    ``multiprocessing_context``...); those that would batch, shuffle or drop chunks are
    refused. A ``SqlSource`` over an Engine or a Connection with ``num_workers > 0`` is a
    SourceError: give the database URL instead.
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError(f"`num_workers` must be an integer >= 0, got {num_workers!r}")
    reserved = sorted(_RESERVED_LOADER_OPTIONS & loader_options.keys())
    if reserved:
        raise ConfigError(
            f"chunk_loader() sets {', '.join(reserved)} itself: chunks are the batches, "
            "each read once, in fresh workers"
        )
    dataset = ChunkDataset(
        source,
        chunk_size=chunk_size,
        query=query,
        params=params,
        features=features,
        transform=transform,
    )
    if num_workers > 0 and _lends_connection(dataset.source):
        raise SourceError(_SHARED_CONNECTION.format(name=dataset.source.name))
    return DataLoader(
        dataset,
        batch_size=None,
        collate_fn=_pass_through,
        num_workers=num_workers,
        persistent_workers=False,
        **loader_options,
    )


_SHARED_CONNECTION = (
    "{name}: an SQLAlchemy Engine or Connection cannot be shared by DataLoader worker "
    "processes; give the database URL (each worker then opens its own connection) or "
    "use num_workers=0"
)


def _lends_connection(source: Source) -> bool:
    """Whether ``source`` is a SqlSource over an Engine or Connection it did not open."""
    # SqlSource has no public accessor for what it was built from.
    return isinstance(source, SqlSource) and source._bind is not None


def _pass_through(chunk: Chunk) -> Chunk:
    """The DataLoader's collate_fn: a chunk is already a batch."""
    return chunk


def _flag_last(items: Iterable[_T]) -> Iterator[tuple[_T, bool]]:
    """Each item with whether it is the last one, looking one item ahead."""
    iterator = iter(items)
    try:
        previous = next(iterator)
    except StopIteration:
        return
    for item in iterator:
        yield previous, False
        previous = item
    yield previous, True


def _non_empty(frames: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    return (frame for frame in frames if not frame.empty)


def _member(file: Path, read_options: Mapping[str, Any] | None) -> CsvSource | ParquetSource:
    if file_format(file) == "csv":
        return CsvSource(file, read_options=read_options)
    return ParquetSource(file)


def _first_columns(members: Sequence[CsvSource | ParquetSource]) -> list[Any]:
    """The columns of the folder's first file that has any, as FolderSource aligns to."""
    for member in members:
        if isinstance(member, ParquetSource):
            with _open_parquet(member.path) as parquet:
                return list(parquet.schema_arrow.empty_table().to_pandas().columns)
        first = next(iter(member.iter_chunks(1)), None)
        if first is not None:
            return list(first.columns)
    return []


def _open_parquet(path: Path) -> Any:
    """`files.open_parquet_file(path)`, its failures as SourceError naming the file."""
    import pyarrow as pa

    if not path.is_file():
        raise SourceError(f"file not found: {path}" if not path.exists() else f"not a file: {path}")
    try:
        return open_parquet_file(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file: {exc}") from exc


def _feature_tensor(frame: pd.DataFrame, features: Sequence[str], where: str) -> torch.Tensor:
    """The ``features`` columns as a float32 tensor, rows x features, NaN where missing."""
    missing = [column for column in features if column not in frame.columns]
    if missing:
        raise ColumnNotFoundError(
            f"{where}: feature column(s) {missing} not found; the data has {list(frame.columns)}"
        )
    values = np.empty((len(frame), len(features)), dtype=np.float32)
    for j, column in enumerate(features):
        values[:, j] = _numbers(frame[column], column, where)
    return torch.from_numpy(values)


def _numbers(series: pd.Series, column: str, where: str) -> np.ndarray:
    """A numeric (or boolean) column as float32, NaN where missing; objects must be numbers.

    Object columns occur where a SQL chunk's values are all NULL or of mixed Python types.
    """
    if pd.api.types.is_object_dtype(series.dtype):
        with contextlib.suppress(TypeError, ValueError):  # reported below, with the dtype
            series = pd.to_numeric(series)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise InvalidValueError(
            f"{where}: feature column {column!r} holds {series.dtype} values, not numbers; "
            "encode it with a `transform` instead"
        )
    return series.to_numpy(dtype=np.float32, na_value=np.nan)
