"""Read batch runs back from the tracking store, page by page, into one tidy table.

One `search_runs` request per page of runs (and per requested model version): the number
of requests grows with runs, never with metrics per run, because a search already returns
every run's latest metric values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.errors import NoRunsError
from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.experiments import all_experiments

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

PAGE_SIZE = 1000
BASE_COLUMNS = ["model_version", "batch_id", "batch_time", "status", "run_id", "start_time"]


def batch_runs_filter(model_name: str, version: str | None = None) -> str:
    parts = [
        f"tags.`{tags.KIND}` = '{tags.KIND_BATCH}'",
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}'",
        "attributes.status = 'FINISHED'",
    ]
    if version is not None:
        parts.append(f"tags.`{tags.MODEL_VERSION}` = '{quote_value(version)}'")
    return " and ".join(parts)


def iter_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> Iterator[Run]:
    """Every matching run once, oldest first (tokens are offsets: de-duplicate by id)."""
    seen: set[str] = set()
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=PAGE_SIZE,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        for run in page:
            if run.info.run_id not in seen:
                seen.add(run.info.run_id)
                yield run
        token = page.token
        if not token:
            return


def run_row(run: Run) -> dict[str, object]:
    """One batch run as a row of `read_batch_runs`'s table."""
    run_tags = run.data.tags
    start = pd.Timestamp(run.info.start_time, unit="ms")
    batch_time = run_tags.get(tags.BATCH_TIME_START)
    return {
        "model_version": run_tags.get(tags.MODEL_VERSION, tags.UNVERSIONED),
        "batch_id": run_tags.get(tags.BATCH_ID, run.info.run_id),
        "batch_time": pd.Timestamp(batch_time) if batch_time else start,
        "status": run_tags.get(tags.STATUS, ""),
        "run_id": run.info.run_id,
        "start_time": start,
        **run.data.metrics,
    }


def read_batch_runs(
    client: MlflowClient,
    model_name: str,
    *,
    versions: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The finished batch runs of `model_name` (all versions, or the given ones).

    Columns: model_version, batch_id, batch_time, status, run_id, start_time, then one
    column per metric key. Searches every experiment unless `experiment_ids` is given
    (runs launched with `mlflow run` may live outside the model's experiment).
    """
    ids = (
        list(experiment_ids)
        if experiment_ids
        else [e.experiment_id for e in all_experiments(client)]
    )
    rows: list[dict[str, object]] = []
    for version in versions or [None]:
        for run in iter_runs(client, ids, batch_runs_filter(model_name, version)):
            rows.append(run_row(run))
    if not rows:
        which = f" version(s) {', '.join(versions)}" if versions else ""
        raise NoRunsError(f"no finished batch runs for model {model_name!r}{which}")
    frame = pd.DataFrame(rows)
    return frame[BASE_COLUMNS + sorted(c for c in frame.columns if c not in BASE_COLUMNS)]
