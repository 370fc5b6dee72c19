"""The `monitoring` command: the root click group, every command registered on it, and the
console script `run`. The commands live one per module (`evaluate`, `reference`, `compare`,
`backfill`, `fetch`, `notes`, `labels`, `sync`, `doctor`) and import the library only when
they run, so that `monitoring --help` stays fast. Exit codes are listed in `monitoring.cli.options`.
"""

from __future__ import annotations

import gc

import click

from monitoring.cli.backfill import backfill
from monitoring.cli.compare import compare_command
from monitoring.cli.doctor import doctor_command
from monitoring.cli.evaluate import evaluate
from monitoring.cli.fetch import fetch
from monitoring.cli.labels import labels
from monitoring.cli.notes import notes
from monitoring.cli.options import handle_errors
from monitoring.cli.reference import reference
from monitoring.cli.sync import sync


@click.group()
@click.version_option(package_name="monitoring")
def main() -> None:
    """Drift and performance monitoring for PyTorch models, native to MLflow.

    The tracking store is MLFLOW_TRACKING_URI when set, else `tracking.uri` from
    --config, else ./mlflow.db (SQLite) in the working directory.
    """


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


main.add_command(evaluate)
main.add_command(backfill)
main.add_command(reference)
main.add_command(compare_command)
main.add_command(fetch)
main.add_command(notes)
main.add_command(labels)
main.add_command(sync)
main.add_command(doctor_command)


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
