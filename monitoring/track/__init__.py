"""The one layer that writes to (and reads from) MLflow.

Every function takes an `MlflowClient`, so tests point it at a throw-away SQLite store.
"""

from monitoring.track.client import make_client, resolve_tracking_uri
from monitoring.track.publish import log_batch_report
from monitoring.track.reference_run import load_reference, log_reference
from monitoring.track.registry import ModelInfo, resolve_model

__all__ = [
    "ModelInfo",
    "load_reference",
    "log_batch_report",
    "log_reference",
    "make_client",
    "resolve_model",
    "resolve_tracking_uri",
]
