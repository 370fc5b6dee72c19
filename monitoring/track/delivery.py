"""From a finished evaluation to its MLflow run, losing nothing on the way.

`deliver` judges the report against the version's earlier batches, renders the run into a
new outbox entry, logs it with `publish`, and removes the entry once the run is FINISHED
and the history run is up to date. When the store fails at any point, the entry stays and
one NotLoggedError says where; `sync_outbox` (the `monitoring sync` command) logs what
waits in the outbox later, with the same content, history and alerts. Entries are removed
only after their run is verified FINISHED, or when another run holds their batch id.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.collect.sources import mask_url
from monitoring.core.config import MonitoringConfig
from monitoring.errors import DuplicateBatchError, NotLoggedError, TrackingUnreachableError
from monitoring.evaluation.report import BatchReport
from monitoring.track.alerting import judge_against_history
from monitoring.track.batch_content import render_batch_run
from monitoring.track.bounds import bounded_requests, describe, is_unreachable
from monitoring.track.claim import VersionLease
from monitoring.track.client import make_client, resolve_tracking_uri
from monitoring.track.known_batches import KnownBatches
from monitoring.track.outbox import (
    Entry,
    clear_staging,
    commit_entry,
    list_entries,
    new_entry_id,
    outbox_folder,
    remove_entry,
    staging_folder,
)
from monitoring.track.publish import Published, publish
from monitoring.track.registry import ModelInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class Delivered:
    """The judged report and the run it was logged as."""

    report: BatchReport
    run_id: str
    experiment_id: str


@contextmanager
def reachable(uri: str, doing: str) -> Iterator[None]:
    """Turn the store failing under `doing` into one TrackingUnreachableError line."""
    try:
        yield
    except TrackingUnreachableError as error:
        raise TrackingUnreachableError(f"{error}; {doing}") from error
    except Exception as error:
        if not is_unreachable(error):
            raise
        raise TrackingUnreachableError(
            f"the tracking store {mask_url(uri)} cannot be reached ({describe(error)}); {doing}"
        ) from error


def _entry_data(
    client: MlflowClient,
    model: ModelInfo,
    batch_id: str,
    *,
    entry_id: str,
    experiment: str,
    replace: bool,
    run_id: str | None,
    config: MonitoringConfig,
) -> dict[str, Any]:
    return {
        "id": entry_id,
        "created": int(time.time() * 1000),
        "tracking_uri": mask_url(client.tracking_uri),
        "experiment": experiment,
        "attach_run_id": run_id,
        "model": dataclasses.asdict(model),
        "batch_id": batch_id,
        "replace": replace,
        "history": config.tracking.history,
    }


def _render(
    report: BatchReport,
    folder: Path,
    data: dict,
    config: MonitoringConfig,
    known: KnownBatches,
    drawn: Path | None = None,
) -> dict:
    content = render_batch_run(
        report,
        folder,
        model=ModelInfo(**data["model"]),
        batch_id=data["batch_id"],
        config=config.flat(),
        plot_top_features=config.evaluation.plot_top_features,
        plots=config.evaluation.plots,
        recent=known.frame(),
        drawn=drawn,
    )
    return {**data, **content, "judged": True}


def deliver(
    client: MlflowClient,
    report: BatchReport,
    *,
    model: ModelInfo,
    batch_id: str,
    experiment: str,
    config: MonitoringConfig,
    replace: bool = False,
    run_id: str | None = None,
    known: KnownBatches | None = None,
    lease: VersionLease | None = None,
    drawn: Path | None = None,
) -> Delivered:
    """Judge, keep in the outbox, log, and forget (see the module docstring). `known`:
    the version's batch runs as this process knows them (read once when not given);
    `lease`: the version's lock held across a loop's batches (`VersionLease`); `drawn`:
    the report's plots, already drawn there (`track/early_evaluation.py`)."""
    outbox = outbox_folder(config.tracking.outbox)
    entry_id = new_entry_id()
    data = _entry_data(
        client,
        model,
        batch_id,
        entry_id=entry_id,
        experiment=experiment,
        replace=replace,
        run_id=run_id,
        config=config,
    )
    known = known or KnownBatches(client, model.name, model.version)
    try:
        report = judge_against_history(
            client, report, model=model, batch_id=batch_id, config=config, known=known
        )
    except Exception as error:
        if not is_unreachable(error):
            raise
        folder = staging_folder(outbox, entry_id)
        entry = commit_entry(folder, data, unjudged=(report, config))
        raise _not_logged(entry, error, client.tracking_uri) from error
    folder = staging_folder(outbox, entry_id)
    entry = commit_entry(
        folder, _render(report, folder / "artifacts", data, config, known, drawn)
    )
    try:
        published = publish(
            client, entry, stale_after=config.tracking.stale_after, known=known, lease=lease
        )
    except DuplicateBatchError:
        remove_entry(entry)
        raise
    except Exception as error:
        known.forget()
        raise _not_logged(entry, error, client.tracking_uri) from error
    remove_entry(entry)
    report = dataclasses.replace(report, alerts=published.alerts)
    return Delivered(report, published.run_id, published.experiment_id)


def _not_logged(entry: Entry, error: BaseException, uri: str) -> NotLoggedError:
    cause = (
        f"the tracking store {mask_url(uri)} cannot be reached ({describe(error)})"
        if is_unreachable(error)
        else describe(error)
    )
    return NotLoggedError(
        f"{entry.describe()} is not logged: {cause}; the evaluation is kept in the outbox "
        f"({entry.folder}): run `monitoring sync` when the store is back"
    )


@dataclass(frozen=True)
class SyncResult:
    """What `sync_outbox` did with one entry: `logged` (now a FINISHED run), `already`
    (an earlier try had logged it), `superseded` (another run holds its batch id; removed),
    `kept` (still waiting: `reason`), `elsewhere` (it belongs to another tracking store)."""

    entry_id: str
    description: str
    outcome: str
    run_id: str | None = None
    reason: str = ""


def replay(client: MlflowClient, entry: Entry, *, stale_after: float) -> Published:
    """Publish an entry again (judging it first when it was written unjudged)."""
    if entry.judged:
        return publish(client, entry, attach=False, stale_after=stale_after)
    report, config = entry.unjudged()
    model = entry.model
    report = judge_against_history(
        client, report, model=model, batch_id=entry.batch_id, config=config
    )
    with tempfile.TemporaryDirectory() as folder:
        known = KnownBatches(client, model.name, model.version)
        data = _render(report, Path(folder) / "artifacts", dict(entry.data), config, known)
        return publish(client, Entry(Path(folder), data), attach=False, stale_after=stale_after)


@bounded_requests()
def sync_outbox(
    config: MonitoringConfig | None = None,
    *,
    outbox: str | Path | None = None,
    client: MlflowClient | None = None,
) -> list[SyncResult]:
    """Log every evaluation waiting in the outbox into the tracking store, oldest first.

    Idempotent: an entry that was logged already is recognised by its id
    (`monitoring.outbox_id`), and the batch-id lock makes a replay racing an evaluation (or
    another sync) end with one run. The first entry that fails because the store cannot be
    reached stops the replay; the rest stay `kept`.
    """
    config = config or MonitoringConfig()
    folder = Path(outbox) if outbox is not None else outbox_folder(config.tracking.outbox)
    uri = resolve_tracking_uri(config.tracking.uri)
    entries = list_entries(folder)
    if not entries:
        return []
    client = client or make_client(uri)
    clear_staging(folder)
    here = mask_url(client.tracking_uri)
    results: list[SyncResult] = []
    down: str | None = None
    for entry in entries:
        base = {"entry_id": entry.id, "description": entry.describe()}
        if entry.data.get("tracking_uri") != here:
            where = entry.data.get("tracking_uri")
            results.append(SyncResult(**base, outcome="elsewhere", reason=f"for {where}"))
            continue
        if down is not None:
            results.append(SyncResult(**base, outcome="kept", reason=down))
            continue
        try:
            published = replay(client, entry, stale_after=config.tracking.stale_after)
        except DuplicateBatchError as error:
            remove_entry(entry)
            results.append(SyncResult(**base, outcome="superseded", reason=str(error)))
            continue
        except Exception as error:  # noqa: BLE001 - kept, reported, and the next one tried
            reason = describe(error)
            if is_unreachable(error):
                down = f"the tracking store {here} cannot be reached ({reason})"
                reason = down
            results.append(SyncResult(**base, outcome="kept", reason=reason))
            continue
        remove_entry(entry)
        outcome = "already" if published.already else "logged"
        results.append(SyncResult(**base, outcome=outcome, run_id=published.run_id))
    return results
