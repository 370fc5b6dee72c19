"""One MLflow run per batch: the contract the comparer and the UI rely on (BRIEF.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from monitoring import DuplicateBatchError, TrackingError, evaluate_and_log, fit_reference
from monitoring.collect.sources import SqlSource
from monitoring.track import load_reference, log_reference
from monitoring.track.models import register_pytorch_model


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.fixture
def logged(client, reference_frame, drifted_frame):
    return evaluate_and_log(
        drifted_frame, reference=reference_frame, batch_id="2026-11-27", model_name="churn"
    )


def test_batch_run_tags(client, logged):
    run = client.get_run(logged.run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "2026-11-27 · churn unversioned"
    assert tags["monitoring.kind"] == "batch"
    assert tags["monitoring.model_name"] == "churn"
    assert tags["monitoring.model_version"] == "none"
    assert tags["monitoring.batch_id"] == "2026-11-27"
    assert tags["monitoring.reference_id"] == logged.report.reference_id
    assert tags["monitoring.status"] == "drift"
    assert "**Status: `drift`**" in tags["mlflow.note.content"]
    assert client.get_experiment(run.info.experiment_id).name == "monitoring-churn"


def test_batch_run_metric_keys(client, logged):
    metrics = client.get_run(logged.run_id).data.metrics
    report = logged.report
    per_column = {}
    for c in report.columns:
        method = c.decision_method
        per_column[c.column] = {
            f"drift/{c.column}/{method}",
            f"drift/{c.column}/{method}_threshold",
            f"drift/{c.column}/drifted",
        } | ({f"drift/{c.column}/adjusted_pvalue"} if c.adjusted_p_value is not None else set())
        logged_for_column = {k for k in metrics if k.startswith(f"drift/{c.column}/")}
        # The decision's statistic and threshold, effect, adjusted p-value and verdict:
        # nothing else per column (the other methods are in drift.csv).
        assert per_column[c.column] <= logged_for_column <= per_column[c.column] | {
            f"drift/{c.column}/effect"
        }, c.column
    expected = {
        "drift/dataset/drift",
        "drift/dataset/n_drifted",
        "drift/dataset/share_drifted",
        "drift/dataset/prediction_drift",
        "drift/dataset/target_drift",
        "quality/color/unseen",
        "perf/accuracy",
        "perf/roc_auc",
        "perf/log_loss",
        "perf/ece",
        "perf/f1_macro",
        "data/n_rows",
    }
    assert expected <= set(metrics)
    raw_p = [k for k in metrics if k.endswith("_pvalue") and "adjusted" not in k]
    assert all(k.startswith("drift/dataset/") for k in raw_p), raw_p  # batch-level tests
    columns = len(report.columns)
    assert len([k for k in metrics if k.startswith(("drift/", "quality/"))]) < 10 * columns
    assert metrics["data/n_rows"] == 800
    assert metrics["drift/x/drifted"] == 1.0
    assert metrics["drift/size/drifted"] == 0.0
    x = report.column("x")
    decision = x.score(x.decision_method)
    assert metrics[f"drift/x/{x.decision_method}"] == pytest.approx(decision.statistic)


def test_batch_run_keeps_every_method_and_p_value_in_its_tables(client, logged, tmp_path):
    folder = Path(client.download_artifacts(logged.run_id, "", str(tmp_path)))
    drift = pd.read_csv(folder / "drift.csv")
    methods = set(drift.loc[drift["feature"] == "x", "method"])
    assert {"ks", "psi", "wasserstein"} <= methods
    quality = pd.read_csv(folder / "quality.csv")
    assert {"feature", "check", "p_value", "adjusted_p_value", "flagged"} <= set(quality.columns)
    assert ("color", "unseen") in set(zip(quality["feature"], quality["check"], strict=True))
    performance = pd.read_csv(folder / "performance.csv")
    assert "accuracy" in set(performance["metric"])
    assert {"p_value", "adjusted_p_value", "drop", "flagged"} <= set(performance.columns)


def test_batch_run_params_and_inputs(client, logged):
    run = client.get_run(logged.run_id)
    params = run.data.params
    assert params["batch.id"] == "2026-11-27"
    assert params["reference.id"] == logged.report.reference_id
    assert params["config.drift.bins"] == "10"
    assert params["source.name"] == "dataframe"
    contexts = {
        d.dataset.digest: {t.key: t.value for t in d.tags}["mlflow.data.context"]
        for d in run.inputs.dataset_inputs
    }
    assert contexts == {
        logged.report.batch_digest: "batch",
        logged.report.reference_id: "reference",
    }


def test_batch_run_artifacts(client, logged):
    artifacts = _artifacts(client, logged.run_id)
    assert {
        "drift.csv",
        "worst_samples.csv",
        "profile.json",
        "schema.json",
        "plots/drift_overview.png",
        "plots/distributions/x.png",
        "plots/worst_samples.png",
        "worst_samples.json",
        "drift_table.json",
        "report.html",
        "segments.csv",
    } <= artifacts
    assert not logged.report.column("size").drifted
    assert "plots/distributions/size.png" not in artifacts  # only what drifted is drawn
    local = client.download_artifacts(logged.run_id, "profile.json")
    with open(local, encoding="utf-8") as handle:
        profile = json.load(handle)
    assert profile["n_rows"] == 800
    # The drift table (every column and method) as a table the UI pages, like log_table's.
    tables = json.loads(client.get_run(logged.run_id).data.tags["mlflow.loggedArtifacts"])
    assert {"path": "drift_table.json", "type": "table"} in tables
    with open(client.download_artifacts(logged.run_id, "drift_table.json"), encoding="utf-8") as f:
        table = json.load(f)
    drift = logged.report.drift_table
    assert set(table["columns"]) == set(drift.columns) and len(table["data"]) == len(drift)
    assert table["columns"][:4] == ["feature", "method", "decision", "statistic"]
    assert {row[0] for row in table["data"]} == set(drift["feature"])


def test_reference_is_a_run_and_loads_back_by_id(client, reference_frame, drifted_frame):
    reference = fit_reference(reference_frame)
    run_id = log_reference(client, reference)
    assert log_reference(client, reference) == run_id  # same content, same run
    assert client.get_run(run_id).data.tags["monitoring.kind"] == "reference"
    loaded = load_reference(client, reference.id)
    assert loaded.id == reference.id
    by_id = evaluate_and_log(drifted_frame, reference=reference.id, batch_id="b1")
    assert by_id.report.reference_id == reference.id


def test_same_batch_id_is_refused_then_replaced(client, reference_frame, batch_frame):
    first = evaluate_and_log(batch_frame, reference=reference_frame, batch_id="day-1")
    with pytest.raises(DuplicateBatchError, match="day-1"):
        evaluate_and_log(batch_frame, reference=reference_frame, batch_id="day-1")
    second = evaluate_and_log(
        batch_frame, reference=reference_frame, batch_id="day-1", replace=True
    )
    assert client.get_run(first.run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(second.run_id).data.tags["monitoring.replaces"] == first.run_id


class _FailingClient(MlflowClient):
    """A real client on the temporary store whose metric upload fails (fault injection)."""

    def log_batch(self, *args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("store went away")


def test_failure_mid_way_leaves_a_failed_run_with_the_reason(
    tracking_uri, reference_frame, batch_frame
):
    reference = fit_reference(reference_frame)
    log_reference(MlflowClient(tracking_uri), reference)
    failing = _FailingClient(tracking_uri=tracking_uri)
    with pytest.raises(TrackingError, match="store went away"):
        evaluate_and_log(batch_frame, reference=reference, batch_id="x", client=failing)
    runs = MlflowClient(tracking_uri).search_runs(
        [failing.get_experiment_by_name("monitoring-model").experiment_id]
    )
    assert [r.info.status for r in runs] == ["FAILED"]
    assert "store went away" in runs[0].data.tags["monitoring.error"]


class _Threshold(torch.nn.Module):
    classes = ["a", "b"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([-inputs[:, :1], inputs[:, :1]], dim=1)


def test_registered_model_runs_and_the_run_is_tied_to_its_version(
    client, reference_frame, batch_frame
):
    info = register_pytorch_model(client, _Threshold(), name="churn")
    unpredicted = batch_frame.drop(columns=["prediction", "proba_a", "proba_b"])
    logged = evaluate_and_log(
        unpredicted, reference=reference_frame, batch_id="b", model_uri=info.uri
    )
    run = client.get_run(logged.run_id)
    assert logged.report.predicted_by_model is True
    assert run.data.tags["monitoring.model_version"] == "1"
    assert run.info.run_name == "b · churn v1"
    assert [m.model_id for m in run.inputs.model_inputs] == [info.model_id]
    assert info.model_id is not None and info.model_id.startswith("m-")


def test_alias_resolves_to_its_version(client, reference_frame, batch_frame):
    info = register_pytorch_model(client, _Threshold(), name="churn")
    client.set_registered_model_alias("churn", "champion", info.version)
    logged = evaluate_and_log(
        batch_frame, reference=reference_frame, batch_id="b", model_uri="models:/churn@champion"
    )
    assert logged.model.version == info.version


@pytest.mark.postgres
def test_postgres_batch_with_a_password_is_masked_in_params(client, reference_frame, batch_frame):
    import sqlalchemy

    url = "postgresql+psycopg://postgres:s3cr3t-pw@127.0.0.1:5432/test"
    engine = sqlalchemy.create_engine(url)
    table = "monitoring_tracking_test"
    batch_frame.assign(day=1).to_sql(table, engine, if_exists="replace", index=False)
    try:
        source = SqlSource(url, f"SELECT * FROM {table} WHERE day = :day", {"day": 1})
        logged = evaluate_and_log(source, reference=reference_frame.assign(day=0), batch_id="pg")
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP TABLE {table}"))
        engine.dispose()
    run = client.get_run(logged.run_id)
    assert logged.report.n_rows == len(batch_frame)
    assert "s3cr3t-pw" not in json.dumps(run.data.params) + json.dumps(run.data.tags)
    assert "***" in run.data.params["source.description"]


def test_replace_leaves_ignored_samples_out_and_keeps_the_notes_tags(
    client, reference_frame, batch_frame
):
    first = evaluate_and_log(batch_frame, reference=reference_frame, batch_id="d1")
    client.set_tag(first.run_id, "monitoring.notes.ignored_samples", "0,1,2")
    client.set_tag(first.run_id, "monitoring.notes.count", "1")
    second = evaluate_and_log(batch_frame, reference=reference_frame, batch_id="d1", replace=True)
    run = client.get_run(second.run_id)
    assert run.data.metrics["perf/n_evaluated_excl_ignored"] == len(batch_frame) - 3
    assert "perf/accuracy_excl_ignored" in run.data.metrics
    assert run.data.tags["monitoring.notes.ignored_samples"] == "0,1,2"
    assert run.data.tags["monitoring.notes.count"] == "1"


def test_experiments_open_on_their_runs_with_a_description(client, logged):
    """Without mlflow.experimentKind, MLflow 3's UI opens an experiment on its GenAI
    overview; an older experiment without the tag gets it on the next evaluation."""
    from monitoring.track.experiments import experiment_id

    experiment = client.get_experiment_by_name("monitoring-churn")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "one run per evaluated batch" in experiment.tags["mlflow.note.content"]
    references = client.get_experiment_by_name("monitoring-references")
    assert references.tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("monitoring-old")
    assert experiment_id(client, "monitoring-old") == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
