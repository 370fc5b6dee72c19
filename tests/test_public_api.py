"""The public API: `__all__` is complete and `import monitoring` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import monitoring


@pytest.mark.parametrize("name", monitoring.__all__)
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
