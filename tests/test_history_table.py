"""`monitoring compare` reads each version's history table, and only when it is current.

The table must hold exactly what reading every batch run gives (`--from-runs`), after
single evaluations, a late batch, a replaced batch and late labels; a stale or missing
table, or a batch the history run never got, must send compare back to the batch runs.
"""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_frame
from mlflow import MlflowClient

from monitoring import MonitoringConfig, compare, evaluate_and_log, fit_reference
from monitoring.cli.main import main
from monitoring.core.config import EvaluationConfig
from monitoring.errors import TrackingError
from monitoring.track import history_table
from monitoring.track.history import read_batch_runs
from monitoring.track.history_runs import find_history_run
from monitoring.track.history_table import TABLE_DIGEST, TABLE_FILE, read_for_compare

FAST = MonitoringConfig(evaluation=EvaluationConfig(plot_top_features=0))


@pytest.fixture
def reference():
    return fit_reference(make_frame(1500, seed=1).assign(timestamp=pd.Timestamp("2026-10-01")))


def _evaluate(reference, day: int, *, shift: float = 0.0, replace: bool = False) -> str:
    frame = make_frame(300, seed=100 + day, shift=shift).assign(
        timestamp=pd.Timestamp("2026-11-01") + pd.Timedelta(days=day)
    )
    return evaluate_and_log(
        frame,
        reference=reference,
        batch_id=f"day-{day}",
        model_name="churn",
        config=FAST,
        replace=replace,
    ).run_id


def _history(client: MlflowClient):
    experiment = client.get_experiment_by_name("monitoring-churn").experiment_id
    return find_history_run(client, experiment, "churn", "none")


def _no_run_search(monkeypatch) -> None:
    """Fail if compare reads the batch runs instead of the table."""

    def refuse(*args, **kwargs):
        raise AssertionError("compare read the batch runs")

    monkeypatch.setattr(history_table, "read_batch_runs", refuse)


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_dtype=False
    )


def test_compare_reads_the_table_and_finds_what_the_runs_hold(tracking_uri, reference, monkeypatch):
    client = MlflowClient(tracking_uri)
    for day in (1, 3):
        _evaluate(reference, day)
    _evaluate(reference, 2, shift=1.5)  # late
    _evaluate(reference, 3, shift=1.5, replace=True)  # replaced
    expected = compare("churn", client=client, from_runs=True)
    stored = read_batch_runs(client, "churn")

    _no_run_search(monkeypatch)
    parts = read_for_compare(client, "churn")
    result = compare("churn", client=client)

    assert [(p.version, p.from_table) for p in parts] == [("none", True)]
    table = parts[0].runs.sort_values("run_id")
    _same(table[stored.columns], stored.sort_values("run_id"))
    assert result.notes == ()
    for name in ("trend", "summary", "alerts", "differences", "findings"):
        _same(getattr(result, name), getattr(expected, name))
    assert list(result.trend["batch_id"]) == ["day-1", "day-2", "day-3"]
    assert result.trend["drift/dataset/drift"].tolist() == [0.0, 1.0, 1.0]


def test_an_evaluation_reads_the_earlier_batches_from_the_table(
    tracking_uri, reference, monkeypatch
):
    """Judging a batch needs the version's earlier batches: from a current table they are
    what reading every batch run gives, in the same order (oldest run first)."""
    from monitoring.track.known_batches import KnownBatches

    client = MlflowClient(tracking_uri)
    for day in (1, 3):
        _evaluate(reference, day)
    _evaluate(reference, 2, shift=1.5)  # late: the table holds it in batch order
    _evaluate(reference, 3, shift=1.5, replace=True)
    stored = read_batch_runs(client, "churn", versions=["none"])
    with monkeypatch.context() as patched:
        _no_run_search(patched)
        from_table = KnownBatches(client, "churn", "none").frame()
    _same(from_table, stored)
    assert list(from_table["batch_id"]) == ["day-1", "day-2", "day-3"]  # by start time

    client.set_tag(_history(client).info.run_id, TABLE_DIGEST, "stale")
    _same(KnownBatches(client, "churn", "none").frame(), stored)


def test_a_stale_table_is_not_read(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    for day in (1, 2):
        _evaluate(reference, day)
    client.set_tag(_history(client).info.run_id, TABLE_DIGEST, "written-for-other-runs")

    result = compare("churn", client=client)

    assert result.notes == ("version none: read its 2 batch runs (its history table is "
                            "missing or stale)",)  # fmt: skip
    assert list(result.trend["batch_id"]) == ["day-1", "day-2"]


def test_a_batch_whose_history_update_failed_is_still_compared(
    tracking_uri, reference, monkeypatch
):
    client = MlflowClient(tracking_uri)
    _evaluate(reference, 1)
    from monitoring.track import publish

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    with monkeypatch.context() as patched, pytest.raises(TrackingError, match="history run"):
        patched.setattr(publish, "sync_history", broken)
        _evaluate(reference, 2)

    result = compare("churn", client=client)

    assert list(result.trend["batch_id"]) == ["day-1", "day-2"]
    assert len(result.notes) == 1 and "is not in its history table" in result.notes[0]
    _evaluate(reference, 3)  # the next evaluation brings the history and its table up to date
    assert compare("churn", client=client).notes == ()


def test_a_history_run_without_a_table_sends_compare_to_the_runs(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    _evaluate(reference, 1)
    history = _history(client)
    assert TABLE_FILE in {a.path for a in client.list_artifacts(history.info.run_id)}
    client.set_tag(history.info.run_id, TABLE_DIGEST, "")  # as an older monitoring left it

    parts = read_for_compare(client, "churn")

    assert [(p.from_table, len(p.runs)) for p in parts] == [(False, 1)]


def test_the_cli_says_where_it_read_and_from_runs_reads_the_runs(tracking_uri, reference):
    client = MlflowClient(tracking_uri)
    _evaluate(reference, 1)
    args = ["compare", "--model-name", "churn", "--format", "csv"]
    clean = CliRunner().invoke(main, args)
    assert clean.exit_code == 0, clean.output
    assert "note:" not in clean.stderr
    client.set_tag(_history(client).info.run_id, TABLE_DIGEST, "")
    stale = CliRunner().invoke(main, args)
    assert "note: version none: read its 1 batch runs" in stale.stderr
    from_runs = CliRunner().invoke(main, [*args, "--from-runs"])
    assert from_runs.exit_code == 0 and "note:" not in from_runs.stderr
    assert from_runs.stdout == stale.stdout


def test_the_history_run_opens_on_the_batch_level_figures(tracking_uri, reference):
    """MLflow's run page orders chart sections by name: `batch/` must come first."""
    from monitoring.track.history_runs import HISTORY_LAYOUT, LAYOUT, history_key

    client = MlflowClient(tracking_uri)
    first = [_evaluate(reference, day) for day in (1, 2)][0]
    history = _history(client)
    sections = sorted({k.rsplit("/", 1)[0] for k in history.data.metrics})
    assert sections[:4] == ["batch", "batch_perf", "batch_perf_est", "data"], sections
    assert {"batch/alert", "batch/share_drifted", "batch_perf/accuracy"} <= set(
        history.data.metrics
    )
    assert not [k for k in history.data.metrics if k.startswith(("perf", "drift/dataset"))]
    assert [history_key(k) for k in ("perf_est/accuracy_lower", "perf_est_error/accuracy")] == [
        "batch_perf_est/accuracy_lower",
        "batch_perf_est/error_accuracy",
    ]
    note = history.data.tags["mlflow.note.content"]
    assert "| 2 | day-2 | 2026-11-03 00:00 | ok |" in note and "Time (wall)" in note
    # a history run of the earlier layout (keys as in the batch runs) is rebuilt
    client.set_tag(history.info.run_id, HISTORY_LAYOUT, "1")
    client.set_tag(first, "mlflow.parentRunId", history.info.run_id)  # as layout 1 nested them
    _evaluate(reference, 3)
    rebuilt = _history(client)
    assert rebuilt.info.run_id != history.info.run_id
    assert rebuilt.data.tags[HISTORY_LAYOUT] == LAYOUT
    steps = client.get_metric_history(rebuilt.info.run_id, "batch/alert")
    assert sorted(m.step for m in steps) == [1, 2, 3]
    unfolded = client.get_run(first).data.tags
    assert "mlflow.parentRunId" not in unfolded
    assert unfolded["monitoring.history_run"] == rebuilt.info.run_id
