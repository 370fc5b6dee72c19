"""`monitoring labels attach`: join late labels to the batch run they belong to (thin).

Registered on the root command with `main.add_command(labels)`. The library is imported
inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import click

from monitoring.cli.options import (
    EXIT_ALERT,
    SOURCE_HELP,
    blank_option,
    database_source,
    handle_errors,
    source_argument,
    source_options,
)


@click.group()
def labels() -> None:
    """Ground truth that arrives after its batch was evaluated."""


@labels.command("attach", epilog=SOURCE_HELP)
@source_argument
@click.option("--model-name", required=True, help="The model whose batch the labels are of.")
@click.option(
    "--model-version",
    callback=blank_option,
    help="Its version; needed only when several versions evaluated the batch.",
)
@click.option("--batch-id", required=True, help="The batch the labels belong to.")
@click.option("--id-col", required=True, help="The labels' id column (the batch's sample ids).")
@click.option("--target", required=True, help="The labels' column.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    callback=blank_option,
    help="TOML settings: the tracking store, the performance tests and the alert rules.",
)
@click.option(
    "--fail-on-alert",
    is_flag=True,
    help=f"Exit with code {EXIT_ALERT} when an alert rule fires at this batch once the "
    "labels are known.",
)
@source_options
@handle_errors
def attach(
    source: str | None,
    model_name: str,
    model_version: str | None,
    batch_id: str,
    id_col: str,
    target: str,
    config_path: str | None,
    fail_on_alert: bool,
    query: str | None,
    params: tuple[str, ...],
) -> None:
    """Join labels to a batch's predictions (kept in its run's samples.parquet) and log
    the realized performance into that batch run and the version's history run. Labels may
    come in parts: each attach recomputes on every label known so far."""
    import sys

    from monitoring.collect.sources import parse_params
    from monitoring.core.config import load_config
    from monitoring.track.labels import attach_labels

    result = attach_labels(
        database_source(source),
        model_name=model_name,
        model_version=model_version,
        batch_id=batch_id,
        id_column=id_col,
        target=target,
        query=query,
        params=parse_params(params),
        config=load_config(config_path),
    )
    click.echo(
        f"batch {result.batch_id} (model {model_name} version {result.model_version}, run "
        f"{result.run_id}): {result.n_new:,} new labels, {result.n_labelled:,} known "
        f"({result.coverage:.1%} of its rows); status {result.status}"
    )
    if result.n_unknown:
        click.echo(f"warning: {result.n_unknown:,} labels are for ids not in the batch: left out")
    for name, value in result.performance.items():
        if name.startswith("n_"):
            continue
        found = result.estimated.get(name)
        estimate = (
            f"  (estimated {found.value:.4g}, {found.lower:.4g} to {found.upper:.4g})"
            if found
            else ""
        )
        click.echo(f"  {name:<16} {value:.4g}{estimate}")
    for line in result.findings:
        click.echo(f"finding: {line}")
    for judged in result.later:
        rules = f" ({', '.join(judged.alerts)})" if judged.alerts else ""
        click.echo(f"later batch run {judged.run_id}: status now {judged.status}{rules}")
    if result.alerts:
        click.echo(f"alert: {', '.join(result.alerts)}")
        if fail_on_alert:
            sys.exit(EXIT_ALERT)
