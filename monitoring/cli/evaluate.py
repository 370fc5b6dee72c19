"""`monitoring evaluate`: one batch into one MLflow run, printed as a table.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import click

from monitoring.cli.engine import engine_options, engine_source
from monitoring.cli.options import (
    EXIT_ALERT,
    EXIT_DRIFT,
    EXIT_QUALITY,
    SOURCE_HELP,
    blank_option,
    build_config,
    handle_errors,
    progress_printer,
    role_options,
    source_argument,
    source_options,
)


@click.command(
    help=f"""Evaluate the batch SOURCE into one MLflow run.

{SOURCE_HELP}"""
)
@source_argument
@click.option(
    "--reference",
    required=True,
    help="Reference id (from `monitoring reference fit`) or a source to fit it from.",
)
@click.option(
    "--batch-id",
    "--batch_id",
    callback=blank_option,
    help="Unique per model version; default: source name and content digest.",
)
@click.option(
    "--model-name",
    "--model_name",
    callback=blank_option,
    help="Registered model the batch belongs to (names the experiment).",
)
@click.option(
    "--model-version",
    "--model_version",
    callback=blank_option,
    help="Its version, when predictions are stored and no --model-uri is given.",
)
@click.option(
    "--model-uri",
    "--model_uri",
    callback=blank_option,
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
    help=f"Exit with code {EXIT_DRIFT} when the batch status is drift or degraded, "
    f"{EXIT_QUALITY} when it is quality (a data-quality finding only).",
)
@source_options
@engine_options
@role_options
@handle_errors
def evaluate(
    source: str | None,
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
    engine: str,
    spark_master: str | None,
    table: str | None,
    where: str | None,
    config_path: str | None,
    **roles: str | None,
) -> None:
    """Evaluate the batch SOURCE into one MLflow run (the help text is `help=` above)."""
    from monitoring.collect.sources import mask_url, parse_params
    from monitoring.track import early_evaluation

    config = build_config(config_path, chunk_size=chunk_size, **roles)
    bound = parse_params(params)
    read = engine_source(
        engine,
        source,
        spark_master=spark_master,
        table=table,
        where=where,
        query=query,
        params=bound,
    )
    spark = engine == "spark"
    early = None  # the batch evaluated in a child while MLflow is imported and the store opened
    if early_evaluation.available(
        reference, config, engine=engine, replace=replace, model_uri=model_uri
    ):
        early = early_evaluation.start(
            read,
            reference,
            config,
            batch_id=batch_id,
            query=query,
            params=bound,
            progress=progress_printer("batch"),
        )
    from monitoring.track.description import degraded_lines, terminal_table
    from monitoring.track.experiments import runs_page
    from monitoring.track.pipeline import evaluate_and_log
    from monitoring.track.references import is_reference_id

    try:
        logged = evaluate_and_log(
            read,
            reference=reference,
            config=config,
            batch_id=batch_id,
            model_uri=model_uri,
            model_name=model_name,
            model_version=model_version,
            query=None if spark else query,
            params=None if spark else bound,
            replace=replace,
            run_id=os.environ.get("MLFLOW_RUN_ID"),
            progress=progress_printer("batch"),
            early=early,
        )
    finally:
        if early is not None:
            early.cancel()
            early.cleanup()
    report = logged.report
    if sys.stderr.isatty():
        click.echo("", err=True)
    for line in schema_lines(report.reference, stored=is_reference_id(reference)):
        click.echo(f"schema: {line}")
    click.echo(terminal_table(report))
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    if report.performance:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in report.performance.items())
        click.echo(f"performance: {shown}")
    if report.estimated_performance:
        shown = ", ".join(
            f"{e.metric}={e.value:.4g} ({e.lower:.4g} to {e.upper:.4g})"
            for e in report.estimated_performance.values()
        )
        click.echo(f"estimated performance (95% intervals): {shown}")
    for line in degraded_lines(report):
        click.echo(f"degraded: {line}")
    for finding in report.quality_findings:
        click.echo(f"quality: {finding.feature}: {finding.check}: {finding.reason}")
    click.echo(f"status: {report.status} ({report.n_rows:,} rows, {report.seconds:.2f} s)")
    click.echo(f"run: {logged.run_id} in experiment {logged.experiment!r}")
    store = mask_url(logged.tracking_uri)  # a database URL may carry a password
    if not store.startswith(("http://", "https://")):
        click.echo(f"browse: mlflow ui --backend-store-uri {store}, then")
    click.echo(f"browse: {runs_page(store, logged.experiment_id)}")
    if report.alerts:
        click.echo(f"alert: {', '.join(report.alerts)}")
    if fail_on_alert and report.alerts:
        sys.exit(EXIT_ALERT)
    if fail_on_drift and report.status == "quality":
        sys.exit(EXIT_QUALITY)
    if fail_on_drift and report.status != "ok":
        sys.exit(EXIT_DRIFT)


def schema_lines(reference, *, stored: bool) -> list[str]:
    """Where each role came from: the stored reference's, or what fitting it here inferred."""
    if not stored:
        return list(reference.notes)
    schema, origin = reference.schema, f"(from the stored reference {reference.id})"
    roles = [
        ("id", schema.id),
        ("timestamp", schema.timestamp),
        ("target", schema.target),
        ("prediction", schema.prediction),
        ("task", schema.task),
    ]
    lines = [f"{role}: {value!r} {origin}" for role, value in roles if value]
    if schema.prediction_scores:
        lines.append(f"class scores: {', '.join(schema.prediction_scores.values())} {origin}")
    for kind, columns in (("numerical", schema.numerical), ("categorical", schema.categorical)):
        lines.append(f"{kind} features: {', '.join(columns) or '(none)'} {origin}")
    return lines
