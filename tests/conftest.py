"""Shared fixtures: every test that touches MLflow gets a throw-away SQLite store."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking store; cwd moves to tmp so ./mlruns artifacts land there."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


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
def reference_frame() -> pd.DataFrame:
    return make_frame(2000, seed=1)


@pytest.fixture
def batch_frame() -> pd.DataFrame:
    return make_frame(800, seed=2)


@pytest.fixture
def drifted_frame() -> pd.DataFrame:
    return make_frame(800, seed=3, shift=1.0)
