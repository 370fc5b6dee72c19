"""The public API: `__all__` is complete and `import monitoring` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import monitoring

# The documented public API (README's Python section and docs/architecture.md). A name
# added or removed is a decision: change this list with the README.
PUBLIC = [
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


def test_all_is_the_documented_public_api():
    assert monitoring.__all__ == PUBLIC


def test_every_public_name_is_exported_lazily():
    assert sorted(monitoring._EXPORTS) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_every_exported_name_resolves(name):
    assert getattr(monitoring, name) is not None


def test_exported_functions_survive_their_modules_being_imported():
    import monitoring.evaluation.batch  # noqa: F401 - a submodule import must not shadow the API

    assert callable(monitoring.evaluate)
    assert callable(monitoring.fit_reference)


def test_every_error_class_is_exported():
    import monitoring.errors

    assert set(monitoring.errors.__all__) <= set(monitoring.__all__)


def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, monitoring; "
        "print(sorted(m for m in ('torch', 'mlflow', 'sqlalchemy', 'matplotlib', 'scipy') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
