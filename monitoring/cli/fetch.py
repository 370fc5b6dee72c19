"""`monitoring fetch`: export a SQL query to a CSV or Parquet file, in chunks.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from monitoring.cli.options import (
    DB_URL_ENV,
    FROM_ENV,
    blank_option,
    database_source,
    handle_errors,
    progress_printer,
    source_options,
)


@click.command()
@click.option(
    "--db-url",
    callback=blank_option,
    help=f"SQLAlchemy URL; omit it (or write {FROM_ENV}) to read it from {DB_URL_ENV}, "
    "which keeps the password off the command line.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="Output file: .csv or .parquet."
)
@click.option("--chunk-size", type=click.IntRange(min=1), default=100_000, show_default=True)
@source_options
@handle_errors
def fetch(
    db_url: str | None, out: str, chunk_size: int, query: str | None, params: tuple[str, ...]
) -> None:
    """Export a SQL query to a CSV or Parquet file, in chunks."""
    from monitoring.collect.export import export_source
    from monitoring.collect.sources import SqlSource, parse_params
    from monitoring.errors import SourceError

    if not query:
        raise SourceError("fetch needs --query")
    source = SqlSource(database_source(db_url, what="--db-url"), query, parse_params(params))
    summary = export_source(source, out, chunk_size=chunk_size, progress=progress_printer("fetch"))
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"wrote {summary.rows:,} rows to {summary.path} in {summary.seconds:.2f} s")
