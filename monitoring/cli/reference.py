"""`monitoring reference fit`: fit a reference, log it to MLflow and print its id.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import os

import click

from monitoring.cli.engine import engine_options, engine_source
from monitoring.cli.options import (
    SOURCE_HELP,
    blank_option,
    build_config,
    handle_errors,
    role_options,
    source_argument,
    source_options,
)


@click.group()
def reference() -> None:
    """Fit and store references."""


@reference.command(
    "fit",
    help=f"""Fit a reference from SOURCE, log it to MLflow and print its id.

{SOURCE_HELP}""",
)
@source_argument
@click.option(
    "--model-uri",
    callback=blank_option,
    help="models:/NAME/VERSION or models:/NAME@ALIAS; run over the reference for "
    "--embedding-layer.",
)
@source_options
@engine_options
@role_options
@handle_errors
def reference_fit(
    source: str | None,
    model_uri: str | None,
    query: str | None,
    params: tuple[str, ...],
    engine: str,
    spark_master: str | None,
    table: str | None,
    where: str | None,
    config_path: str | None,
    **roles: str | None,
) -> None:
    """Fit a reference from SOURCE, log it to MLflow and print its id (help: above)."""
    from monitoring.collect.sources import parse_params
    from monitoring.evaluation.fit import fit_reference
    from monitoring.track import log_reference, make_client

    config = build_config(config_path, **roles)
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
    fitted = fit_reference(
        read,
        config=config,
        query=None if spark else query,
        params=None if spark else bound,
        model=model_uri,
    )
    client = make_client(config.tracking.uri)
    run_id = log_reference(client, fitted, run_id=os.environ.get("MLFLOW_RUN_ID"))
    for note in fitted.notes:
        click.echo(f"schema: {note}", err=True)
    click.echo(f"reference {fitted.n_rows:,} rows, run {run_id}", err=True)
    click.echo(fitted.id)
