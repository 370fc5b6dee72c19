"""Log one rendered batch run (an outbox entry) to MLflow: once, whoever else is trying.

Under the lock of the model version (`claim.VersionLock`), `publish`

1. returns the run that already logged this entry (a replay), if there is one;
2. marks FAILED every RUNNING run of the batch id: under the lock, such a run can only be
   one that a killed evaluation left behind (`monitoring.error` says so);
3. refuses the batch id when a FINISHED run holds it, unless the entry replaces it (and no
   run of the batch id started after the entry was made: the newest evaluation wins);
4. creates the run with its identifying tags, the owner and the entry id, uploads the
   artifacts and dataset inputs, logs metrics, params and tags in batched calls, and marks
   it FINISHED (a failure on the way marks it FAILED with the reason);
5. deletes the runs it replaces (their notes carried over) and brings the version's
   history run up to date.

Then the lock is released. A FINISHED run is always complete, and there is one per batch id.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.errors import DuplicateBatchError, TrackingError
from monitoring.evaluation.report import BatchReport
from monitoring.track import tags
from monitoring.track.batch_content import dataset_inputs, render_batch_run
from monitoring.track.batch_run import carry_notes, duplicate_error, quote_value
from monitoring.track.bounds import describe, is_unreachable, quick_requests
from monitoring.track.claim import (
    OUTBOX_ID,
    OWNER,
    VersionLease,
    VersionLock,
    abandoned_reason,
    mark_abandoned,
    owner_token,
)
from monitoring.track.description import with_links
from monitoring.track.experiments import experiment_id, mark_failed
from monitoring.track.history_runs import sync_history
from monitoring.track.known_batches import KnownBatches
from monitoring.track.outbox import Entry, new_entry_id
from monitoring.track.registry import ModelInfo
from monitoring.track.version_page import update_version_description

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run


@dataclass(frozen=True)
class Published:
    """Where an entry was logged. `already`: an earlier try (or replay) had logged it."""

    run_id: str
    experiment_id: str
    status: str
    alerts: tuple[str, ...]
    already: bool = False


def identity_filter(model: ModelInfo, batch_id: str) -> str:
    """Every batch run of (model, version, batch id), whatever its status."""
    return (
        f"tags.`{tags.KIND}` = '{tags.KIND_BATCH}' and "
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model.name)}' and "
        f"tags.`{tags.MODEL_VERSION}` = '{quote_value(model.version)}' and "
        f"tags.`{tags.BATCH_ID}` = '{quote_value(batch_id)}'"
    )


def _runs_of(client: MlflowClient, experiment: str, model: ModelInfo, batch_id: str) -> list[Run]:
    return list(
        client.search_runs(
            [experiment], filter_string=identity_filter(model, batch_id), max_results=1000
        )
    )


def _published(run: Run, *, already: bool) -> Published:
    alerts = run.data.tags.get(tags.ALERTS, "")
    return Published(
        run.info.run_id,
        run.info.experiment_id,
        run.data.tags.get(tags.STATUS, ""),
        tuple(a.strip() for a in alerts.split(",") if a.strip()),
        already,
    )


def _experiment_of(client: MlflowClient, entry: Entry, attach: bool) -> tuple[str, str | None]:
    """(experiment id, run id to log into): the `mlflow run` run when attaching, else the
    entry's experiment; a replay logs a new run next to the one it could not complete."""
    attach_id = entry.data.get("attach_run_id")
    if attach_id:
        return client.get_run(attach_id).info.experiment_id, attach_id if attach else None
    return experiment_id(client, entry.data["experiment"]), None


def publish(
    client: MlflowClient,
    entry: Entry,
    *,
    attach: bool = True,
    stale_after: float = 600.0,
    known: KnownBatches | None = None,
    lease: VersionLease | None = None,
) -> Published:
    """Log `entry` as its batch run (see the module docstring); returns where it went.

    DuplicateBatchError when another run holds the batch id. `attach`: log into the entry's
    `mlflow run` run rather than a new one (the live evaluation; a replay never attaches).
    `known`: the version's batch runs as this process knows them, kept up to date here.
    `lease`: the version's lock as a loop over batches holds it (else it is taken here).
    """
    model, batch_id = entry.model, entry.batch_id
    experiment, attach_id = _experiment_of(client, entry, attach)
    held = (
        lease.held()
        if lease is not None
        else VersionLock(client, model.name, model.version, stale_after=stale_after)
    )
    with held as lock:
        runs = _runs_of(client, experiment, model, batch_id)
        _clear_orphans(client, runs, keep=attach_id, stale_after=stale_after)
        done = [
            r
            for r in runs
            if r.info.status == "FINISHED" and r.data.tags.get(OUTBOX_ID) == entry.id
        ]
        if done:
            _update_history(client, entry, experiment, table=lease is None)
            if known is not None:
                known.forget()
            return _published(done[0], already=True)
        finished = [r for r in runs if r.info.status == "FINISHED" and r.info.run_id != attach_id]
        _refuse(entry, finished)
        previous = [r.info.run_id for r in finished]
        run_id = _log(client, entry, experiment, attach_id, previous, lock)
        after = _runs_of(client, experiment, model, batch_id)
        mine = [r for r in after if r.info.run_id == run_id and r.info.status == "FINISHED"]
        if not mine:
            raise TrackingError(f"run {run_id} is not FINISHED after it was logged")
        _clear_orphans(client, after, keep=run_id)
        for old in previous:
            carry_notes(client, old, run_id)
            client.set_tag(old, tags.REPLACED_BY, run_id)
            client.delete_run(old)
        if known is not None:
            known.logged(mine[0], replaced=previous)
        _update_history(
            client,
            entry,
            experiment,
            run_id=run_id,
            known=known.frame() if known else None,
            table=lease is None,  # a backfill writes the history table once, at its end
        )
    if lease is None:  # a loop over batches (a backfill) writes it once, at its end
        alerts = entry.data["tags"].get(tags.ALERTS, "")
        update_version_description(
            client,
            model,
            (known or KnownBatches(client, model.name, model.version)).frame(),
            experiment_id=experiment,
            alerts=[a.strip() for a in alerts.split(",") if a.strip()],
        )
    return Published(
        run_id,
        experiment,
        entry.data["tags"].get(tags.STATUS, ""),
        tuple(a.strip() for a in entry.data["tags"].get(tags.ALERTS, "").split(",") if a.strip()),
    )


def _refuse(entry: Entry, finished: list[Run]) -> None:
    if not finished:
        return
    if not entry.data.get("replace"):
        raise duplicate_error(entry.model, entry.batch_id, finished[0].info.run_id)
    newer = [r for r in finished if (r.info.start_time or 0) > entry.created]
    if newer:
        model = entry.model
        raise DuplicateBatchError(
            f"batch {entry.batch_id!r} of {model.name} version {model.version} was evaluated "
            f"again after this evaluation (run {newer[0].info.run_id}); it is not replaced"
        )


def _clear_orphans(
    client: MlflowClient, runs: list[Run], *, keep: str | None, stale_after: float = 0.0
) -> None:
    """Mark FAILED the RUNNING runs of this batch id (other than `keep`): under the lock,
    nobody is writing them."""
    for run in runs:
        if run.info.status != "RUNNING" or run.info.run_id == keep:
            continue
        reason = abandoned_reason(run, stale_after) or (
            f"abandoned: left RUNNING by {run.data.tags.get(OWNER, 'an unknown process')}"
        )
        mark_abandoned(
            client, run.info.run_id, f"{reason}; the batch was logged again", delete=False
        )


def _log(
    client: MlflowClient,
    entry: Entry,
    experiment: str,
    attach_id: str | None,
    previous: list[str],
    lock: VersionLock,
) -> str:
    from mlflow.entities import LoggedModelInput, Metric, Param, RunTag

    model, data = entry.model, entry.data
    identity = {
        tags.KIND: tags.KIND_BATCH,
        tags.MODEL_NAME: model.name,
        tags.MODEL_VERSION: model.version,
        tags.BATCH_ID: entry.batch_id,
        OWNER: owner_token(),
        OUTBOX_ID: entry.id,
    }
    if attach_id:
        run_id = attach_id
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in identity.items()])
    else:
        run_id = client.create_run(experiment, run_name=data["run_name"], tags=identity)
        run_id = run_id.info.run_id
    run_tags: dict[str, str] = dict(data["tags"])
    if tags.NOTE in run_tags:
        run_tags[tags.NOTE] = with_links(
            run_tags[tags.NOTE],
            experiment_id=experiment,
            run_id=run_id,
            model=model.name,
            version=model.version if model.registered else None,
        )
    if previous:
        run_tags[tags.REPLACES] = ",".join(previous)
    try:
        client.log_artifacts(run_id, str(entry.artifacts))
        lock.touch()
        models = [LoggedModelInput(model.model_id)] if model.model_id else None
        client.log_inputs(run_id, datasets=dataset_inputs(data["datasets"]), models=models)
        stamp = int(data["metric_time"])
        client.log_batch(
            run_id,
            metrics=[
                Metric(k, v, stamp, 0, model_id=model.model_id if model_level(k) else None)
                for k, v in _m(data)
            ],
            params=[Param(k, v) for k, v in data["params"].items()],
            tags=[RunTag(k, v) for k, v in run_tags.items()],
        )
        if client.get_run(run_id).info.status != "RUNNING":
            raise TrackingError(f"run {run_id} was marked abandoned by another evaluation")
    except Exception as error:
        if not is_unreachable(error):  # else the next writer finds it RUNNING and fails it
            with quick_requests():
                mark_failed(client, run_id, error)
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


MODEL_LEVEL_PREFIXES = ("perf/", "perf_est/", "drift/dataset/", "quality/dataset/", "data/")


def model_level(key: str) -> bool:
    """Whether a batch metric is linked to the LoggedModel: performance and batch-level
    figures are; per-column ones would bury the model's own metrics on its page."""
    return key.startswith(MODEL_LEVEL_PREFIXES)


def _m(data: Mapping) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in data["metrics"].items()]


def _update_history(
    client: MlflowClient,
    entry: Entry,
    experiment: str,
    run_id: str | None = None,
    known: pd.DataFrame | None = None,
    table: bool = True,
) -> None:
    if not entry.data.get("history", True):
        return
    try:
        sync_history(
            client, experiment, entry.model.name, entry.model.version, known=known, table=table
        )
    except Exception as error:
        logged = f"batch run {run_id} was logged" if run_id else "the batch run exists"
        raise TrackingError(
            f"{logged}, but the history run of {entry.model.name} version "
            f"{entry.model.version} could not be updated ({describe(error)})"
        ) from error


def log_batch_report(
    client: MlflowClient,
    report: BatchReport,
    *,
    model: ModelInfo,
    batch_id: str,
    experiment: str,
    config: Mapping[str, str] | None = None,
    replace: bool = False,
    run_id: str | None = None,
    plot_top_features: int = 6,
) -> str:
    """Log a judged `report` as the batch run of (model, version, batch_id), without the
    outbox and without the history run; returns the run id. `evaluate_and_log` is the
    complete path. `run_id` attaches to an existing run (MLFLOW_RUN_ID)."""
    with tempfile.TemporaryDirectory() as folder:
        created = int(time.time() * 1000)
        entry = Entry(Path(folder), {"id": new_entry_id(), "created": created})
        content = render_batch_run(
            report,
            entry.artifacts,
            model=model,
            batch_id=batch_id,
            config=config or {},
            plot_top_features=plot_top_features,
        )
        entry = Entry(
            entry.folder,
            {
                **entry.data,
                **content,
                "model": dataclasses.asdict(model),
                "batch_id": batch_id,
                "experiment": experiment,
                "attach_run_id": run_id,
                "replace": replace,
                "history": False,
            },
        )
        return publish(client, entry).run_id
