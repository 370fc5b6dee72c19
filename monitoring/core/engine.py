"""The engine: runs a pass's steps over chunks. It knows nothing of what they compute.

A pass is planned from its first chunk (`Plan`), as a set of steps per chunk:

    prepare   main thread       the frame -> a `Chunk` (checks, model inference)
    parallel  one pool task each  independent updates (one column's accumulators)
    inline    main thread, meanwhile, in order  (labels, performance, worst samples)
    deferred  one pool task, after the previous chunk's   (what needs every column)

so a chunk's columns are profiled side by side, the next chunk is read ahead, and what
needs all of a chunk's columns overlaps the next chunk. Errors keep a fixed order: the
parallel steps' first error (in their order), then the inline one. Results never depend
on the thread count: each step's accumulators are touched by one task at a time, and
chunks are taken in order. All performance plumbing (the pool, read-ahead, BLAS held to
one thread) is set up here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.parallel import blas_kept_to_one_thread, column_executor, read_ahead

T = TypeVar("T")
Step = Callable[[Chunk], object]


@dataclass(frozen=True)
class Steps:
    """What the engine runs for each chunk (see the module docstring)."""

    prepare: Callable[[pd.DataFrame, int], Chunk]
    parallel: Sequence[Step] = ()
    inline: Sequence[Step] = ()
    deferred: Sequence[Step] = ()


Plan = Callable[[pd.DataFrame], Steps]
"""Called with the first chunk's frame: decides the steps of the whole pass."""


class Engine:
    """A thread pool (`evaluation.threads`; 1: everything inline) and BLAS held to one
    thread while the engine is open. Use as a context manager."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = column_executor(threads)
        self._blas = blas_kept_to_one_thread()

    def __enter__(self) -> Engine:
        self._blas.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._blas.__exit__(None, None, None)

    def submit(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run `call` in the pool (work started ahead of when its result is needed)."""
        return self._pool.submit(call, *args, **kwargs)

    def map(self, call: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """`call` over independent items in the pool, results in order."""
        return list(self._pool.map(call, items))

    def run(
        self,
        chunks: Iterable[pd.DataFrame],
        plan: Plan,
        *,
        read_ahead_chunks: bool = False,
        progress: Callable[[int], None] | None = None,
        first_row: int = 0,
    ) -> int:
        """Every non-empty chunk through the steps `plan` makes of the first; the rows.

        `first_row` is the row number of the first row (a partition's place in its batch),
        `progress` is called with 0, then with the rows read after each chunk."""
        steps: Steps | None = None
        last: Future[None] | None = None
        offset = first_row
        if progress is not None:
            progress(0)
        reader_threads = self.threads if read_ahead_chunks else 1
        with read_ahead(chunks, reader_threads) as ahead:
            for frame in ahead:
                if not len(frame):
                    continue
                if steps is None:
                    steps = plan(frame)
                chunk = steps.prepare(frame, offset)
                self._parallel_then_inline(steps, chunk)
                if steps.deferred:
                    last = self._pool.submit(_deferred, last, steps.deferred, chunk)
                offset += len(frame)
                if progress is not None:
                    progress(offset - first_row)
        if last is not None:
            last.result()
        return offset - first_row

    def _parallel_then_inline(self, steps: Steps, chunk: Chunk) -> None:
        tasks = [self._pool.submit(step, chunk) for step in steps.parallel]
        failure: Exception | None = None
        try:
            for step in steps.inline:
                step(chunk)
        except Exception as exc:  # raised after the parallel steps' errors
            failure = exc
        for task in tasks:
            task.result()
        if failure is not None:
            raise failure


def _deferred(previous: Future[None] | None, steps: Sequence[Step], chunk: Chunk) -> None:
    """A chunk's deferred steps, after the previous chunk's (so in chunk order)."""
    if previous is not None:
        previous.result()
    for step in steps:
        step(chunk)
