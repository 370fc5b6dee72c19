"""Shared fixtures: every test that touches MLflow gets a throw-away SQLite store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy
from hypothesis import settings

matplotlib.use("Agg")
# No test writes into the repository: no example database in ./.hypothesis either.
settings.register_profile("monitoring", database=None)
settings.load_profile("monitoring")

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture(autouse=True)
def _outbox(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own outbox (never the user's cache); subprocesses inherit it."""
    folder = tmp_path_factory.mktemp("outbox")
    monkeypatch.setenv("MONITORING_OUTBOX", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _reference_cache(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own cache of stored references (never the user's)."""
    folder = tmp_path_factory.mktemp("references")
    monkeypatch.setenv("MONITORING_REFERENCE_CACHE", str(folder))
    return folder


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite tracking store, for clients and MLflow's fluent API alike; cwd moves
    to tmp so that ./mlruns artifacts land there, never in the repository."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # a registry URI left by an earlier test would win
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture
def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def make_frame(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A small classification table: two numeric, one categorical, label, prediction, scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    size = rng.lognormal(0.0, 0.5, n)
    color = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    p_b = 1 / (1 + np.exp(-(1.5 * x + 0.3 * (color == "red"))))
    label = np.where(rng.random(n) < p_b, "b", "a")
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": x,
            "size": size,
            "color": color,
            "label": label,
            "prediction": np.where(p_b > 0.5, "b", "a"),
            "proba_a": 1 - p_b,
            "proba_b": p_b,
        }
    )


@pytest.fixture
def reference_csv(tmp_path) -> str:
    """A 1,000-row reference (`make_frame`, seed 99) as a CSV file."""
    path = tmp_path / "reference.csv"
    make_frame(1_000, seed=99).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def reference_frame() -> pd.DataFrame:
    return make_frame(2000, seed=1)


@pytest.fixture
def batch_frame() -> pd.DataFrame:
    return make_frame(800, seed=2)


@pytest.fixture
def drifted_frame() -> pd.DataFrame:
    return make_frame(800, seed=3, shift=1.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_server(tmp_path, monkeypatch):
    """Start scripts/start_tracking_server.sh on a free port with a `sqlite` or `postgres`
    backend store, point MLFLOW_TRACKING_URI at it, and stop it (and drop the database)."""
    started = []

    def start(backend: str) -> str:
        database = f"mlflow_test_{uuid.uuid4().hex[:8]}"
        store = (
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
            if backend == "postgres"
            else f"sqlite:///{tmp_path}/server.db"
        )
        process, uri = _launch(store, tmp_path)
        started.append((process, database if backend == "postgres" else None))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.chdir(tmp_path)
        return uri

    yield start
    for process, database in started:
        _stop(process, database)


def _launch(store: str, tmp_path):
    port = _free_port()
    env = dict(
        os.environ,
        MLFLOW_BACKEND_STORE_URI=store,
        MLFLOW_ARTIFACTS_DESTINATION=str(tmp_path / "artifacts"),
        MLFLOW_PORT=str(port),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    with (tmp_path / f"server-{port}.log").open("wb") as log:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "start_tracking_server.sh")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                return process, uri
        except requests.RequestException:
            time.sleep(0.5)
    _stop(process, None)
    pytest.fail(f"server on {store} did not start")


def _stop(process, database: str | None) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    if database:
        engine = sqlalchemy.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}"'))
        engine.dispose()
