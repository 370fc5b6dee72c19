"""A backfill's next partitions, evaluated while the one before them is logged.

Logging a batch run keeps the main thread busy (MLflow's store), and evaluating the next
partition with its plots takes about as long again. In a worker thread the two wait on
each other for the GIL (measured: 60 partitions took 21.9 s for 18 s of CPU); in a forked
child (`track/forked.py`) they use both cores. `ProcessAhead` is used when a fork is safe
and nothing in the partitions' sources is shared with this process (a lent SQLAlchemy
engine); else `ThreadAhead`, one partition ahead in a thread, as before.

Both hand out the partitions' evaluations as futures, in request order. The child is an
optimisation only: a partition it fails on (bad data, no rows, a child killed or stuck)
is evaluated again in this process, so results and errors are those of one process.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.track import forked
from monitoring.track.early_evaluation import draw_ahead

if TYPE_CHECKING:
    from monitoring.collect.partitions import Partition
    from monitoring.core.config import MonitoringConfig
    from monitoring.evaluation.report import BatchReport
    from monitoring.measure.reference import Reference



@dataclass(frozen=True)
class Evaluated:
    """A partition's report, the temporary folder of its plots, and the plots (None: not
    drawn ahead)."""

    report: BatchReport
    folder: Path
    plots: Path | None


def evaluate_partition(
    partition: Partition,
    batch_id: str,
    reference: Reference,
    config: MonitoringConfig,
    *,
    model: Any = None,
    ignored: Sequence[str] = (),
    folder: Path | None = None,
) -> Evaluated:
    """The partition's report and its plots, drawn into `folder` (a new temporary one when
    None) where `render_batch_run` would draw them."""
    from monitoring.evaluation.batch import evaluate

    report = evaluate(
        partition.source,
        reference,
        config=config,
        model=model,
        batch_id=batch_id,
        ignored_samples=ignored,
    )
    folder = folder or Path(tempfile.mkdtemp(prefix="monitoring-plots-"))
    drawn = draw_ahead(report, config, folder / "plots")
    return Evaluated(report, folder, folder / "plots" if drawn else None)


def _settled(work: Callable[[], Evaluated]) -> Future:
    """A future holding what `work` returned or raised (run now, in this thread)."""
    future: Future = Future()
    try:
        future.set_result(work())
    except Exception as error:  # raised again by result(), as a pool's future would
        future.set_exception(error)
    return future


def forking_is_safe(partitions: Sequence[Partition], model: Any, config: MonitoringConfig) -> bool:
    """Whether `ProcessAhead` may serve these partitions: a safe fork, no model to run in
    the child, no embedding layer, and no source lending this process's connections."""
    return (
        forked.fork_is_safe()
        and model is None
        and config.drift.embedding_layer is None
        and not any(getattr(p.source, "shares_connection", False) for p in partitions)
    )


class ThreadAhead:
    """One partition evaluated ahead in a worker thread. `evaluate(partition, batch_id)`."""

    depth = 1

    def __init__(self, evaluate: Callable[[Partition, str], Evaluated]) -> None:
        self._evaluate = evaluate
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill")
        self._futures: dict[int, Future] = {}

    def request(self, number: int, partition: Partition, batch_id: str) -> None:
        if number not in self._futures:
            self._futures[number] = self._pool.submit(self._evaluate, partition, batch_id)

    def take(self, number: int, partition: Partition, batch_id: str) -> Future:
        self.request(number, partition, batch_id)
        return self._futures.pop(number)

    def close(self) -> None:
        """Wait for what is still being evaluated, and remove its plots."""
        for future in self._futures.values():
            with contextlib.suppress(Exception):
                shutil.rmtree(future.result().folder, ignore_errors=True)
        self._futures.clear()
        self._pool.shutdown()


class ProcessAhead:
    """Partitions evaluated ahead in `children` forked children, handed out in request
    order: request i goes to child i mod `children`, so each child's answers come in the
    order they are taken. `evaluate(partition, batch_id)` is the in-process fallback;
    `ignored(batch_id)` the samples to leave out (read from the store here: the children
    never touch it)."""

    def __init__(
        self,
        partitions: Sequence[Partition],
        reference: Reference,
        config: MonitoringConfig,
        *,
        evaluate: Callable[[Partition, str], Evaluated],
        ignored: Callable[[str], Sequence[str]],
        children: int = 1,
    ) -> None:
        self._evaluate = evaluate
        self._ignored = ignored
        self._scratch = forked.scratch_folder("monitoring-backfill-ahead-")
        job = {"partitions": list(partitions), "reference": reference, "config": config}
        self._children = [forked.ForkedChild(_serve, job, self._scratch) for _ in range(children)]
        self.depth = children + 1  # one partition ahead for each child, and one waiting
        self._sent: dict[int, int] = {}  # partition number -> the child asked, in order
        self._asked = 0
        self.fallbacks: list[str] = []  # why partitions were evaluated in this process

    def request(self, number: int, partition: Partition, batch_id: str) -> None:
        if not self._children or number in self._sent:
            return
        which = self._asked % len(self._children)
        if not self._children[which].send((number, batch_id, tuple(self._ignored(batch_id)))):
            self._give_up("a child is gone")
            return
        self._sent[number] = which
        self._asked += 1

    def take(self, number: int, partition: Partition, batch_id: str) -> Future:
        """The evaluation of partition `number` (asked for before the ones after it)."""
        self.request(number, partition, batch_id)
        if self._children:
            child = self._children[self._sent.pop(number)]
            message = child.receive()
            if message is None or message[1] != number:
                self._give_up(child.outcome or "answered out of order")
            elif message[0] == "ok":
                folder = self._scratch / str(number)
                plots = folder / "plots" if message[3] else None
                return _settled(lambda: Evaluated(message[2], folder, plots))
            else:
                self.fallbacks.append(f"{batch_id}: {message[2]}")
        return _settled(lambda: self._evaluate(partition, batch_id))

    def _give_up(self, why: str) -> None:
        """A child failed: every later partition is evaluated in this process."""
        if self._children:
            self.fallbacks.append(f"child: {why}")
            self.close(remove=False)

    def close(self, *, remove: bool = True) -> None:
        """Stop the children; `remove`: and what they drew that was never taken."""
        for child in self._children:
            child.send(None)
            child.stop()
        self._children = []
        self._sent.clear()
        if remove:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _serve(connection: Any, job: dict[str, Any], scratch: Path) -> None:
    """In the child: evaluate each partition asked for, in order, until told to stop."""
    while True:
        try:
            asked = connection.recv()
        except (EOFError, OSError):
            return
        if asked is None:
            return
        number, batch_id, ignored = asked
        try:
            made = evaluate_partition(
                job["partitions"][number],
                batch_id,
                job["reference"],
                job["config"],
                ignored=ignored,
                folder=scratch / str(number),
            )
            connection.send(("ok", number, made.report, made.plots is not None))
        except BaseException as error:  # noqa: BLE001 - evaluated again in the parent
            shutil.rmtree(scratch / str(number), ignore_errors=True)
            try:
                connection.send(("failed", number, f"{type(error).__name__}: {error}"))
            except (OSError, ValueError):
                return
