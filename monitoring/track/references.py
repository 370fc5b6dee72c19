"""The forms a reference takes wherever the public API takes one, and `monitoring.evaluate`.

Every public function that takes a reference (`evaluate`, `evaluate_and_log`) accepts:

    a fitted `Reference`                       (`fit_reference`, `load_reference_files`)
    a DataFrame, a path, a folder or a Source  fitted from in the same call
    a stored reference id                      16 hex digits, as `monitoring reference fit`
                                               prints: loaded from the tracking store

`evaluation.batch.evaluate` sits below the tracking layer and cannot load a stored id, so
the public `evaluate` is this thin function: it resolves an id (MLflow is imported only
then) and hands the rest to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.collect.sources import Source
from monitoring.core.config import MonitoringConfig
from monitoring.evaluation.batch import evaluate as evaluate_batch
from monitoring.evaluation.report import BatchReport
from monitoring.measure.multivariate import DatasetDrift
from monitoring.measure.reference import Reference

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["REFERENCE_ID", "evaluate", "is_reference_id", "resolve_reference"]

REFERENCE_ID = re.compile(r"^[0-9a-f]{16}$")


def is_reference_id(value: object) -> bool:
    """A 16-hex-digit id that is not also the name of a file here."""
    return isinstance(value, str) and bool(REFERENCE_ID.match(value)) and not Path(value).exists()


def resolve_reference(
    reference: Reference | pd.DataFrame | str | Source,
    *,
    config: MonitoringConfig | None = None,
    client: MlflowClient | None = None,
) -> Reference | pd.DataFrame | str | Source:
    """A stored reference id loaded from the tracking store (`client`, else the store of
    `MLFLOW_TRACKING_URI` / `tracking.uri`); any other form unchanged. An unknown id is a
    NotFittedError naming it and the store."""
    if not is_reference_id(reference):
        return reference
    from monitoring.track.client import make_client, resolve_tracking_uri
    from monitoring.track.delivery import reachable
    from monitoring.track.reference_run import load_reference

    uri = (
        client.tracking_uri
        if client
        else resolve_tracking_uri((config or MonitoringConfig()).tracking.uri)
    )
    with reachable(uri, f"reference {reference} was not loaded"):
        return load_reference(client or make_client(uri), str(reference))


def evaluate(
    batch: pd.DataFrame | str | Source,
    reference: Reference | pd.DataFrame | str | Source,
    *,
    config: MonitoringConfig | None = None,
    client: MlflowClient | None = None,
    target: str | None = None,
    prediction: str | None = None,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    task: str | None = None,
    model: Any = None,
    batch_id: str | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    progress: Callable[[int], None] | None = None,
    ignored_samples: Sequence[str] = (),
    dataset_tests: Sequence[DatasetDrift] = (),
) -> BatchReport:
    """Evaluate a batch against `reference` in one streaming pass; nothing is logged.

    `reference` is a fitted Reference, data to fit one from, or a stored reference id
    (loaded through `client`, else the store of `MLFLOW_TRACKING_URI`). The roles given here
    must equal a fitted or stored reference's own (ConfigError otherwise). The other
    options (`model`, `batch_id`, `query`, `params`, `progress`, `ignored_samples`,
    `dataset_tests`) are those of `monitoring.evaluation.batch.evaluate`, documented there.
    """
    return evaluate_batch(
        batch,
        resolve_reference(reference, config=config, client=client),
        config=config,
        target=target,
        prediction=prediction,
        numerical=numerical,
        categorical=categorical,
        task=task,
        model=model,
        batch_id=batch_id,
        query=query,
        params=params,
        progress=progress,
        ignored_samples=ignored_samples,
        dataset_tests=dataset_tests,
    )
