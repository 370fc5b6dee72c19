"""The history run's table of its batch runs, so that `monitoring compare` reads one file
per model version instead of every batch run through the server's search.

Searching 2,000 batch runs through a one-worker tracking server costs seconds: the server
builds every run's metrics, params and tags as JSON. The version's history run is brought
up to date at each batch anyway, so it also keeps `batches.parquet`, one row per finished
batch run exactly as `read_batch_runs` returns them (every metric, not only the ones drawn).

A table is trusted only when its tag `monitoring.history_table` equals the history run's
digest of the ordered batch run ids (`monitoring.history_digest`), and when the version's
newest finished batch run is in it (one search with one result): a history run that a
failed evaluation left behind is caught, and that version's batch runs are read instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.errors import NoRunsError
from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.experiments import all_experiments
from monitoring.track.history import (
    BASE_COLUMNS,
    batch_runs_filter,
    iter_runs,
    read_batch_runs,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

TABLE_FILE = "batches.parquet"
TABLE_DIGEST = "monitoring.history_table"
HISTORY_DIGEST = "monitoring.history_digest"


def table_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` (a `read_batch_runs` table, perhaps ordered with `batch_seq`) as it is stored."""
    metrics = sorted(c for c in runs.columns if c not in BASE_COLUMNS and c != "batch_seq")
    frame = runs[BASE_COLUMNS + metrics].reset_index(drop=True)
    return frame.astype({"model_version": str, "batch_id": str, "status": str, "run_id": str})


def upload_table(client: MlflowClient, run_id: str, runs: pd.DataFrame) -> None:
    """Write `batches.parquet` into the history run; the caller then sets `TABLE_DIGEST`
    (with the history digest, in the same request), so a kill in between leaves it stale."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TABLE_FILE
        table_frame(runs).to_parquet(path, index=False)
        client.log_artifact(run_id, str(path))


def replace_table(client: MlflowClient, run_id: str, runs: pd.DataFrame, digest: str) -> None:
    """Rewrite the table of a history run built from `digest`'s batch runs: marked stale
    while it is written, current after, so a kill in between never leaves it wrong."""
    client.set_tag(run_id, TABLE_DIGEST, "")
    upload_table(client, run_id, runs)
    client.set_tag(run_id, TABLE_DIGEST, digest)


@dataclass(frozen=True)
class VersionRuns:
    """One version's batch runs for `compare`, and where they were read from."""

    version: str
    runs: pd.DataFrame
    from_table: bool
    why: str = ""


def history_runs_of(client: MlflowClient, experiment_ids: list[str], model_name: str) -> dict:
    """The newest FINISHED history run of each version of `model_name`, by version."""
    found: dict[str, Run] = {}
    query = (
        f"tags.`{tags.KIND}` = '{tags.KIND_HISTORY}' and "
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}' and "
        "attributes.status = 'FINISHED'"
    )
    for run in iter_runs(client, experiment_ids, query):  # oldest first: the newest stays
        found[run.data.tags.get(tags.MODEL_VERSION, tags.UNVERSIONED)] = run
    return found


def _newest_batch_run(client: MlflowClient, ids: list[str], model_name: str, version: str):
    page = client.search_runs(
        ids,
        filter_string=batch_runs_filter(model_name, version),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return page[0] if page else None


def _stored_table(client: MlflowClient, history: Run) -> pd.DataFrame | None:
    digest = history.data.tags.get(TABLE_DIGEST)
    if not digest or digest != history.data.tags.get(HISTORY_DIGEST):
        return None
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(history.info.run_id, TABLE_FILE, folder)
        except Exception:  # noqa: BLE001 - a missing or unreadable table: read the runs
            return None
        return pd.read_parquet(path)


def _version_runs(
    client: MlflowClient, ids: list[str], model_name: str, version: str, history: Run | None
) -> VersionRuns:
    table = None if history is None else _stored_table(client, history)
    if table is None:
        why = "no history run" if history is None else "its history table is missing or stale"
    else:
        newest = _newest_batch_run(client, ids, model_name, version)
        if newest is None or newest.info.run_id in set(table["run_id"]):
            return VersionRuns(version, table, True)
        why = f"its newest batch run {newest.info.run_id} is not in its history table"
    try:
        runs = read_batch_runs(client, model_name, versions=[version], experiment_ids=ids)
    except NoRunsError:
        runs = pd.DataFrame(columns=BASE_COLUMNS)
    return VersionRuns(version, runs, False, why)


def read_for_compare(
    client: MlflowClient,
    model_name: str,
    *,
    versions: Sequence[str] | None = None,
    from_runs: bool = False,
) -> list[VersionRuns]:
    """Each version's batch runs: from its history run's table when it is up to date, else
    (or with `from_runs`) from the batch runs themselves. Without `versions`, the versions
    are those with a history run; `from_runs` finds every version from the batch runs."""
    ids = [e.experiment_id for e in all_experiments(client)]
    if from_runs:
        runs = read_batch_runs(client, model_name, versions=versions, experiment_ids=ids)
        return [
            VersionRuns(str(v), part, False, "asked to read the batch runs")
            for v, part in runs.groupby("model_version", sort=False)
        ]
    histories = history_runs_of(client, ids, model_name)
    wanted = list(versions) if versions else list(histories)
    if not wanted:  # no history run at all (an older store): the batch runs are the truth
        return read_for_compare(client, model_name, from_runs=True)
    found = [_version_runs(client, ids, model_name, v, histories.get(v)) for v in wanted]
    found = [f for f in found if not f.runs.empty]
    if not found:
        which = f" version(s) {', '.join(wanted)}" if versions else ""
        raise NoRunsError(f"no finished batch runs for model {model_name!r}{which}")
    return found


def combined(parts: Sequence[VersionRuns]) -> pd.DataFrame:
    """The versions' runs as one `read_batch_runs` table."""
    frame = pd.concat([p.runs for p in parts], ignore_index=True)
    return frame[BASE_COLUMNS + sorted(c for c in frame.columns if c not in BASE_COLUMNS)]
