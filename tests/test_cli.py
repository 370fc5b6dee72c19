"""The `monitoring` command end to end, through click's runner on a temporary store."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from monitoring.cli.main import main
from monitoring.cli.options import EXIT_DRIFT


@pytest.fixture
def files(tmp_path, reference_frame, batch_frame, drifted_frame):
    paths = {}
    for name, frame in (
        ("reference", reference_frame),
        ("batch", batch_frame),
        ("drifted", drifted_frame),
    ):
        paths[name] = tmp_path / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    drifted_frame.to_parquet(tmp_path / "drifted.parquet")
    paths["parquet"] = tmp_path / "drifted.parquet"
    return paths


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_reference_fit_prints_an_id_that_evaluate_accepts(tracking_uri, files):
    fitted = _run("reference", "fit", files["reference"], "--target", "label")
    assert fitted.exit_code == 0, fitted.output
    reference_id = fitted.stdout.strip().splitlines()[-1]
    assert len(reference_id) == 16
    result = _run(
        "evaluate",
        files["batch"],
        "--reference",
        reference_id,
        "--batch-id",
        "b1",
        "--model-name",
        "churn",
    )
    assert result.exit_code == 0, result.output
    assert "status: ok" in result.output
    assert "mlflow ui --backend-store-uri" in result.output
    runs = MlflowClient(tracking_uri).search_runs(
        [MlflowClient(tracking_uri).get_experiment_by_name("monitoring-churn").experiment_id]
    )
    batches = [r for r in runs if r.data.tags["monitoring.kind"] == "batch"]
    assert [r.data.tags["monitoring.batch_id"] for r in batches] == ["b1"]


def test_fail_on_drift_exits_with_the_documented_code(tracking_uri, files):
    result = _run(
        "evaluate",
        files["parquet"],
        "--reference",
        files["reference"],
        "--batch-id",
        "d1",
        "--fail-on-drift",
    )
    assert result.exit_code == EXIT_DRIFT
    assert "status: drift" in result.output
    assert "DRIFT" in result.output


def test_evaluate_prints_each_columns_final_verdict_and_reason(tracking_uri, files):
    result = _run("evaluate", files["drifted"], "--reference", files["reference"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line.strip()}
    assert lines["column"][:3] == ["column", "role", "verdict"]
    assert lines["x"][1:3] == ["feature", "DRIFT"]
    assert "over the floor" in " ".join(lines["x"])
    assert lines["size"][1:3] == ["feature", "ok"]
    assert "not significant after Holm over" in " ".join(lines["size"])


def test_duplicate_batch_is_a_one_line_error(tracking_uri, files):
    assert (
        _run(
            "evaluate", files["batch"], "--reference", files["reference"], "--batch-id", "b1"
        ).exit_code
        == 0
    )
    again = _run("evaluate", files["batch"], "--reference", files["reference"], "--batch-id", "b1")
    assert again.exit_code == 1
    assert "error: batch 'b1' was already evaluated" in again.stderr
    assert "--replace" in again.stderr


def test_sql_batch_with_bound_parameter(tracking_uri, tmp_path, reference_frame, batch_frame):
    import sqlalchemy

    url = f"sqlite:///{tmp_path}/predictions.db"
    engine = sqlalchemy.create_engine(url)
    pd.concat([reference_frame.assign(day=0), batch_frame.assign(day=1)]).to_sql(
        "predictions", engine, index=False
    )
    engine.dispose()
    query = "SELECT * FROM predictions WHERE day = :day"
    fitted = _run("reference", "fit", url, "--query", query, "--param", "day=0", "--exclude", "day")
    reference_id = fitted.stdout.strip().splitlines()[-1]
    result = _run(
        "evaluate",
        url,
        "--query",
        query,
        "--param",
        "day=1",
        "--reference",
        reference_id,
        "--batch-id",
        "day-1",
    )
    assert result.exit_code == 0, result.output
    assert f"({len(batch_frame):,} rows" in result.output


def test_fetch_exports_a_query_to_parquet(tmp_path, batch_frame):
    import sqlalchemy

    url = f"sqlite:///{tmp_path}/predictions.db"
    engine = sqlalchemy.create_engine(url)
    batch_frame.to_sql("predictions", engine, index=False)
    engine.dispose()
    out = tmp_path / "out.parquet"
    result = _run(
        "fetch",
        "--db-url",
        url,
        "--query",
        "SELECT * FROM predictions WHERE color = :c",
        "--param",
        "c=red",
        "--out",
        out,
        "--chunk-size",
        "100",
    )
    assert result.exit_code == 0, result.output
    expected = batch_frame[batch_frame["color"] == "red"].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_dtype=False)


def test_bad_config_value_is_reported_with_the_setting(tmp_path, files):
    config = tmp_path / "bad.toml"
    config.write_text("[drift]\nbins = 1\n")
    result = _run("evaluate", files["batch"], "--reference", files["reference"], "--config", config)
    assert result.exit_code == 1
    assert "`drift.bins` must be an integer >= 2, got 1" in result.stderr


def test_demo_runs_end_to_end(tracking_uri, tmp_path):
    from monitoring.demo.run import run_demo

    table = run_demo(workdir=tmp_path / "demo", days=10, rows_per_day=400, echo=lambda _: None)
    assert list(table["batch"]) == [f"day-{d:02d}" for d in range(1, 11)]
    assert table.loc[table["batch"] == "day-03", "model_run"].item() == "yes"
    # Before the drift starts no input feature drifts (label drift may: the demo's default
    # rate varies from day to day, and 400-row days are enough to see it).
    assert table["drifted"].iloc[:5].eq("-").all()
    assert table["status"].iloc[-1] == "alert"  # drifted in 3 of the last 3 batches
    # The last two days were evaluated without labels, then given them: both figures.
    assert list(table["labels"]) == ["with batch"] * 8 + ["later"] * 2
    assert table["accuracy"].notna().all() and table["est_accuracy"].notna().all()
    client = MlflowClient(tracking_uri)
    late = client.search_runs(
        [client.get_experiment_by_name("monitoring-credit-default").experiment_id],
        "tags.`monitoring.batch_id` = 'day-10'",
    )[0].data.metrics
    assert late["perf/label_coverage"] == 1.0
    assert late["perf_est_error/accuracy"] == pytest.approx(
        late["perf/accuracy"] - late["perf_est/accuracy"], abs=1e-12
    )
    version = client.get_model_version("credit-default", "1")
    assert version.source.startswith("models:/m-")


def test_progress_line_only_on_a_terminal(monkeypatch, capsys):
    from monitoring.cli.options import progress_printer

    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert progress_printer("batch") is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    show = progress_printer("batch")
    show(0)  # the pass starts: the clock starts, nothing is printed
    assert capsys.readouterr().err == ""
    show(1_500)
    assert "batch: 1,500 rows (" in capsys.readouterr().err


def test_evaluate_reports_progress_from_the_start_of_the_pass(reference_frame, batch_frame):
    from monitoring import EvaluationConfig, MonitoringConfig, evaluate

    calls: list[int] = []
    config = MonitoringConfig(evaluation=EvaluationConfig(chunk_size=400))
    evaluate(batch_frame, reference_frame, config=config, progress=calls.append)
    assert calls[0] == 0
    assert calls[1:] == list(range(400, len(batch_frame), 400)) + [len(batch_frame)]


def test_the_console_script_freezes_the_heap_before_exit(monkeypatch):
    """`run` (the installed `monitoring` command) freezes the heap once `main` is done, so
    that the interpreter's last collection is cheap; `main` itself does not."""
    import gc

    import monitoring.cli.main as cli

    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr("sys.argv", ["monitoring", "--version"])
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 0 and frozen == [True]
    assert _run("--version").exit_code == 0 and frozen == [True]  # in-process: untouched
