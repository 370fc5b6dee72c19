"""The notebooks run end to end (so they cannot rot), against a throw-away store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_error_analysis_notebook_runs_and_writes_notes(tracking_uri, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "error_analysis.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("monitoring-credit-notebook").experiment_id],
        filter_string="tags.`monitoring.kind` = 'batch'",
    )
    assert len(runs) == 1
    assert int(runs[0].data.tags["monitoring.notes.count"]) >= 1
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
