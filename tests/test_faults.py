"""Fault injection: an evaluation killed (kill -9) during the pass, during logging and
during the history update; a tracking server stopped before the run, killed during
logging, and cut off by a TCP proxy that drops or stalls connections. After each fault,
and after `monitoring sync` or the next evaluation, every computed batch is exactly one
FINISHED run with its whole content, nothing is RUNNING, and the outbox is empty."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, _launch, _stop
from mlflow import MlflowClient

from monitoring import NotLoggedError, evaluate_and_log, fit_reference, sync_outbox
from monitoring.cli.options import EXIT_NOT_LOGGED
from monitoring.track import log_reference
from monitoring.track.history_runs import HISTORY_COUNT, find_history_run
from monitoring.track.outbox import list_entries

FAULT_CLI = Path(__file__).resolve().parent / "fault_cli.py"
ROLES: list[str] = []  # the roles come with the stored reference
# Short bounds on MLflow's HTTP retries, so that a dead server fails a call in seconds.
QUICK_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _evaluate(batch: Path, reference: str, batch_id: str) -> subprocess.CompletedProcess:
    args = ["evaluate", str(batch), "--reference", reference, "--batch-id", batch_id]
    return subprocess.run(
        [sys.executable, "-m", "monitoring.cli", *args, *ROLES],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _kill_at(point: str, batch: Path, reference: str, batch_id: str, tmp_path: Path) -> None:
    """Start an evaluation that stops at `point`, and kill -9 it there."""
    marker = tmp_path / f"at-{point}-{batch_id}"
    args = ["evaluate", str(batch), "--reference", reference, "--batch-id", batch_id]
    process = subprocess.Popen(
        [sys.executable, str(FAULT_CLI), point, str(marker), *args, *ROLES, "--chunk-size", "100"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    reached = marker.exists()
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert reached, f"the evaluation never reached {point}: {stderr.decode()[-2000:]}"


def _assert_each_once(client: MlflowClient, batch_ids: list[str], model: str = "model") -> None:
    """Every batch id: one FINISHED run with its whole content; nothing RUNNING anywhere;
    one history run holding every batch."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    assert [r.info.run_name for r in running] == []
    experiment = client.get_experiment_by_name(f"monitoring-{model}").experiment_id
    for batch_id in batch_ids:
        runs = client.search_runs(
            [experiment],
            filter_string=f"tags.`monitoring.batch_id` = '{batch_id}' and "
            "attributes.status = 'FINISHED'",
        )
        assert len(runs) == 1, f"batch {batch_id}: {len(runs)} FINISHED runs"
        run = runs[0]
        assert {"drift/x/psi", "data/n_rows", "perf/accuracy"} <= set(run.data.metrics)
        assert run.data.tags["monitoring.status"] in {"ok", "quality", "drift", "degraded"}
        assert "batch.digest" in run.data.params
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"drift.csv", "worst_samples.json", "profile.json", "plots"} <= artifacts
        assert len(run.inputs.dataset_inputs) == 2
    history = find_history_run(client, experiment, model, "none")
    assert history is not None and history.data.tags[HISTORY_COUNT] == str(len(batch_ids))


@pytest.fixture
def stored(client, tmp_path, reference_frame, batch_frame):
    """A logged reference's id and a batch file."""
    reference = fit_reference(reference_frame)
    log_reference(client, reference)
    batch = tmp_path / "batch.csv"
    batch_frame.to_csv(batch, index=False)
    return reference.id, batch


@pytest.mark.slow
def test_killed_during_the_pass_then_evaluated_again(client, stored, tmp_path, _outbox):
    reference, batch = stored
    _kill_at("pass", batch, reference, "b1", tmp_path)
    assert list_entries(_outbox) == []  # nothing was computed, nothing is kept
    again = _evaluate(batch, reference, "b1")
    assert again.returncode == 0, again.stderr
    _assert_each_once(client, ["b1"])


@pytest.mark.slow
def test_killed_during_logging_then_synced(client, stored, tmp_path, _outbox):
    reference, batch = stored
    _kill_at("logging", batch, reference, "b1", tmp_path)
    (left,) = client.search_runs([client.get_experiment_by_name("monitoring-model").experiment_id])
    assert left.info.status == "RUNNING" and left.data.tags["monitoring.batch_id"] == "b1"
    assert len(list_entries(_outbox)) == 1
    synced = subprocess.run(
        [sys.executable, "-m", "monitoring.cli", "sync"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("logged: batch 'b1' of model version none as run ")
    assert client.get_run(left.info.run_id).info.status == "FAILED"
    assert list_entries(_outbox) == []
    _assert_each_once(client, ["b1"])


@pytest.mark.slow
def test_killed_during_logging_then_evaluated_again(client, stored, tmp_path, _outbox):
    reference, batch = stored
    _kill_at("logging", batch, reference, "b1", tmp_path)
    again = _evaluate(batch, reference, "b1")
    assert again.returncode == 0, again.stderr
    assert [r.outcome for r in sync_outbox()] == ["superseded"]
    _assert_each_once(client, ["b1"])


@pytest.mark.slow
def test_killed_during_the_history_update_then_synced(client, stored, tmp_path, _outbox):
    reference, batch = stored
    _kill_at("history", batch, reference, "b1", tmp_path)
    assert [r.outcome for r in sync_outbox()] == ["already"]
    _assert_each_once(client, ["b1"])
    second = _evaluate(batch, reference, "b2")  # the version's next batch goes on as usual
    assert second.returncode == 0, second.stderr
    _assert_each_once(client, ["b1", "b2"])


@pytest.mark.slow
def test_server_stopped_before_the_run_is_one_line_and_exit_5(stored, _outbox, monkeypatch):
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    reference, batch = stored
    result = _evaluate(batch, reference, "b1")
    assert result.returncode == EXIT_NOT_LOGGED
    assert result.stderr.count("\n") == 1 and "cannot be reached" in result.stderr
    assert "nothing was evaluated" in result.stderr
    assert list_entries(_outbox) == []


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a tracking server: `forward`, `drop` (close
    every connection, new or open) or `stall` (accept, never answer). Threads with
    bounded waits; `close()` stops them."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.mode = "forward"
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            if self.mode == "forward":
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            while not self._stop.is_set():
                if self.mode == "drop" or (self.mode == "forward" and upstream is None):
                    return
                if self.mode == "stall":
                    time.sleep(0.1)
                    continue
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A tracking server (SQLite backend) behind a Proxy; MLFLOW_TRACKING_URI is the proxy."""
    store = f"sqlite:///{tmp_path}/server.db"
    process, uri = _launch(store, tmp_path)
    proxy = Proxy(int(uri.rsplit(":", 1)[1]))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.chdir(tmp_path)
    for name, value in QUICK_HTTP.items():
        monkeypatch.setenv(name, value)
    state = {"process": process, "proxy": proxy, "store": store}
    yield state
    proxy.close()
    _stop(state["process"], None)


def _fail_during_logging(monkeypatch, fault) -> None:
    """Run `fault` when the batch run is created and its artifacts are uploaded."""
    log_inputs = MlflowClient.log_inputs

    def faulty(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        monkeypatch.setattr(MlflowClient, "log_inputs", log_inputs)
        fault()
        return log_inputs(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_inputs", faulty)


def _through_a_fault(server, monkeypatch, reference_frame, batch_frame, fault, repair) -> None:
    client = MlflowClient(f"http://127.0.0.1:{server['proxy'].port}")
    reference = fit_reference(reference_frame)
    evaluate_and_log(batch_frame, reference=reference, batch_id="b0")
    _fail_during_logging(monkeypatch, fault)
    started = time.monotonic()
    with pytest.raises(NotLoggedError, match="cannot be reached.*kept in the outbox"):
        evaluate_and_log(batch_frame, reference=reference.id, batch_id="b1")
    assert time.monotonic() - started < 45  # bounded retries, not minutes
    repair()
    assert [r.outcome for r in sync_outbox()] == ["logged"]
    _assert_each_once(client, ["b0", "b1"])


@pytest.mark.slow
def test_server_killed_during_logging(server, tmp_path, monkeypatch, reference_frame, batch_frame):
    def kill() -> None:
        os.killpg(server["process"].pid, signal.SIGKILL)
        server["process"].wait(timeout=30)

    def restart() -> None:
        server["process"], uri = _launch(server["store"], tmp_path)
        server["proxy"].upstream = int(uri.rsplit(":", 1)[1])

    _through_a_fault(server, monkeypatch, reference_frame, batch_frame, kill, restart)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["drop", "stall"])
def test_server_cut_off_by_a_proxy(server, mode, monkeypatch, reference_frame, batch_frame):
    proxy = server["proxy"]

    def cut() -> None:
        proxy.mode = mode

    def mend() -> None:
        proxy.mode = "forward"

    _through_a_fault(server, monkeypatch, reference_frame, batch_frame, cut, mend)
