"""`monitoring backfill` (issue 20, item 7): every partition of a source as its own batch
run, in order, with the right history and alerts, resumable after an interruption."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import make_frame

from monitoring.cli.main import main
from monitoring.collect.partitions import file_partitions, sql_partitions, value_range
from monitoring.collect.sources import open_source
from monitoring.errors import ConfigError, SourceError
from monitoring.track.history import read_batch_runs
from monitoring.track.history_runs import HISTORY_DIGEST, find_history_run, history_digest
from monitoring.track.known_batches import KnownBatches
from monitoring.track.pipeline import evaluate_and_log
from monitoring.track.trends import order_batches

DAYS = 5
ROWS = 250
QUERY = "SELECT * FROM predictions WHERE day = :day"


def _days() -> pd.DataFrame:
    """DAYS days of ROWS rows, with timestamps, the last two drifting."""
    frames = []
    for day in range(1, DAYS + 1):
        frame = make_frame(ROWS, seed=day, shift=0.0 if day <= 3 else 1.5)
        frame["id"] = frame["id"] + day * 10_000
        frame["day"] = day
        frame["ts"] = pd.Timestamp("2026-03-01") + pd.Timedelta(days=day) + pd.to_timedelta(
            np.arange(ROWS), unit="s"
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def database(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/predictions.db"
    engine = sa.create_engine(url)
    _days().assign(ts=lambda f: f["ts"].astype(str)).to_sql("predictions", engine, index=False)
    engine.dispose()
    return url


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _backfill(database: str, reference: str, *extra: object):
    return _run(
        "backfill", database, "--query", QUERY, "--partition-by", "day",
        "--reference", reference, "--model-name", "churn", "--id-col", "id", *extra,
    )  # fmt: skip


def _history_is_complete(client, runs: pd.DataFrame) -> None:
    ordered = order_batches(runs)
    experiment = client.get_experiment_by_name("monitoring-churn").experiment_id
    history = find_history_run(client, experiment, "churn", "none")
    assert history.data.tags[HISTORY_DIGEST] == history_digest(ordered["run_id"].tolist())
    steps = client.get_metric_history(history.info.run_id, "data/n_rows")
    assert sorted(m.step for m in steps) == list(range(1, len(ordered) + 1))


def test_a_query_with_a_placeholder_runs_every_value_in_order(
    tracking_uri, client, database, reference_csv
):
    result = _backfill(database, reference_csv, "--from", 1, "--to", DAYS)
    assert result.exit_code == 0, result.output
    assert f"[{DAYS}/{DAYS}] day={DAYS}: logged" in result.output
    runs = read_batch_runs(client, "churn")
    assert sorted(runs["batch_id"]) == [f"day={d}" for d in range(1, DAYS + 1)]
    assert set(runs["data/n_rows"]) == {ROWS}
    statuses = dict(zip(runs["batch_id"], runs["status"], strict=True))
    assert all(statuses[f"day={d}"] in ("ok", "quality") for d in (1, 2, 3))
    assert all(statuses[f"day={d}"] not in ("ok", "quality") for d in (4, 5)), statuses
    _history_is_complete(client, runs)
    # --plots findings (the default): plots for the batches with findings only
    run_of = dict(zip(runs["batch_id"], runs["run_id"], strict=True))
    assert "plots/drift_overview.png" in _files(client, run_of["day=5"], "plots")
    ok_days = [d for d in (1, 2, 3) if statuses[f"day={d}"] == "ok"]
    assert ok_days and not _files(client, run_of[f"day={ok_days[0]}"], "plots")


def _files(client, run_id: str, path: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_an_interrupted_backfill_carries_on_and_skips_what_was_logged(
    tracking_uri, client, database, reference_csv
):
    first = _backfill(database, reference_csv, "--from", 1, "--to", 2)
    assert first.exit_code == 0, first.output
    again = _backfill(database, reference_csv, "--from", 1, "--to", DAYS)
    assert again.exit_code == 0, again.output
    assert "backfill: 2 skipped, 3 logged" in again.output
    runs = read_batch_runs(client, "churn")
    assert len(runs) == DAYS and runs["batch_id"].is_unique
    _history_is_complete(client, runs)
    replaced = _backfill(database, reference_csv, "--from", 2, "--to", 2, "--replace")
    assert "backfill: 1 logged" in replaced.output
    after = read_batch_runs(client, "churn")
    assert len(after) == DAYS and set(after["run_id"]) != set(runs["run_id"])
    _history_is_complete(client, after)


def test_alerts_of_a_backfill_are_those_of_batches_evaluated_one_by_one(
    tracking_uri, client, database, reference_csv
):
    """The same rule fires at the same batches whether the batches are backfilled or
    evaluated one process call at a time (another model name, same store)."""
    result = _backfill(database, reference_csv, "--from", 1, "--to", DAYS)
    assert result.exit_code == 0, result.output
    for day in range(1, DAYS + 1):
        single = _run(
            "evaluate", database, "--query", QUERY, "--param", f"day={day}",
            "--reference", reference_csv, "--model-name", "single", "--batch-id", f"day={day}",
            "--id-col", "id",
        )  # fmt: skip
        assert single.exit_code == 0, single.output
    backfilled = read_batch_runs(client, "churn").set_index("batch_id")
    one_by_one = read_batch_runs(client, "single").set_index("batch_id")
    for day in range(1, DAYS + 1):
        key = f"day={day}"
        assert backfilled.loc[key, "status"] == one_by_one.loc[key, "status"], key
        drift = "drift/dataset/drift"
        assert backfilled.loc[key, drift] == one_by_one.loc[key, drift], key
    assert "alert" in set(backfilled["status"])


def test_without_a_placeholder_the_values_are_listed_and_bounded(database):
    query = "SELECT * FROM predictions"
    parts = sql_partitions(database, query, "day", start="2", end="4")
    assert [p.value for p in parts] == [2, 3, 4]
    assert [p.label for p in parts] == ["day=2", "day=3", "day=4"]
    rows = pd.concat(list(parts[1].source.iter_chunks()))
    assert len(rows) == ROWS and set(rows["day"]) == {3}
    assert "where day = 3" in parts[1].source.describe()


def test_a_file_is_split_by_its_column_with_its_dtypes(tmp_path):
    path = tmp_path / "batches.csv"
    _days().to_csv(path, index=False)
    parts = file_partitions(open_source(str(path)), "day", tmp_path / "spool", start="2")
    assert [p.value for p in parts] == [2, 3, 4, 5]
    chunk = next(parts[0].source.iter_chunks())
    whole = next(open_source(str(path)).iter_chunks())
    day = whole[whole["day"] == 2].reset_index(drop=True)
    assert len(chunk) == ROWS and set(chunk["day"]) == {2}
    numeric = [c for c in whole.columns if pd.api.types.is_numeric_dtype(whole[c])]
    assert {c: chunk[c].dtype for c in numeric} == {c: whole[c].dtype for c in numeric}
    # Text comes back dictionary-encoded, as from any Parquet file: the same values.
    pd.testing.assert_frame_equal(chunk.astype(str), day.astype(str))
    assert parts[0].source.name == "batches.csv"


def test_a_file_backfill_logs_one_run_per_value(tracking_uri, client, tmp_path, reference_csv):
    path = tmp_path / "batches.parquet"
    _days().to_parquet(path, index=False)
    result = _run(
        "backfill", path, "--partition-by", "day", "--to", 3, "--reference", reference_csv,
        "--model-name", "churn", "--id-col", "id", "--batch-id-format", "d{value}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(read_batch_runs(client, "churn")["batch_id"]) == ["d1", "d2", "d3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--from and --to must say which values"),
        (("--from", "1", "--to", "x"), "must both be integers or ISO dates"),
        (("--from", "5", "--to", "1"), "is after --to"),
    ],
)
def test_a_placeholder_needs_a_valid_range(tracking_uri, database, reference_csv, args, message):
    result = _backfill(database, reference_csv, *args)
    assert result.exit_code == 1
    assert message in result.output


def test_dates_range_one_day_apart():
    assert value_range("2026-02-27", "2026-03-01", "day") == [
        "2026-02-27", "2026-02-28", "2026-03-01"
    ]  # fmt: skip


def test_bad_partition_columns_are_named(tmp_path, database):
    with pytest.raises(ConfigError, match="must name one column"):
        sql_partitions(database, "SELECT * FROM predictions", "day; DROP TABLE x")
    path = tmp_path / "b.csv"
    make_frame(10, seed=1).to_csv(path, index=False)
    with pytest.raises(SourceError, match="has no column 'day' to partition by"):
        file_partitions(open_source(str(path)), "day", tmp_path)


def test_a_stale_known_batches_falls_back_to_the_store(tracking_uri, client, reference_csv):
    """A run logged by another process between two of this one's: the history is rebuilt
    from the store, not from what this process knew."""
    known = KnownBatches(client, "churn", "none")
    frames = {d: make_frame(200, seed=d).assign(id=lambda f, d=d: f["id"] + d * 1000)
              for d in (1, 2, 3)}  # fmt: skip
    for day, other in ((1, False), (2, True), (3, False)):
        evaluate_and_log(
            frames[day], reference=reference_csv, model_name="churn", batch_id=f"b{day}",
            client=client, known=None if other else known,
        )  # fmt: skip
    runs = read_batch_runs(client, "churn")
    assert len(runs) == 3
    _history_is_complete(client, runs)


def test_a_lease_holds_the_version_lock_across_batches_then_frees_it(tracking_uri, client):
    from monitoring.errors import TrackingError
    from monitoring.track.claim import VersionLease, VersionLock

    with VersionLease(client, "churn", "none", hold=60.0) as lease:
        with lease.held() as first:
            pass
        with lease.held() as second:
            pass
        assert first is second  # one lock for both batches
        with (  # another writer waits meanwhile
            pytest.raises(TrackingError, match="waited"),
            VersionLock(client, "churn", "none", timeout=0.3),
        ):
            pass
        lease.hold = 0.0
        with lease.held() as third:
            pass
        assert third is not first  # held past `hold`: freed and taken again
    later = VersionLock(client, "churn", "none", timeout=5.0)
    later.acquire()  # freed at the end
    later.release()


def test_a_backfill_writes_the_history_table_once_at_its_end(
    tracking_uri, client, database, reference_csv, monkeypatch
):
    from monitoring.track import history_runs, history_table
    from monitoring.track.history_table import read_for_compare

    uploads = []
    original = history_table.upload_table

    def counted(*args, **kwargs):
        uploads.append(args[1])
        return original(*args, **kwargs)

    for module in (history_runs, history_table):  # per batch, and at the end
        monkeypatch.setattr(module, "upload_table", counted)
    result = _backfill(database, reference_csv, "--from", 1, "--to", DAYS)
    assert result.exit_code == 0, result.output
    assert len(uploads) == 1  # not once per batch
    parts = read_for_compare(client, "churn")
    assert [(p.from_table, len(p.runs)) for p in parts] == [(True, DAYS)]
    stored = read_batch_runs(client, "churn").set_index("run_id").sort_index()
    table = parts[0].runs.set_index("run_id").sort_index()[stored.columns]
    pd.testing.assert_frame_equal(table, stored, check_dtype=False)


def test_a_batch_another_process_logged_meanwhile_is_skipped(
    tracking_uri, client, database, reference_csv, monkeypatch
):
    """Two backfills of one version at once: the one that comes second to a batch finds it
    logged (under the version's lock) and skips it, as one logged before it started."""
    from monitoring.track import backfill as backfill_module

    real = backfill_module.deliver

    def raced(*args, **kwargs):
        if kwargs["batch_id"] == "day=2":  # the other process logs it first
            real(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(backfill_module, "deliver", raced)
    result = _backfill(database, reference_csv, "--from", 1, "--to", 3)

    assert result.exit_code == 0, result.output
    assert "backfill: 2 logged, 1 skipped" in result.output
    assert "day=2: skipped logged meanwhile by another process" in result.output
    runs = read_batch_runs(client, "churn")
    assert sorted(runs["batch_id"]) == ["day=1", "day=2", "day=3"]
    _history_is_complete(client, runs)
