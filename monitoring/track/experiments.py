"""Experiments and run states: get-or-create by name, list all, mark a run FAILED."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitoring.track.tags import ERROR as ERROR_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient


EXPERIMENT_KIND = "mlflow.experimentKind"
CLASSIC_KIND = "custom_model_development"
"""MLflow 3's UI opens an experiment without this tag on its GenAI overview (traces, token
usage); with it, on the runs table."""
DESCRIPTION = "mlflow.note.content"


def experiment_description(name: str) -> str:
    """What an experiment of ours holds, as the MLflow UI shows it above its runs."""
    from monitoring.track import tags

    if name == tags.REFERENCE_EXPERIMENT:
        return "Fitted references: one run each (`monitoring reference fit`), by reference id."
    if name.startswith("monitoring-locks"):
        return "Short-lived lock runs of `monitoring` (one writer per model version at a time)."
    if name.startswith("monitoring-training"):
        return "Models logged with `monitoring.log_model` before they are registered."
    return (
        "Batch runs of `monitoring`: one run per evaluated batch, named after its batch id, "
        "with `monitoring.status` (ok, quality, drift, degraded, alert) and the key figures "
        "as metrics. The run named `<model>-v<version>-history` draws them over batches; "
        "open a batch run's description for the verdict. "
        "The saved view \"Batches: status, drift, performance\" (under Views) lists the batch "
        "runs with their status, share drifted and performance."
    )


BATCH_VIEW = "batches"
VIEW_TAG = f"mlflow.sharedViewState.{BATCH_VIEW}"
"""An experiment tag that MLflow's UI reads as a saved view (`?viewStateShareKey=batches`):
the batch runs alone (so none is folded under its history run), newest first, with the
columns a reader scans: status, alerts, share drifted, the key performance figures."""
VIEW_COLUMNS = (
    "tags.`monitoring.status`",
    "tags.`monitoring.alerts`",
    "metrics.`drift/dataset/share_drifted`",
    "metrics.`perf/accuracy`",
    "metrics.`perf/roc_auc`",
    "metrics.`perf/rmse`",
    "metrics.`perf_est/accuracy`",
    "tags.`monitoring.batch_time_start`",
    "tags.`monitoring.model_version`",
)


def batch_view_state() -> str:
    """The saved view, as MLflow 3.17's UI stores one (an envelope with its name and the
    runs page's state as JSON): it is listed under "Views" and opened by its share key."""
    import json
    import time

    state = {
        "searchFilter": "tags.`monitoring.kind` = 'batch'",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": list(VIEW_COLUMNS),
    }
    now = int(time.time() * 1000)
    return json.dumps(
        {
            "name": "Batches: status, drift, performance",
            "createdAt": now,
            "updatedAt": now,
            "state": json.dumps(state),
        }
    )


def _is_batch_experiment(name: str) -> bool:
    from monitoring.track import tags

    return name != tags.REFERENCE_EXPERIMENT and not name.startswith(
        ("monitoring-locks", "monitoring-training")
    )


LOCAL_UI = "http://127.0.0.1:5000"
"""Where `mlflow ui` serves by default."""


def runs_page(tracking_uri: str, experiment: str, *, view: bool = True) -> str:
    """The experiment's runs table in the MLflow UI. `workflowType=machine_learning` makes
    MLflow 3.17 open it on its runs rather than its GenAI overview (that switch, not
    `mlflow.experimentKind`, decides it there); `view` opens the batch view (`VIEW_TAG`);
    a local store is shown by `mlflow ui`."""
    base = (
        tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
    )
    if view:
        return f"{base}/#/{view_route(experiment)}"
    return f"{base}/#/experiments/{experiment}?workflowType=machine_learning"


def view_route(experiment: str) -> str:
    """The route (after `#/`) of the experiment's batch view: its runs tab, opened on the
    saved view (a share key on the experiment route alone is ignored by MLflow 3.17)."""
    return (
        f"experiments/{experiment}/runs?viewStateShareKey={BATCH_VIEW}"
        "&workflowType=machine_learning"
    )


def report_route(experiment: str, run_id: str) -> str:
    """The route (after `#/`) of a batch run's `report.html` in MLflow's artifact viewer."""
    return f"experiments/{experiment}/runs/{run_id}/artifacts/report.html"


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (a concurrent creation is fine),
    with `mlflow.experimentKind` and a description (`experiment_description`); an older
    experiment without them gets them."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        if EXPERIMENT_KIND not in found.tags:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, CLASSIC_KIND)
            if DESCRIPTION not in found.tags:
                client.set_experiment_tag(
                    found.experiment_id, DESCRIPTION, experiment_description(name)
                )
        if _is_batch_experiment(name) and VIEW_TAG not in found.tags:
            client.set_experiment_tag(found.experiment_id, VIEW_TAG, batch_view_state())
        return found.experiment_id
    created = {EXPERIMENT_KIND: CLASSIC_KIND, DESCRIPTION: experiment_description(name)}
    if _is_batch_experiment(name):
        created[VIEW_TAG] = batch_view_state()
    try:
        return client.create_experiment(name, tags=created)
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def all_experiments(client: MlflowClient) -> list:
    """Every active experiment, page by page."""
    found, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def mark_failed(client: MlflowClient, run_id: str, error: BaseException) -> None:
    """Best effort: mark the run FAILED with the reason, never hide the original error."""
    try:
        client.set_tag(run_id, ERROR_TAG, f"{type(error).__name__}: {error}"[:5000])
        client.set_terminated(run_id, "FAILED")
    except Exception:  # noqa: BLE001 - the store may be the thing that failed
        pass
