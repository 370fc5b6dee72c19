"""The notebooks run end to end (so they cannot rot), against a throw-away store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from nbclient import NotebookClient

import monitoring

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


@pytest.mark.slow
def test_walkthrough_notebook_goes_from_reference_to_note(tracking_uri, tmp_path, monkeypatch):
    """The walkthrough logs six batches into its own throw-away store (never the ambient
    one), the drifted last batch ends in `alert`, and the note it writes can be read back."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's tempfile.mkdtemp lands here
    notebook = nbformat.read(NOTEBOOKS / "monitoring_walkthrough.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the history plots

    assert not (tmp_path / "mlflow.db").exists()  # the ambient store was left alone
    (store,) = tmp_path.glob("monitoring-walkthrough-*/mlflow.db")
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs(
        [client.get_experiment_by_name("monitoring-churn").experiment_id],
        filter_string="tags.`monitoring.kind` = 'batch'",
    )
    status = {r.data.tags["monitoring.batch_id"]: r.data.tags["monitoring.status"] for r in runs}
    assert sorted(status) == [f"day-{d}" for d in range(1, 7)]
    assert [status[f"day-{d}"] for d in (1, 2, 3, 6)] == ["ok", "ok", "ok", "alert"]
    assert {status["day-4"], status["day-5"]} <= {"drift", "degraded", "alert"}
    (noted,) = [r for r in runs if r.data.tags.get("monitoring.notes.count")]
    assert noted.data.tags["monitoring.batch_id"] == "day-6"
    (note,) = monitoring.list_notes(model_name="churn", client=client)
    assert note.verdict == "drift" and len(note.sample_ids) == 3
    last = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    assert f"day-6: status alert, note {note.note_id}" in last
