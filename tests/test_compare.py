"""The comparer: trends read back from MLflow, alerts across batches, version comparison,
history parent runs. Against a local store and a real `mlflow server` (SQLite, PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_frame
from mlflow import MlflowClient

from monitoring import ConfigError, MonitoringConfig, compare, evaluate_and_log, fit_reference
from monitoring.cli.main import main
from monitoring.cli.options import EXIT_ALERT
from monitoring.core.alert_rules import DEFAULT_RULES
from monitoring.core.config import EvaluationConfig
from monitoring.errors import NoRunsError
from monitoring.track.history_runs import find_history_run

FAST = MonitoringConfig(evaluation=EvaluationConfig(plot_top_features=0))
# The series below checks the drift rule alone: x shifted by 1.5 sd also lowers the macro
# recall of the now rare class significantly (`degraded`), which the default performance
# rule (2 of the last 3) would turn into an alert from batch 5.
DRIFT_RULE = (DEFAULT_RULES[0],)
DRIFT_ONLY = FAST.replace("alerts", rules=DRIFT_RULE)
DRIFT_STARTS = 4  # batches 4, 5, ... are shifted: 3 of 3 drifted first holds at batch 6
N_BATCHES = 7


def _batch(day: int, *, shift: float) -> pd.DataFrame:
    frame = make_frame(300, seed=100 + day, shift=shift)
    return frame.assign(timestamp=pd.Timestamp("2026-11-01") + pd.Timedelta(days=day))


def _evaluate_series(
    reference, *, model_name="churn", version_label=None, days=N_BATCHES, config=DRIFT_ONLY
):
    logged = []
    for day in range(1, days + 1):
        shift = 1.5 if day >= DRIFT_STARTS else 0.0
        logged.append(
            evaluate_and_log(
                _batch(day, shift=shift),
                reference=reference,
                batch_id=f"day-{day}",
                model_name=model_name,
                config=config,
            )
        )
    return logged


@pytest.fixture
def reference():
    return fit_reference(make_frame(1500, seed=1).assign(timestamp=pd.Timestamp("2026-10-01")))


def _alert_batches(logged) -> list[str]:
    return [item.batch_id for item in logged if item.report.status == "alert"]


def _check_series(uri: str, logged) -> None:
    expected_first = f"day-{DRIFT_STARTS + 2}"
    assert _alert_batches(logged) == [f"day-{d}" for d in range(DRIFT_STARTS + 2, N_BATCHES + 1)]
    assert [i.report.status for i in logged[: DRIFT_STARTS - 1]] == ["ok"] * (DRIFT_STARTS - 1)
    result = compare("churn", client=MlflowClient(uri), rules=DRIFT_RULE)
    assert list(result.trend["batch_id"]) == [f"day-{d}" for d in range(1, N_BATCHES + 1)]
    assert list(result.trend["batch_seq"]) == list(range(1, N_BATCHES + 1))
    fired = result.alerts[result.alerts["alert"]]
    assert fired.sort_values("batch_seq")["batch_id"].iloc[0] == expected_first
    summary = result.summary.set_index("metric").loc["drift/dataset/drift"]
    assert summary["first_alert"] == expected_first
    assert summary["share_drifted_batches"] == pytest.approx(4 / 7)
    # version-level figures are not repeated on every metric's row
    others = result.summary[result.summary["metric"] != "drift/dataset/drift"]
    assert others["share_drifted_batches"].isna().all()
    assert set(others["first_alert"]) == {""}  # the only rule is on drift/dataset/drift
    assert "drift/x/psi" in result.metrics  # chief statistic of the drifted feature
    assert "perf/accuracy" in result.metrics


def test_alert_fires_exactly_when_the_rule_says_local_store(tracking_uri, reference):
    _check_series(tracking_uri, _evaluate_series(reference))


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite", id="server-sqlite"),
        pytest.param("postgres", id="server-postgres", marks=pytest.mark.postgres),
    ],
)
def test_alert_fires_exactly_when_the_rule_says_over_http(start_server, reference, backend):
    uri = start_server(backend)
    _check_series(uri, _evaluate_series(reference))


def test_two_versions_are_compared_on_shared_batches(tracking_uri, reference):
    from monitoring.track.comparison import build_comparison
    from monitoring.track.history import read_batch_runs

    client = MlflowClient(tracking_uri)
    _evaluate_series(reference, days=3)
    runs = read_batch_runs(client, "churn").assign(model_version="1")
    # The same batches scored by a "version 2" whose accuracy is 0.05 higher.
    v2 = runs.assign(
        model_version="2",
        run_id=runs["run_id"] + "-v2",
        **{"perf/accuracy": runs["perf/accuracy"] + 0.05},
    )
    result = build_comparison("churn", pd.concat([runs, v2]), metrics=["perf/accuracy"])
    assert sorted(result.trend["model_version"].unique()) == ["1", "2"]
    assert set(result.differences["baseline_version"]) == {"1"}
    diffs = result.differences
    assert len(diffs) == 3
    assert diffs["difference"].tolist() == pytest.approx([0.05, 0.05, 0.05])


def test_history_parent_run_holds_one_step_per_batch(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    logged = _evaluate_series(reference, days=4)
    experiment = client.get_experiment_by_name("monitoring-churn").experiment_id
    parent = find_history_run(client, experiment, "churn", "none")
    history = client.get_metric_history(parent.info.run_id, "batch/share_drifted")
    assert [m.step for m in history] == [1, 2, 3, 4]
    expected = [i.report.drifted_features for i in logged]
    assert [m.value for m in history] == pytest.approx([len(f) / 3 for f in expected])
    runs = [client.get_run(i.run_id).data.tags for i in logged]
    assert {r["monitoring.history_run"] for r in runs} == {parent.info.run_id}
    assert not [r for r in runs if "mlflow.parentRunId" in r]  # not folded in the runs table


def test_history_is_right_after_an_out_of_order_batch_and_a_replace(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    for day in (1, 3):
        evaluate_and_log(
            _batch(day, shift=0.0),
            reference=reference,
            batch_id=f"day-{day}",
            model_name="churn",
            config=FAST,
        )
    evaluate_and_log(
        _batch(2, shift=1.5), reference=reference, batch_id="day-2", model_name="churn", config=FAST
    )  # arrives late
    evaluate_and_log(
        _batch(3, shift=1.5),
        reference=reference,
        batch_id="day-3",
        model_name="churn",
        config=FAST,
        replace=True,
    )
    experiment = client.get_experiment_by_name("monitoring-churn").experiment_id
    parent = find_history_run(client, experiment, "churn", "none")
    history = client.get_metric_history(parent.info.run_id, "batch/drift")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.0), (2, 1.0), (3, 1.0)]


def test_rebuild_history_from_the_cli(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    _evaluate_series(reference, days=3)
    experiment = client.get_experiment_by_name("monitoring-churn").experiment_id
    old = find_history_run(client, experiment, "churn", "none").info.run_id
    result = CliRunner().invoke(main, ["compare", "--model-name", "churn", "--rebuild-history"])
    assert result.exit_code == 0, result.output
    new = find_history_run(client, experiment, "churn", "none").info.run_id
    assert new != old
    assert client.get_run(old).info.lifecycle_stage == "deleted"
    steps = client.get_metric_history(new, "batch/drift")
    assert sorted(m.step for m in steps) == [1, 2, 3]


def test_compare_cli_writes_tables_and_plots_and_logs_a_run(tracking_uri, reference, tmp_path):
    _evaluate_series(reference)
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        main,
        ["compare", "--model-name", "churn", "--out", str(out), "--log", "--format", "markdown"],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("| model_version | batch_id |")
    assert {p.name for p in out.iterdir()} >= {
        "trend.csv",
        "summary.csv",
        "alerts.csv",
        "differences.csv",
        "performance.png",
    }
    rule = "drift/dataset/drift > 0.5 in 3 of the last 3 batches"
    assert f"alert: version none: {rule} from batch day-{DRIFT_STARTS + 2}" in result.stderr
    client = MlflowClient(tracking_uri)
    kinds = [
        r.data.tags.get("monitoring.kind")
        for r in client.search_runs(
            [client.get_experiment_by_name("monitoring-churn").experiment_id]
        )
    ]
    assert kinds.count("comparison") == 1


def test_fail_on_alert_exit_code(tracking_uri, reference, tmp_path):
    for day in range(1, 3):
        evaluate_and_log(
            _batch(day, shift=1.5),
            reference=reference,
            batch_id=f"day-{day}",
            model_name="churn",
            config=FAST,
        )
    batch = tmp_path / "day3.csv"
    _batch(3, shift=1.5).to_csv(batch, index=False)
    ref_file = tmp_path / "ref.csv"
    make_frame(1500, seed=1).assign(timestamp="2026-10-01").to_csv(ref_file, index=False)
    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(batch),
            "--reference",
            reference.id,
            "--batch-id",
            "day-3",
            "--model-name",
            "churn",
            "--fail-on-alert",
        ],
    )
    assert result.exit_code == EXIT_ALERT, result.output
    assert "status: alert" in result.output


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(
            lambda c: compare("nobody", client=c), NoRunsError, "'nobody'", id="model-without-runs"
        ),
        pytest.param(
            lambda c: compare("churn", metrics=["perf/nope"], client=c),
            ConfigError,
            "'perf/nope' is in no batch run",
            id="unknown-metric",
        ),
        pytest.param(
            lambda c: compare("churn", since="2026-12-01", until="2026-11-01", client=c),
            ConfigError,
            "is after",
            id="since-after-until",
        ),
    ],
)
def test_bad_compare_requests(tracking_uri, reference, call, error, message):
    _evaluate_series(reference, days=1)
    with pytest.raises(error, match=message):
        call(MlflowClient(tracking_uri))


def test_unreachable_server_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    result = CliRunner().invoke(main, ["compare", "--model-name", "churn"])
    assert result.exit_code == 5  # the store cannot be reached (README's exit codes)
    assert "cannot be reached" in result.stderr


def _flipped(day: int, share: float) -> pd.DataFrame:
    """A reference-like batch whose labels are flipped on `share` of the rows: the inputs
    do not move, the accuracy falls from 0.75 to about 0.62 at a share of 0.25."""
    frame = _batch(day, shift=0.0)
    flip = np.random.default_rng(day).random(len(frame)) < share
    flipped = np.where(frame["label"] == "a", "b", "a")
    return frame.assign(label=np.where(flip, flipped, frame["label"]))


def test_degraded_batches_are_findings_with_their_reason_and_alert_2_of_3(tracking_uri, reference):
    statuses = []
    for day, share in ((1, 0.0), (2, 0.25), (3, 0.25)):
        logged = evaluate_and_log(
            _flipped(day, share),
            reference=reference,
            batch_id=f"day-{day}",
            config=FAST,
            model_name="churn",
        )
        statuses.append(logged.report.status)
    assert statuses == ["ok", "degraded", "alert"]  # perf/degraded in 2 of the last 3
    result = compare("churn", client=MlflowClient(tracking_uri))
    assert list(result.findings["batch_id"]) == ["day-2", "day-3"]
    assert result.findings["reason"].str.contains("accuracy 0.").all()
    assert "on the reference, drop" in result.findings["reason"].iloc[0]
    assert "perf/degraded" in result.metrics
    perf = [m for m in result.metrics if m.startswith("perf/")]
    assert not any(m.endswith(("_pvalue", "_reference", "_drop")) for m in perf)
    cli = CliRunner().invoke(main, ["compare", "--model-name", "churn"])
    assert cli.exit_code == 0, cli.output
    assert "degraded: version none, batch day-2: accuracy" in cli.stderr
    assert "alert: version none: perf/degraded > 0.5 in 2 of the last 3 batches" in cli.stderr
