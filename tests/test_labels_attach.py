"""`monitoring labels attach` (issue 18): labels that arrive after their batch was evaluated,
joined to its run's samples.parquet, through a local store, the CLI and a real tracking
server (SQLite and PostgreSQL backends)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from monitoring.cli.main import main
from monitoring.core.alert_rules import AlertRule
from monitoring.core.config import AlertConfig, MonitoringConfig, SchemaConfig
from monitoring.errors import ColumnNotFoundError, DataError, NoRunsError
from monitoring.track.history import read_batch_runs
from monitoring.track.history_runs import find_history_run, history_key
from monitoring.track.history_table import read_for_compare
from monitoring.track.labels import LABELS_FILE, LabelsAttached, attach_labels
from monitoring.track.pipeline import evaluate_and_log
from monitoring.track.trends import order_batches

MODEL = "churn"
CONFIG = MonitoringConfig(schema=SchemaConfig(id="sample_id", target="y", prediction="prediction"))
ALERT_ON_DEGRADED = {"metric": "perf/degraded", "k": 1, "n": 1}
ALERT_NAME = AlertRule(**ALERT_ON_DEGRADED).label  # "perf/degraded > 0.5 in 1 of the last 1 ..."


def _frame(n: int, *, seed: int, first_id: int = 0) -> pd.DataFrame:
    """A binary classifier's outputs whose proba_1 is the true P(y=1 | x): what the
    reference's estimate of performance assumes, so labels drawn from it are unsurprising."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(1.2 * x1 - 0.8 * x2)))
    return pd.DataFrame(
        {
            "sample_id": np.arange(first_id, first_id + n),
            "x1": x1,
            "x2": x2,
            "prediction": (p > 0.5).astype(int),
            "proba_0": 1 - p,
            "proba_1": p,
            "y": (rng.random(n) < p).astype(int),
        }
    )


REFERENCE = _frame(1000, seed=1)
BATCH = _frame(300, seed=2, first_id=10_000)
LABELS = BATCH[["sample_id", "y"]]
# 80% of the labels flipped: the model looks much worse than its reference, and worse than
# its own scores said (P(label | inputs) changed: concept drift).
FLIPPED = LABELS.assign(y=np.where(np.arange(len(LABELS)) < 240, 1 - LABELS["y"], LABELS["y"]))


def _accuracy(labels: pd.DataFrame) -> float:
    """The batch's accuracy on these labels, by hand."""
    joined = BATCH[["sample_id", "prediction"]].merge(labels, on="sample_id")
    return float(np.mean(joined["prediction"].to_numpy() == joined["y"].to_numpy()))


def _evaluate(client: MlflowClient, batch: pd.DataFrame = BATCH, batch_id: str = "day-1") -> str:
    """A batch run of the batch without its label column (but with its ids)."""
    return evaluate_and_log(
        batch.drop(columns="y"),
        reference=REFERENCE,
        batch_id=batch_id,
        model_name=MODEL,
        config=CONFIG,
        client=client,
    ).run_id


def _attach(client: MlflowClient, labels, batch_id: str = "day-1", **options) -> LabelsAttached:
    return attach_labels(
        labels,
        model_name=MODEL,
        batch_id=batch_id,
        id_column="sample_id",
        target="y",
        client=client,
        **options,
    )


def _stored_labels(client: MlflowClient, run_id: str, tmp_path) -> pd.DataFrame:
    folder = tmp_path / f"labels-{run_id}"
    folder.mkdir(exist_ok=True)
    return pd.read_parquet(client.download_artifacts(run_id, LABELS_FILE, str(folder)))


def _as_stored(labels: pd.DataFrame) -> pd.DataFrame:
    """Labels as labels.parquet keeps them: id and label as text, sorted by id."""
    return pd.DataFrame(
        {"id": labels["sample_id"].astype(str), "label": labels["y"].astype(str)}
    ).sort_values("id", ignore_index=True)


def _labelled_files(client: MlflowClient, run_id: str) -> list[str]:
    return [item.path for item in client.list_artifacts(run_id, "labels")]


# --- through a local store ---------------------------------------------------------------


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory) -> Path:
    """An empty SQLite tracking store with MLflow's tables, made once for the module:
    creating them takes seconds, and each test below starts from a copy instead."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "artifacts")).engine.dispose()
    return path


@pytest.fixture
def tracking_uri(tracking_uri: str, migrated_store: Path, tmp_path) -> str:
    """conftest's fresh store, as a copy of the migrated one (nothing has opened it yet)."""
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    return tracking_uri


def test_labels_in_parts_give_the_performance_of_every_label_known(client, tmp_path):
    first, rest = LABELS.iloc[:120], LABELS.iloc[120:]
    # The data tell the parts apart: a wrong join or a part measured alone shows.
    assert _accuracy(first) != _accuracy(LABELS) != _accuracy(rest)
    run_id = _evaluate(client)
    estimated = client.get_run(run_id).data.metrics
    assert "perf/accuracy" not in estimated and "perf_est/accuracy" in estimated

    attached = _attach(client, first)
    metrics = client.get_run(run_id).data.metrics
    assert (attached.n_new, attached.n_labelled, attached.n_unknown) == (120, 120, 0)
    assert metrics["perf/label_coverage"] == pytest.approx(0.4, abs=1e-9)
    assert metrics["perf/accuracy"] == _accuracy(first)
    assert metrics["perf/n_evaluated"] == 120
    assert metrics["perf_est_error/accuracy"] == pytest.approx(
        metrics["perf/accuracy"] - estimated["perf_est/accuracy"], abs=1e-12
    )

    attached = _attach(client, rest)
    metrics = client.get_run(run_id).data.metrics
    assert (attached.n_new, attached.n_labelled, attached.coverage) == (180, 300, 1.0)
    assert metrics["perf/label_coverage"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["perf/accuracy"] == _accuracy(LABELS)
    assert metrics["perf_est_error/accuracy"] == pytest.approx(
        metrics["perf/accuracy"] - estimated["perf_est/accuracy"], abs=1e-12
    )
    # Labels drawn from the scores' own probabilities: inside the estimate's interval.
    assert metrics["perf_est_error/accuracy_outside"] == 0.0
    assert {k: metrics[k] for k in estimated if k.startswith("perf_est/")} == {
        k: v for k, v in estimated.items() if k.startswith("perf_est/")
    }
    note = client.get_run(run_id).data.tags["mlflow.note.content"]
    assert note.count("\n## Labels attached\n") == 1  # written anew, not appended
    assert "300 labels known (100.0% of the batch's rows); status now `ok`." in note
    stored = _stored_labels(client, run_id, tmp_path)
    assert not stored["id"].duplicated().any()
    pd.testing.assert_frame_equal(
        stored.sort_values("id", ignore_index=True), _as_stored(LABELS), check_dtype=False
    )


def test_labels_for_ids_not_in_the_batch_are_counted_and_left_out(client, tmp_path):
    run_id = _evaluate(client)
    strangers = pd.DataFrame({"sample_id": [1, 2, 99_999], "y": [0, 1, 1]})

    attached = _attach(client, pd.concat([LABELS.iloc[:100], strangers], ignore_index=True))

    run = client.get_run(run_id)
    assert (attached.n_new, attached.n_labelled, attached.n_unknown) == (100, 100, 3)
    assert run.data.metrics["perf/n_labels_unknown"] == 3
    assert run.data.metrics["perf/label_coverage"] == pytest.approx(100 / 300, abs=1e-9)
    assert run.data.metrics["perf/accuracy"] == _accuracy(LABELS.iloc[:100])
    assert "3 ids not in the batch" in run.data.tags["mlflow.note.content"]
    pd.testing.assert_frame_equal(
        _stored_labels(client, run_id, tmp_path).sort_values("id", ignore_index=True),
        _as_stored(LABELS.iloc[:100]),
        check_dtype=False,
    )


def test_an_id_given_twice_in_one_part_is_refused_and_nothing_is_written(client):
    run_id = _evaluate(client)
    before = client.get_run(run_id).data
    twice = pd.concat([LABELS.iloc[:50], LABELS.iloc[[7]]], ignore_index=True)

    with pytest.raises(DataError, match=r"id '10007' is given 2 times \(rows 7, 50\)"):
        _attach(client, twice)

    after = client.get_run(run_id).data
    assert after.metrics == before.metrics
    assert after.tags == before.tags
    assert _labelled_files(client, run_id) == []


def test_a_label_that_differs_from_the_one_attached_is_refused(client, tmp_path):
    run_id = _evaluate(client)
    _attach(client, LABELS.iloc[:100])
    before = client.get_run(run_id).data.metrics
    changed = LABELS.iloc[90:150].copy()
    changed.loc[changed["sample_id"] == 10_095, "y"] = 1 - changed["y"]

    with pytest.raises(DataError, match=r"id '10095' already has the label '\d'; this part gives"):
        _attach(client, changed)

    assert client.get_run(run_id).data.metrics == before
    assert len(_stored_labels(client, run_id, tmp_path)) == 100


@pytest.mark.parametrize(
    "missing", [pytest.param("sample_id", id="id-column"), pytest.param("y", id="label-column")]
)
def test_a_missing_column_of_the_labels_is_named(client, missing):
    run_id = _evaluate(client)

    with pytest.raises(ColumnNotFoundError, match=f"have no column '{missing}'"):
        _attach(client, LABELS.drop(columns=missing))

    assert _labelled_files(client, run_id) == []


def test_labels_for_a_batch_never_evaluated_are_refused(client):
    _evaluate(client)
    missing = "no finished batch run of model 'churn' for batch 'day-9'"

    with pytest.raises(NoRunsError, match=missing):
        _attach(client, LABELS, batch_id="day-9")


def test_labels_for_a_batch_evaluated_without_ids_are_refused_with_the_reason(client):
    run_id = evaluate_and_log(
        BATCH.drop(columns=["y", "sample_id"]),
        reference=REFERENCE.drop(columns="sample_id"),
        batch_id="day-1",
        model_name=MODEL,
        config=MonitoringConfig(schema=SchemaConfig(target="y", prediction="prediction")),
        client=client,
    ).run_id

    with pytest.raises(NoRunsError, match=f"batch run {run_id} has no samples.parquet: it was "
                       "evaluated without an id column"):  # fmt: skip
        _attach(client, LABELS)


def test_labels_that_show_a_worse_model_make_the_run_degraded(client):
    run_id = _evaluate(client)
    assert client.get_run(run_id).data.tags["monitoring.status"] == "ok"

    attached = _attach(client, FLIPPED)

    run = client.get_run(run_id)
    assert (attached.status, attached.alerts) == ("degraded", ())
    assert run.data.metrics["perf/accuracy_degraded"] == 1.0
    assert run.data.metrics["perf/degraded"] == 1.0
    assert run.data.tags["monitoring.status"] == "degraded"
    assert run.data.tags["monitoring.alerts"] == ""  # the default rule wants 2 of 3 batches
    assert "status now `degraded`" in run.data.tags["mlflow.note.content"]


def test_an_alert_rule_on_degraded_performance_fires_once_the_labels_show_it(client):
    run_id = _evaluate(client)
    config = MonitoringConfig(alerts=AlertConfig(rules=(ALERT_ON_DEGRADED,)))

    attached = _attach(client, FLIPPED, config=config)

    run = client.get_run(run_id)
    assert (attached.status, attached.alerts) == ("alert", (ALERT_NAME,))
    assert run.data.tags["monitoring.status"] == "alert"
    assert run.data.tags["monitoring.alerts"] == ALERT_NAME


def test_labels_of_an_earlier_batch_judge_the_later_batches_again(client):
    """Rule: performance degraded in 2 of the last 2 batches. Day 3's labels come first
    (degraded, day 2 unknown: no alert); then day 2's: day 2 is degraded, and day 3,
    whose window now holds two degraded batches, goes to alert too."""
    batches = [_frame(300, seed=20 + i, first_id=10_000 * i) for i in (1, 2, 3)]
    run_ids = [_evaluate(client, b, batch_id=f"day-{i}") for i, b in enumerate(batches, 1)]
    rule = {"metric": "perf/degraded", "k": 2, "n": 2}
    config = MonitoringConfig(alerts=AlertConfig(rules=(rule,)))

    def flipped(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[["sample_id", "y"]].assign(y=1 - frame["y"])

    third = _attach(client, flipped(batches[2]), batch_id="day-3", config=config)
    assert (third.status, third.alerts, third.later) == ("degraded", (), ())

    second = _attach(client, flipped(batches[1]), batch_id="day-2", config=config)

    name = AlertRule(**rule).label
    assert (second.status, second.alerts) == ("degraded", ())  # day 1 is unknown
    assert [(j.run_id, j.status, j.alerts) for j in second.later] == [
        (run_ids[2], "alert", (name,))
    ]
    later = client.get_run(run_ids[2]).data.tags
    assert (later["monitoring.status"], later["monitoring.alerts"]) == ("alert", name)
    assert client.get_run(run_ids[0]).data.tags["monitoring.status"] == "ok"
    experiment = client.get_experiment_by_name(f"monitoring-{MODEL}").experiment_id
    history = find_history_run(client, experiment, MODEL, "none").info.run_id
    flags = {}
    for m in sorted(client.get_metric_history(history, "batch/alert"), key=lambda m: m.timestamp):
        flags[m.step] = m.value  # the latest value at each step
    assert flags == {1: 0.0, 2: 0.0, 3: 1.0}


def test_concept_drift_shows_as_realized_figures_outside_the_estimate(client):
    run_id = _evaluate(client)

    _attach(client, FLIPPED)

    run = client.get_run(run_id)
    metrics, note = run.data.metrics, run.data.tags["mlflow.note.content"]
    assert metrics["perf/accuracy"] < metrics["perf_est/accuracy_lower"]
    assert metrics["perf_est_error/accuracy_outside"] == 1.0
    assert metrics["perf_est_error/accuracy"] == pytest.approx(
        metrics["perf/accuracy"] - metrics["perf_est/accuracy"], abs=1e-12
    )
    attached_section = note.split("\n## Labels attached\n")[1]
    realized = f"realized accuracy {metrics['perf/accuracy']:.4g}"
    assert f"{realized} is outside the estimate's 95% interval" in attached_section
    assert "(concept drift)" in attached_section


def test_the_history_run_gets_the_realized_figures_at_the_batch_step(client):
    batches = [_frame(300, seed=10 + i, first_id=10_000 * i) for i in (1, 2, 3)]
    run_ids = [_evaluate(client, b, batch_id=f"day-{i}") for i, b in enumerate(batches, 1)]

    _attach(client, batches[1][["sample_id", "y"]], batch_id="day-2")

    ordered = order_batches(read_batch_runs(client, MODEL)).set_index("run_id")
    assert ordered.loc[run_ids[1], "batch_seq"] == 2
    experiment = client.get_experiment_by_name(f"monitoring-{MODEL}").experiment_id
    history = find_history_run(client, experiment, MODEL, "none").info.run_id
    realized = client.get_run(run_ids[1]).data.metrics
    for key in ("perf/accuracy", "perf/label_coverage", "perf_est_error/accuracy"):
        stored = client.get_metric_history(history, history_key(key))
        assert [(m.step, m.value) for m in stored] == [(2, realized[key])], key
    # compare's table of the version holds the realized figures too, and is still current
    parts = read_for_compare(client, MODEL)
    assert [p.from_table for p in parts] == [True]
    table = parts[0].runs.set_index("run_id")
    for key in ("perf/accuracy", "perf/label_coverage"):
        assert table.loc[run_ids[1], key] == realized[key], key


def test_a_later_part_is_the_latest_value_in_the_history_run(client):
    """Each part logs at the batch's step; the latest part's figure must be the one the
    history shows, also when it is lower (MLflow breaks a tie of step and time by the
    largest value)."""
    run_id = _evaluate(client)
    _attach(client, LABELS.iloc[:150])
    _attach(client, LABELS.iloc[150:].assign(y=1 - LABELS["y"].iloc[150:]))
    experiment = client.get_experiment_by_name(f"monitoring-{MODEL}").experiment_id
    history = client.get_run(find_history_run(client, experiment, MODEL, "none").info.run_id)
    batch = client.get_run(run_id).data.metrics
    assert history.data.metrics["batch_perf/accuracy"] == batch["perf/accuracy"]


def test_a_part_without_any_id_of_the_batch_is_refused(client):
    run_id = _evaluate(client)
    before = client.get_run(run_id).data.metrics
    strangers = LABELS.assign(sample_id=LABELS["sample_id"] + 1_000_000)
    with pytest.raises(DataError, match="none of the 300 labels is for an id of batch 'day-1'"):
        _attach(client, strangers)
    assert client.get_run(run_id).data.metrics == before
    assert not client.list_artifacts(run_id, "labels")


# --- the CLI -----------------------------------------------------------------------------


def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _attach_cli(labels_file, *extra: object):
    return _cli(
        "labels", "attach", labels_file, "--model-name", MODEL, "--batch-id", "day-1",
        "--id-col", "sample_id", "--target", "y", *extra,
    )  # fmt: skip


def test_the_cli_attaches_labels_and_says_what_they_show(client, tmp_path):
    BATCH.drop(columns="y").to_csv(tmp_path / "batch.csv", index=False)
    REFERENCE.to_csv(tmp_path / "reference.csv", index=False)
    evaluated = _cli(
        "evaluate", tmp_path / "batch.csv", "--reference", tmp_path / "reference.csv",
        "--model-name", MODEL, "--batch-id", "day-1", "--target", "y",
        "--prediction", "prediction", "--id-col", "sample_id",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    strangers = pd.DataFrame({"sample_id": [1, 2], "y": [0, 1]})
    pd.concat([LABELS.iloc[:120], strangers]).to_csv(tmp_path / "labels.csv", index=False)

    attached = _attach_cli(tmp_path / "labels.csv")

    assert attached.exit_code == 0, attached.output
    (run,) = client.search_runs(
        [client.get_experiment_by_name(f"monitoring-{MODEL}").experiment_id],
        "tags.`monitoring.batch_id` = 'day-1'",
    )
    m = run.data.metrics
    lines = attached.output.splitlines()
    assert lines[0] == (
        f"batch day-1 (model churn version none, run {run.info.run_id}): 120 new labels, "
        "120 known (40.0% of its rows); status ok"
    )
    assert lines[1] == "warning: 2 labels are for ids not in the batch: left out"
    interval = f"{m['perf_est/accuracy_lower']:.4g} to {m['perf_est/accuracy_upper']:.4g}"
    estimate = f"(estimated {m['perf_est/accuracy']:.4g}, {interval})"
    assert f"  {'accuracy':<16} {m['perf/accuracy']:.4g}  {estimate}" in lines
    assert m["perf/accuracy"] == _accuracy(LABELS.iloc[:120])
    assert not any(line.startswith(("finding:", "alert:")) for line in lines)


def test_the_cli_exits_4_with_the_alert_when_the_labels_raise_one(client, tmp_path):
    _evaluate(client)
    FLIPPED.to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "monitoring.toml").write_text(
        '[[alerts.rules]]\nmetric = "perf/degraded"\nk = 1\nn = 1\n', encoding="utf-8"
    )

    args = (tmp_path / "labels.csv", "--config", tmp_path / "monitoring.toml")
    assert _attach_cli(*args).exit_code == 0  # the alert is said; the exit code needs the flag

    attached = _attach_cli(*args, "--fail-on-alert")

    assert attached.exit_code == 4, attached.output
    lines = attached.output.splitlines()
    assert lines[0].endswith("0 new labels, 300 known (100.0% of its rows); status alert")
    assert "finding: performance degraded: accuracy" in attached.output
    assert lines[-1] == f"alert: {ALERT_NAME}"


def test_a_cli_error_is_one_line_and_exit_code_1(client, tmp_path):
    _evaluate(client)
    LABELS.rename(columns={"y": "label"}).to_csv(tmp_path / "labels.csv", index=False)

    attached = _attach_cli(tmp_path / "labels.csv")

    assert attached.exit_code == 1
    assert attached.output.count("\n") == 1
    assert attached.output.startswith("error: labels ")
    assert "have no column 'y'; columns: sample_id, label" in attached.output
    assert _labelled_files(client, client.search_runs(
        [client.get_experiment_by_name(f"monitoring-{MODEL}").experiment_id],
        "tags.`monitoring.batch_id` = 'day-1'",
    )[0].info.run_id) == []  # fmt: skip


# --- through a real tracking server ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def test_round_trip_through_a_tracking_server(start_server, backend):
    uri = start_server(backend)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = _evaluate(client)

    _attach(client, LABELS.iloc[:120])
    attached = _attach(client, LABELS.iloc[120:])  # reads the first part back over HTTP

    metrics = MlflowClient(tracking_uri=uri).get_run(run_id).data.metrics
    assert (attached.n_new, attached.n_labelled) == (180, 300)
    assert metrics["perf/label_coverage"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["perf/accuracy"] == _accuracy(LABELS)
    assert metrics["perf_est_error/accuracy"] == pytest.approx(
        metrics["perf/accuracy"] - metrics["perf_est/accuracy"], abs=1e-12
    )


def test_labels_rewrite_the_registered_versions_description(client):
    import torch

    from monitoring.track.models import register_pytorch_model

    class _Half(torch.nn.Module):
        classes = [0, 1]

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return torch.zeros(inputs.shape[0], 2)

    info = register_pytorch_model(client, _Half(), name="described-churn")
    logged = evaluate_and_log(
        BATCH.drop(columns="y"),
        reference=REFERENCE,
        batch_id="day-1",
        model_name="described-churn",
        model_version=info.version,
        config=CONFIG,
        client=client,
    )
    client.update_model_version("described-churn", info.version, description="## Monitoring\nold")
    attached = attach_labels(
        FLIPPED,
        model_name="described-churn",
        model_version=info.version,
        batch_id="day-1",
        id_column="sample_id",
        target="y",
        client=client,
    )
    assert attached.status != logged.report.status  # the labels changed the verdict
    text = client.get_model_version("described-churn", info.version).description
    assert "old" not in text
    assert "**Last batch**: `day-1`" in text and f"status **`{attached.status}`**" in text
