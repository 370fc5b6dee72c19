"""The team set-up: scripts/start_tracking_server.sh with a PostgreSQL backend, used over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy
from mlflow import MlflowClient

from monitoring import evaluate_and_log

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, monkeypatch):
    database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
        MLFLOW_ARTIFACTS_DESTINATION=str(tmp_path / "artifacts"),
        MLFLOW_PORT=str(port),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "start_tracking_server.sh")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            pytest.fail(f"server did not start: {process.stderr.read1(4000)!r}")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.chdir(tmp_path)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        process.stderr.close()
        engine = sqlalchemy.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}"'))
        engine.dispose()


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
