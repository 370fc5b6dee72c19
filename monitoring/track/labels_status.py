"""A batch run's status and alerts after its labels arrived: the realized figures may make
it `degraded`, and the alert rules are applied again with them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from monitoring.core.config import MonitoringConfig
from monitoring.evaluation.report import (
    STATUS_ALERT,
    STATUS_DEGRADED,
    STATUS_DRIFT,
    STATUS_OK,
    STATUS_QUALITY,
)
from monitoring.track import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["status_from_metrics", "status_after_labels"]

_DRIFT_FLAGS = (
    "drift/dataset/drift",
    "drift/dataset/prediction_drift",
    "drift/dataset/target_drift",
)


def status_from_metrics(metrics: Mapping[str, float], alerts: tuple[str, ...]) -> str:
    """A batch run's status from its metrics, as `BatchReport.status` decides it."""
    if alerts:
        return STATUS_ALERT
    if metrics.get("perf/degraded", 0.0) > 0:
        return STATUS_DEGRADED
    if any(metrics.get(flag, 0.0) > 0 for flag in _DRIFT_FLAGS):
        return STATUS_DRIFT
    return STATUS_QUALITY if metrics.get("quality/dataset/flagged", 0.0) > 0 else STATUS_OK


def status_after_labels(
    client: MlflowClient, run: Run, new: Mapping[str, float], config: MonitoringConfig
) -> tuple[str, tuple[str, ...]]:
    """(status, alert rule names) of the batch run once `new` metrics are logged: the
    configured rules over the version's batches, this one's metrics replaced."""
    from monitoring.track.comparison import evaluate_rules, rule_name
    from monitoring.track.history import read_batch_runs
    from monitoring.track.trends import order_batches

    metrics = {**run.data.metrics, **new}
    alerts: tuple[str, ...] = ()
    rules = config.alerts.rules
    if rules:
        name = run.data.tags[tags.MODEL_NAME]
        version = run.data.tags.get(tags.MODEL_VERSION, tags.UNVERSIONED)
        runs = read_batch_runs(client, name, versions=[version])
        mine = runs["run_id"] == run.info.run_id
        for key, value in new.items():
            if key not in runs:
                runs[key] = float("nan")
            runs.loc[mine, key] = value
        trend = order_batches(runs)
        found = evaluate_rules(trend, rules)
        batch = run.data.tags.get(tags.BATCH_ID)
        hit = found[(found["batch_id"] == batch) & found["alert"]]
        alerts = tuple(sorted(set(hit["rule"]) & {rule_name(r) for r in rules}))
    return status_from_metrics(metrics, alerts), alerts
