"""Drift and performance monitoring for PyTorch models, native to MLflow.

    import monitoring
    reference = monitoring.fit_reference(train_df, target="label")
    report = monitoring.evaluate(batch_df, reference)
    report.drift_table, report.status, report.performance
    monitoring.evaluate_and_log(batch_df, reference=reference, model_name="churn")

Names are imported on first use, so `import monitoring` stays fast and does not import
torch, mlflow, sqlalchemy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "evaluate": "monitoring.evaluation",
    "fit_reference": "monitoring.evaluation",
    "evaluate_and_log": "monitoring.pipeline",
    "compare": "monitoring.comparison",
    "embedding_drift": "monitoring.embeddings",
    "capture_activations": "monitoring.embeddings",
    "DatasetDrift": "monitoring.multivariate",
    "Comparison": "monitoring.comparison",
    "AlertRule": "monitoring.alerts",
    "AlertConfig": "monitoring.config",
    "NoteError": "monitoring.notes",
    "Note": "monitoring.notes",
    "LoggedEvaluation": "monitoring.pipeline",
    "BatchReport": "monitoring.report",
    "Reference": "monitoring.reference",
    "Schema": "monitoring.schema",
    "MonitoringConfig": "monitoring.config",
    "DriftConfig": "monitoring.config",
    "SchemaConfig": "monitoring.config",
    "EvaluationConfig": "monitoring.config",
    "TrackingConfig": "monitoring.config",
    "load_config": "monitoring.config",
    "open_source": "monitoring.sources",
    "save_reference": "monitoring.reference_files",
    "load_reference_files": "monitoring.reference_files",
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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'monitoring' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
