"""Log and register a PyTorch model so batches can be tied to (and run) its version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from monitoring.track.experiments import experiment_id
from monitoring.track.registry import ModelInfo, resolve_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRAINING_EXPERIMENT = "monitoring-training"


def register_pytorch_model(
    client: MlflowClient,
    model: Any,
    *,
    name: str,
    metrics: Mapping[str, float] | None = None,
    pip_requirements: list[str] | None = None,
) -> ModelInfo:
    """Log `model` in a training run (pickle format, so custom methods survive) and
    register it as a new version of `name`."""
    import mlflow
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    requirements = pip_requirements or [f"torch=={torch.__version__.split('+')[0]}"]
    with mlflow.start_run(
        experiment_id=experiment_id(client, TRAINING_EXPERIMENT), run_name=f"train-{name}"
    ):
        logged = mlflow.pytorch.log_model(
            model, name="model", serialization_format="pickle", pip_requirements=requirements
        )
        if metrics:
            mlflow.log_metrics(dict(metrics))
        version = mlflow.register_model(logged.model_uri, name)
    return resolve_model(client, model_uri=f"models:/{name}/{version.version}")
