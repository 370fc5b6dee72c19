"""What the `monitoring` commands share: exit codes, error handling, progress lines,
the source and column-role options and the config they build.

Exit codes: 0 done; 1 a monitoring error (bad input, unreachable store, ...), printed as
one line; 2 a usage error (click); 3 the batch drifted and `--fail-on-drift` was given;
4 an alert rule fired at the batch and `--fail-on-alert` was given; 5 the tracking store
failed or cannot be reached (an evaluation that was computed is kept in the outbox, and the
one line says where: `monitoring sync` logs it later); 7 `monitoring doctor` found
inconsistencies it did not repair.

Database URLs: every command that reads a database takes its URL from MONITORING_DB_URL
when the SOURCE argument (`--db-url` for `fetch`) is omitted, empty (an unset MLproject
parameter) or the literal `env:MONITORING_DB_URL`, so that a password never reaches the
command line, the process list or an MLflow param. Every message printed goes through
`monitoring.core.masking` first.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from monitoring.core.masking import mask_secrets, url_secrets
from monitoring.errors import (
    MonitoringError,
    NotLoggedError,
    SourceError,
    TrackingUnreachableError,
)

EXIT_ERROR = 1
EXIT_DRIFT = 3
EXIT_ALERT = 4
EXIT_NOT_LOGGED = 5  # the store failed: what was computed waits in the outbox
EXIT_QUALITY = 6  # --fail-on-drift and the status is `quality`: fix a pipeline, not a model
EXIT_INCONSISTENT = 7  # `monitoring doctor`: inconsistencies left to repair


DB_URL_ENV = "MONITORING_DB_URL"
"""The environment variable that holds the database URL (with its password)."""
FROM_ENV = f"env:{DB_URL_ENV}"
"""What to write for SOURCE to read the database URL from DB_URL_ENV explicitly."""
SOURCE_HELP = (
    f"SOURCE is a file, a folder or a database URL; omit it (or write {FROM_ENV}) to read the "
    f"database URL from {DB_URL_ENV}, which keeps its password off the command line."
)


def split_list(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as a tuple of its non-blank parts; None when not given."""
    if not value:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def blank_to_none(value: str | None) -> str | None:
    """MLproject passes unset parameters as empty strings."""
    return value or None


def blank_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Click callback: an empty option value (an unset MLproject parameter) means not given."""
    return blank_to_none(value)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one place where library errors become a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MonitoringError as error:
            click.echo(f"error: {mask_secrets(' '.join(str(error).split()))}", err=True)
            store_failed = isinstance(error, NotLoggedError | TrackingUnreachableError)
            sys.exit(EXIT_NOT_LOGGED if store_failed else EXIT_ERROR)

    return wrapper


def source_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """The optional SOURCE argument of the commands that read a batch or a reference."""
    return click.argument("source", required=False, default=None, metavar="[SOURCE]")(command)


def database_source(given: str | None, *, what: str = "SOURCE") -> str:
    """The source a command reads: ``given``, or the URL in MONITORING_DB_URL when
    ``given`` is omitted, empty or `env:MONITORING_DB_URL`. A URL given on the command
    line with a password still works, with a warning on stderr."""
    if not given or given.strip() == FROM_ENV:
        url = os.environ.get(DB_URL_ENV, "").strip()
        if not url:
            raise SourceError(
                f"no {what} given and {DB_URL_ENV} is not set: give a file, folder or "
                f"database URL, or set {DB_URL_ENV} to the database URL"
            )
        return url
    if url_secrets(given):
        click.echo(
            f"warning: {what} holds a password, which the process list shows and "
            f"`mlflow run` logs as a param; put the URL in {DB_URL_ENV} and omit {what}",
            err=True,
        )
    return given


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
        "--param2",
        "params",
        multiple=True,
        metavar="K=V",
        help="Value of a :K placeholder in --query (repeatable); bound, never formatted in. "
        "(--param2 is the same, for a second `mlflow run -P param2=K=V`.)",
    )(command)
    return click.option(
        "--query",
        callback=blank_option,
        help="SQL query (with :name placeholders) when the source is a database URL.",
    )(command)


def role_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Column-role options and the embedding layer, shared by `evaluate` and `reference fit`."""
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            callback=blank_option,
            help="TOML settings (see mlruns_config/monitoring.toml).",
        ),
        click.option(
            "--task",
            type=click.Choice(["classification", "regression", ""]),
            default=None,
            help="Inferred from the target when not given.",
        ),
        click.option(
            "--exclude",
            help="Comma-separated columns that are not monitored (no role is inferred for them).",
        ),
        click.option("--numerical", help="Comma-separated numeric feature columns."),
        click.option("--categorical", help="Comma-separated categorical feature columns."),
        click.option("--id-col", help="Id column (kept in worst_samples.csv)."),
        click.option("--prediction", help="Predicted label (or value) column."),
        click.option("--target", help="Ground-truth column."),
        click.option(
            "--embedding-layer",
            help="Layer of the --model-uri model whose activations are tested for drift "
            "(`drift.embedding_layer`): captured while the model runs over the rows.",
        ),
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
    embedding_layer: str | None = None,
):
    """The config file's settings with the CLI's column roles (and embedding layer) on top."""
    from monitoring.core.config import load_config

    config = load_config(config_path)
    config = config.replace(
        "schema",
        target=blank_to_none(target),
        prediction=blank_to_none(prediction),
        id=blank_to_none(id_col),
        numerical=split_list(numerical),
        categorical=split_list(categorical),
        exclude=split_list(exclude),
        task=blank_to_none(task),
    )
    config = config.replace("drift", embedding_layer=blank_to_none(embedding_layer))
    return config.replace("evaluation", chunk_size=chunk_size)
