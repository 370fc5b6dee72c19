"""`monitoring backfill`: every past partition of a source, one batch run each, in one process."""

from __future__ import annotations

import sys
import tempfile
import time

import click

from monitoring.cli.options import (
    EXIT_ALERT,
    EXIT_ERROR,
    SOURCE_HELP,
    blank_option,
    build_config,
    database_source,
    handle_errors,
    role_options,
    source_argument,
    source_options,
)


@click.command(
    help=f"""Evaluate every partition of SOURCE (one value of --partition-by each) as its own
batch run, in ascending order, in one process: each run gets its history step and its
alerts. Batches already logged are skipped unless --replace, so an interrupted backfill
carries on where it stopped when run again.

A SQL --query with a :COLUMN placeholder (WHERE day = :day) runs once per value from
--from to --to (integers, or ISO dates a day apart); without it, the values are listed
with SELECT DISTINCT. A file is read once and split by the column's values.

{SOURCE_HELP}"""
)
@source_argument
@click.option("--partition-by", required=True, help="The column whose values are the batches.")
@click.option("--from", "start", callback=blank_option, help="First partition value.")
@click.option("--to", "end", callback=blank_option, help="Last partition value (inclusive).")
@click.option(
    "--reference",
    required=True,
    help="Reference id (from `monitoring reference fit`) or a source to fit it from.",
)
@click.option("--model-name", callback=blank_option, help="Registered model of the batches.")
@click.option("--model-version", callback=blank_option, help="Its version.")
@click.option(
    "--model-uri",
    callback=blank_option,
    help="models:/NAME/VERSION; run when the batches have no prediction column.",
)
@click.option(
    "--batch-id-format",
    default="{partition}",
    show_default=True,
    help="Batch id of a partition, from {column}, {value} and {partition} (column=value).",
)
@click.option(
    "--plots",
    type=click.Choice(["all", "findings", "none"]),
    default="findings",
    show_default=True,
    help="Plots per batch run: all, only for batches whose status is not ok, or none "
    "(`evaluation.plots`).",
)
@click.option("--replace", is_flag=True, help="Evaluate again the partitions already logged.")
@click.option(
    "--fail-on-alert",
    is_flag=True,
    help=f"Exit with code {EXIT_ALERT} when an alert rule fired at any batch.",
)
@source_options
@role_options
@handle_errors
def backfill(
    source: str | None,
    partition_by: str,
    start: str | None,
    end: str | None,
    reference: str,
    model_name: str | None,
    model_version: str | None,
    model_uri: str | None,
    batch_id_format: str,
    plots: str,
    replace: bool,
    fail_on_alert: bool,
    query: str | None,
    params: tuple[str, ...],
    config_path: str | None,
    **roles: str | None,
) -> None:
    """Evaluate every partition of SOURCE (the help text is `help=` above)."""
    from monitoring.collect.partitions import file_partitions, sql_partitions
    from monitoring.collect.sources import open_source, parse_params
    from monitoring.track.backfill import FAILED, LOGGED
    from monitoring.track.backfill import backfill as run_backfill

    config = build_config(config_path, **roles).replace("evaluation", plots=plots)
    started = time.perf_counter()
    source = database_source(source)
    with tempfile.TemporaryDirectory(prefix="monitoring-backfill-") as scratch:
        if query:
            partitions = sql_partitions(
                source, query, partition_by, params=parse_params(params), start=start, end=end
            )
        else:
            opened = open_source(source)
            click.echo(f"splitting {opened.name} by {partition_by} ...", err=True)
            partitions = file_partitions(
                opened,
                partition_by,
                scratch,
                start=start,
                end=end,
                chunk_size=config.evaluation.chunk_size,
            )
        click.echo(f"{len(partitions)} partition(s) of {partition_by}", err=True)
        results = run_backfill(
            partitions,
            reference=reference,
            config=config,
            model_name=model_name,
            model_version=model_version,
            model_uri=model_uri,
            replace=replace,
            batch_id_format=batch_id_format,
            progress=_progress,
        )
    counts = {
        o: sum(r.outcome == o for r in results) for o in dict.fromkeys(r.outcome for r in results)
    }
    alerts = [r for r in results if r.alerts]
    click.echo(
        f"backfill: {', '.join(f'{n} {o}' for o, n in counts.items()) or 'nothing to do'} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for result in alerts:
        click.echo(f"alert: {result.batch_id}: {', '.join(result.alerts)}")
    if any(r.outcome not in (LOGGED, "skipped", "empty") for r in results):
        failed = [r for r in results if r.outcome == FAILED]
        for result in failed:
            click.echo(f"failed: {result.batch_id}: {result.error}", err=True)
        sys.exit(EXIT_ERROR)
    if fail_on_alert and alerts:
        sys.exit(EXIT_ALERT)


def _progress(done: int, total: int, result) -> None:  # noqa: ANN001
    """One line per partition: where it stands, its outcome and status."""
    detail = (
        f"{result.status:<8} {result.n_rows:>9,} rows {result.seconds:5.2f} s"
        if result.outcome == "logged"
        else result.error
    )
    alert = f"  alert: {', '.join(result.alerts)}" if result.alerts else ""
    click.echo(f"[{done}/{total}] {result.batch_id}: {result.outcome} {detail}{alert}")
