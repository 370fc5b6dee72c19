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
        "as metrics. The run named `<model>-v<version>-history` draws them over batches "
        "(its batch runs are nested below it); open a batch run's description for the verdict."
    )


LOCAL_UI = "http://127.0.0.1:5000"
"""Where `mlflow ui` serves by default."""


def runs_page(tracking_uri: str, experiment: str) -> str:
    """The experiment's runs table in the MLflow UI. `workflowType=machine_learning` makes
    MLflow 3.17 open it on its runs rather than its GenAI overview (that switch, not
    `mlflow.experimentKind`, decides it there); a local store is shown by `mlflow ui`."""
    base = (
        tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
    )
    return f"{base}/#/experiments/{experiment}?workflowType=machine_learning"


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
        return found.experiment_id
    try:
        return client.create_experiment(
            name,
            tags={EXPERIMENT_KIND: CLASSIC_KIND, DESCRIPTION: experiment_description(name)},
        )
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
