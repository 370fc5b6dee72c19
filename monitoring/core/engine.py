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

Small work stays in the calling thread whatever `evaluation.threads` says: a chunk of
fewer than INLINE_BELOW_ROWS rows runs its parallel and deferred steps inline, and after a
pass of fewer rows, so does what the caller submits. Their tasks take a millisecond or
two, less than the pool's hand-offs cost in waits for the GIL (measured at 5,000 rows:
fit 0.16-0.22 s with two threads, 0.13 s in one). `map` keeps the pool: its items are
whole columns' drift decisions, long enough to pay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from monitoring.core.accumulator import Chunk
from monitoring.core.parallel import (
    InlineExecutor,
    blas_kept_to_one_thread,
    column_executor,
    read_ahead,
)

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

INLINE_BELOW_ROWS = 20_000
"""Chunks (and passes) of fewer rows run in the calling thread: see the module docstring."""


class Engine:
    """A thread pool (`evaluation.threads`; 1: everything inline) and BLAS held to one
    thread while the engine is open. Use as a context manager."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool = column_executor(threads)
        self._inline = InlineExecutor()
        self._small_pass = False  # set by `run`: submit and map then run inline
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
        """Run `call` in the pool (work started ahead of when its result is needed); inline
        after a small pass."""
        return self._executor().submit(call, *args, **kwargs)

    def submit_long(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run `call` in the pool whatever the pass's size: a task long enough (tens of
        milliseconds) to pay for the hand-off, for the pool's otherwise idle threads."""
        return self._pool.submit(call, *args, **kwargs)

    def map(self, call: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """`call` over independent items in the pool, results in order, whatever the pass's
        size: deciding a column's drift (2-4 ms, its null draws mostly outside the GIL)
        pays for the hand-off (12 histogram nulls: 42 ms in one thread, 24 ms in two)."""
        return list(self._pool.map(call, items))

    def pool_idle_during(self, rows: int) -> bool:
        """Whether a pass of `rows` rows leaves the pool's threads idle: it runs in the
        calling thread (INLINE_BELOW_ROWS) and the pool has threads of its own, free for
        work started ahead."""
        return rows < INLINE_BELOW_ROWS and not isinstance(self._pool, InlineExecutor)

    def _executor(self, rows: int | None = None) -> Executor:
        """Where work of `rows` rows (None: after the pass) runs: see INLINE_BELOW_ROWS."""
        small = self._small_pass if rows is None else rows < INLINE_BELOW_ROWS
        return self._inline if small else self._pool

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
                pool = self._executor(len(frame))
                self._parallel_then_inline(steps, chunk, pool)
                if steps.deferred:
                    last = pool.submit(_deferred, last, steps.deferred, chunk)
                offset += len(frame)
                if progress is not None:
                    progress(offset - first_row)
        if last is not None:
            last.result()
        self._small_pass = offset - first_row < INLINE_BELOW_ROWS
        return offset - first_row

    def _parallel_then_inline(self, steps: Steps, chunk: Chunk, pool: Executor) -> None:
        tasks = [pool.submit(step, chunk) for step in steps.parallel]
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
