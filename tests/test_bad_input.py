"""Bad input: every fault gets a specific error that names what is wrong, and no half run.

Each case feeds one kind of bad data, setting or environment to the Python API
(`evaluate`, `evaluate_and_log`) or to the CLI, and checks three things: the exception
class from `monitoring.errors`, a message naming the column, file, row or setting at
fault, and, where MLflow is involved, that no FINISHED batch run exists for that batch.
Data-quality events that are not errors (a column entirely missing in the batch, unseen
categories, feature names MLflow keys cannot hold) must complete and be reported instead.

MLflow runs against a throw-away SQLite store in each test's tmp_path: a copy of one
store migrated once per module, which saves the ~1.5 s schema migration per test.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from monitoring.cli.main import main
from monitoring.cli.options import EXIT_NOT_LOGGED
from monitoring.core.config import EvaluationConfig, MonitoringConfig, load_config
from monitoring.errors import (
    ColumnNotFoundError,
    ConfigError,
    DatabaseUnreachableError,
    DataError,
    DtypeMismatchError,
    DuplicateBatchError,
    EmptyBatchError,
    InvalidValueError,
    ModelError,
    QueryParameterError,
    SchemaError,
    SourceError,
    TrackingUnreachableError,
)
from monitoring.evaluation.batch import evaluate
from monitoring.evaluation.fit import MIN_REFERENCE_ROWS, fit_reference
from monitoring.stats.registry import METHODS
from monitoring.track.pipeline import evaluate_and_log

ROW = 77  # the faulty row: past the first chunk of CHUNKED, so offsets are checked too
CHUNKED = MonitoringConfig(evaluation=EvaluationConfig(chunk_size=50))
FAST = MonitoringConfig(evaluation=EvaluationConfig(plot_top_features=1))
SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-. :]+$")  # MLflow-safe and without "/"
DB_URL = "postgresql+psycopg://user:secret@127.0.0.1:1/db"
FEATURE_KEYS_JSON = "feature_keys.json"

Transform = Callable[[pd.DataFrame], pd.DataFrame]


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """A numeric feature, a categorical feature, a target with classes a/b, a prediction."""
    rng = np.random.default_rng(seed)
    label = rng.choice(["a", "b"], n)
    flipped = np.where(label == "a", "b", "a")
    return pd.DataFrame(
        {
            "price": rng.normal(10.0, 2.0, n).round(3),
            "color": rng.choice(["red", "green", "blue"], n),
            "label": label,
            "prediction": np.where(rng.random(n) < 0.1, flipped, label),
        }
    )


REFERENCE = make_frame(300, seed=1)
BATCH = make_frame(120, seed=2)


def set_at(column: str, row: int, value: object) -> Transform:
    """The frame with one cell replaced (a float stays float64, text makes it object)."""
    return lambda frame: frame.assign(**{column: frame[column].where(frame.index != row, value)})


def every_row(column: str, value: object) -> Transform:
    return lambda frame: frame.assign(**{column: value})


def finished_batch_runs(client: MlflowClient, batch_id: str) -> list[Run]:
    """FINISHED batch runs of `batch_id` in any experiment, deleted ones included."""
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(
        experiments,
        filter_string=(
            f"tags.`monitoring.batch_id` = '{batch_id}' and attributes.status = 'FINISHED'"
        ),
        run_view_type=ViewType.ALL,
    )


def feature_keys(client: MlflowClient, run_id: str, folder: Path) -> dict[str, str]:
    local = client.download_artifacts(run_id, FEATURE_KEYS_JSON, str(folder))
    return json.loads(Path(local).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quiet MLflow, a throw-away store URI and cwd in tmp, even for tests without MLflow."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty tracking store with MLflow's schema, made once and copied per test."""
    folder = tmp_path_factory.mktemp("template-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.chdir(folder)
        MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def store(tmp_path: Path, migrated_store: Path) -> MlflowClient:
    """A client on sqlite:///{tmp_path}/mlflow.db, the URI that MLFLOW_TRACKING_URI names."""
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def csv_files(tmp_path: Path) -> Path:
    """reference.csv and a clean batch.csv in the working directory."""
    REFERENCE.to_csv(tmp_path / "reference.csv", index=False)
    BATCH.to_csv(tmp_path / "batch.csv", index=False)
    return tmp_path


@pytest.fixture
def sqlite_batch(tmp_path: Path) -> str:
    """A SQLite database whose `predictions` table holds the batch and a `day` column."""
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    engine = sa.create_engine(url)
    BATCH.assign(day=1).to_sql("predictions", engine, index=False)
    engine.dispose()
    return url


# -- 1, 2, 4, 5, 12: a batch the reference cannot measure -------------------------------------

BAD_BATCHES = [
    pytest.param(
        lambda b: b.drop(columns="color"),
        ColumnNotFoundError,
        r"lacks column\(s\) 'color'",
        id="missing-column",
    ),
    pytest.param(
        set_at("price", ROW, "abc"),
        DtypeMismatchError,
        rf"column 'price' must be numeric, but row {ROW} holds 'abc'",
        id="text-in-numeric-column",
    ),
    pytest.param(
        set_at("price", ROW, np.inf),
        InvalidValueError,
        rf"column 'price' holds an infinite value at row {ROW}",
        id="inf-in-numeric-column",
    ),
    pytest.param(
        set_at("price", ROW, -np.inf),
        InvalidValueError,
        rf"column 'price' holds an infinite value at row {ROW}",
        id="minus-inf-in-numeric-column",
    ),
    pytest.param(
        lambda b: b.iloc[0:0],
        EmptyBatchError,
        r"has no rows",
        id="header-only",
    ),
    pytest.param(
        lambda b: pd.DataFrame(),
        EmptyBatchError,
        r"has no rows",
        id="no-columns-no-rows",
    ),
    pytest.param(
        set_at("prediction", ROW, "zzz"),
        InvalidValueError,
        rf"prediction column 'prediction' holds label 'zzz' at row {ROW}",
        id="unseen-predicted-label",
    ),
    pytest.param(
        set_at("label", ROW, "zzz"),
        InvalidValueError,
        rf"target column 'label' holds label 'zzz' at row {ROW}",
        id="unseen-true-label",
    ),
]


@pytest.mark.parametrize(("transform", "error", "pattern"), BAD_BATCHES)
def test_evaluate_refuses_a_bad_batch_frame(
    transform: Transform, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        evaluate(transform(BATCH), REFERENCE, config=CHUNKED)


@pytest.mark.parametrize(("transform", "error", "pattern"), BAD_BATCHES)
def test_evaluate_refuses_a_bad_batch_file_and_names_it(
    transform: Transform, error: type[Exception], pattern: str, csv_files: Path
) -> None:
    transform(BATCH).to_csv(csv_files / "bad.csv", index=False)
    with pytest.raises(error, match=pattern) as caught:
        evaluate("bad.csv", "reference.csv", config=CHUNKED)
    assert "bad.csv" in str(caught.value)


@pytest.mark.parametrize(("transform", "error", "pattern"), BAD_BATCHES)
def test_evaluate_and_log_refuses_a_bad_batch_and_logs_no_batch_run(
    transform: Transform, error: type[Exception], pattern: str, store: MlflowClient
) -> None:
    with pytest.raises(error, match=pattern):
        evaluate_and_log(transform(BATCH), reference=REFERENCE, config=CHUNKED, batch_id="bad")
    assert finished_batch_runs(store, "bad") == []


def test_batch_without_prediction_column_and_no_model_is_evaluated_with_a_warning() -> None:
    report = evaluate(BATCH.drop(columns="prediction"), REFERENCE)
    assert report.performance == {}
    assert any("no prediction column" in w for w in report.warnings), report.warnings


# -- 3: entirely missing columns ---------------------------------------------------------------

ALL_MISSING = [
    pytest.param("price", np.nan, id="numeric"),
    pytest.param("color", None, id="categorical"),
]


@pytest.mark.parametrize(("column", "missing"), ALL_MISSING)
def test_column_entirely_missing_in_the_batch_is_a_quality_finding_with_a_warning(
    column: str, missing: object, store: MlflowClient
) -> None:
    """A feed that stopped filling a column is a broken pipeline, not drift: a missing-rate
    finding of the quality family (its rows are anomalous too), with a warning."""
    logged = evaluate_and_log(
        every_row(column, missing)(BATCH), reference=REFERENCE, config=FAST, batch_id="holes"
    )
    drift = logged.report.column(column)
    assert (drift.missing_rate, drift.drifted) == (1.0, False)
    assert (column, "missing") in {(q.feature, q.check) for q in logged.report.quality_findings}
    assert logged.report.status == "quality"
    assert [w for w in logged.report.warnings if repr(column) in w] == [
        f"column {column!r} is entirely missing in the batch"
    ]
    run = store.get_run(logged.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics[f"quality/{column}/missing"] == 1.0
    assert run.data.metrics[f"quality/{column}/missing_flagged"] == 1.0
    assert [r.info.run_id for r in finished_batch_runs(store, "holes")] == [logged.run_id]


@pytest.mark.parametrize(("column", "missing"), ALL_MISSING)
def test_column_entirely_missing_in_the_reference_is_refused(column: str, missing: object) -> None:
    pattern = rf"reference column '{column}' is entirely missing"
    with pytest.raises(InvalidValueError, match=pattern):
        evaluate(BATCH, every_row(column, missing)(REFERENCE))


# -- 6: constant reference column --------------------------------------------------------------


def test_constant_reference_column_is_dropped_with_a_note_when_inferred() -> None:
    fitted = fit_reference(REFERENCE.assign(const=1.0))
    report = evaluate(BATCH.assign(const=1.0), fitted)
    assert "const" not in fitted.profiles
    assert "column 'const' is constant in the reference: not monitored" in fitted.notes
    assert "const" not in [c.column for c in report.columns]


def test_constant_reference_column_listed_as_numerical_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"reference column 'const' is constant"):
        fit_reference(REFERENCE.assign(const=1.0), numerical=["price", "const"])


def test_constant_reference_column_message_shows_the_value_plainly() -> None:
    with pytest.raises(SchemaError) as caught:
        fit_reference(REFERENCE.assign(const=1.0), numerical=["price", "const"])
    assert "(1.0 in every row)" in str(caught.value)


# -- 7: unseen categories ----------------------------------------------------------------------


def test_unseen_categories_are_logged_with_their_rate_and_a_warning(store: MlflowClient) -> None:
    batch = BATCH.assign(color=BATCH["color"].where(BATCH.index % 4 != 0, "purple"))
    logged = evaluate_and_log(batch, reference=REFERENCE, config=FAST, batch_id="purple")
    assert logged.report.column("color").unseen_rate == pytest.approx(0.25)
    assert [w for w in logged.report.warnings if "'color'" in w] == [
        "column 'color': 25.0% of values are categories the reference never saw"
    ]
    run = store.get_run(logged.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["quality/color/unseen"] == pytest.approx(0.25)


# -- 8: feature names MLflow keys cannot hold --------------------------------------------------

ODD_NAMES = {"price": "price (€)/unit", "color": "a@b"}


def test_unsafe_feature_names_are_logged_under_safe_keys_with_a_map(
    store: MlflowClient, tmp_path: Path
) -> None:
    logged = evaluate_and_log(
        BATCH.rename(columns=ODD_NAMES),
        reference=REFERENCE.rename(columns=ODD_NAMES),
        config=FAST,
        batch_id="odd-names",
    )
    run = store.get_run(logged.run_id)
    keys = feature_keys(store, logged.run_id, tmp_path)
    assert run.info.status == "FINISHED"
    assert sorted(keys) == sorted(ODD_NAMES.values())
    assert all(SAFE_KEY.match(key) for key in keys.values()), keys
    assert len(set(keys.values())) == len(keys)
    assert {f"drift/{key}/drifted" for key in keys.values()} <= set(run.data.metrics)
    assert not [m for m in run.data.metrics if "€" in m or "@" in m]


def test_a_safe_feature_name_keeps_its_key_when_an_unsafe_one_maps_onto_it(
    store: MlflowClient, tmp_path: Path
) -> None:
    names = {"price": "a@b", "color": "a_b"}  # numeric features come first: "a@b" is keyed first
    logged = evaluate_and_log(
        BATCH.rename(columns=names),
        reference=REFERENCE.rename(columns=names),
        config=FAST,
        batch_id="collision",
    )
    keys = feature_keys(store, logged.run_id, tmp_path)
    assert sorted(keys) == ["a@b"]
    assert keys["a@b"] != "a_b"


# -- list and struct columns -------------------------------------------------------------------

NESTED = [
    pytest.param([1, 2], "list", id="list"),
    pytest.param(("a", "b"), "list", id="tuple"),
    pytest.param(np.array([1.0, 2.0]), "list", id="array"),
    pytest.param({"a": 1}, r"struct \(dict\)", id="dict"),
]


@pytest.mark.parametrize(("value", "kind"), NESTED)
def test_a_list_or_struct_column_in_the_reference_is_refused_by_name(
    value: object, kind: str
) -> None:
    reference = REFERENCE.assign(tags=[value] * len(REFERENCE))
    with pytest.raises(DtypeMismatchError, match=rf"column 'tags' holds {kind} values") as caught:
        fit_reference(reference, target="label")
    assert "at row 0" in str(caught.value) and "--exclude" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [pytest.param([1, 2], "list", id="list"), pytest.param({"a": 1, "b": "x"}, "struct")],
)
def test_a_parquet_list_or_struct_column_is_refused_naming_the_file(
    value: object, kind: str, tmp_path: Path
) -> None:
    REFERENCE.assign(tags=[value] * len(REFERENCE)).to_parquet(tmp_path / "reference.parquet")
    with pytest.raises(DtypeMismatchError, match=rf"column 'tags' holds {kind}") as caught:
        fit_reference(tmp_path / "reference.parquet", target="label")
    assert "reference.parquet" in str(caught.value)


def test_a_list_further_down_a_text_column_is_named_with_its_row() -> None:
    batch = BATCH.astype({"color": object})
    batch.at[ROW, "color"] = ["red", "blue"]
    pattern = rf"column 'color' holds list values .* at row {ROW}"
    with pytest.raises(DtypeMismatchError, match=pattern):
        evaluate(batch, REFERENCE, config=CHUNKED)


# -- a reference too small to describe a distribution ------------------------------------------


@pytest.mark.parametrize(
    ("frame", "options", "rows"),
    [
        pytest.param(REFERENCE.head(3), {"target": "label"}, "3 rows", id="with-target"),
        pytest.param(REFERENCE[["price"]].head(1), {}, "1 row", id="one-feature-one-row"),
    ],
)
def test_a_reference_below_the_minimum_rows_is_refused_with_count_and_source(
    frame: pd.DataFrame, options: dict[str, str], rows: str, tmp_path: Path
) -> None:
    frame.to_csv(tmp_path / "tiny.csv", index=False)
    with pytest.raises(DataError, match=rf"has {rows}; a reference needs at least 10") as caught:
        fit_reference(tmp_path / "tiny.csv", **options)
    assert str(tmp_path / "tiny.csv") in str(caught.value)


def test_a_reference_of_the_minimum_rows_is_fitted() -> None:
    assert fit_reference(REFERENCE.head(MIN_REFERENCE_ROWS), target="label").n_rows == 10


def test_cli_reference_fit_below_the_minimum_rows_exits_1(csv_files: Path, store: MlflowClient):
    REFERENCE.head(2).to_csv(csv_files / "tiny.csv", index=False)
    result = CliRunner().invoke(main, ["reference", "fit", "tiny.csv", "--target", "label"])
    assert result.exit_code == 1, result.output
    assert re.match(r"error: reference \S*tiny\.csv has 2 rows; a reference needs", result.stderr)


# -- a CSV header that names a column twice ----------------------------------------------------


def test_a_batch_csv_header_that_names_a_column_twice_is_refused(csv_files: Path) -> None:
    text = BATCH.to_csv(index=False).splitlines()
    text[0] += ",price"
    rows = [line + ",1.0" for line in text[1:]]
    (csv_files / "bad.csv").write_text("\n".join([text[0], *rows]) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"the header names column\(s\) 'price' more than once"):
        evaluate("bad.csv", "reference.csv")
    with pytest.raises(SourceError, match=r"pandas would read the copies as 'price\.1'"):
        fit_reference("bad.csv")


def test_a_column_named_like_a_renamed_copy_is_read_as_written(csv_files: Path) -> None:
    REFERENCE.assign(**{"price.1": REFERENCE["price"] * 2}).to_csv("ref.csv", index=False)
    assert "price.1" in fit_reference("ref.csv", target="label").schema.numerical


# -- class probabilities outside [0, 1], named by the user's column ----------------------------


def with_scores(frame: pd.DataFrame) -> pd.DataFrame:
    p_b = np.where(frame["prediction"] == "b", 0.8, 0.3)
    return frame.assign(proba_a=1.0 - p_b, proba_b=p_b)


@pytest.mark.parametrize("value", [-0.7, 1.5, np.nan])
def test_a_score_outside_0_1_is_named_by_its_column_and_row(
    value: float, csv_files: Path
) -> None:
    reference = fit_reference(with_scores(REFERENCE), target="label")
    pattern = rf"score column 'proba_b' \(class 'b'\) has {value} at row {ROW}"
    bad = set_at("proba_b", ROW, value)(with_scores(BATCH))
    with pytest.raises(InvalidValueError, match=pattern):
        evaluate(bad, reference, config=CHUNKED)
    bad.to_csv(csv_files / "bad.csv", index=False)
    with pytest.raises(InvalidValueError, match=pattern):
        evaluate("bad.csv", reference, config=CHUNKED)
    with pytest.raises(InvalidValueError, match=pattern):
        fit_reference(set_at("proba_b", ROW, value)(with_scores(REFERENCE)), config=CHUNKED)


# -- 9, 10, 11: unreachable database, tracking server, model ------------------------------------


def test_unreachable_database_is_named_without_its_password(store: MlflowClient) -> None:
    with pytest.raises(DatabaseUnreachableError, match=r"127\.0\.0\.1:1/db") as caught:
        evaluate_and_log(
            DB_URL, reference=REFERENCE, query="select * from predictions", batch_id="db"
        )
    assert "secret" not in str(caught.value)
    assert finished_batch_runs(store, "db") == []


def test_unreachable_tracking_server_fails_within_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(TrackingUnreachableError, match=r"http://127\.0\.0\.1:1"):
        evaluate_and_log(BATCH, reference=REFERENCE, batch_id="offline")
    assert time.monotonic() - started < 10


MISSING_MODELS = [
    pytest.param("models:/nope/1", "prediction", r"'nope'.*version 1", id="version-no-prediction"),
    pytest.param("models:/nope/1", None, r"'nope'.*version 1", id="version-with-prediction"),
    pytest.param("models:/nope@champion", None, r"alias 'champion'", id="alias-with-prediction"),
    pytest.param(
        "runs:/0123456789abcdef0123456789abcdef/model",
        "prediction",
        r"runs:/0123456789abcdef0123456789abcdef/model",
        id="run-no-prediction",
    ),
    pytest.param(
        "models:/nope/latest",
        None,
        r"nope",
        id="latest-with-prediction",
    ),
    pytest.param(
        "runs:/0123456789abcdef0123456789abcdef/model",
        None,
        r"runs:/0123456789abcdef0123456789abcdef/model",
        id="run-with-prediction",
    ),
]


@pytest.mark.parametrize(("uri", "dropped", "pattern"), MISSING_MODELS)
def test_model_uri_that_does_not_exist_is_a_model_error(
    uri: str, dropped: str | None, pattern: str, store: MlflowClient
) -> None:
    batch = BATCH.drop(columns=[dropped] if dropped else [])
    with pytest.raises(ModelError, match=pattern):
        evaluate_and_log(batch, reference=REFERENCE, model_uri=uri, batch_id="no-model")
    assert finished_batch_runs(store, "no-model") == []


# -- 13: query parameters ----------------------------------------------------------------------

QUERY_PARAMS = [
    pytest.param(None, r"no value for :day", id="unbound"),
    pytest.param({"day": 1, "shop": 2}, r"no placeholder for 'shop'", id="unused"),
    pytest.param({"dya": 1}, r"no value for :day; no placeholder for 'dya'", id="misspelt"),
]


@pytest.mark.parametrize(("params", "pattern"), QUERY_PARAMS)
def test_query_parameters_must_match_the_placeholders(
    params: dict[str, object] | None, pattern: str, sqlite_batch: str, store: MlflowClient
) -> None:
    with pytest.raises(QueryParameterError, match=pattern):
        evaluate_and_log(
            sqlite_batch,
            reference=REFERENCE,
            query="select price, color, label, prediction from predictions where day = :day",
            params=params,
            batch_id="day-1",
        )
    assert finished_batch_runs(store, "day-1") == []


# -- 14: the same batch twice ------------------------------------------------------------------


def test_same_batch_twice_is_refused_then_replaced(store: MlflowClient) -> None:
    first = evaluate_and_log(BATCH, reference=REFERENCE, config=FAST, batch_id="day-1")
    with pytest.raises(DuplicateBatchError, match=rf"'day-1'.*{first.run_id}.*replace"):
        evaluate_and_log(BATCH, reference=REFERENCE, config=FAST, batch_id="day-1")
    assert [r.info.run_id for r in finished_batch_runs(store, "day-1")] == [first.run_id]
    second = evaluate_and_log(
        BATCH, reference=REFERENCE, config=FAST, batch_id="day-1", replace=True
    )
    old, new = store.get_run(first.run_id).info, store.get_run(second.run_id).info
    assert (old.lifecycle_stage, new.lifecycle_stage) == ("deleted", "active")
    assert new.status == "FINISHED"
    assert second.run_id != first.run_id


# -- 15: configuration -------------------------------------------------------------------------

UNKNOWN_METHODS = [
    pytest.param('numerical_methods = ["kl", "nope"]', id="numerical-methods"),
    pytest.param('categorical_methods = ["nope"]', id="categorical-methods"),
    pytest.param('numerical_decision = "nope"', id="numerical-decision"),
    pytest.param('categorical_decision = "nope"', id="categorical-decision"),
    pytest.param(
        "thresholds = { nope = 0.1 }",
        id="thresholds",
    ),
]


def test_config_bins_below_two_is_refused_with_the_formula(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[drift]\nbins = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "bad.toml")
    assert str(caught.value) == "`drift.bins` must be an integer >= 2, got 1"


@pytest.mark.parametrize("line", UNKNOWN_METHODS)
def test_config_unknown_method_lists_the_registered_ones(line: str, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(f"[drift]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'nope'") as caught:
        load_config(tmp_path / "bad.toml")
    assert [m for m in sorted(METHODS) if m not in str(caught.value)] == []


# -- the CLI: exit code 1 and one `error:` line ------------------------------------------------

CLI_CASES = [
    pytest.param(
        lambda b: b.drop(columns="color"),
        [],
        r"error: batch bad\.csv lacks column\(s\) 'color'",
        id="missing-column",
    ),
    pytest.param(
        set_at("price", ROW, "abc"),
        [],
        rf"error: batch bad\.csv: column 'price' must be numeric, but row {ROW} holds 'abc'",
        id="text-in-numeric-column",
    ),
    pytest.param(
        lambda b: b.iloc[0:0], [], r"error: batch .*bad\.csv has no rows", id="header-only"
    ),
    pytest.param(
        lambda b: b,
        ["--config", "bad.toml"],
        r"error: `drift\.bins` must be an integer >= 2, got 1",
        id="bins-1",
    ),
]


@pytest.mark.parametrize(("transform", "options", "pattern"), CLI_CASES)
def test_cli_bad_batch_exits_1_with_an_error_line(
    transform: Transform,
    options: list[str],
    pattern: str,
    csv_files: Path,
    store: MlflowClient,
) -> None:
    transform(BATCH).to_csv(csv_files / "bad.csv", index=False)
    (csv_files / "bad.toml").write_text("[drift]\nbins = 1\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["evaluate", "bad.csv", "--reference", "reference.csv", "--batch-id", "bad", *options],
    )
    assert result.exit_code == 1, result.output
    assert re.match(pattern, result.stderr), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert finished_batch_runs(store, "bad") == []


SOURCE_CASES = [
    pytest.param(
        lambda url: [url, "--query", "select * from predictions where day = :day"],
        r"error: no value for :day",
        id="unbound-query-parameter",
    ),
    pytest.param(
        lambda url: [DB_URL, "--query", "select * from predictions"],
        r"error: cannot connect to postgresql\+psycopg://user:\*\*\*@127\.0\.0\.1:1/db",
        id="unreachable-database",
    ),
]


@pytest.mark.parametrize(("arguments", "pattern"), SOURCE_CASES)
def test_cli_bad_source_exits_1_with_an_error_line_and_no_password(
    arguments: Callable[[str], list[str]],
    pattern: str,
    sqlite_batch: str,
    csv_files: Path,
    store: MlflowClient,
) -> None:
    result = CliRunner().invoke(
        main,
        ["evaluate", *arguments(sqlite_batch), "--reference", "reference.csv", "--batch-id", "q"],
    )
    assert result.exit_code == 1, result.output
    # The last line: a URL with a password on the command line is warned about first.
    assert re.match(pattern, result.stderr.splitlines()[-1]), result.stderr
    assert "secret" not in result.output
    assert finished_batch_runs(store, "q") == []


def test_cli_unreachable_database_error_is_one_line(
    csv_files: Path, store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITORING_DB_URL", DB_URL)  # SOURCE omitted: the URL from there
    result = CliRunner().invoke(
        main, ["evaluate", "--query", "select * from t", "--reference", "reference.csv"]
    )
    assert result.exit_code == 1, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_cli_unreachable_tracking_server_exits_with_the_store_code(
    csv_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store down before the run: one line, the documented code (EXIT_NOT_LOGGED, 5), and
    it says that nothing was evaluated, so nothing waits in the outbox."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    result = CliRunner().invoke(main, ["evaluate", "batch.csv", "--reference", "reference.csv"])
    assert result.exit_code == EXIT_NOT_LOGGED, result.output
    assert re.match(r"error: the MLflow tracking server http://127\.0\.0\.1:1", result.stderr)
    assert result.stderr.rstrip().endswith("nothing was evaluated")
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_same_batch_twice_exits_1_and_points_to_replace(
    csv_files: Path, store: MlflowClient
) -> None:
    arguments = ["evaluate", "batch.csv", "--reference", "reference.csv", "--batch-id", "day-1"]
    first = CliRunner().invoke(main, arguments)
    second = CliRunner().invoke(main, arguments)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 1, second.output
    assert re.match(r"error: batch 'day-1' was already evaluated.*--replace", second.stderr)
    assert len(finished_batch_runs(store, "day-1")) == 1
