"""Evaluations started together (separate processes, as schedulers start them): one batch
id ends as exactly one FINISHED run, the others exit with the duplicate-batch error and
leave nothing RUNNING; different batch ids all land, with one history run per version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from mlflow import MlflowClient

from monitoring import fit_reference
from monitoring.track import log_reference
from monitoring.track.history_runs import HISTORY_COUNT, find_history_runs

N = 8


def _evaluate_together(batch: Path, reference: str, batch_ids: list[str]) -> list:
    """Start one `monitoring evaluate` per batch id at once; their (code, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "monitoring.cli", "evaluate", str(batch)]
            + ["--reference", reference, "--batch-id", batch_id],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch_id in batch_ids
    ]
    errors = [p.communicate(timeout=240)[1] for p in processes]
    return [(p.returncode, error) for p, error in zip(processes, errors, strict=True)]


@pytest.fixture
def stored(tmp_path, reference_frame, batch_frame):
    """The reference logged to the store of MLFLOW_TRACKING_URI, and a batch file."""
    reference = fit_reference(reference_frame)
    log_reference(MlflowClient(), reference)
    batch = tmp_path / "batch.csv"
    batch_frame.to_csv(batch, index=False)
    return reference.id, batch


def _batch_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("monitoring-model").experiment_id
    return client.search_runs([experiment], filter_string="tags.`monitoring.kind` = 'batch'")


def _assert_one_run_for_one_batch_id(stored) -> None:
    reference, batch = stored
    outcomes = _evaluate_together(batch, reference, ["b1"] * N)
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0] + [1] * (N - 1), [err[-500:] for _, err in outcomes]
    refused = [err for code, err in outcomes if code == 1]
    assert all(e.startswith("error: batch 'b1' was already evaluated") for e in refused)
    assert all(e.count("\n") == 1 for e in refused)
    runs = _batch_runs(MlflowClient())
    assert [r.info.status for r in runs] == ["FINISHED"]  # the losers left nothing
    everything = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string="attributes.status = 'RUNNING'",
    )
    assert everything == []


@pytest.mark.slow
def test_one_batch_id_evaluated_eight_times_together_on_sqlite(tracking_uri, stored):
    _assert_one_run_for_one_batch_id(stored)


@pytest.mark.slow
@pytest.mark.postgres
def test_one_batch_id_evaluated_eight_times_together_on_a_postgres_server(
    start_server, reference_frame, batch_frame, tmp_path
):
    start_server("postgres")
    reference = fit_reference(reference_frame)
    log_reference(MlflowClient(), reference)
    batch = tmp_path / "batch.csv"
    batch_frame.to_csv(batch, index=False)
    _assert_one_run_for_one_batch_id((reference.id, batch))


@pytest.mark.slow
def test_eight_batch_ids_evaluated_together_all_land_with_one_history(tracking_uri, stored):
    reference, batch = stored
    ids = [f"day-{i}" for i in range(N)]
    outcomes = _evaluate_together(batch, reference, ids)
    assert [code for code, _ in outcomes] == [0] * N, [err[-500:] for _, err in outcomes]
    client = MlflowClient()
    runs = _batch_runs(client)
    assert sorted(r.data.tags["monitoring.batch_id"] for r in runs) == ids
    assert {r.info.status for r in runs} == {"FINISHED"}
    (history,) = find_history_runs(client, runs[0].info.experiment_id, "model", "none")
    assert history.info.status == "FINISHED" and history.data.tags[HISTORY_COUNT] == str(N)
    parents = {r.data.tags.get("monitoring.history_run") for r in _batch_runs(client)}
    assert parents == {history.info.run_id}
