"""The demo's synthetic loan data, its predictions table and its PyTorch classifier."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import torch

from monitoring.demo.data import (
    DEMO_FEATURES_CATEGORICAL,
    DEMO_FEATURES_NUMERIC,
    DEMO_ID,
    DEMO_LABELS,
    DEMO_PREDICTION_COLUMNS,
    DEMO_TARGET,
    DEMO_TIMESTAMP,
    NEW_REGION,
    build_predictions_db,
    generate_frame,
)
from monitoring.demo.model import TabularClassifier, predict_frame, train_classifier
from monitoring.errors import ColumnNotFoundError, ConfigError

START = datetime(2024, 1, 1)
N = 20_000
# Measured with these seeds: majority-class rate 0.72, accuracy 0.83 at drift 0, 0.75 at drift 1.
ACCURACY_MARGIN = 0.07
"""How much the model must beat the majority-class rate on fresh drift-0 data."""
DRIFT_ACCURACY_DROP = 0.03
"""How much lower the model's accuracy must be at drift 1 than at drift 0."""


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return generate_frame(N, start=START, days=30, seed=1)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return generate_frame(N, start=START + timedelta(days=30), days=1, seed=2)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate_frame(N, start=START + timedelta(days=30), days=1, drift=1.0, seed=3)


@pytest.fixture(scope="module")
def model(training: pd.DataFrame) -> TabularClassifier:
    return train_classifier(
        training,
        numeric=DEMO_FEATURES_NUMERIC,
        categorical=DEMO_FEATURES_CATEGORICAL,
        target=DEMO_TARGET,
    )


def accuracy(model: TabularClassifier, frame: pd.DataFrame) -> float:
    return float((predict_frame(model, frame)["prediction"] == frame[DEMO_TARGET]).mean())


def shift_in_sd(reference: pd.Series, other: pd.Series) -> float:
    return float((other.mean() - reference.mean()) / reference.std())


# --- generation -------------------------------------------------------------------------


def test_generation_is_deterministic_for_a_seed() -> None:
    first = generate_frame(500, start=START, days=1, drift=0.5, seed=7)
    second = generate_frame(500, start=START, days=1, drift=0.5, seed=7)
    pd.testing.assert_frame_equal(first, second)


def test_generation_differs_across_seeds() -> None:
    first = generate_frame(500, start=START, days=1, seed=7)
    second = generate_frame(500, start=START, days=1, seed=8)
    assert not first["income"].equals(second["income"])
    assert not first[DEMO_TARGET].equals(second[DEMO_TARGET])


def test_frame_has_the_documented_columns(training: pd.DataFrame) -> None:
    expected = [DEMO_ID, DEMO_TIMESTAMP, *DEMO_FEATURES_NUMERIC, *DEMO_FEATURES_CATEGORICAL]
    assert list(training.columns) == [*expected, DEMO_TARGET]
    assert set(training[DEMO_TARGET]) == set(DEMO_LABELS)
    assert training[DEMO_ID].tolist() == list(range(1, N + 1))
    assert training[DEMO_TIMESTAMP].is_monotonic_increasing
    assert training[DEMO_TIMESTAMP].min() >= pd.Timestamp(START)
    assert training[DEMO_TIMESTAMP].max() < pd.Timestamp(START + timedelta(days=30))


def test_ids_start_at_first_id() -> None:
    frame = generate_frame(10, start=START, days=1, seed=0, first_id=1_001)
    assert frame[DEMO_ID].tolist() == list(range(1_001, 1_011))


@pytest.mark.parametrize(
    "column", ["age", "n_accounts", "n_late_payments", "inquiries_6m"], ids=str
)
def test_count_features_are_non_negative_integers(training: pd.DataFrame, column: str) -> None:
    assert pd.api.types.is_integer_dtype(training[column])
    assert training[column].min() >= 0


def test_utilization_is_bounded(drifted: pd.DataFrame) -> None:
    assert drifted["utilization"].between(0.0, 1.0).all()


def test_income_is_skewed_and_correlated_with_debt(training: pd.DataFrame) -> None:
    assert training["income"].skew() > 1.0
    assert training["income"].corr(training["debt"]) > 0.5


def test_label_is_learnable_but_not_trivial(training: pd.DataFrame) -> None:
    default_rate = (training[DEMO_TARGET] == "default").mean()
    assert 0.2 < default_rate < 0.35


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        pytest.param("income", -0.3, -0.1, id="income-down"),
        pytest.param("utilization", 0.3, 0.5, id="utilization-up"),
        pytest.param("age", -0.05, 0.05, id="age-unchanged"),
        pytest.param("credit_history_years", -0.05, 0.05, id="history-unchanged"),
    ],
)
def test_drift_shifts_the_named_means(
    fresh: pd.DataFrame, drifted: pd.DataFrame, column: str, low: float, high: float
) -> None:
    assert low < shift_in_sd(fresh[column], drifted[column]) < high


def test_new_region_appears_only_with_drift(fresh: pd.DataFrame, drifted: pd.DataFrame) -> None:
    assert NEW_REGION not in set(fresh["region"])
    assert 0.06 < (drifted["region"] == NEW_REGION).mean() < 0.10


def test_partner_share_grows_with_drift(fresh: pd.DataFrame, drifted: pd.DataFrame) -> None:
    assert 0.13 < (fresh["channel"] == "partner").mean() < 0.17
    assert 0.37 < (drifted["channel"] == "partner").mean() < 0.43


@pytest.mark.parametrize("frame_name", ["fresh", "drifted"], ids=str)
def test_income_is_missing_in_about_one_percent(
    request: pytest.FixtureRequest, frame_name: str
) -> None:
    frame = request.getfixturevalue(frame_name)
    assert 0.007 < frame["income"].isna().mean() < 0.013
    assert frame.drop(columns="income").notna().all().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"n": 10, "drift": 1.5}, "`drift`", id="drift-above-one"),
        pytest.param({"n": 10, "drift": -0.1}, "`drift`", id="drift-negative"),
        pytest.param({"n": 0}, "`n`", id="no-rows"),
        pytest.param({"n": 10, "days": 0}, "`days`", id="no-days"),
    ],
)
def test_invalid_generation_arguments_are_refused(kwargs: dict, message: str) -> None:
    arguments = {"start": START, "days": 1, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate_frame(**arguments)


# --- model -------------------------------------------------------------------------------


def test_model_declares_classes_and_features(model: TabularClassifier) -> None:
    assert model.classes == ["default", "repaid"]
    assert model.feature_columns == [*DEMO_FEATURES_NUMERIC, *DEMO_FEATURES_CATEGORICAL]


def test_model_beats_the_majority_class(model: TabularClassifier, fresh: pd.DataFrame) -> None:
    majority = fresh[DEMO_TARGET].value_counts(normalize=True).max()
    assert accuracy(model, fresh) > majority + ACCURACY_MARGIN


def test_model_is_less_accurate_on_drifted_data(
    model: TabularClassifier, fresh: pd.DataFrame, drifted: pd.DataFrame
) -> None:
    assert accuracy(model, drifted) < accuracy(model, fresh) - DRIFT_ACCURACY_DROP


def test_training_is_deterministic(training: pd.DataFrame, model: TabularClassifier) -> None:
    again = train_classifier(
        training,
        numeric=DEMO_FEATURES_NUMERIC,
        categorical=DEMO_FEATURES_CATEGORICAL,
        target=DEMO_TARGET,
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_preprocess_handles_unseen_category_and_nan(model: TabularClassifier) -> None:
    frame = generate_frame(3, start=START, days=1, seed=0)
    frame["region"] = ["R7", None, "R1"]
    frame["income"] = np.nan
    x = model.preprocess(frame)
    region_start = len(DEMO_FEATURES_NUMERIC)
    region_width = len(model.vocabularies["region"]) + 1
    region = x[:, region_start : region_start + region_width]
    assert x.dtype == torch.float32
    assert x.shape == (3, model.input_dim)
    assert torch.isfinite(x).all()
    assert x[:, DEMO_FEATURES_NUMERIC.index("income")].tolist() == [0.0, 0.0, 0.0]
    assert region[:, -1].tolist() == [1.0, 1.0, 0.0]
    assert region.sum(dim=1).tolist() == [1.0, 1.0, 1.0]


def test_preprocess_names_a_missing_column(model: TabularClassifier) -> None:
    frame = generate_frame(3, start=START, days=1, seed=0).drop(columns="channel")
    with pytest.raises(ColumnNotFoundError, match="channel"):
        model.preprocess(frame)


def test_predict_frame_gives_labels_and_probabilities(
    model: TabularClassifier, fresh: pd.DataFrame
) -> None:
    head = fresh.iloc[100:150]
    scored = predict_frame(model, head, chunk_size=16)
    probabilities = scored[["proba_default", "proba_repaid"]]
    assert list(scored.columns) == list(DEMO_PREDICTION_COLUMNS)
    assert scored.index.equals(head.index)
    assert set(scored["prediction"]) <= set(DEMO_LABELS)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert (scored["prediction"] == probabilities.idxmax(axis=1).str.removeprefix("proba_")).all()


def test_model_round_trips_through_mlflow(
    model: TabularClassifier, fresh: pd.DataFrame, tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow

    experiment_id = mlflow.create_experiment(
        "demo-model", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pytorch.log_model(
            model,
            name="classifier",
            serialization_format="pickle",
            pip_requirements=["torch", "pandas"],
        )
    loaded = mlflow.pytorch.load_model(info.model_uri)
    head = fresh.iloc[:200]
    with torch.no_grad():
        expected = model(model.preprocess(head))
        actual = loaded(loaded.preprocess(head))
    assert type(loaded) is TabularClassifier
    assert loaded.classes == model.classes
    assert loaded.vocabularies == model.vocabularies
    assert torch.equal(actual, expected)


# --- predictions database ----------------------------------------------------------------


def scored_day(model: TabularClassifier, day: int, *, drift: float) -> pd.DataFrame:
    frame = generate_frame(
        300, start=START + timedelta(days=day), days=1, drift=drift, seed=day, first_id=day * 1000
    )
    return pd.concat([frame, predict_frame(model, frame)], axis=1)


def read_day(url: str, day: int) -> pd.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        frame = pd.read_sql(
            sa.text("SELECT * FROM predictions WHERE day = :day"), connection, params={"day": day}
        )
    engine.dispose()
    return frame


def table_names_and_indexes(url: str) -> tuple[list[str], list[dict]]:
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    result = (inspector.get_table_names(), inspector.get_indexes("predictions"))
    engine.dispose()
    return result


def test_predictions_db_is_readable_by_day(model: TabularClassifier, tmp_path: Path) -> None:
    frames = {day: scored_day(model, day, drift=day / 2) for day in (1, 2)}
    frames[2].loc[:9, list(DEMO_PREDICTION_COLUMNS)] = np.nan
    url = build_predictions_db(tmp_path / "demo.db", frames)
    day_two = read_day(url, 2)
    expected_columns = [DEMO_ID, DEMO_TIMESTAMP, "day", *DEMO_FEATURES_NUMERIC]
    expected_columns += [*DEMO_FEATURES_CATEGORICAL, DEMO_TARGET, *DEMO_PREDICTION_COLUMNS]
    assert url == f"sqlite:///{tmp_path / 'demo.db'}"
    assert list(day_two.columns) == expected_columns
    assert len(day_two) == 300
    assert set(day_two["day"]) == {2}
    assert day_two[DEMO_ID].tolist() == frames[2][DEMO_ID].tolist()
    assert day_two["prediction"].isna().sum() == 10
    assert day_two["proba_default"].isna().sum() == 10
    assert day_two["income"].isna().sum() == frames[2]["income"].isna().sum()
    assert day_two[DEMO_TIMESTAMP].iloc[0] == frames[2][DEMO_TIMESTAMP].iloc[0].isoformat()
    np.testing.assert_allclose(day_two["utilization"], frames[2]["utilization"])


def test_predictions_db_indexes_day_and_replaces_the_table(
    model: TabularClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "demo.db"
    build_predictions_db(path, {1: scored_day(model, 1, drift=0.0)})
    url = build_predictions_db(f"sqlite:///{path}", {5: scored_day(model, 5, drift=0.0)})
    tables, indexes = table_names_and_indexes(url)
    assert tables == ["predictions"]
    assert [(index["name"], index["column_names"]) for index in indexes] == [
        ("ix_predictions_day", ["day"])
    ]
    assert read_day(url, 1).empty
    assert len(read_day(url, 5)) == 300


def test_predictions_db_needs_prediction_columns(tmp_path: Path) -> None:
    frame = generate_frame(10, start=START, days=1, seed=0)
    with pytest.raises(ColumnNotFoundError, match="prediction"):
        build_predictions_db(tmp_path / "demo.db", {1: frame})
