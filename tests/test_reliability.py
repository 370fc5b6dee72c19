"""Nothing lost, no orphans, one run per batch id (docs/reliability.md), in-process on a
SQLite store: the outbox, `sync_outbox`, the version lock and `doctor`. Killed processes,
dead servers and concurrent evaluations are in test_faults.py and test_concurrency.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from click.testing import CliRunner
from mlflow import MlflowClient

from monitoring import (
    AlertRule,
    DuplicateBatchError,
    MonitoringConfig,
    NotLoggedError,
    TrackingUnreachableError,
    doctor,
    evaluate_and_log,
    fit_reference,
    sync_outbox,
)
from monitoring.cli.main import main
from monitoring.cli.options import EXIT_INCONSISTENT, EXIT_NOT_LOGGED
from monitoring.core.config import AlertConfig, TrackingConfig
from monitoring.track import log_reference
from monitoring.track.bounds import describe, is_unreachable
from monitoring.track.claim import OWNER, VersionLock, owner_token
from monitoring.track.experiments import experiment_id
from monitoring.track.history_runs import HISTORY_COUNT, find_history_runs
from monitoring.track.outbox import list_entries
from monitoring.track.publish import publish

BATCH_TAGS = ("monitoring.kind", "monitoring.model_name", "monitoring.batch_id")


class _StoreGoesAway(MlflowClient):
    """A real client on the temporary store whose metric upload cannot reach it."""

    def log_batch(self, *args, **kwargs):  # noqa: ANN002, ANN003
        raise requests.exceptions.ConnectionError("Connection refused")


@pytest.fixture
def reference(client, reference_frame):
    fitted = fit_reference(reference_frame)
    log_reference(client, fitted)
    return fitted


def _dead_owner() -> str:
    """The owner token of a process of this machine that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    machine = owner_token().rsplit(":", 2)[0]
    return f"{machine}:{process.pid}:1"


def _runs(client: MlflowClient, batch_id: str, status: str | None = None):
    experiment = experiment_id(client, "monitoring-model")
    query = f"tags.`monitoring.batch_id` = '{batch_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return client.search_runs([experiment], filter_string=query)


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def _keep_one(tracking_uri, reference, frame, batch_id="b2", **kwargs):
    """Evaluate with a store that fails mid-way: the evaluation stays in the outbox."""
    failing = _StoreGoesAway(tracking_uri=tracking_uri)
    with pytest.raises(NotLoggedError) as caught:
        evaluate_and_log(frame, reference=reference, batch_id=batch_id, client=failing, **kwargs)
    return str(caught.value)


def test_the_evaluation_is_in_the_outbox_until_its_run_is_finished(
    client, reference, batch_frame, _outbox, monkeypatch
):
    import monitoring.track.delivery as delivery

    seen = []

    def spy(client, entry, **kwargs):  # noqa: ANN001, ANN003
        seen.append([e.batch_id for e in list_entries(_outbox)])
        assert (entry.folder / "entry.json").exists() and (entry.artifacts / "drift.csv").exists()
        return publish(client, entry, **kwargs)

    monkeypatch.setattr(delivery, "publish", spy)
    evaluate_and_log(batch_frame, reference=reference, batch_id="b1")
    assert seen == [["b1"]]
    assert list_entries(_outbox) == []


def test_a_store_failure_keeps_the_evaluation_and_sync_logs_the_same_run(
    client, tracking_uri, reference, batch_frame, _outbox
):
    normal = evaluate_and_log(batch_frame, reference=reference, batch_id="b1")
    message = _keep_one(tracking_uri, reference, batch_frame)
    assert "cannot be reached (ConnectionError: Connection refused)" in message
    assert str(_outbox) in message and "monitoring sync" in message
    assert [r.info.status for r in _runs(client, "b2")] == ["RUNNING"]  # tagged from birth

    results = sync_outbox()
    assert [(r.outcome, r.description) for r in results] == [
        ("logged", "batch 'b2' of model version none")
    ]
    assert sync_outbox() == [] and list_entries(_outbox) == []
    replayed = client.get_run(results[0].run_id)
    first = client.get_run(normal.run_id)
    assert replayed.info.status == "FINISHED"
    assert replayed.data.metrics == first.data.metrics
    assert _artifacts(client, replayed.info.run_id) == _artifacts(client, normal.run_id)
    same = {k: v for k, v in first.data.params.items() if k != "batch.id"}
    assert same.items() <= replayed.data.params.items()
    assert replayed.data.tags["monitoring.status"] == first.data.tags["monitoring.status"]
    orphan = [r for r in _runs(client, "b2") if r.info.run_id != results[0].run_id]
    assert [r.info.status for r in orphan] == ["FAILED"]
    assert "abandoned" in orphan[0].data.tags["monitoring.error"]
    (history,) = find_history_runs(client, replayed.info.experiment_id, "model", "none")
    assert history.data.tags[HISTORY_COUNT] == "2"


def test_replaying_an_entry_twice_or_side_by_side_makes_one_run(
    client, tracking_uri, reference, batch_frame, _outbox
):
    _keep_one(tracking_uri, reference, batch_frame)
    (entry,) = list_entries(_outbox)
    results: list = []

    def replay() -> None:
        own = MlflowClient(tracking_uri=tracking_uri)
        results.append(publish(own, entry, attach=False))

    threads = [threading.Thread(target=replay) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len({r.run_id for r in results}) == 1
    assert sorted(r.already for r in results) == [False, True, True]
    assert len(_runs(client, "b2", "FINISHED")) == 1


def test_a_new_evaluation_replaces_a_run_a_killed_one_left_running(client, reference, batch_frame):
    experiment = experiment_id(client, "monitoring-model")
    tags = dict(zip(BATCH_TAGS, ("batch", "model", "b1"), strict=True))
    orphan = client.create_run(
        experiment, tags={**tags, "monitoring.model_version": "none", OWNER: _dead_owner()}
    ).info.run_id
    logged = evaluate_and_log(batch_frame, reference=reference, batch_id="b1")
    assert client.get_run(orphan).info.status == "FAILED"
    assert "is gone" in client.get_run(orphan).data.tags["monitoring.error"]
    assert [r.info.run_id for r in _runs(client, "b1", "FINISHED")] == [logged.run_id]
    assert _runs(client, "b1", "RUNNING") == []


def test_an_evaluation_kept_then_run_again_is_superseded_at_sync(
    client, tracking_uri, reference, batch_frame, _outbox
):
    _keep_one(tracking_uri, reference, batch_frame, batch_id="b1")
    again = evaluate_and_log(batch_frame, reference=reference, batch_id="b1")
    (result,) = sync_outbox()
    assert result.outcome == "superseded" and again.run_id in result.reason
    assert list_entries(_outbox) == []
    assert [r.info.run_id for r in _runs(client, "b1", "FINISHED")] == [again.run_id]


def test_an_evaluation_the_store_could_not_judge_is_judged_at_sync(
    client, reference, drifted_frame, _outbox, monkeypatch
):
    import monitoring.track.delivery as delivery

    config = MonitoringConfig(
        alerts=AlertConfig(rules=(AlertRule(metric="drift/dataset/drift", k=1, n=1),))
    )
    judge = delivery.judge_against_history

    def unreachable(*args, **kwargs):  # noqa: ANN002, ANN003
        raise requests.exceptions.ConnectionError("Connection refused")

    monkeypatch.setattr(delivery, "judge_against_history", unreachable)
    with pytest.raises(NotLoggedError, match="kept in the outbox"):
        evaluate_and_log(drifted_frame, reference=reference, batch_id="d1", config=config)
    (entry,) = list_entries(_outbox)
    assert entry.judged is False and "metrics" not in entry.data
    monkeypatch.setattr(delivery, "judge_against_history", judge)
    (result,) = sync_outbox()
    run = client.get_run(result.run_id)
    assert run.data.tags["monitoring.status"] == "alert"
    rule = "drift/dataset/drift > 0.5 in 1 of the last 1 batches"
    assert run.data.tags["monitoring.alerts"] == rule


def test_the_version_lock_admits_one_writer_at_a_time(tracking_uri):
    inside, most = [0], [0]
    guard = threading.Lock()

    def write() -> None:
        own = MlflowClient(tracking_uri=tracking_uri)
        with VersionLock(own, "churn", "1"):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=write) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert most == [1]


def test_a_lock_whose_owner_is_gone_is_freed(client):
    lock = VersionLock(client, "churn", "1")
    lock.acquire()  # and never released: the owner below "dies" holding it
    client.set_tag(lock.run_id, OWNER, _dead_owner())
    started = time.monotonic()
    with VersionLock(client, "churn", "1", timeout=30):
        assert time.monotonic() - started < 10
    freed = client.get_run(lock.run_id)
    assert freed.info.status == "FAILED" and freed.info.lifecycle_stage == "deleted"
    assert "is gone" in freed.data.tags["monitoring.error"]


def test_doctor_lists_and_fixes_orphans_duplicates_and_histories(
    client, tracking_uri, reference, batch_frame
):
    first = evaluate_and_log(batch_frame, reference=reference, batch_id="b1")
    quiet = MonitoringConfig(tracking=TrackingConfig(history=False))
    evaluate_and_log(batch_frame, reference=reference, batch_id="b2", config=quiet)
    experiment = first.report and client.get_run(first.run_id).info.experiment_id
    tags = {"monitoring.kind": "batch", "monitoring.model_name": "model"}
    tags["monitoring.model_version"] = "none"
    orphan = client.create_run(
        experiment, tags={**tags, "monitoring.batch_id": "b3", OWNER: _dead_owner()}
    ).info.run_id
    twin = client.create_run(experiment, tags={**tags, "monitoring.batch_id": "b1"}).info.run_id
    client.set_terminated(twin, "FINISHED")
    lock = VersionLock(client, "model", "none")
    lock.acquire()
    client.set_tag(lock.run_id, OWNER, _dead_owner())
    lock.run_id = None  # this process forgets it: an abandoned lock
    kinds = sorted(f.kind for f in doctor())
    assert kinds == ["duplicate-batch", "history-behind", "orphan-lock", "orphan-run"]
    fixed = doctor(fix=True)
    assert all(f.fixed for f in fixed) and len(fixed) == 4
    assert doctor() == []
    assert client.get_run(orphan).info.status == "FAILED"
    assert client.get_run(twin).info.status == "FAILED"  # the first FINISHED run stays
    assert client.get_run(first.run_id).info.status == "FINISHED"
    (history,) = find_history_runs(client, experiment, "model", "none")
    assert history.data.tags[HISTORY_COUNT] == "2"


def test_cli_unreachable_store_is_one_line_and_exit_code_5(tmp_path, monkeypatch, batch_frame):
    monkeypatch.chdir(tmp_path)
    batch_frame.to_csv("batch.csv", index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens
    result = CliRunner().invoke(
        main, ["evaluate", "batch.csv", "--reference", "batch.csv", "--batch-id", "b1"]
    )
    assert result.exit_code == EXIT_NOT_LOGGED
    assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert "cannot be reached" in result.output


def test_cli_sync_and_doctor(client, tracking_uri, reference, batch_frame, _outbox):
    _keep_one(tracking_uri, reference, batch_frame)
    runner = CliRunner()
    found = runner.invoke(main, ["doctor"])
    assert found.exit_code == EXIT_INCONSISTENT
    assert "outbox: model version none: batch b2 waits in" in found.output
    assert "orphan-run" in found.output
    synced = runner.invoke(main, ["sync"])
    assert synced.exit_code == 0, synced.output
    assert synced.output.startswith("logged: batch 'b2' of model version none as run ")
    assert runner.invoke(main, ["sync"]).output.startswith("nothing waits in the outbox")
    clean = runner.invoke(main, ["doctor"])
    assert (clean.exit_code, clean.output) == (0, "no inconsistencies\n")


def test_sync_with_the_store_down_keeps_everything_and_exits_5(
    tracking_uri, reference, batch_frame, _outbox, monkeypatch
):
    _keep_one(tracking_uri, reference, batch_frame)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["sync"])
    assert result.exit_code == EXIT_NOT_LOGGED and "cannot be reached" in result.output
    assert len(list_entries(_outbox)) == 1


def test_unreachable_errors_are_told_apart_and_described_briefly(monkeypatch):
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as caught:
        MlflowClient("http://127.0.0.1:9").get_experiment_by_name("x")
    assert is_unreachable(caught.value)
    assert describe(caught.value) == "ConnectionError: Connection refused"
    assert not is_unreachable(DuplicateBatchError("batch 'x' was already evaluated"))
    assert not is_unreachable(MlflowException("RESOURCE_DOES_NOT_EXIST: no run"))
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    assert issubclass(TrackingUnreachableError, Exception)
