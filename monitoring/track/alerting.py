"""What a batch is judged on against the version's earlier batches, before it is logged:
its row volume (a data-quality check) and the alert rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.core.alert_rules import AlertRule
from monitoring.core.config import MonitoringConfig
from monitoring.evaluation.report import BatchReport
from monitoring.measure.quality import row_volume
from monitoring.track.batch_run import metrics_of
from monitoring.track.keys import key_map
from monitoring.track.known_batches import KnownBatches
from monitoring.track.registry import ModelInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient


def judge_against_history(
    client: MlflowClient,
    report: BatchReport,
    *,
    model: ModelInfo,
    batch_id: str,
    config: MonitoringConfig,
    known: KnownBatches | None = None,
) -> BatchReport:
    """The report with its row-volume check and the alert rules in alert at this batch,
    from the version's finished batches (`known`, else one read of the store; a batch
    being replaced is left out of its own history)."""
    earlier = (known or KnownBatches(client, model.name, model.version)).frame()
    if "batch_id" in earlier:
        earlier = earlier[earlier["batch_id"] != batch_id]
    rows = earlier["data/n_rows"].dropna() if "data/n_rows" in earlier else pd.Series([])
    volume = row_volume(report.n_rows, [int(n) for n in rows], config.quality)
    if volume is not None:
        report = dataclasses.replace(report, quality=(*report.quality, volume))
    alerts = alerts_for_batch(
        report, earlier, model=model, batch_id=batch_id, rules=config.alerts.rules
    )
    return dataclasses.replace(report, alerts=alerts)


def alerts_for_batch(
    report: BatchReport,
    earlier: pd.DataFrame,
    *,
    model: ModelInfo,
    batch_id: str,
    rules: Sequence[AlertRule],
) -> tuple[str, ...]:
    """Names of the rules in alert at this batch, given the version's earlier batches.

    The batch takes its place by batch time (then batch id) among the earlier ones, so a
    batch evaluated out of order is judged on the batches before it.
    """
    from monitoring.track.comparison import evaluate_rules, rule_name
    from monitoring.track.trends import order_batches

    if not rules:
        return ()
    keys = key_map([c.column for c in report.columns])
    batch_time = pd.Timestamp(report.time_range[0]) if report.time_range else pd.Timestamp.now()
    used = {rule.metric for rule in rules}
    current = {
        "model_version": model.version,
        "batch_id": batch_id,
        "batch_time": batch_time,
        "status": report.status,
        "run_id": "",
        **{k: v for k, v in metrics_of(report, keys).items() if k in used},
    }
    base = ("model_version", "batch_id", "batch_time", "status", "run_id", "start_time")
    earlier = earlier[[c for c in earlier.columns if c in base or c in used]]  # not 200+
    trend = order_batches(pd.concat([earlier, pd.DataFrame([current])], ignore_index=True))
    alerts = evaluate_rules(trend, rules)
    mine = alerts[(alerts["batch_id"] == batch_id) & alerts["alert"]]
    names = {rule_name(r) for r in rules}
    return tuple(sorted(set(mine["rule"]) & names))
