"""`monitoring.log_model`: the model contract in one call (issue 20, item 5).

The model classes are built inside functions, as in a training script's `__main__`, so that
cloudpickle pickles them by value, code included: the case that broke."""

from __future__ import annotations

import mlflow
import mlflow.pytorch
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_frame

import monitoring
from monitoring import ConfigError, ModelError, evaluate_and_log, fit_reference
from monitoring.collect.inference import load_model, predict_frame


def _classifier_setting_classes_in_init(width: int = 2) -> torch.nn.Module:
    """The README's old contract, written as users write it: `self.classes` next to torch."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, width)
            self.classes = ["a", "b"]

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.linear(inputs)

    torch.manual_seed(0)
    return Net()


def _linear(n_in: int, n_out: int) -> torch.nn.Module:
    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(n_in, n_out)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return self.linear(inputs)

    torch.manual_seed(0)
    return Linear()


def _nan_classifier() -> torch.nn.Module:
    class Nan(torch.nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return torch.full((inputs.shape[0], 2), float("nan"))

    return Nan()


def _versions(client, name: str) -> list[str]:
    return [v.version for v in client.search_model_versions(f"name='{name}'")]


def test_mlflow_alone_cannot_pickle_a_main_class_that_sets_classes_in_init(tracking_uri):
    """The failure reported: cloudpickle takes `classes` in `__init__` for `torch.classes`."""
    with mlflow.start_run(), pytest.raises(TypeError, match="cannot pickle '_Classes' object"):
        mlflow.pytorch.log_model(
            _classifier_setting_classes_in_init(), name="model", serialization_format="pickle"
        )


def test_log_model_registers_it_and_a_batch_without_predictions_runs_it(
    client, reference_frame, batch_frame
):
    info = monitoring.log_model(
        _classifier_setting_classes_in_init(),
        "churn",
        example=reference_frame.head(5),
        metrics={"holdout_accuracy": 0.5},
        client=client,
    )
    unpredicted = batch_frame.drop(columns=["prediction", "proba_a", "proba_b"]).head(200)
    logged = evaluate_and_log(
        unpredicted, reference=reference_frame, batch_id="b", model_uri="models:/churn/1"
    )
    training = client.get_run(client.get_model_version("churn", "1").run_id)
    assert (info.name, info.version) == ("churn", "1")
    assert training.data.metrics == {"holdout_accuracy": 0.5}
    assert logged.report.predicted_by_model is True
    assert client.get_run(logged.run_id).data.tags["monitoring.model_version"] == "1"
    assert "perf/accuracy" in client.get_run(logged.run_id).data.metrics


def test_classes_and_preprocess_given_to_log_model_come_back_with_the_model(
    client, reference_frame
):
    def preprocess(frame: pd.DataFrame) -> torch.Tensor:
        return torch.tensor(frame[["x"]].to_numpy(np.float32))

    monitoring.log_model(
        _linear(1, 3),
        "colors",
        classes=["red", "green", "blue"],
        preprocess=preprocess,
        example=reference_frame.head(5),
        client=client,
    )
    model = load_model("models:/colors/1")
    reference = fit_reference(reference_frame.head(50))
    predicted = predict_frame(
        model,
        reference_frame.head(7),
        reference.schema,
        model.classes,
        prediction_column="prediction",
        score_columns={"blue": "proba_blue"},
    )
    assert model.classes == ["red", "green", "blue"]
    assert list(predicted.columns) == ["prediction", "proba_blue"]
    assert set(predicted["prediction"]) <= {"red", "green", "blue"}


def test_a_regression_model_is_registered_and_predicts_one_value_per_row(client):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=40), "size": rng.normal(size=40)})
    frame["y"] = 2 * frame["x"] + frame["size"] + rng.normal(0, 0.01, 40)
    info = monitoring.log_model(_linear(2, 1), "prices", example=frame.head(5), client=client)
    reference = fit_reference(frame, target="y")
    predicted = predict_frame(
        load_model(info.uri),
        frame,
        reference.schema,
        (),
        prediction_column="prediction",
        score_columns={},
    )
    assert reference.schema.task == "regression"
    assert info.version == "1"
    assert predicted["prediction"].shape == (40,)
    assert np.isfinite(predicted["prediction"]).all()


@pytest.mark.parametrize(
    ("model", "classes", "error"),
    [
        pytest.param(
            _classifier_setting_classes_in_init(width=3),
            None,
            r"outputs 3 columns per row but there are 2 classes \(a, b\)",
            id="too-many-columns",
        ),
        pytest.param(
            _linear(2, 2), None, r"regression model returns one value per row", id="no-classes"
        ),
        pytest.param(
            _nan_classifier(), ["a", "b"], r"NaN or inf on 5 of the 5 example rows", id="nan"
        ),
    ],
)
def test_a_model_that_breaks_the_contract_is_refused_and_not_registered(
    client, reference_frame, model, classes, error
):
    with pytest.raises(ModelError, match=error):
        monitoring.log_model(
            model, "bad", classes=classes, example=reference_frame.head(5), client=client
        )
    assert _versions(client, "bad") == []


@pytest.mark.parametrize(
    "classes", [pytest.param(["a", "a"], id="repeated"), pytest.param("ab", id="a-string")]
)
def test_bad_classes_are_refused_before_anything_is_logged(client, classes):
    with pytest.raises(ConfigError, match="`classes` must be"):
        monitoring.log_model(_linear(2, 2), "bad", classes=classes, client=client)
    assert client.get_experiment_by_name("monitoring-training") is None


def test_inside_a_training_run_the_model_is_logged_in_that_run(client, reference_frame):
    with mlflow.start_run() as run:
        monitoring.log_model(
            _classifier_setting_classes_in_init(),
            "churn",
            example=reference_frame.head(5),
            client=client,
        )
    assert client.get_model_version("churn", "1").run_id == run.info.run_id


def test_example_rows_read_with_the_inferred_schema_match_the_reference():
    """Without `schema`, the example's columns get the roles `fit_reference` gives them."""
    from monitoring.track.models import _example_schema

    frame = make_frame(60, seed=5)
    assert _example_schema(frame.head(5), None).numerical == fit_reference(frame).schema.numerical
