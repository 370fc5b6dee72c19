"""`monitoring evaluate` against a cached stored reference evaluates the batch in a forked
child while the store is opened: the run must be the one the one-process path logs, an
error must be the same, and a refused batch must leave no child behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_frame
from mlflow import MlflowClient

from monitoring.cli.main import main
from monitoring.track import early_evaluation, forked
from monitoring.track.reference_cache import cache_folder, cached_reference, is_cached

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the early path forks: Linux")

# Timings and ids differ between two evaluations of the same batch; nothing else may.
DIFFERENT = {"data/seconds", "data/rows_per_second"}


@pytest.fixture(autouse=True)
def _torch_imported_elsewhere(monkeypatch):
    """Other test modules import PyTorch, which turns the early path off (a command-line
    process has not imported it when it forks); these tests never run a model."""
    monkeypatch.setattr(forked, "UNSAFE_AFTER_FORK", ())


def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def stored(tracking_uri, tmp_path) -> tuple[str, Path]:
    """A reference fitted and logged by the CLI (which caches it), and a batch file."""
    make_frame(1500, seed=1).to_csv(tmp_path / "reference.csv", index=False)
    make_frame(600, seed=4, shift=0.8).to_csv(tmp_path / "batch.csv", index=False)
    fitted = _cli("reference", "fit", tmp_path / "reference.csv")
    assert fitted.exit_code == 0, fitted.output
    reference_id = fitted.output.strip().splitlines()[-1]
    assert is_cached(reference_id)
    return reference_id, tmp_path / "batch.csv"


@pytest.fixture
def started(monkeypatch) -> list:
    """The early evaluations the CLI starts."""
    found = []
    original = early_evaluation.start

    def recording(*args, **kwargs):
        found.append(original(*args, **kwargs))
        return found[-1]

    monkeypatch.setattr(early_evaluation, "start", recording)
    return found


def _evaluate(reference_id: str, batch: Path, batch_id: str, *extra: object):
    return _cli(
        "evaluate", batch, "--reference", reference_id, "--batch-id", batch_id,
        "--model-name", "churn", *extra,
    )  # fmt: skip


def _run(client: MlflowClient, batch_id: str):
    (run,) = client.search_runs(
        [client.get_experiment_by_name("monitoring-churn").experiment_id],
        filter_string=f"tags.`monitoring.batch_id` = '{batch_id}'",
    )
    return run


def _files(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_the_early_run_is_the_one_process_run(tracking_uri, stored, started, monkeypatch):
    reference_id, batch = stored
    client = MlflowClient(tracking_uri)
    with monkeypatch.context() as off:
        off.setenv(forked.ENV, "0")
        plain = _evaluate(reference_id, batch, "plain", "--config", _all_plots(batch.parent))
    assert plain.exit_code == 0, plain.output
    assert started == []
    early = _evaluate(reference_id, batch, "early", "--config", _all_plots(batch.parent))
    assert early.exit_code == 0, early.output
    assert len(started) == 1 and not started[0].folder.exists()  # plots folder removed
    assert started[0].outcome == "ok"  # the child's report was the one logged

    one, two = _run(client, "plain"), _run(client, "early")
    assert {k: v for k, v in one.data.metrics.items() if k not in DIFFERENT} == {
        k: v for k, v in two.data.metrics.items() if k not in DIFFERENT
    }
    # the second batch of the version is judged with the first: degraded twice, an alert
    assert (one.data.tags["monitoring.status"], two.data.tags["monitoring.status"]) == (
        "degraded",
        "alert",
    )
    assert _files(client, one.info.run_id) == _files(client, two.info.run_id)
    assert "plots/drift_overview.png" in _files(client, two.info.run_id)
    assert "status: alert" in early.output


def _all_plots(folder: Path) -> Path:
    path = folder / "all-plots.toml"
    path.write_text('[evaluation]\nplots = "all"\n', encoding="utf-8")
    return path


def test_bad_data_gives_the_one_process_error(stored, started, monkeypatch, tmp_path):
    reference_id, _ = stored
    make_frame(300, seed=5).drop(columns=["size"]).to_csv(tmp_path / "bad.csv", index=False)
    early = _evaluate(reference_id, tmp_path / "bad.csv", "bad-1")
    with monkeypatch.context() as off:
        off.setenv(forked.ENV, "0")
        plain = _evaluate(reference_id, tmp_path / "bad.csv", "bad-2")
    assert len(started) == 1 and "size" in started[0].outcome  # the child failed first
    assert early.exit_code == plain.exit_code != 0
    assert early.output.replace("bad-1", "B") == plain.output.replace("bad-2", "B")
    assert "size" in early.output


def test_a_refused_batch_id_leaves_no_child(stored, started):
    reference_id, batch = stored
    assert _evaluate(reference_id, batch, "day-1").exit_code == 0
    again = _evaluate(reference_id, batch, "day-1")
    assert again.exit_code != 0 and "already" in again.output
    assert len(started) == 2
    assert not started[1]._process.is_alive() and not started[1].folder.exists()


def test_a_damaged_cached_reference_is_refused_and_read_from_the_store(stored, started):
    reference_id, batch = stored
    for path in (cache_folder() / reference_id).iterdir():
        path.write_bytes(b"not a reference")
    assert cached_reference(reference_id) is None
    assert not is_cached(reference_id)  # removed

    result = _evaluate(reference_id, batch, "after-damage")

    assert result.exit_code == 0, result.output
    assert started == []  # not cached: evaluated in one process, which cached it again
    assert cached_reference(reference_id).id == reference_id


def test_a_stuck_child_is_killed_and_the_batch_evaluated_in_process(
    stored, started, monkeypatch
):
    """A fork can leave a lock held in the child (a native thread pool): it would wait
    forever. The parent gives up on a child that uses no CPU, and evaluates itself."""
    import time

    reference_id, batch = stored
    monkeypatch.setattr(forked, "IDLE_S", 1.0)
    monkeypatch.setattr(early_evaluation, "_evaluate", lambda job: time.sleep(3600))

    result = _evaluate(reference_id, batch, "stuck")

    assert result.exit_code == 0, result.output
    assert started[0].outcome.startswith("stuck") and not started[0]._process.is_alive()


def test_pytorch_in_the_process_keeps_the_evaluation_in_it(stored, started, monkeypatch):
    reference_id, batch = stored
    monkeypatch.setattr(forked, "UNSAFE_AFTER_FORK", ("torch",))
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    assert _evaluate(reference_id, batch, "with-torch").exit_code == 0
    assert started == []


def test_the_cache_is_filled_by_fitting_logging_or_downloading(tracking_uri, stored, tmp_path):
    """A reference fitted again (already logged), or read from the store, is cached."""
    import shutil

    reference_id, batch = stored
    shutil.rmtree(cache_folder() / reference_id)
    again = _cli("reference", "fit", tmp_path / "reference.csv")
    assert again.exit_code == 0 and again.output.strip().endswith(reference_id)
    assert cached_reference(reference_id).id == reference_id
    shutil.rmtree(cache_folder() / reference_id)
    from monitoring.track.reference_run import load_reference

    assert load_reference(MlflowClient(tracking_uri), reference_id).id == reference_id
    assert cached_reference(reference_id).id == reference_id
