"""Threads for the engine (`core.engine`): column work side by side, the next chunk read
ahead, and BLAS held to one thread meanwhile.

The heavy per-chunk work (Parquet decoding, sorting, binary searches, interpolation) runs
in numpy and Arrow code that releases the GIL, so plain threads use every core without
copying chunks between processes. Results never depend on the thread count: each column's
accumulators are touched by one task at a time, and chunks are consumed in order.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from monitoring.core.allocator import keep_malloc_to_one_arena

T = TypeVar("T")

MAX_AUTO_THREADS = 8
_ITEM, _DONE, _ERROR = "item", "done", "error"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def thread_count(setting: int) -> int:
    """`evaluation.threads`: 0 means one per available CPU, at most MAX_AUTO_THREADS."""
    return setting if setting > 0 else min(available_cpus(), MAX_AUTO_THREADS)


@contextmanager
def blas_kept_to_one_thread() -> Iterator[None]:
    """While the pass works, BLAS runs in one thread. OpenBLAS's own threads spin-wait after
    every call: beside our threads they take the cores from them (measured: a 1M-row pass
    1.4x slower), and with `evaluation.threads = 1` they doubled the CPU time of a pass
    meant to use one core. The pass's matrix products are small, so they lose nothing."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class InlineExecutor(Executor):
    """`evaluation.threads = 1`: every task runs at once, in the caller's thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # raised by result(), as a pool would
            future.set_exception(exc)
        return future


def column_executor(setting: int) -> Executor:
    """Where a chunk's column tasks run: a thread pool, or inline with one thread."""
    threads = thread_count(setting)
    if threads == 1:
        return InlineExecutor()
    keep_malloc_to_one_arena()  # before the pool's first thread
    return ThreadPoolExecutor(threads, thread_name_prefix="monitoring-column")


class NoReadAhead(Generic[T]):
    """`ReadAhead`'s interface without a thread (`evaluation.threads = 1`)."""

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)

    def __iter__(self) -> Iterator[T]:
        return self._items

    def __enter__(self) -> Iterator[T]:
        return self._items

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


def read_ahead(items: Iterable[T], setting: int) -> ReadAhead[T] | NoReadAhead[T]:
    """Chunks read one ahead in a thread, unless `evaluation.threads` is 1."""
    return NoReadAhead(items) if thread_count(setting) == 1 else ReadAhead(items)


class ReadAhead(Generic[T]):
    """Iterate `items` in a background thread, at most `depth` items ahead of the reader.

    Errors raised while producing are re-raised, in order, by `__next__`. `close()` (also on
    leaving a `with` block) stops the producer and closes the underlying iterator in its
    own thread, so a file source releases its handle even when the pass stops early.
    """

    def __init__(self, items: Iterable[T], depth: int = 1) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(
            target=self._produce, args=(iter(items),), name="monitoring-read-ahead", daemon=True
        )
        self._thread.start()

    def _produce(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put((_ITEM, item)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # handed to the reader, raised there
            self._put((_ERROR, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, entry: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == _ITEM:
            return value
        self._finished = True
        self._thread.join()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop reading ahead and wait for the producer to let go of the source."""
        self._finished = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
        self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
