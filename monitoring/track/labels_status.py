"""A batch run's status and alerts after its labels arrived: the realized figures may make
it `degraded`, and the alert rules are applied again with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

__all__ = ["Judged", "status_after_labels", "status_from_metrics"]

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


@dataclass(frozen=True)
class Judged:
    """A batch run's status and alert rule names once the labels are known."""

    run_id: str
    status: str
    alerts: tuple[str, ...]


def status_after_labels(
    client: MlflowClient, run: Run, new: Mapping[str, float], config: MonitoringConfig
) -> tuple[Judged, list[Judged]]:
    """The batch run's status and alerts once `new` metrics are logged (the configured
    rules over the version's batches, this one's metrics replaced), and the later batches
    whose alerts change with them: a `k of n` window that holds this batch looks again."""
    from monitoring.track.comparison import evaluate_rules, rule_name
    from monitoring.track.history import read_batch_runs
    from monitoring.track.trends import order_batches

    metrics = {**run.data.metrics, **new}
    rules = config.alerts.rules
    if not rules:
        return Judged(run.info.run_id, status_from_metrics(metrics, ()), ()), []
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
    names = {rule_name(r) for r in rules}
    judged: dict[str, Judged] = {}
    seq = int(trend.loc[trend["run_id"] == run.info.run_id, "batch_seq"].iloc[0])
    for _, row in trend[trend["batch_seq"] >= seq].iterrows():
        hit = found[(found["batch_id"] == row["batch_id"]) & found["alert"]]
        alerts = tuple(sorted(set(hit["rule"]) & names))
        batch_metrics = metrics if row["run_id"] == run.info.run_id else row.dropna().to_dict()
        judged[row["run_id"]] = Judged(
            row["run_id"], status_from_metrics(batch_metrics, alerts), alerts
        )
    this = judged.pop(run.info.run_id)
    before = trend.set_index("run_id")["status"]
    later = [j for j in judged.values() if j.status != before.get(j.run_id)]
    return this, later
