"""A backfill evaluates its next partitions in a forked child (`track/backfill_ahead.py`):
the runs must be those the thread path logs, a partition the child fails on must get the
outcome and error of one process, and a child that dies must leave the rest to the parent."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import make_frame

from monitoring.cli.main import main
from monitoring.collect.partitions import sql_partitions
from monitoring.core.config import MonitoringConfig
from monitoring.track import backfill_ahead, forked
from monitoring.track.history import read_batch_runs

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the child is forked: Linux")

QUERY = "SELECT * FROM predictions WHERE day = :day"
DAYS = 6
BAD_DAY = 4  # its x column holds text
# Timings and run ids differ between two backfills of the same batches; nothing else may.
DIFFERENT = {"data/seconds", "data/rows_per_second", "run_id", "batch_time", "start_time"}


@pytest.fixture(autouse=True)
def _torch_imported_elsewhere(monkeypatch):
    """Other test modules import PyTorch, which keeps the evaluation in threads (a
    command-line process has not imported it); these tests never run a model."""
    monkeypatch.setattr(forked, "UNSAFE_AFTER_FORK", ())


@pytest.fixture
def children(monkeypatch) -> list:
    """The ProcessAhead objects the backfill makes."""
    made = []
    original = backfill_ahead.ProcessAhead.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(backfill_ahead.ProcessAhead, "__init__", recording)
    return made


@pytest.fixture
def database(tmp_path) -> str:
    """DAYS days of 300 rows, the last two drifting; day BAD_DAY's x is text."""
    url = f"sqlite:///{tmp_path}/predictions.db"
    engine = sa.create_engine(url)
    for day in range(1, DAYS + 1):
        frame = make_frame(300, seed=day, shift=0.0 if day < DAYS - 1 else 1.5)
        frame["id"] += day * 10_000
        frame["day"] = day
        if day == BAD_DAY:
            frame["x"] = "not a number"
        frame.to_sql("predictions", engine, index=False, if_exists="append")
    engine.dispose()
    return url


def _backfill(database: str, reference: str, model: str, *extra: object):
    return CliRunner().invoke(
        main,
        [
            "backfill", database, "--query", QUERY, "--partition-by", "day", "--from", "1",
            "--to", str(DAYS + 1), "--reference", reference, "--model-name", model,
            "--id-col", "id", *map(str, extra),
        ],
    )  # fmt: skip


def _leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("monitoring-*")}


def _comparable(client, model: str) -> pd.DataFrame:
    runs = read_batch_runs(client, model).set_index("batch_id").sort_index()
    return runs.drop(columns=[c for c in runs.columns if c in DIFFERENT or "version" in c])


def test_the_child_logs_what_the_thread_path_logs(
    tracking_uri, client, database, reference_csv, children, monkeypatch, tmp_path
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))  # this test's own
    (tmp_path / "temp").mkdir()
    forked_run = _backfill(database, reference_csv, "forked")
    fallbacks = children[0].fallbacks if children else []
    assert len(fallbacks) == 2, fallbacks  # evaluated again here: the bad day, the empty one
    assert fallbacks[0].startswith(f"day={BAD_DAY}: ")
    assert fallbacks[1].startswith(f"day={DAYS + 1}: EmptyBatchError")
    monkeypatch.setenv(forked.ENV, "0")
    threaded = _backfill(database, reference_csv, "threaded")
    assert len(children) == 1  # the switch keeps it in threads

    for result in (forked_run, threaded):
        assert result.exit_code == 1, result.output  # the bad day failed; the rest went on
        assert "backfill: 5 logged, 1 failed, 1 empty" in result.output
        assert f"failed: day={BAD_DAY}: " in result.output
    error_line = [line for line in forked_run.output.splitlines() if "failed: day=" in line]
    assert error_line == [
        line for line in threaded.output.splitlines() if "failed: day=" in line
    ]
    assert "empty" in forked_run.output and "empty" in threaded.output
    a, b = _comparable(client, "forked"), _comparable(client, "threaded")
    assert list(a.index) == [f"day={d}" for d in range(1, DAYS + 1) if d != BAD_DAY]
    pd.testing.assert_frame_equal(a, b)
    for batch in ("day=1", f"day={DAYS}"):
        files = [
            {f.path for f in client.list_artifacts(run, "plots")}
            for run in (
                read_batch_runs(client, m).set_index("batch_id").loc[batch, "run_id"]
                for m in ("forked", "threaded")
            )
        ]
        assert files[0] == files[1], batch
    assert {f.path for f in client.list_artifacts(
        read_batch_runs(client, "forked").set_index("batch_id").loc[f"day={DAYS}", "run_id"],
        "plots",
    )}, "a drifting day has its plots"  # fmt: skip
    assert _leftovers() == set()  # the children's folder and every plots folder removed


def test_a_child_that_dies_leaves_the_rest_to_this_process(
    tracking_uri, client, database, reference_csv, children, monkeypatch
):
    original = backfill_ahead.evaluate_partition
    calls = {"n": 0}

    def dies_on_the_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 and os.getpid() != parent:
            os._exit(3)
        return original(*args, **kwargs)

    parent = os.getpid()
    monkeypatch.setattr(backfill_ahead, "evaluate_partition", dies_on_the_second)
    result = _backfill(database, reference_csv, "dies", "--to", 3)
    assert result.exit_code == 0, result.output
    assert "backfill: 3 logged" in result.output
    assert any(f.startswith("child: died") for f in children[0].fallbacks), children[0].fallbacks
    assert sorted(read_batch_runs(client, "dies")["batch_id"]) == ["day=1", "day=2", "day=3"]


def test_a_lent_engine_keeps_the_evaluation_in_threads(database):
    """A child must not use a connection pool this process lent (its sockets and locks)."""
    engine = sa.create_engine(database)
    lent = sql_partitions(engine, QUERY, "day", start="1", end="2")
    own = sql_partitions(database, QUERY, "day", start="1", end="2")
    config = MonitoringConfig()
    assert backfill_ahead.forking_is_safe(own, None, config)
    assert not backfill_ahead.forking_is_safe(lent, None, config)
    assert not backfill_ahead.forking_is_safe(own, object(), config)  # a model to run
    engine.dispose()


def test_idle_mlflow_pool_threads_do_not_keep_a_fork_away(tmp_path):
    """MLflow's artifact repositories leave a pool thread behind after a transfer, until
    the cyclic collector frees them; another thread alive is a reason not to fork."""
    import threading

    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    repository = LocalArtifactRepository(str(tmp_path))
    repository.thread_pool.submit(lambda: None).result()
    del repository
    assert any(t.name.startswith("Mlflow") for t in threading.enumerate())
    assert forked.fork_is_safe()
    assert not any(t.name.startswith("Mlflow") for t in threading.enumerate())

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, name="someone-else")
    other.start()
    try:
        assert not forked.fork_is_safe()
    finally:
        stop.set()
        other.join()


def test_folders_of_killed_processes_are_removed_by_the_next_one(tmp_path, monkeypatch):
    """A parent killed with SIGKILL cannot remove its children's folder: the next process
    of the same kind removes it (named with the dead process's id), not a live one's."""
    import subprocess

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dead = tmp_path / f"monitoring-backfill-ahead-{gone}-abc"
    live = tmp_path / f"monitoring-backfill-ahead-{os.getppid()}-def"
    other = tmp_path / f"monitoring-early-{gone}-ghi"
    for folder in (dead, live, other):
        (folder / "plots").mkdir(parents=True)

    made = forked.scratch_folder("monitoring-backfill-ahead-")

    assert made.is_dir() and made.name.startswith(f"monitoring-backfill-ahead-{os.getpid()}-")
    assert not dead.exists() and live.exists() and other.exists()


def test_replacing_through_the_child(
    tracking_uri, client, database, reference_csv, children
):
    """--replace asks the store (here) for the replaced run's ignored samples, and the
    child evaluates with them: a new run takes the old one's place."""
    assert _backfill(database, reference_csv, "again", "--to", 2).exit_code == 0
    before = read_batch_runs(client, "again").set_index("batch_id")["run_id"]

    replaced = _backfill(database, reference_csv, "again", "--from", 2, "--to", 2, "--replace")

    assert replaced.exit_code == 0, replaced.output
    assert "backfill: 1 logged" in replaced.output
    assert len(children) == 2 and children[1].fallbacks == []
    after = read_batch_runs(client, "again").set_index("batch_id")["run_id"]
    assert after["day=1"] == before["day=1"] and after["day=2"] != before["day=2"]
