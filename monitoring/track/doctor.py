"""Find (and fix) what interrupted or concurrent evaluations can leave in a tracking store.

    orphan-run        a batch run left RUNNING by an evaluation that is gone
    orphan-lock       a lock run (`monitoring-locks`) left RUNNING by a process that is gone
    duplicate-batch   two FINISHED runs of one batch id of one model version
    orphan-history    a history run left RUNNING by an interrupted rebuild
    extra-history     several history runs of one model version
    history-behind    FINISHED batches that the version's history run does not hold
    outbox            an evaluation waiting in this machine's outbox (`monitoring sync`)

With `fix`, each version's repairs run under its lock (`claim.VersionLock`), so nothing
being logged right now is touched: under the lock, a RUNNING batch run is one that nobody
writes, and is marked FAILED with `monitoring.error`; of duplicates the first FINISHED run
stays and the others are marked FAILED (reason `duplicate`); the history run is brought up
to date. An orphan lock run is marked FAILED and deleted. Outbox entries are left to
`monitoring sync`.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from monitoring.core.config import MonitoringConfig
from monitoring.errors import NoRunsError
from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.bounds import bounded_requests
from monitoring.track.claim import (
    KIND_LOCK,
    LOCK_EXPERIMENT,
    VersionLock,
    abandoned_reason,
    mark_abandoned,
)
from monitoring.track.client import make_client, resolve_tracking_uri
from monitoring.track.experiments import all_experiments
from monitoring.track.history import iter_runs, read_batch_runs
from monitoring.track.history_runs import (
    HISTORY_DIGEST,
    HISTORY_RUN,
    find_history_runs,
    history_digest,
    sync_history,
)
from monitoring.track.outbox import list_entries, outbox_folder
from monitoring.track.trends import order_batches

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

ORPHAN_RUN, ORPHAN_LOCK, DUPLICATE = "orphan-run", "orphan-lock", "duplicate-batch"
ORPHAN_HISTORY, EXTRA_HISTORY, HISTORY_BEHIND = "orphan-history", "extra-history", "history-behind"
OUTBOX = "outbox"


@dataclass(frozen=True)
class Finding:
    """One inconsistency: its kind (see the module docstring), where, what, and whether
    `fix` repaired it."""

    kind: str
    model_name: str
    version: str
    detail: str
    run_id: str | None = None
    fixed: bool = False

    def line(self) -> str:
        where = f"{self.model_name} version {self.version}" if self.model_name else "here"
        run = f", run {self.run_id}" if self.run_id else ""
        return f"{self.kind}: {where}{run}: {self.detail}{' [fixed]' if self.fixed else ''}"


def _version(run: Run) -> tuple[str, str]:
    found = run.data.tags
    return found.get(tags.MODEL_NAME, ""), found.get(tags.MODEL_VERSION, tags.UNVERSIONED)


def _kind_filter(kind: str, model_name: str | None) -> str:
    query = f"tags.`{tags.KIND}` = '{kind}'"
    if model_name:
        query += f" and tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}'"
    return query


def _batch_findings(runs: list[Run], stale_after: float) -> list[Finding]:
    found: list[Finding] = []
    by_batch: dict[tuple[str, str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        name, version = _version(run)
        batch = run.data.tags.get(tags.BATCH_ID, "?")
        if run.info.status == "RUNNING":
            why = abandoned_reason(run, stale_after) or "RUNNING, its evaluation may be logging it"
            found.append(
                Finding(ORPHAN_RUN, name, version, f"batch {batch}: {why}", run.info.run_id)
            )
        elif run.info.status == "FINISHED":
            by_batch[(run.info.experiment_id, name, version, batch)].append(run)
    for (_, name, version, batch), group in sorted(by_batch.items()):
        first = min(group, key=lambda r: (r.info.start_time or 0, r.info.run_id))
        for run in group:
            if run is not first:
                detail = f"batch {batch} is also run {first.info.run_id}, which stays"
                found.append(Finding(DUPLICATE, name, version, detail, run.info.run_id))
    return found


def _history_findings(
    client: MlflowClient, name: str, version: str, experiment: str
) -> list[Finding]:
    found: list[Finding] = []
    history = find_history_runs(client, experiment, name, version)
    for run in history:
        if run.info.status == "RUNNING":
            detail = "left RUNNING by an interrupted rebuild"
            found.append(Finding(ORPHAN_HISTORY, name, version, detail, run.info.run_id))
    done = [r for r in history if r.info.status == "FINISHED"]
    if len(done) > 1:
        ids = ", ".join(r.info.run_id for r in done)
        found.append(Finding(EXTRA_HISTORY, name, version, f"{len(done)} history runs: {ids}"))
    try:
        batches = order_batches(read_batch_runs(client, name, versions=[version]))
    except NoRunsError:
        return found
    parent = done[0] if done else None
    if parent is not None and parent.data.tags.get(HISTORY_DIGEST) == history_digest(
        batches["run_id"].tolist()
    ):
        return found
    held = set() if parent is None else _children(client, parent)
    missing = [
        b for b, r in zip(batches["batch_id"], batches["run_id"], strict=True) if r not in held
    ]
    shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
    detail = f"{len(missing)} batch(es) missing: {shown}" if missing else "out of order"
    found.append(Finding(HISTORY_BEHIND, name, version, detail, parent and parent.info.run_id))
    return found


def _children(client: MlflowClient, parent: Run) -> set[str]:
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{HISTORY_RUN}` = '{parent.info.run_id}'",
        max_results=50000,
    )
    return {r.info.run_id for r in runs}


def _lock_findings(client: MlflowClient, model_name: str | None, stale_after: float):
    """Lock runs whose owner is gone (a held lock is no finding)."""
    found = client.get_experiment_by_name(LOCK_EXPERIMENT)
    if found is None:
        return []
    out = []
    query = _kind_filter(KIND_LOCK, model_name) + " and attributes.status = 'RUNNING'"
    for run in iter_runs(client, [found.experiment_id], query):
        reason = abandoned_reason(run, stale_after)
        if reason is not None:
            out.append(Finding(ORPHAN_LOCK, *_version(run), reason, run.info.run_id))
    return out


def _fix_version(
    client: MlflowClient,
    name: str,
    version: str,
    experiment: str | None,
    findings: list[Finding],
    stale_after: float,
) -> list[Finding]:
    """Repair one version's findings under its lock; the findings, marked fixed."""
    with VersionLock(client, name, version, stale_after=stale_after):
        for finding in findings:
            if finding.kind == ORPHAN_RUN and finding.run_id:
                run = client.get_run(finding.run_id)
                if run.info.status == "RUNNING":  # under the lock: nobody writes it
                    reason = f"abandoned: {finding.detail} (monitoring doctor --fix)"
                    mark_abandoned(client, finding.run_id, reason, delete=False)
            elif finding.kind == DUPLICATE and finding.run_id:
                reason = f"duplicate: {finding.detail} (monitoring doctor --fix)"
                client.set_tag(finding.run_id, tags.ERROR, reason)
                client.set_terminated(finding.run_id, "FAILED")
        if experiment is not None:
            with suppress(NoRunsError):  # every batch of the version was a duplicate
                sync_history(client, experiment, name, version)
    return [replace(f, fixed=True) for f in findings]


@bounded_requests()
def doctor(
    config: MonitoringConfig | None = None,
    *,
    model_name: str | None = None,
    fix: bool = False,
    client: MlflowClient | None = None,
) -> list[Finding]:
    """The inconsistencies of the tracking store (of `model_name`'s runs, or all), and the
    evaluations waiting in this machine's outbox; with `fix`, repaired (module docstring)."""
    config = config or MonitoringConfig()
    stale_after = config.tracking.stale_after
    client = client or make_client(resolve_tracking_uri(config.tracking.uri))
    experiments = [e.experiment_id for e in all_experiments(client)]
    runs = list(iter_runs(client, experiments, _kind_filter(tags.KIND_BATCH, model_name)))
    findings = _batch_findings(runs, stale_after)
    places = {_version(r): r.info.experiment_id for r in runs if r.info.status == "FINISHED"}
    for (name, version), experiment in sorted(places.items()):
        findings += _history_findings(client, name, version, experiment)
    locks = _lock_findings(client, model_name, stale_after)
    if fix:
        for lock in locks:
            mark_abandoned(client, lock.run_id or "", f"lock {lock.detail}", delete=True)
        locks = [replace(f, fixed=True) for f in locks]
        grouped: dict[tuple[str, str], list[Finding]] = defaultdict(list)
        for finding in findings:
            grouped[(finding.model_name, finding.version)].append(finding)
        findings = []
        for (name, version), group in sorted(grouped.items()):
            experiment = places.get((name, version))
            findings += _fix_version(client, name, version, experiment, group, stale_after)
    waiting = [
        Finding(OUTBOX, e.model.name, e.model.version, f"batch {e.batch_id} waits in {e.folder}")
        for e in list_entries(outbox_folder(config.tracking.outbox))
    ]
    return findings + locks + waiting
