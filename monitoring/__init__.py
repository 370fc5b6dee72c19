"""Drift and performance monitoring for PyTorch models, native to MLflow.

    import monitoring
    monitoring.log_model(model, "churn", classes=["stay", "leave"], example=train_df.head())
    reference = monitoring.fit_reference(train_df, target="label")
    report = monitoring.evaluate(batch_df, reference)
    report.drift_table, report.status, report.performance
    logged = monitoring.evaluate_and_log(batch_df, reference=reference, model_name="churn")
    monitoring.add_note(logged.run_id, verdict="model-error", text="...", sample_ids=["17"])

Names are imported on first use, so `import monitoring` stays fast and does not import
torch, mlflow, sqlalchemy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "evaluate": "monitoring.track.references",
    "fit_reference": "monitoring.evaluation.fit",
    "evaluate_and_log": "monitoring.track.pipeline",
    "compare": "monitoring.track.comparison",
    "embedding_drift": "monitoring.measure.embeddings",
    "capture_activations": "monitoring.measure.embeddings",
    "DatasetDrift": "monitoring.measure.multivariate",
    "Comparison": "monitoring.track.comparison",
    "AlertRule": "monitoring.core.alert_rules",
    "AlertConfig": "monitoring.core.config",
    "Note": "monitoring.explain.notes",
    "add_note": "monitoring.track.notes",
    "attach_labels": "monitoring.track.labels",
    "list_notes": "monitoring.track.notes",
    "show_note": "monitoring.track.notes",
    "LoggedEvaluation": "monitoring.track.pipeline",
    "BatchReport": "monitoring.evaluation.report",
    "Reference": "monitoring.measure.reference",
    "Schema": "monitoring.core.schema",
    "MonitoringConfig": "monitoring.core.config",
    "DriftConfig": "monitoring.core.config",
    "SchemaConfig": "monitoring.core.config",
    "EvaluationConfig": "monitoring.core.config",
    "TrackingConfig": "monitoring.core.config",
    "load_config": "monitoring.core.config",
    "open_source": "monitoring.collect.sources",
    "save_reference": "monitoring.measure.reference_files",
    "load_reference_files": "monitoring.measure.reference_files",
    "METHODS": "monitoring.stats",
    "MonitoringError": "monitoring.errors",
    "ConfigError": "monitoring.errors",
    "SchemaError": "monitoring.errors",
    "ColumnNotFoundError": "monitoring.errors",
    "DtypeMismatchError": "monitoring.errors",
    "DataError": "monitoring.errors",
    "EmptyBatchError": "monitoring.errors",
    "InvalidValueError": "monitoring.errors",
    "SourceError": "monitoring.errors",
    "DatabaseUnreachableError": "monitoring.errors",
    "QueryParameterError": "monitoring.errors",
    "NotFittedError": "monitoring.errors",
    "ModelError": "monitoring.errors",
    "TrackingError": "monitoring.errors",
    "TrackingUnreachableError": "monitoring.errors",
    "DuplicateBatchError": "monitoring.errors",
    "NoRunsError": "monitoring.errors",
    "NoteError": "monitoring.errors",
    "NotLoggedError": "monitoring.errors",
    "log_model": "monitoring.track.models",
    "sync_outbox": "monitoring.track.delivery",
    "doctor": "monitoring.track.doctor",
}

__all__ = [
    "AlertConfig",
    "AlertRule",
    "BatchReport",
    "ColumnNotFoundError",
    "Comparison",
    "ConfigError",
    "DataError",
    "DatabaseUnreachableError",
    "DatasetDrift",
    "DriftConfig",
    "DtypeMismatchError",
    "DuplicateBatchError",
    "EmptyBatchError",
    "EvaluationConfig",
    "InvalidValueError",
    "LoggedEvaluation",
    "METHODS",
    "ModelError",
    "MonitoringConfig",
    "MonitoringError",
    "NoRunsError",
    "NotFittedError",
    "NotLoggedError",
    "Note",
    "NoteError",
    "QueryParameterError",
    "Reference",
    "Schema",
    "SchemaConfig",
    "SchemaError",
    "SourceError",
    "TrackingConfig",
    "TrackingError",
    "TrackingUnreachableError",
    "add_note",
    "attach_labels",
    "capture_activations",
    "compare",
    "doctor",
    "embedding_drift",
    "evaluate",
    "evaluate_and_log",
    "fit_reference",
    "list_notes",
    "load_config",
    "load_reference_files",
    "log_model",
    "open_source",
    "save_reference",
    "show_note",
    "sync_outbox",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'monitoring' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
