"""Evaluate the past: every partition of a source as its own batch run, in one process.

Starting to monitor a model that has been in production for a year means hundreds of
past batches. `backfill` logs them in ascending partition order, each as
`evaluate_and_log` would (so each run has its history step and its alerts, judged on the
batches before it), sharing what one process can share: the client, the loaded reference
and model, and the version's batch runs (`KnownBatches`, read once). The next partitions
are evaluated while one is logged, in a forked child where that is safe
(`track/backfill_ahead.py`). It is resumable: a
partition whose batch id already has a finished run is skipped unless `replace`, so
running it again after an interruption carries on where it stopped.

A partition that another process logs while this one runs (two backfills of one
version at once) is `skipped` when its turn comes, like one logged before; a partition
with no rows is skipped (`empty`); one that fails with a monitoring error
(bad data, say) is reported `failed` and the backfill goes on; when the tracking store
fails, it stops: what was evaluated waits in the outbox (`monitoring sync`), and the
partitions not reached are reported `not run`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitoring.collect.partitions import Partition
from monitoring.core.config import MonitoringConfig
from monitoring.core.parallel import available_cpus
from monitoring.errors import (
    ConfigError,
    DuplicateBatchError,
    EmptyBatchError,
    MonitoringError,
    NotLoggedError,
    TrackingUnreachableError,
)
from monitoring.track.backfill_ahead import (
    Evaluated,
    ProcessAhead,
    ThreadAhead,
    evaluate_partition,
    forking_is_safe,
)
from monitoring.track.batch_run import ignored_in_previous
from monitoring.track.claim import VersionLease
from monitoring.track.client import make_client, resolve_tracking_uri
from monitoring.track.delivery import deliver, reachable
from monitoring.track.experiments import experiment_id
from monitoring.track.history_runs import write_history_table
from monitoring.track.known_batches import KnownBatches
from monitoring.track.pipeline import experiment_name_for, obtain_reference
from monitoring.track.registry import ModelInfo, resolve_model
from monitoring.track.version_page import update_version_description

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from monitoring.measure.reference import Reference

MAX_CHILDREN = 2  # evaluating ahead: more only pays where logging is the slower stage
LOGGED, SKIPPED, EMPTY, FAILED, NOT_RUN = "logged", "skipped", "empty", "failed", "not run"


@dataclass(frozen=True)
class BackfillResult:
    """What happened to one partition."""

    partition: str
    batch_id: str
    outcome: str
    status: str = ""
    n_rows: int = 0
    run_id: str = ""
    alerts: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""


def batch_id_for(partition: Partition, template: str) -> str:
    """The batch id of a partition: `template` with {column}, {value} and {partition}."""
    try:
        return template.format(
            column=partition.column,
            value=partition.label.split("=", 1)[1],
            partition=partition.label,
        )
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"--batch-id-format {template!r} is not valid ({error}); it may use {{column}}, "
            "{value} and {partition}"
        ) from None


def backfill(
    partitions: Sequence[Partition],
    *,
    reference: Reference | str | Any,
    config: MonitoringConfig | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    model_uri: str | None = None,
    replace: bool = False,
    batch_id_format: str = "{partition}",
    client: MlflowClient | None = None,
    progress: Callable[[int, int, BackfillResult], None] | None = None,
) -> list[BackfillResult]:
    """Evaluate and log each partition in order (see the module docstring); one result per
    partition. `progress(done, total, result)` is called after each."""
    config = config or MonitoringConfig()
    uri = resolve_tracking_uri(config.tracking.uri)
    ids = [batch_id_for(p, batch_id_format) for p in partitions]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"--batch-id-format {batch_id_format!r} gives two partitions one id")
    with reachable(uri, "nothing was evaluated"):
        client = client or make_client(uri)
        info = resolve_model(
            client, model_uri=model_uri, model_name=model_name, model_version=model_version
        )
        model = _load_model(model_uri)
        fitted = obtain_reference(client, reference, config, model=model)
        known = KnownBatches(client, info.name, info.version)
        logged_before = known.batch_ids()
    to_run = [
        (number, partition, batch_id)
        for number, (partition, batch_id) in enumerate(zip(partitions, ids, strict=True))
        if replace or batch_id not in logged_before
    ]
    results: dict[int, BackfillResult] = {
        number: BackfillResult(partition.label, batch_id, SKIPPED, error="already logged")
        for number, (partition, batch_id) in enumerate(zip(partitions, ids, strict=True))
        if not replace and batch_id in logged_before
    }
    experiment = experiment_name_for(config, info.name)
    lease = VersionLease(
        client, info.name, info.version, stale_after=config.tracking.stale_after
    )
    context = _Context(client, config, info, fitted, model, experiment, known, lease)

    def report(number: int, result: BackfillResult) -> None:
        results[number] = result
        if progress is not None:
            progress(len(results), len(partitions), result)

    for number in sorted(results):
        if progress is not None:
            progress(number + 1, len(partitions), results[number])
    # Two stages: the next partitions are evaluated (in a forked child, else a thread)
    # while this one is judged and logged, which needs the batches before it, in order.
    ahead = _evaluate_ahead(partitions, context, replace)
    with lease, contextlib.closing(ahead):
        stopped = ""
        for index, (number, partition, batch_id) in enumerate(to_run):
            if stopped:
                report(number, BackfillResult(partition.label, batch_id, NOT_RUN, error=stopped))
                continue
            started = time.perf_counter()
            for asked in to_run[index : index + 1 + ahead.depth]:  # in order
                ahead.request(*asked)
            future = ahead.take(number, partition, batch_id)
            result = context.deliver(partition, batch_id, future, replace=replace)
            result = dataclasses.replace(result, seconds=time.perf_counter() - started)
            if result.outcome == FAILED and result.error.startswith("store: "):
                stopped = result.error
            report(number, result)
        if to_run and not stopped:  # under the lock: the table matches the history run
            experiment_key = experiment_id(client, experiment)
            write_history_table(client, experiment_key, info.name, info.version, known.frame())
    if to_run and not stopped:  # the version's page, once for the whole backfill
        last = results[to_run[-1][0]]
        update_version_description(
            client,
            info,
            known.frame(),
            experiment_id=experiment_key,
            alerts=last.alerts if last.outcome == LOGGED else (),
        )
    return [results[number] for number in range(len(partitions))]


@dataclass(frozen=True)
class _Context:
    """What every partition of a backfill shares."""

    client: MlflowClient
    config: MonitoringConfig
    info: ModelInfo
    reference: Reference
    model: Any
    experiment: str
    known: KnownBatches
    lease: VersionLease

    def ignored(self, batch_id: str) -> tuple[str, ...]:
        """The samples notes marked anomaly-ignore on the batch's run (when replacing)."""
        return ignored_in_previous(self.client, self.experiment, self.info, batch_id)

    def evaluate(self, partition: Partition, batch_id: str, replace: bool) -> Evaluated:
        """The partition's report and its plots (here or in a worker thread: no store
        access but reading)."""
        ignored = self.ignored(batch_id) if replace else ()
        return evaluate_partition(
            partition, batch_id, self.reference, self.config, model=self.model, ignored=ignored
        )

    def deliver(
        self, partition: Partition, batch_id: str, future: Future, *, replace: bool
    ) -> BackfillResult:
        """Judge and log the evaluated partition (`deliver`); what happened to it."""
        label = partition.label
        evaluated = None
        try:
            evaluated = future.result()
            delivered = deliver(
                self.client,
                evaluated.report,
                model=self.info,
                batch_id=batch_id,
                experiment=self.experiment,
                config=self.config,
                replace=replace and batch_id in self.known.batch_ids(),
                known=self.known,
                lease=self.lease,
                drawn=evaluated.plots,
            )
        except EmptyBatchError:
            return BackfillResult(label, batch_id, EMPTY, error="no rows")
        except (NotLoggedError, TrackingUnreachableError) as error:
            return BackfillResult(label, batch_id, FAILED, error=f"store: {error}")
        except DuplicateBatchError as error:  # another process logged it meanwhile
            return BackfillResult(
                label, batch_id, SKIPPED, error=f"logged meanwhile by another process ({error})"
            )
        except MonitoringError as error:
            return BackfillResult(label, batch_id, FAILED, error=str(error))
        finally:
            if evaluated is not None:
                shutil.rmtree(evaluated.folder, ignore_errors=True)
        report = delivered.report
        return BackfillResult(
            label,
            batch_id,
            LOGGED,
            status=report.status,
            n_rows=report.n_rows,
            run_id=delivered.run_id,
            alerts=tuple(report.alerts),
        )


def _evaluate_ahead(
    partitions: Sequence[Partition], context: _Context, replace: bool
) -> ProcessAhead | ThreadAhead:
    """Where the partitions ahead are evaluated (see `track/backfill_ahead.py`)."""

    def evaluate(partition: Partition, batch_id: str) -> Evaluated:
        return context.evaluate(partition, batch_id, replace)

    if forking_is_safe(partitions, context.model, context.config):
        return ProcessAhead(
            partitions,
            context.reference,
            context.config,
            evaluate=evaluate,
            ignored=lambda batch_id: context.ignored(batch_id) if replace else (),
            children=min(MAX_CHILDREN, available_cpus()),
        )
    return ThreadAhead(evaluate)


def _load_model(model_uri: str | None) -> Any:
    """The model, loaded once for every partition (None when predictions are stored)."""
    if not model_uri:
        return None
    from monitoring.collect.inference import load_model

    return load_model(model_uri)
