"""`monitoring compare`: trends across batches and model versions, with alerts.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import click

from monitoring.cli.options import handle_errors, split_list


@click.command("compare")
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
    help="Folder for trend.csv, summary.csv, alerts.csv, differences.csv, findings.csv and plots.",
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
    "--from-runs",
    is_flag=True,
    help="Read every batch run instead of each version's history table (slower; the "
    "tables are kept by each evaluation, see docs/architecture.md).",
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
    from_runs: bool,
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
        versions=split_list(versions),
        metrics=metrics or None,
        since=since,
        until=until,
        rules=config.alerts.rules,
        client=client,
        from_runs=from_runs,
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(render(result, fmt))
    fired = result.alerts[result.alerts["alert"]]
    for (version, rule), part in fired.groupby(["model_version", "rule"]):
        click.echo(
            f"alert: version {version}: {rule} from batch "
            f"{part.sort_values('batch_seq')['batch_id'].iloc[0]}",
            err=True,
        )
    for finding in result.findings.itertuples():
        click.echo(
            f"degraded: version {finding.model_version}, batch {finding.batch_id}: "
            f"{finding.reason}",
            err=True,
        )
    if out:
        for path in write_outputs(result, out):
            click.echo(f"wrote {path}", err=True)
    if rebuild_history:
        from monitoring.track.claim import VersionLock
        from monitoring.track.experiments import experiment_id
        from monitoring.track.history_runs import sync_history
        from monitoring.track.pipeline import experiment_name_for

        experiment = experiment_id(client, experiment_name_for(config, model_name))
        stale_after = config.tracking.stale_after
        for version in result.trend["model_version"].unique():
            with VersionLock(client, model_name, version, stale_after=stale_after):
                run_id = sync_history(client, experiment, model_name, version, rebuild=True)
            click.echo(f"history of version {version}: run {run_id}", err=True)
    if log_run:
        from monitoring.track.comparison_run import log_comparison
        from monitoring.track.pipeline import experiment_name_for

        run_id = log_comparison(client, result, experiment=experiment_name_for(config, model_name))
        click.echo(f"comparison run: {run_id}", err=True)
