"""Embedding drift of a PyTorch image model, and the MMD test inside a batch evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

import monitoring
from monitoring.core.config import DriftConfig, MonitoringConfig


class TinyCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.features = torch.nn.Linear(16, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.features(h)))


def images(n: int, seed: int, *, stripe: float = 0.0) -> torch.Tensor:
    """Noisy 8x8 images with a bright blob; `stripe` adds a horizontal stripe (new content)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    x[:, :, 2:5, 2:5] += 0.5
    x[:, :, 6, :] += stripe
    return x


def loader(x: torch.Tensor) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(len(x)))
    return torch.utils.data.DataLoader(dataset, batch_size=64)


def metadata(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"width": rng.normal(8, 1, n), "height": rng.normal(8, 1, n)})


CONFIG = DriftConfig(mmd_max_samples=300, mmd_permutations=100)


def test_same_images_do_not_drift_and_new_content_does():
    model = TinyCNN()
    same = monitoring.embedding_drift(
        model, "features", loader(images(400, 1)), loader(images(400, 2)), config=CONFIG
    )
    assert same.method == "embedding_mmd"
    assert same.p_value > 0.05
    shifted = monitoring.embedding_drift(
        model, "features", loader(images(400, 1)), loader(images(400, 3, stripe=0.6)), config=CONFIG
    )
    assert shifted.p_value < 0.02 and shifted.statistic > shifted.threshold


def test_embedding_test_joins_the_batch_verdict_and_is_logged(tracking_uri):
    model = TinyCNN()
    test = monitoring.embedding_drift(
        model, "features", images(400, 1), images(400, 3, stripe=0.6), config=CONFIG
    )
    reference = monitoring.fit_reference(metadata(2_000, 0))
    logged = monitoring.evaluate_and_log(
        metadata(400, 1),
        reference=reference,
        model_name="cnn",
        batch_id="images-1",
        dataset_tests=[test],
        client=MlflowClient(tracking_uri),
    )
    report = logged.report
    assert report.drifted_features == []
    [embedding] = [d for d in report.multivariate if d.method == "embedding_mmd"]
    assert embedding.drifted and report.dataset_drift and report.status == "drift"
    metrics = MlflowClient(tracking_uri).get_run(logged.run_id).data.metrics
    assert metrics["drift/dataset/embedding_mmd_pvalue"] == pytest.approx(embedding.p_value)
    assert metrics["drift/dataset/embedding_mmd_drifted"] == 1.0
    assert metrics["drift/dataset/drift"] == 1.0


def test_unknown_layer_names_the_available_ones():
    with pytest.raises(monitoring.ConfigError, match="features"):
        monitoring.embedding_drift(TinyCNN(), "fc9", images(20, 1), images(20, 2), config=CONFIG)


def _correlated(n: int, rng: np.random.Generator, rho: float) -> pd.DataFrame:
    z = rng.standard_normal((n, 2))
    frame = pd.DataFrame({"a": z[:, 0], "b": rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]})
    for i in range(3):
        frame[f"x{i}"] = rng.standard_normal(n)
    return frame


def test_mmd_in_a_batch_evaluation_sees_a_correlation_flip(tmp_path):
    rng = np.random.default_rng(0)
    config = MonitoringConfig(
        drift=DriftConfig(multivariate=("reconstruction", "mmd"), mmd_max_samples=500)
    )
    reference = monitoring.fit_reference(_correlated(5_000, rng, 0.8), config=config)
    assert reference.multivariate.sample.shape == (2_000, 5)
    # The sample survives a save and load, so a reloaded reference tests the same rows.
    folder = monitoring.save_reference(reference, tmp_path / "ref")
    reloaded = monitoring.load_reference_files(folder)
    np.testing.assert_array_equal(reloaded.multivariate.sample, reference.multivariate.sample)
    same = monitoring.evaluate(_correlated(3_000, rng, 0.8), reloaded, config=config)
    flipped = monitoring.evaluate(_correlated(3_000, rng, -0.8), reloaded, config=config)
    methods = {d.method: d for d in flipped.multivariate}
    assert set(methods) == {"reconstruction", "mmd"}
    assert methods["mmd"].p_value < 0.01 and methods["mmd"].drifted
    assert {d.method: d for d in same.multivariate}["mmd"].p_value > 0.01
    assert flipped.drifted_features == []
