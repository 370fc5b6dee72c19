"""Experiments and run states: get-or-create by name, list all, mark a run FAILED."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitoring.track.tags import ERROR as ERROR_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (a concurrent creation is fine)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name)
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
