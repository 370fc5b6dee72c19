"""Embedding drift inside a pass: `drift.embedding_layer` captures a layer of the model while
it runs over the reference (at fit) and over each batch, and the MMD test on the
activations is decided with the features.

Images are 1 x 16 x 16, noise with a bright 4 x 4 square at a random place, from seeded
torch generators; "blurred" is the same kind of image through a 3 x 3 box blur. They are
stored as raw float32 bytes in an `image` column (excluded from the tabular features), and
the model's `preprocess` decodes them, as a model logged for a table of images would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient
from scipy import stats

import monitoring
from monitoring.cli.main import main
from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig, MonitoringConfig, SchemaConfig
from monitoring.errors import ConfigError, SchemaError
from monitoring.measure.embedding_sample import EMBEDDINGS, EmbeddingPass
from monitoring.track import load_reference, log_reference
from monitoring.track.models import register_pytorch_model

SIDE = 16
LAYER = "features"
CONFIG = MonitoringConfig(
    drift=DriftConfig(embedding_layer=LAYER), schema=SchemaConfig(exclude=("image",))
)


class ImageModel(torch.nn.Module):
    """conv -> pool -> `features` (8 units) -> head over two classes; reads `image` bytes."""

    classes = ("0", "1")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.features = torch.nn.Linear(16, 8)
        self.head = torch.nn.Linear(8, 2)

    def preprocess(self, frame: pd.DataFrame) -> torch.Tensor:
        pixels = np.stack([np.frombuffer(b, dtype=np.float32) for b in frame["image"]])
        return torch.from_numpy(pixels.reshape(-1, 1, SIDE, SIDE).copy())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.features(h)))


def images(n: int, seed: int, *, blur: bool = False) -> pd.DataFrame:
    """`id`, `image` (float32 bytes) and `label` (the square in the right half)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, SIDE, SIDE, generator=g) * 0.5
    rows = torch.randint(0, SIDE - 4, (n,), generator=g)
    cols = torch.randint(0, SIDE - 4, (n,), generator=g)
    for i in range(n):
        x[i, 0, rows[i] : rows[i] + 4, cols[i] : cols[i] + 4] += 0.5
    if blur:
        x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return pd.DataFrame(
        {
            "id": np.arange(n) + 100_000 * seed,
            "image": [row.numpy().tobytes() for row in x],
            "label": (cols >= (SIDE - 4) // 2).numpy().astype(int),
        }
    )


@pytest.fixture(scope="module")
def model() -> ImageModel:
    return ImageModel()


@pytest.fixture(scope="module")
def reference(model):
    return monitoring.fit_reference(images(400, 0), config=CONFIG, model=model)


def _embedding(report: monitoring.BatchReport) -> monitoring.DatasetDrift:
    [found] = [d for d in report.multivariate if d.method == "embedding_mmd"]
    return found


def test_blurred_images_drift_and_clean_ones_do_not_over_seeds(model, reference):
    """Default settings (alpha 0.05, Holm, 200 splits then up to 2,000), a 400-image
    reference and batches of 200, ten seeds each. Measured: clean batches 0 of 10 drifted
    (p from 0.06 to 0.94; 95% Clopper-Pearson interval of the rate [0, 0.31]); blurred
    batches 10 of 10 drifted (p from 2e-8 to 1e-3; [0.69, 1]). Before the fitted null, no
    p-value could go below 1/201 = 0.005 whatever the blur. Assertions: at most 2 clean
    false alarms (the binomial 0.99 quantile at alpha 0.05 over 10 is 2), every blurred
    batch found."""
    clean = [_embedding(monitoring.evaluate(images(200, s), reference, config=CONFIG, model=model))
             for s in range(1, 11)]  # fmt: skip
    blurred = [
        _embedding(monitoring.evaluate(images(200, s, blur=True), reference, config=CONFIG,
                                       model=model))
        for s in range(1, 11)
    ]  # fmt: skip
    assert sum(t.drifted for t in clean) <= stats.binom.ppf(0.99, 10, 0.05)
    assert all(t.drifted for t in blurred)
    assert max(t.p_value for t in blurred) < 0.005


def test_a_batch_of_images_without_features_is_decided_by_its_embedding(model, reference):
    assert reference.schema.features == ()
    assert reference.embedding.layer == LAYER
    assert reference.embedding.sample.shape == (400, 8)
    report = monitoring.evaluate(images(200, 3, blur=True), reference, config=CONFIG, model=model)
    embedding = _embedding(report)
    assert report.predicted_by_model and report.performance  # the same forward pass
    assert [c.role for c in report.columns] == ["target"]
    assert embedding.n == 200 and embedding.drifted and report.dataset_drift
    assert embedding.p_value < 0.05 and embedding.statistic > embedding.threshold


def test_the_embedding_test_passes_holm_among_many_features(model):
    """25 metadata columns that do not drift: Holm over 26 hypotheses needs p < 0.0019, which
    200 permutations alone (p >= 0.005) could never give."""
    rng = np.random.default_rng(0)

    def with_metadata(frame: pd.DataFrame) -> pd.DataFrame:
        columns = {f"m{i}": rng.normal(size=len(frame)) for i in range(25)}
        return frame.assign(**columns)

    fitted = monitoring.fit_reference(with_metadata(images(400, 0)), config=CONFIG, model=model)
    report = monitoring.evaluate(
        with_metadata(images(200, 4, blur=True)), fitted, config=CONFIG, model=model
    )
    embedding = _embedding(report)
    assert len(fitted.schema.features) == 25 and report.drifted_features == []
    assert embedding.p_value < 0.05 / 26 and embedding.drifted and report.dataset_drift


def test_stored_predictions_still_run_the_model_for_its_activations(model):
    config = CONFIG.replace("schema", prediction="prediction")
    stored = images(300, 0).assign(prediction="0")
    fitted = monitoring.fit_reference(stored, config=config, model=model)
    assert fitted.embedding.sample.shape == (300, 8)
    batch = images(200, 5, blur=True).assign(prediction="0")
    report = monitoring.evaluate(batch, fitted, config=config, model=model)
    assert not report.predicted_by_model
    assert _embedding(report).drifted


def test_the_activations_survive_save_and_load_and_are_part_of_the_id(
    model, reference, tmp_path, tracking_uri
):
    folder = monitoring.save_reference(reference, tmp_path / "ref")
    reloaded = monitoring.load_reference_files(folder)
    np.testing.assert_array_equal(reloaded.embedding.sample, reference.embedding.sample)
    assert (reloaded.embedding.layer, reloaded.embedding.n_rows) == (LAYER, 400)
    client = MlflowClient(tracking_uri)
    log_reference(client, reference)
    stored = load_reference(client, reference.id)
    np.testing.assert_array_equal(stored.embedding.sample, reference.embedding.sample)
    without = dataclasses.replace(reference, embedding=None)
    assert without.digest() != reference.id


def test_partitions_merged_through_their_states_equal_one_pass(reference):
    """The batch's sample of activations, as an accumulator: with every row in the sample,
    the same rows and statistic (the p-value may differ: the permutations split the
    pooled rows, which the sample holds in another order)."""
    rows = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    config = CONFIG.drift

    def fed(start: int, stop: int) -> EmbeddingPass:
        accumulator = EmbeddingPass(reference.embedding, config)
        for i in range(start, stop, 100):
            chunk = Chunk(pd.DataFrame(index=range(100)), i, "batch")
            chunk.derived[EMBEDDINGS] = rows[i : i + 100]
            accumulator.update(chunk)
        return accumulator

    whole = fed(0, 300)
    empty = EmbeddingPass(reference.embedding, config)
    first = empty.from_state(fed(0, 100).to_state())
    merged = first.merge(empty.from_state(fed(100, 300).to_state()))
    [a], [b] = merged.result(), whole.result()
    assert a.n == b.n == 300 and a.statistic == pytest.approx(b.statistic, rel=1e-9)
    np.testing.assert_array_equal(np.sort(merged.sample.result(), axis=0), np.sort(rows, axis=0))


def test_an_unknown_layer_lists_the_models_layers(model):
    config = CONFIG.replace("drift", embedding_layer="fc9")
    with pytest.raises(ConfigError, match=r"unknown layer 'fc9'.*'conv', 'pool', 'features'"):
        monitoring.fit_reference(images(50, 0), config=config, model=model)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"model": None}, r"no model was given", id="no-model"),
        pytest.param({"layer": "head"}, r"keeps the activations of layer 'features'", id="other"),
    ],
)
def test_an_embedding_test_the_pass_cannot_make_is_a_config_error(
    model, reference, change, message
):
    config = CONFIG.replace("drift", embedding_layer=change.get("layer", LAYER))
    with pytest.raises(ConfigError, match=message):
        monitoring.evaluate(images(50, 1), reference, config=config, model=change.get("model"))


def test_a_reference_fitted_without_the_layer_cannot_test_it(model):
    plain = monitoring.fit_reference(images(100, 0).assign(size=1.0, area=np.arange(100.0)),
                                     config=MonitoringConfig(schema=CONFIG.schema))  # fmt: skip
    with pytest.raises(ConfigError, match=r"the reference keeps no activations"):
        monitoring.evaluate(images(50, 1).assign(size=1.0, area=np.arange(50.0)), plain,
                            config=CONFIG, model=model)  # fmt: skip


def test_no_feature_columns_and_no_batch_level_test_is_a_schema_error():
    with pytest.raises(SchemaError, match=r"no feature columns: .*drift.embedding_layer"):
        monitoring.fit_reference(images(50, 0), config=MonitoringConfig(schema=CONFIG.schema))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"embedding_layer": ""}, r"`drift.embedding_layer` must be a layer name",
                     id="empty-layer"),
        pytest.param({"embedding_layer": 3}, r"`drift.embedding_layer` must be", id="number"),
        pytest.param({"mmd_max_permutations": 100},
                     r"`drift.mmd_max_permutations` must be an integer >= 200", id="cap"),
    ],
)  # fmt: skip
def test_bad_embedding_settings_fail_at_construction(settings, message):
    with pytest.raises(ConfigError, match=message):
        DriftConfig(**settings)


def test_embedding_drift_reports_drifted_as_its_p_value_and_threshold_say(model):
    """`embedding_drift` used alone decides at alpha: drifted is p < alpha is statistic >
    threshold (before, it was always False, and the threshold, a quantile of 200 splits,
    could disagree with the count-based p-value)."""
    reference_images = torch.stack([torch.from_numpy(np.frombuffer(b, dtype=np.float32).copy())
                                    for b in images(300, 0)["image"]]).reshape(-1, 1, SIDE, SIDE)
    tests = [
        monitoring.embedding_drift(model, LAYER, reference_images, model.preprocess(batch))
        for batch in (images(200, 1), images(200, 2, blur=True))
    ]  # fmt: skip
    assert [t.drifted for t in tests] == [False, True]
    for t in tests:
        assert t.drifted == (t.p_value < 0.05) == (t.statistic > t.threshold)


def test_the_cli_fits_and_evaluates_with_the_embedding_layer(model, tracking_uri, tmp_path):
    images(300, 0).to_parquet(tmp_path / "reference.parquet")
    images(200, 7, blur=True).to_parquet(tmp_path / "batch.parquet")
    info = register_pytorch_model(MlflowClient(tracking_uri), model, name="imager")
    uri = f"models:/imager/{info.version}"
    run = CliRunner()
    common = ["--model-uri", uri, "--embedding-layer", LAYER]
    fitted = run.invoke(main, ["reference", "fit", str(tmp_path / "reference.parquet"), *common,
                               "--exclude", "image"], catch_exceptions=False)  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    reference_id = fitted.stdout.strip().splitlines()[-1]
    result = run.invoke(main, ["evaluate", str(tmp_path / "batch.parquet"), "--reference",
                               reference_id, "--batch-id", "b1", *common],
                        catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "status: drift" in result.output
    assert "embedding_mmd" in result.output
