"""Drift histories in the MLflow UI: one parent run per model version.

MLflow draws a metric with one value per run as one bar per run, never a line across
runs. So each model version gets a history run (tag `monitoring.kind=history`) whose metric
history holds each batch's key figures at step = the batch's sequence number; each batch
run names it in its tag `monitoring.history_run` (not `mlflow.parentRunId`: MLflow's runs
table would fold every batch run under it, behind "Expand rows"). Its tag
`monitoring.history_digest` is a digest of the ordered batch run ids it was built from: a
new batch appended in order adds one step; a replaced or out-of-order batch rebuilds the
history run from the batch runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.bounds import is_unreachable
from monitoring.track.history import read_batch_runs
from monitoring.track.history_table import (
    HISTORY_DIGEST,
    TABLE_DIGEST,
    replace_table,
    upload_table,
)
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

HISTORY_COUNT = "monitoring.history_count"
HISTORY_LAYOUT = "monitoring.history_layout"
LAYOUT = "2"  # batch-level figures under `batch*/`; a history run of another layout is rebuilt
PARENT = "mlflow.parentRunId"  # set on batch runs by layout 1, removed when rebuilt
HISTORY_RUN = "monitoring.history_run"  # on each batch run: its version's history run
ALERT_METRIC = "batch/alert"
LOG_BATCH_LIMIT = 1000
_RENAMED = (
    ("drift/dataset/", "batch/"),
    ("perf/", "batch_perf/"),
    ("perf_est/", "batch_perf_est/"),
    ("perf_est_error/", "batch_perf_est/error_"),
)


def history_key(key: str) -> str:
    """The history run's name for a batch run's metric key. MLflow's run page orders chart
    sections by name, so the batch-level figures go first: `batch/` (`alert` and dataset
    drift), `batch_perf/` (realized performance), `batch_perf_est/` (estimated, with its
    bounds and errors), then `data/` and the per-feature `drift/<feature>/` sections: the
    run opens on what decides a status."""
    for prefix, renamed in _RENAMED:
        if key.startswith(prefix):
            return renamed + key[len(prefix) :]
    return key


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
    out = [
        Metric(history_key(k), float(row[k]), stamp, step) for k in keys if pd.notna(row.get(k))
    ]
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
    table: bool = True,
) -> str:
    """Bring the version's history run up to date with its batch runs; returns its id.

    `known`: the version's batch runs as this process knows them (`KnownBatches`), which
    spares reading them when the history run was built from all of them but the last; when
    it was not, the store is read. `table`: also rewrite the run's `batches.parquet` (a
    backfill writes it once, at its end, with `write_history_table`).
    """
    runs = order_batches(
        known
        if known is not None and not rebuild
        else read_batch_runs(client, model_name, versions=[version])
    )
    run_ids = runs["run_id"].tolist()
    digest = history_digest(run_ids)
    parent = _tidy(client, experiment_id, model_name, version, digest)
    keys = history_keys(runs)
    if parent is not None and not rebuild and parent.data.tags.get(HISTORY_LAYOUT) == LAYOUT:
        stored = parent.data.tags.get(HISTORY_DIGEST)
        if stored == digest:
            if table and parent.data.tags.get(TABLE_DIGEST) != digest:
                _finish_tags(client, parent.info.run_id, runs, digest, table=True)
            return parent.info.run_id
        if stored == history_digest(run_ids[:-1]):
            last = runs.iloc[-1]
            _log(client, parent.info.run_id, _metrics_for(last, keys, int(last["batch_seq"])))
            client.set_tag(last["run_id"], HISTORY_RUN, parent.info.run_id)
            _finish_tags(client, parent.info.run_id, runs, digest, table=table)
            return parent.info.run_id
    if known is not None and not rebuild:  # runs this process may not have seen: read them
        return sync_history(client, experiment_id, model_name, version, table=table)
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
            HISTORY_LAYOUT: LAYOUT,
        },
    )
    parent_id = new.info.run_id
    metrics = [
        m for _, row in runs.iterrows() for m in _metrics_for(row, keys, int(row["batch_seq"]))
    ]
    _log(client, parent_id, metrics)
    unfold = parent is not None and parent.data.tags.get(HISTORY_LAYOUT) != LAYOUT
    for run_id in run_ids:
        client.set_tag(run_id, HISTORY_RUN, parent_id)
        if unfold:  # batch runs of layout 1 were nested under the history run
            _drop_parent(client, run_id)
    _finish_tags(client, parent_id, runs, digest, table=table)
    client.set_terminated(parent_id, "FINISHED", end_time=int(time.time() * 1000))
    if parent is not None:  # only now: a kill above leaves the old history in place
        client.delete_run(parent.info.run_id)
    return parent_id


def _finish_tags(
    client: MlflowClient, run_id: str, runs: pd.DataFrame, digest: str, *, table: bool
) -> None:
    """The digest and count of the batches the history run now holds, and, with `table`,
    its table of them, marked current in the same request as the digest."""
    from mlflow.entities import RunTag

    found = [
        RunTag(HISTORY_DIGEST, digest),
        RunTag(HISTORY_COUNT, str(len(runs))),
        RunTag(tags.NOTE, history_description(runs)),
    ]
    if table:
        upload_table(client, run_id, runs)
        found.append(RunTag(TABLE_DIGEST, digest))
    client.log_batch(run_id, tags=found)


def write_history_table(
    client: MlflowClient, experiment_id: str, model_name: str, version: str, runs: pd.DataFrame
) -> bool:
    """Write the version's history table from `runs` (its batch runs, as this process knows
    them) when the history run was built from exactly those runs; False when it was not,
    or when the store refused (the table stays stale and `compare` reads the batch runs)."""
    from mlflow.exceptions import MlflowException

    try:
        parent = find_history_run(client, experiment_id, model_name, version)
        if parent is None or runs.empty:
            return False
        digest = history_digest(order_batches(runs)["run_id"].tolist())
        if parent.data.tags.get(HISTORY_DIGEST) != digest:
            return False
        if parent.data.tags.get(TABLE_DIGEST) != digest:
            replace_table(client, parent.info.run_id, runs, digest)
    except Exception as error:  # the store's errors only: a bug here still raises
        if isinstance(error, MlflowException) or is_unreachable(error):
            return False
        raise
    return True


def history_description(runs: pd.DataFrame, last: int = 10) -> str:
    """The history run's description: what its charts show, how to read dates off them,
    and its last batches with their step, time and status (`runs`: ordered, with
    `batch_seq`)."""
    lines = [
        f"Drift and performance of version {runs['model_version'].iloc[0]} over its "
        f"{len(runs):,} batches, one "
        "point per batch: step = the batch's sequence number, and each point's time is the "
        "batch's time, so a chart's X axis set to *Time (wall)* (the gear above the charts) "
        "shows dates.",
        "",
        "- what decides the status: `batch/` (`alert`, 1 = in alert, and dataset drift: "
        "`share_drifted`, `drift`), `batch_perf/` (performance against the labels) and "
        "`batch_perf_est/` (performance estimated without labels, with its 95% interval)",
        "- `data/n_rows`, then each feature's decision statistic (`drift/<feature>/<method>`)",
        "- each batch run names this run in its tag `monitoring.history_run`; "
        "`batches.parquet` is the table that `monitoring compare` reads",
        "",
        f"Last {min(last, len(runs))} batches:",
        "",
        "| step | batch | batch time | status |",
        "|---:|---|---|---|",
    ]
    shown = runs.tail(last)[["batch_seq", "batch_id", "batch_time", "status"]]  # not 200+
    for row in shown.itertuples(index=False):
        when = pd.Timestamp(row.batch_time).strftime("%Y-%m-%d %H:%M")
        lines.append(f"| {row.batch_seq} | {row.batch_id} | {when} | {row.status} |")
    return "\n".join(lines)


def _drop_parent(client: MlflowClient, run_id: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # a run that never had it
        client.delete_tag(run_id, PARENT)
