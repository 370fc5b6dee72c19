"""Drift histories in the MLflow UI: one parent run per model version.

MLflow draws a metric with one value per run as one bar per run, never a line across
runs. So each model version gets a parent run (tag `monitoring.kind=history`) whose metric
history holds each batch's key figures at step = the batch's sequence number, and the
batch runs are nested under it. Its tag `monitoring.history_digest` is a digest of the
ordered batch run ids it was built from: a new batch appended in order adds one step; a
replaced or out-of-order batch rebuilds the parent from the batch runs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.history import read_batch_runs
from monitoring.track.trends import (
    DATASET_PREFIX,
    ESTIMATE_BOUND_SUFFIXES,
    decision_metrics,
    is_estimate_key,
    is_performance_key,
    order_batches,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

HISTORY_DIGEST = "monitoring.history_digest"
HISTORY_COUNT = "monitoring.history_count"
PARENT = "mlflow.parentRunId"
ALERT_METRIC = "status/alert"
LOG_BATCH_LIMIT = 1000


def history_digest(run_ids: Sequence[str]) -> str:
    """The digest of the ordered batch run ids a history run was built from."""
    return hashlib.sha256(",".join(run_ids).encode()).hexdigest()[:32]


def history_keys(runs: pd.DataFrame) -> list[str]:
    """Key figures drawn over batches: batch-level drift, performance (realized, and
    estimated with its interval), each feature's decision statistic, and the row count."""
    keys = [c for c in runs.columns if str(c).startswith(DATASET_PREFIX)]
    keys += [c for c in runs.columns if is_performance_key(c)]
    keys += [c for c in runs.columns if is_estimate_key(c) or _is_bound(c)]
    keys += decision_metrics(runs, drifted_only=False)
    keys += [c for c in ("data/n_rows",) if c in runs.columns]
    return keys


def _is_bound(key: object) -> bool:
    """`perf_est/<metric>_lower` or `_upper`: the history draws the band beside the value."""
    name = str(key)
    return name.startswith("perf_est/") and name.endswith(ESTIMATE_BOUND_SUFFIXES)


def _metrics_for(row: pd.Series, keys: Sequence[str], step: int):
    from mlflow.entities import Metric

    stamp = int(pd.Timestamp(row["batch_time"]).timestamp() * 1000)
    out = [Metric(k, float(row[k]), stamp, step) for k in keys if pd.notna(row.get(k))]
    out.append(Metric(ALERT_METRIC, float(row["status"] == "alert"), stamp, step))
    return out


def history_filter(model_name: str, version: str) -> str:
    return (
        f"tags.`{tags.KIND}` = '{tags.KIND_HISTORY}' and "
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}' and "
        f"tags.`{tags.MODEL_VERSION}` = '{quote_value(version)}'"
    )


def find_history_runs(client: MlflowClient, experiment_id: str, model_name: str, version: str):
    """Every active history run of the version, whatever its status, newest first."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=history_filter(model_name, version),
            max_results=1000,
            order_by=["attributes.start_time DESC"],
        )
    )


def find_history_run(client: MlflowClient, experiment_id: str, model_name: str, version: str):
    """The version's history run: the newest FINISHED one (None when there is none)."""
    finished = [
        r
        for r in find_history_runs(client, experiment_id, model_name, version)
        if r.info.status == "FINISHED"
    ]
    return finished[0] if finished else None


def _tidy(client: MlflowClient, experiment_id: str, model_name: str, version: str, digest: str):
    """The history run to keep, the others deleted: a RUNNING one is a rebuild that a killed
    process left (the caller holds the version's lock); of several FINISHED ones (left by
    versions without the lock) the one that is up to date, else the newest, stays."""
    runs = find_history_runs(client, experiment_id, model_name, version)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    current = [r for r in finished if r.data.tags.get(HISTORY_DIGEST) == digest]
    keep = (current or finished or [None])[0]
    for run in runs:
        if run is not keep:
            client.delete_run(run.info.run_id)
    return keep


def _log(client: MlflowClient, run_id: str, metrics: list) -> None:
    for start in range(0, len(metrics), LOG_BATCH_LIMIT):
        client.log_batch(run_id, metrics=metrics[start : start + LOG_BATCH_LIMIT])


def sync_history(
    client: MlflowClient,
    experiment_id: str,
    model_name: str,
    version: str,
    *,
    rebuild: bool = False,
    known: pd.DataFrame | None = None,
) -> str:
    """Bring the version's history run up to date with its batch runs; returns its id.

    `known`: the version's batch runs as this process knows them (`KnownBatches`), which
    spares reading them when the history run was built from all of them but the last; when
    it was not, the store is read.
    """
    from mlflow.entities import RunTag

    runs = order_batches(
        known
        if known is not None and not rebuild
        else read_batch_runs(client, model_name, versions=[version])
    )
    run_ids = runs["run_id"].tolist()
    digest = history_digest(run_ids)
    parent = _tidy(client, experiment_id, model_name, version, digest)
    keys = history_keys(runs)
    if parent is not None and not rebuild:
        stored = parent.data.tags.get(HISTORY_DIGEST)
        if stored == digest:
            return parent.info.run_id
        if stored == history_digest(run_ids[:-1]):
            last = runs.iloc[-1]
            _log(client, parent.info.run_id, _metrics_for(last, keys, int(last["batch_seq"])))
            client.set_tag(last["run_id"], PARENT, parent.info.run_id)
            client.log_batch(
                parent.info.run_id,
                tags=[
                    RunTag(HISTORY_DIGEST, digest),
                    RunTag(HISTORY_COUNT, str(len(run_ids))),
                ],
            )
            return parent.info.run_id
    if known is not None and not rebuild:  # runs this process may not have seen: read them
        return sync_history(client, experiment_id, model_name, version)
    name = (
        f"{model_name}-v{version}-history"
        if version != tags.UNVERSIONED
        else (f"{model_name}-history")
    )
    new = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            tags.KIND: tags.KIND_HISTORY,
            tags.MODEL_NAME: model_name,
            tags.MODEL_VERSION: version,
            tags.NOTE: f"Drift and performance of {model_name} version {version} over its "
            "batches (step = batch sequence number). Batch runs are nested below.",
        },
    )
    parent_id = new.info.run_id
    metrics = [
        m for _, row in runs.iterrows() for m in _metrics_for(row, keys, int(row["batch_seq"]))
    ]
    _log(client, parent_id, metrics)
    for run_id in run_ids:
        client.set_tag(run_id, PARENT, parent_id)
    client.log_batch(
        parent_id,
        tags=[
            RunTag(HISTORY_DIGEST, digest),
            RunTag(HISTORY_COUNT, str(len(run_ids))),
        ],
    )
    client.set_terminated(parent_id, "FINISHED", end_time=int(time.time() * 1000))
    if parent is not None:  # only now: a kill above leaves the old history in place
        client.delete_run(parent.info.run_id)
    return parent_id
