"""``LoaderSource``: a ``Source`` over a DataLoader (or any iterable) of ``Chunk`` items or
DataFrames, so that ``monitoring.evaluate`` can consume what ``chunk_loader`` reads with
several worker processes, in arrival order or restored to the source's order.

``torch`` is imported when this module is; ``monitoring.collect.sources`` does not import it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, check_chunk_size
from monitoring.collect.sources.torch_dataset import Chunk, ChunkDataset
from monitoring.errors import SourceError

__all__ = ["LoaderSource"]


class LoaderSource:
    """A ``Source`` over a DataLoader (or any iterable) of ``Chunk`` items or DataFrames.

    ``monitoring.evaluate(LoaderSource(chunk_loader(path, num_workers=4)), reference)``
    reads a batch with several processes. Each ``iter_chunks`` call iterates ``loader``
    afresh (a one-shot iterator allows one pass only). Frames longer than ``chunk_size``
    are split; empty frames are skipped, except that a pass with no rows yields one empty
    frame carrying the columns, as every source does.

    ``ordered=False`` (the default) yields frames as they arrive: evaluation results do not
    depend on row order, except the ``row`` numbers of the worst samples and the batch
    digest. ``ordered=True`` yields them in ``(part, offset)`` order, holding early arrivals
    back until the chunks before them have come: memory then holds the chunks that other
    workers read ahead, typically up to one file (folder) or one row group (Parquet) per
    extra worker, and everything after a gap in the positions until the pass ends.
    DataFrame items have no position and are yielded when they arrive.
    """

    def __init__(
        self,
        loader: Iterable[Chunk | pd.DataFrame],
        *,
        ordered: bool = False,
        name: str | None = None,
    ) -> None:
        self._loader = loader
        self._ordered = ordered
        dataset = getattr(loader, "dataset", None)
        self._inner = dataset.source if isinstance(dataset, ChunkDataset) else None
        self._name = name or (self._inner.name if self._inner is not None else "dataloader")
        self._consumed = False

    @property
    def name(self) -> str:
        """The given name, else the name of the source the DataLoader reads."""
        return self._name

    @property
    def ordered(self) -> bool:
        """Whether chunks are yielded in source order."""
        return self._ordered

    def describe(self) -> str:
        """The description of the source read, and how it is read."""
        what = self._inner.describe() if self._inner is not None else f"'{self._name}'"
        if isinstance(self._loader, DataLoader):
            via = f"a torch DataLoader with {self._loader.num_workers} workers"
        else:
            via = f"a {type(self._loader).__name__}"
        return f"{what} (read through {via}, {'in' if self._ordered else 'any'} order)"

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Iterate the loader afresh and yield its frames, ``chunk_size`` rows at most."""
        return self._chunks(check_chunk_size(chunk_size))

    def _chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        items = iter(self._loader)
        if items is self._loader:
            if self._consumed:
                raise SourceError(
                    f"{self._name}: the loader is a one-shot iterator, already read; "
                    "pass a DataLoader or a list to read it again"
                )
            self._consumed = True
        frames = self._in_order(items) if self._ordered else map(self._frame, items)
        rows = 0
        empty: pd.DataFrame | None = None
        for frame in frames:
            if frame.empty:
                empty = frame if empty is None else empty
                continue
            for start in range(0, len(frame), chunk_size):
                yield frame if len(frame) <= chunk_size else frame.iloc[start : start + chunk_size]
            rows += len(frame)
        if rows == 0 and empty is not None and len(empty.columns):
            yield empty

    def _in_order(self, items: Iterator[Any]) -> Iterator[pd.DataFrame]:
        """Yield frames by ``(part, offset)``, each as soon as all before it have come."""
        waiting: list[tuple[int, int, int, Chunk]] = []
        arrival = itertools.count()  # ties (never expected) keep arrival order
        expected = (0, 0)
        for item in items:
            if isinstance(item, pd.DataFrame):
                yield item
                continue
            chunk = self._chunk(item)
            heapq.heappush(waiting, (chunk.part, chunk.offset, next(arrival), chunk))
            while waiting and waiting[0][:2] == expected:
                chunk = heapq.heappop(waiting)[3]
                yield chunk.frame
                expected = (
                    (chunk.part + 1, 0)
                    if chunk.last
                    else (chunk.part, chunk.offset + len(chunk.frame))
                )
        while waiting:
            yield heapq.heappop(waiting)[3].frame

    def _frame(self, item: Any) -> pd.DataFrame:
        return item if isinstance(item, pd.DataFrame) else self._chunk(item).frame

    def _chunk(self, item: Any) -> Chunk:
        if not isinstance(item, Chunk):
            raise SourceError(
                f"{self._name}: the loader yielded a {type(item).__name__}; LoaderSource "
                "reads Chunk items (use chunk_loader(), or batch_size=None with no "
                "collation) or pandas DataFrames"
            )
        return item
