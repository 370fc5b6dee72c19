"""A batch run's whole content, rendered before anything is logged: artifact files in a
folder, and metrics, params, tags and dataset inputs as a JSON-able mapping. The outbox
keeps it; `publish` logs it, as often as needed, always the same."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.evaluation.report import BatchReport
from monitoring.track import tags
from monitoring.track.batch_run import (
    _dataset_inputs,
    _params,
    _table_ready,
    _write_artifacts,
    metrics_of,
    plots_wanted,
    run_name,
)
from monitoring.track.description import markdown_summary
from monitoring.track.keys import key_map
from monitoring.track.registry import ModelInfo
from monitoring.track.report_html import REPORT_FILE, render_report

TABLE_FILE = "worst_samples.json"
DRIFT_TABLE_FILE = "drift_table.json"  # every column and method: drift.csv as a UI table
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"  # what MlflowClient.log_table tags: the UI's table


def batch_tags(report: BatchReport, model: ModelInfo, batch_id: str) -> dict[str, str]:
    """The run contract's tags (BRIEF.md), from the judged report."""
    name = run_name(model, batch_id)
    out = {
        tags.KIND: tags.KIND_BATCH,
        tags.MODEL_NAME: model.name,
        tags.MODEL_VERSION: model.version,
        tags.BATCH_ID: batch_id,
        tags.REFERENCE_ID: report.reference_id,
        tags.STATUS: report.status,
        tags.BATCH_DIGEST: report.batch_digest,
        tags.NOTE: markdown_summary(report, title=name),
        tags.RUN_NAME: name,
    }
    if report.time_range:
        out[tags.BATCH_TIME_START], out[tags.BATCH_TIME_END] = report.time_range
    if report.alerts:
        out[tags.ALERTS] = ", ".join(report.alerts)
    if report.quality_findings:
        out[tags.QUALITY] = ", ".join(f"{q.feature}: {q.check}" for q in report.quality_findings)
    tables = [{"path": DRIFT_TABLE_FILE, "type": "table"}]
    if not report.worst_samples.empty:
        tables.append({"path": TABLE_FILE, "type": "table"})
    out[LOGGED_ARTIFACTS] = json.dumps(tables)
    return out


def render_batch_run(
    report: BatchReport,
    folder: Path,
    *,
    model: ModelInfo,
    batch_id: str,
    config: Mapping[str, str],
    plot_top_features: int,
    plots: str = "all",
    recent: pd.DataFrame | None = None,
    drawn: Path | None = None,
) -> dict[str, Any]:
    """Write the artifacts into `folder` (plots, tables, profile; the worst samples also as
    the JSON table that `log_table` writes; `report.html`, with `recent`, the version's
    earlier batch runs, as its trend) and return the rest of the run's content. `drawn`:
    the plots, already drawn into that folder (`track/early_evaluation.py`)."""
    keys = key_map([c.column for c in report.columns])
    folder.mkdir(parents=True, exist_ok=True)
    plotted = plots_wanted(plots, report.status)
    top = plot_top_features if plotted else None
    _write_artifacts(report, folder, keys, top, drawn if plotted else None)
    # Paged, sortable tables in the UI's artifact view (what `MlflowClient.log_table` writes).
    _table_ready(_readable_order(report.drift_table)).to_json(
        folder / DRIFT_TABLE_FILE, orient="split", index=False, date_format="iso"
    )
    if not report.worst_samples.empty:
        _table_ready(report.worst_samples).to_json(
            folder / TABLE_FILE, orient="split", index=False, date_format="iso"
        )
    page = render_report(
        report, title=run_name(model, batch_id), folder=folder, keys=keys, recent=recent
    )
    (folder / REPORT_FILE).write_text(page, encoding="utf-8")
    return {
        "run_name": run_name(model, batch_id),
        "metrics": metrics_of(report, keys),
        "metric_time": int(time.time() * 1000),
        "params": {p.key: p.value for p in _params(report, model, batch_id, config)},
        "tags": batch_tags(report, model, batch_id),
        "datasets": [
            {
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source_type": d.dataset.source_type,
                "source": d.dataset.source,
                "profile": d.dataset.profile,
                "context": d.tags[0].value,
            }
            for d in _dataset_inputs(report)
        ],
    }


TABLE_FIRST = ("feature", "method", "decision", "statistic", "threshold", "adjusted_p_value")


def _readable_order(table: pd.DataFrame) -> pd.DataFrame:
    """The drift table with what a reader compares first (the UI shows a few columns)."""
    first = [c for c in TABLE_FIRST if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def dataset_inputs(records: Sequence[Mapping[str, str]]):
    """The rendered dataset records as MLflow DatasetInputs."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [
        DatasetInput(
            Dataset(
                name=r["name"],
                digest=r["digest"],
                source_type=r["source_type"],
                source=r["source"],
                profile=r["profile"],
            ),
            [InputTag("mlflow.data.context", r["context"])],
        )
        for r in records
    ]
