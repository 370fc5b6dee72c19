"""The team set-up: scripts/start_tracking_server.sh with a PostgreSQL backend, used over HTTP."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from monitoring import evaluate_and_log


@pytest.fixture
def server(start_server):
    return start_server("postgres")


@pytest.mark.postgres
@pytest.mark.slow
def test_batch_run_through_a_server_with_postgres_backend(server, reference_frame, drifted_frame):
    logged = evaluate_and_log(
        drifted_frame, reference=reference_frame, batch_id="srv-1", model_name="churn"
    )
    client = MlflowClient(server)
    run = client.get_run(logged.run_id)
    assert logged.tracking_uri == server
    assert run.info.status == "FINISHED"
    assert run.data.tags["monitoring.status"] == "drift"
    assert "drift/x/psi" in run.data.metrics
    assert {a.path for a in client.list_artifacts(logged.run_id)} >= {"drift.csv", "plots"}
