"""A pass over a Spark DataFrame: each partition profiled in the executors, the states
merged on the driver.

    decide     the driver reads the first chunk and decides the plan (`plan.decide`), as a
               single-process pass decides from its first chunk
    count      one cheap job counts each partition's rows, so that every partition knows
               the batch row number of its first row (row numbers key the samples, the
               scored rows and the worst samples' ties)
    profile    `mapInArrow`: each partition's Arrow batches, as pandas chunks, through the
               decided plan's steps (`core.engine`, one thread: Spark runs a task per core);
               out comes one state (`evaluation.plan_state`), or the error raised
    merge      the states, in partition order, into the driver's plan

Only the states come to the driver. The result equals a single-process pass over the same
rows in the DataFrame's order (partition by partition).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from monitoring import errors
from monitoring.collect.sources.spark_frame import SparkFrameSource, arrow_chunks, spark_errors
from monitoring.core.engine import Engine
from monitoring.errors import ConfigError, DataError, MonitoringError
from monitoring.evaluation.plan_state import merge_into, plan_state

STATE_SCHEMA = "partition long, rows long, state binary, error_type string, error string"


def spark_pass(
    source: SparkFrameSource,
    plan: Any,
    names: Sequence[str],
    *,
    chunk_size: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run `plan` (a BatchPlan or a fit plan, undecided) over `source` in Spark; its
    accumulators then hold every row. Returns the number of rows (0: nothing decided)."""
    with spark_errors(source.describe()):
        return _spark_pass(source, plan, names, chunk_size=chunk_size, progress=progress)


def _spark_pass(
    source: SparkFrameSource,
    plan: Any,
    names: Sequence[str],
    *,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> int:
    if progress is not None:
        progress(0)
    first = source.first_chunk(chunk_size)
    if not len(first):
        return 0
    plan.decide(first)
    offsets = partition_offsets(source.frame)
    states, counted = profile_partitions(source.frame, plan, names, offsets, chunk_size)
    if not _as_counted(offsets, states, counted):
        # The counting job's plan split the rows otherwise (a local relation is folded into
        # a scan of its own): once more with the profiling job's own counts.
        offsets = _offsets(counted)
        states, counted = profile_partitions(source.frame, plan, names, offsets, chunk_size)
        if not _as_counted(offsets, states, counted):
            raise DataError(
                "the Spark DataFrame gave different rows per partition on two reads: it is "
                "not deterministic (a sample, or a shuffle without a fixed order); cache or "
                "checkpoint it first"
            )
    rows = sum(counted.values())
    plan.steps()  # the driver's own (empty) accumulators, replaced by the merged states
    merge_into(plan, names, states)
    if progress is not None:
        progress(rows)
    return rows


def partition_offsets(frame: Any) -> dict[int, tuple[int, int]]:
    """Per partition index: (batch row number of its first row, its rows). One job over a
    projection with no column of the data (Parquet: no column is decoded), no shuffle."""
    from pyspark.sql import functions as F

    def count(batches: Any) -> Any:
        import pyarrow as pa
        from pyspark import TaskContext

        rows = sum(batch.num_rows for batch in batches)
        partition = TaskContext.get().partitionId()
        yield pa.RecordBatch.from_pydict(
            {"p": pa.array([partition], pa.int64()), "n": pa.array([rows], pa.int64())}
        )

    counted = frame.select(F.lit(True).alias("x")).mapInArrow(count, "p long, n long")
    return _offsets({row["p"]: row["n"] for row in counted.toArrow().to_pylist()})


def _as_counted(
    offsets: dict[int, tuple[int, int]], states: list[bytes], counted: dict[int, int]
) -> bool:
    """Whether every partition had the rows it was numbered for (an executor sends no
    state when they differ)."""
    expected = {p: rows for p, (_, rows) in offsets.items() if rows}
    return counted == expected and all(states)


def _offsets(sizes: dict[int, int]) -> dict[int, tuple[int, int]]:
    """(first row, rows) per partition, from the rows per partition."""
    offsets, first = {}, 0
    sizes = dict(sorted(sizes.items()))
    for partition, rows in sizes.items():
        offsets[partition] = (first, rows)
        first += rows
    return offsets


def profile_partitions(
    frame: Any,
    plan: Any,
    names: Sequence[str],
    offsets: dict[int, tuple[int, int]],
    chunk_size: int,
) -> tuple[list[bytes], dict[int, int]]:
    """Each non-empty partition's state, in partition order, and its rows."""

    def profile(batches: Any) -> Any:
        import pyarrow as pa
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId()
        first_row, expected = offsets.get(partition, (0, 0))
        error_type = error = None
        state, rows = b"", 0
        try:
            local = copy.deepcopy(plan)  # a worker may run several tasks: none shares state
            steps = local.steps()
            with Engine(1) as engine:
                chunks = arrow_chunks(batches, chunk_size, first_row)
                rows = engine.run(chunks, lambda _frame: steps, first_row=first_row)
            # Rows other than counted: the state is of no use, the driver runs this again.
            state = plan_state(local, names) if rows and rows == expected else b""
        except MonitoringError as exc:
            error_type, error = type(exc).__name__, str(exc)
        if rows or error is not None:
            yield pa.RecordBatch.from_pydict(
                {
                    "partition": pa.array([partition], pa.int64()),
                    "rows": pa.array([rows], pa.int64()),
                    "state": pa.array([state], pa.binary()),
                    "error_type": pa.array([error_type], pa.string()),
                    "error": pa.array([error], pa.string()),
                }
            )

    collected = frame.mapInArrow(profile, STATE_SCHEMA).toArrow().to_pylist()
    collected.sort(key=lambda row: row["partition"])
    for row in collected:
        if row["error_type"] is not None:
            raise _error(row["error_type"], row["error"])
    return [row["state"] for row in collected], {row["partition"]: row["rows"] for row in collected}


def _error(name: str, message: str) -> MonitoringError:
    """The error an executor raised, raised again on the driver as the same class."""
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, MonitoringError):
        return kind(message)
    return MonitoringError(f"{name}: {message}")


def refuse_embedding_layer(layer: str | None) -> None:
    """The embedding layer's hook is not sent to executors: a clear error instead."""
    if layer is not None:
        raise ConfigError(
            f"`drift.embedding_layer` ({layer!r}) is not supported with the Spark engine; "
            "evaluate this batch in one process, or log an embedding test computed apart "
            "(`dataset_tests`)"
        )
