"""`mlflow run . -e evaluate` logs into the run that MLflow created, not a second one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
from mlflow import MlflowClient

from monitoring.track.tags import REFERENCE_EXPERIMENT

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mlflow_run_evaluate_logs_into_its_own_run(
    tracking_uri, tmp_path, reference_frame, batch_frame
):
    # The entry point runs in the project folder: the experiment it creates for references
    # would put its artifacts in the repository's ./mlruns, so it is made here first.
    MlflowClient(tracking_uri).create_experiment(
        REFERENCE_EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri()
    )
    reference_frame.to_csv(tmp_path / "reference.csv", index=False)
    database = tmp_path / "batches.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        batch_frame.assign(day=1).to_sql("p", connection, index=False)
        batch_frame.assign(day=2).head(10).to_sql("p", connection, index=False, if_exists="append")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    def launch():
        return subprocess.run(
            [
                sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", "evaluate",
                "-P", f"source=sqlite:///{database}",
                "-P", "query=SELECT * FROM p WHERE day = :day",
                "-P", "param=day=1",
                "-P", f"reference={tmp_path / 'reference.csv'}",
                "-P", "batch_id=mlproject-1",
                "-P", "model_name=churn",
                "--env-manager", "local", "--experiment-name", "launched",
            ],
            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
        )  # fmt: skip

    result = launch()
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("launched")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`monitoring.kind` = 'batch'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["monitoring.kind"] == "batch"
    assert run.data.tags["monitoring.batch_id"] == "mlproject-1"
    assert run.data.tags["mlflow.project.entryPoint"] == "evaluate"
    assert "drift/x/psi" in run.data.metrics
    assert run.data.metrics["data/n_rows"] == len(batch_frame)  # day 1 only: :day was bound
    assert client.get_experiment_by_name("monitoring-churn") is None  # no second run elsewhere
    assert "in experiment 'launched'" in result.stdout  # where the run is
    launched = [
        r for r in client.search_runs([experiment.experiment_id])
        if r.data.tags.get("mlflow.project.entryPoint")
    ]  # fmt: skip
    assert launched[0].info.run_id == run.info.run_id
    logged = run.data.params  # only what was given, and no empty ones
    assert {k: logged[k] for k in ("batch_id", "model_name", "param")} == {
        "batch_id": "mlproject-1",
        "model_name": "churn",
        "param": "day=1",
    }
    assert not [k for k, v in logged.items() if v in ("", "''")], logged
    assert "model_uri" not in logged and "param2" not in logged
    again = launch()  # the same batch id: refused, and its run says so
    assert again.returncode != 0
    refused = [
        r for r in client.search_runs([experiment.experiment_id])
        if r.info.run_id != run.info.run_id and r.data.tags.get("mlflow.project.entryPoint")
    ]  # fmt: skip
    assert len(refused) == 1 and refused[0].info.status == "FAILED"
    assert refused[0].info.run_name == "mlproject-1 · refused: already evaluated"
    assert "already evaluated" in refused[0].data.tags["monitoring.error"]
    assert not refused[0].data.metrics
