"""Which tracking store to use, and a client that fails fast when it cannot be reached."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.collect.sources import mask_url
from monitoring.errors import TrackingUnreachableError

if TYPE_CHECKING:
    from mlflow import MlflowClient

HEALTH_TIMEOUT_SECONDS = 5.0


def resolve_tracking_uri(configured: str | None = None) -> str:
    """`MLFLOW_TRACKING_URI` when set, else the config's `tracking.uri`, else ./mlflow.db."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_reachable(uri: str) -> None:
    """Fail in seconds, not minutes of retries, when a tracking server does not answer."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_SECONDS)
        except requests.RequestException as error:
            raise TrackingUnreachableError(
                f"the MLflow tracking server {mask_url(uri)} cannot be reached "
                f"({type(error).__name__}); start it or set MLFLOW_TRACKING_URI"
            ) from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise TrackingUnreachableError(
                f"the tracking store {uri} is in a folder that does not exist: {folder}"
            )


def make_client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient on `uri` (resolved as in `resolve_tracking_uri`), checked first."""
    from mlflow import MlflowClient

    resolved = resolve_tracking_uri(uri)
    check_reachable(resolved)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)
