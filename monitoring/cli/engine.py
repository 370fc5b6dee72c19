"""`--engine`, `--spark-master`, `--table` and `--where`: where `evaluate` and `reference
fit` run. `local` (the default) reads SOURCE in this process; `spark` profiles a Parquet
file or folder, or a Spark SQL table, in Spark's executors (`monitoring[spark]`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from monitoring.cli.options import blank_option, database_source
from monitoring.errors import ConfigError

ENGINES = ("local", "spark")


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The engine options, shared by `evaluate` and `reference fit`."""
    options = [
        click.option(
            "--engine",
            type=click.Choice(ENGINES),
            default="local",
            show_default=True,
            help="local: read SOURCE in this process; spark: profile it in Spark's executors "
            "(pip install 'monitoring[spark]'; see docs/spark.md).",
        ),
        click.option(
            "--spark-master",
            callback=blank_option,
            help="With --engine spark: the master URL (local[4], spark://host:7077, yarn); "
            "default: the active session's, else every local core.",
        ),
        click.option(
            "--table",
            callback=blank_option,
            help="With --engine spark: a Spark SQL table (db.name) instead of SOURCE.",
        ),
        click.option(
            "--where",
            callback=blank_option,
            help="With --table: a filter with :name placeholders bound to --param values "
            "(day = :day).",
        ),
    ]
    for option in reversed(options):  # shown in this order
        command = option(command)
    return command


def engine_source(
    engine: str,
    source: str | None,
    *,
    spark_master: str | None,
    table: str | None,
    where: str | None,
    query: str | None,
    params: dict[str, object],
) -> Any:
    """What the command reads: SOURCE as given (local), or a Spark DataFrame's source."""
    if engine == "local":
        spark_only = {"--spark-master": spark_master, "--table": table, "--where": where}
        given = [name for name, value in spark_only.items() if value]
        if given:
            raise ConfigError(f"{', '.join(given)} go with --engine spark")
        return database_source(source)
    from monitoring.collect.sources.spark_frame import read_spark, spark_session

    if query:
        raise ConfigError(
            "--query reads a database in this process; with --engine spark, "
            "give --table (and --where with --param) or a Parquet SOURCE"
        )
    if table and source:
        raise ConfigError(f"give SOURCE ({source}) or --table ({table}), not both")
    if not table and not source:
        raise ConfigError("--engine spark reads a Parquet file or folder (SOURCE) or --table")
    if (
        source
        and "://" in source
        and not source.startswith(("hdfs://", "s3a://", "abfss://", "gs://", "file://"))
    ):
        raise ConfigError(
            f"--engine spark reads Parquet files and Spark tables, not {source.split('://')[0]}"
            " URLs; read the database with --engine local"
        )
    spark = spark_session(spark_master)
    return read_spark(spark, path=source, table=table, where=where, params=params)
