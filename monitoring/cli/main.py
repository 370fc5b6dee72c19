"""The `monitoring` command: thin click commands over the Python API.

Exit codes: 0 done; 1 a monitoring error (bad input, unreachable store, ...), printed as
one line; 2 a usage error (click); 3 the batch drifted and `--fail-on-drift` was given;
4 an alert rule fired at the batch and `--fail-on-alert` was given.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from monitoring.errors import MonitoringError

EXIT_ERROR = 1
EXIT_DRIFT = 3
EXIT_ALERT = 4


def _split(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _blank_to_none(value: str | None) -> str | None:
    """MLproject passes unset parameters as empty strings."""
    return value or None


def _blank_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback: an empty option value (an unset MLproject parameter) means not given."""
    return _blank_to_none(value)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one place where library errors become a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MonitoringError as error:
            click.echo(f"error: {' '.join(str(error).split())}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


def progress_printer(label: str) -> Callable[[int], None] | None:
    """A progress line on a terminal (rows read so far and rows per second); nothing when
    stderr is not a terminal (logs, CI, schedulers). The rate counts from the first call:
    a pass calls it with 0 rows when it starts, so reference fitting and MLflow set-up
    before it do not dilute the rate."""
    if not sys.stderr.isatty():
        return None

    started: float | None = None

    def show(rows: int) -> None:
        nonlocal started
        if started is None:
            started = time.perf_counter()
        if rows == 0:
            return
        rate = rows / max(time.perf_counter() - started, 1e-9)
        click.echo(f"\r{label}: {rows:,} rows ({rate:,.0f} rows/s)", err=True, nl=False)

    return show


def source_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--query and --param, shared by every command that reads a source."""
    command = click.option(
        "--param",
        "params",
        multiple=True,
        metavar="K=V",
        help="Value of a :K placeholder in --query (repeatable); bound, never formatted in.",
    )(command)
    return click.option(
        "--query",
        callback=_blank_option,
        help="SQL query (with :name placeholders) when the source is a database URL.",
    )(command)


def role_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Column-role options, shared by `evaluate` and `reference fit`."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            callback=_blank_option,
            help="TOML settings (see mlruns_config/monitoring.toml).",
        ),
        click.option(
            "--task",
            type=click.Choice(["classification", "regression", ""]),
            default=None,
            help="Inferred from the target when not given.",
        ),
        click.option("--exclude", help="Comma-separated columns that are not monitored."),
        click.option("--numerical", help="Comma-separated numeric feature columns."),
        click.option("--categorical", help="Comma-separated categorical feature columns."),
        click.option("--id-col", help="Id column (kept in worst_samples.csv)."),
        click.option("--prediction", help="Predicted label (or value) column."),
        click.option("--target", help="Ground-truth column."),
    ]
    for option in options:
        command = option(command)
    return command


def build_config(
    config_path: str | None,
    *,
    target: str | None,
    prediction: str | None,
    id_col: str | None,
    numerical: str | None,
    categorical: str | None,
    exclude: str | None,
    task: str | None,
    chunk_size: int | None = None,
):
    """The config file's settings with the CLI's column roles on top."""
    from monitoring.core.config import load_config

    config = load_config(config_path)
    config = config.replace(
        "schema",
        target=_blank_to_none(target),
        prediction=_blank_to_none(prediction),
        id=_blank_to_none(id_col),
        numerical=_split(numerical),
        categorical=_split(categorical),
        exclude=_split(exclude),
        task=_blank_to_none(task),
    )
    return config.replace("evaluation", chunk_size=chunk_size)


@click.group()
@click.version_option(package_name="monitoring")
def main() -> None:
    """Drift and performance monitoring for PyTorch models, native to MLflow.

    The tracking store is MLFLOW_TRACKING_URI when set, else `tracking.uri` from
    --config, else ./mlflow.db (SQLite) in the working directory.
    """


@main.command()
@click.argument("source")
@click.option(
    "--reference",
    required=True,
    help="Reference id (from `monitoring reference fit`) or a source to fit it from.",
)
@click.option(
    "--batch-id",
    callback=_blank_option,
    help="Unique per model version; default: source name and content digest.",
)
@click.option(
    "--model-name",
    callback=_blank_option,
    help="Registered model the batch belongs to (names the experiment).",
)
@click.option(
    "--model-version",
    callback=_blank_option,
    help="Its version, when predictions are stored and no --model-uri is given.",
)
@click.option(
    "--model-uri",
    callback=_blank_option,
    help="models:/NAME/VERSION or models:/NAME@ALIAS; run when the batch has no prediction column.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per chunk (default 100,000).",
)
@click.option("--replace", is_flag=True, help="Replace an earlier run of the same batch id.")
@click.option(
    "--fail-on-alert",
    is_flag=True,
    help=f"Exit with code {EXIT_ALERT} when an alert rule fires at this batch.",
)
@click.option(
    "--fail-on-drift",
    is_flag=True,
    help=f"Exit with code {EXIT_DRIFT} when the batch status is not ok.",
)
@source_options
@role_options
@handle_errors
def evaluate(
    source: str,
    reference: str,
    batch_id: str | None,
    model_name: str | None,
    model_version: str | None,
    model_uri: str | None,
    chunk_size: int | None,
    replace: bool,
    fail_on_alert: bool,
    fail_on_drift: bool,
    query: str | None,
    params: tuple[str, ...],
    config_path: str | None,
    **roles: str | None,
) -> None:
    """Evaluate the batch SOURCE (file, folder or database URL) into one MLflow run."""
    from monitoring.collect.sources import parse_params
    from monitoring.track.description import terminal_table
    from monitoring.track.pipeline import evaluate_and_log

    config = build_config(config_path, chunk_size=chunk_size, **roles)
    logged = evaluate_and_log(
        source,
        reference=reference,
        config=config,
        batch_id=batch_id,
        model_uri=model_uri,
        model_name=model_name,
        model_version=model_version,
        query=query,
        params=parse_params(params),
        replace=replace,
        run_id=os.environ.get("MLFLOW_RUN_ID"),
        progress=progress_printer("batch"),
    )
    report = logged.report
    if sys.stderr.isatty():
        click.echo("", err=True)
    for note in report.reference.notes:
        click.echo(f"schema: {note}")
    click.echo(terminal_table(report))
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    if report.performance:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in report.performance.items())
        click.echo(f"performance: {shown}")
    click.echo(f"status: {report.status} ({report.n_rows:,} rows, {report.seconds:.2f} s)")
    click.echo(f"run: {logged.run_id} in experiment {logged.experiment!r}")
    click.echo(f"browse: mlflow ui --backend-store-uri {logged.tracking_uri}")
    if report.alerts:
        click.echo(f"alert: {', '.join(report.alerts)}")
    if fail_on_alert and report.alerts:
        sys.exit(EXIT_ALERT)
    if fail_on_drift and report.status != "ok":
        sys.exit(EXIT_DRIFT)


@main.command("compare")
@click.option("--model-name", required=True, help="The monitored model (its batch runs).")
@click.option("--versions", help="Comma-separated model versions (default: all).")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Metric key to follow (repeatable); default: batch-level drift, the chief "
    "statistic of drifted features, every perf/*.",
)
@click.option("--since", help="First batch time (ISO date or datetime).")
@click.option("--until", help="Last batch time (ISO date or datetime).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for trend.csv, summary.csv, alerts.csv, differences.csv and plots.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option("--log", "log_run", is_flag=True, help="Log the comparison as an MLflow run.")
@click.option(
    "--rebuild-history",
    is_flag=True,
    help="Rebuild each version's history parent run from its batch runs.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML settings: alert rules, tracking.",
)
@handle_errors
def compare_command(
    model_name: str,
    versions: str | None,
    metrics: tuple[str, ...],
    since: str | None,
    until: str | None,
    out: str | None,
    fmt: str,
    log_run: bool,
    rebuild_history: bool,
    config_path: str | None,
) -> None:
    """Trends across batches and model versions, with alerts, read from MLflow."""
    from monitoring.core.config import load_config
    from monitoring.track import make_client
    from monitoring.track.comparison import compare, render, write_outputs

    config = load_config(config_path)
    client = make_client(config.tracking.uri)
    result = compare(
        model_name,
        versions=_split(versions),
        metrics=metrics or None,
        since=since,
        until=until,
        rules=config.alerts.rules,
        client=client,
    )
    click.echo(render(result, fmt))
    fired = result.alerts[result.alerts["alert"]]
    for (version, rule), part in fired.groupby(["model_version", "rule"]):
        click.echo(
            f"alert: version {version}: {rule} from batch "
            f"{part.sort_values('batch_seq')['batch_id'].iloc[0]}",
            err=True,
        )
    if out:
        for path in write_outputs(result, out):
            click.echo(f"wrote {path}", err=True)
    if rebuild_history:
        from monitoring.track.experiments import experiment_id
        from monitoring.track.history_runs import sync_history
        from monitoring.track.pipeline import experiment_name_for

        experiment = experiment_id(client, experiment_name_for(config, model_name))
        for version in result.trend["model_version"].unique():
            run_id = sync_history(client, experiment, model_name, version, rebuild=True)
            click.echo(f"history of version {version}: run {run_id}", err=True)
    if log_run:
        from monitoring.track.comparison_run import log_comparison
        from monitoring.track.pipeline import experiment_name_for

        run_id = log_comparison(client, result, experiment=experiment_name_for(config, model_name))
        click.echo(f"comparison run: {run_id}", err=True)


@main.group()
def reference() -> None:
    """Fit and store references."""


@reference.command("fit")
@click.argument("source")
@source_options
@role_options
@handle_errors
def reference_fit(
    source: str,
    query: str | None,
    params: tuple[str, ...],
    config_path: str | None,
    **roles: str | None,
) -> None:
    """Fit a reference from SOURCE, log it to MLflow and print its id."""
    from monitoring.collect.sources import parse_params
    from monitoring.evaluation.batch import fit_reference
    from monitoring.track import log_reference, make_client

    config = build_config(config_path, **roles)
    fitted = fit_reference(source, config=config, query=query, params=parse_params(params))
    client = make_client(config.tracking.uri)
    run_id = log_reference(client, fitted, run_id=os.environ.get("MLFLOW_RUN_ID"))
    for note in fitted.notes:
        click.echo(f"schema: {note}", err=True)
    click.echo(f"reference {fitted.n_rows:,} rows, run {run_id}", err=True)
    click.echo(fitted.id)


@main.command()
@click.option(
    "--db-url",
    required=True,
    envvar="MONITORING_DB_URL",
    help="SQLAlchemy URL (or set MONITORING_DB_URL, to keep passwords off the command line).",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Output file: .csv or .parquet."
)
@click.option("--chunk-size", type=click.IntRange(min=1), default=100_000, show_default=True)
@source_options
@handle_errors
def fetch(
    db_url: str, out: str, chunk_size: int, query: str | None, params: tuple[str, ...]
) -> None:
    """Export a SQL query to a CSV or Parquet file, in chunks."""
    from monitoring.collect.export import export_source
    from monitoring.collect.sources import SqlSource, parse_params
    from monitoring.errors import SourceError

    if not query:
        raise SourceError("fetch needs --query")
    source = SqlSource(db_url, query, parse_params(params))
    summary = export_source(source, out, chunk_size=chunk_size, progress=progress_printer("fetch"))
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"wrote {summary.rows:,} rows to {summary.path} in {summary.seconds:.2f} s")


@main.command()
@click.option(
    "--workdir",
    default="monitoring-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the predictions database goes.",
)
@click.option("--days", default=12, show_default=True, type=click.IntRange(min=10))
@click.option("--rows-per-day", default=2000, show_default=True, type=click.IntRange(min=200))
@handle_errors
def demo(workdir: str, days: int, rows_per_day: int) -> None:
    """Build a demo predictions database and evaluate its daily batches end to end."""
    from monitoring.demo.run import run_demo

    run_demo(workdir=workdir, days=days, rows_per_day=rows_per_day, echo=click.echo)


def _register_subcommands() -> None:
    from monitoring.cli.notes import notes

    main.add_command(notes)


_register_subcommands()


def run() -> None:
    """The `monitoring` console script: `main`, then the heap frozen before the process
    exits, so that CPython's last garbage collection skips the objects pandas, MLflow and
    SQLAlchemy left (0.2-0.3 s a command). Only a process of our own may do this: `main`
    itself, called in-process (tests, notebooks), leaves the collector alone."""
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
