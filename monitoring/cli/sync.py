"""`monitoring sync`: log the evaluations that wait in the outbox.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import click

from monitoring.cli.options import EXIT_NOT_LOGGED, handle_errors


@click.command(
    "sync",
    help="Log every evaluation kept in the outbox (because the tracking store failed) into "
    "the tracking store, with the same run, history and alerts; each is removed once its "
    "run is FINISHED. Safe to repeat and to run beside evaluations. Exits with code "
    f"{EXIT_NOT_LOGGED} when some are still kept.",
)
@click.option(
    "--outbox",
    type=click.Path(file_okay=False),
    help="The outbox folder (default: MONITORING_OUTBOX, else `tracking.outbox`, else "
    "~/.cache/monitoring/outbox).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML settings: tracking.",
)
@handle_errors
def sync(outbox: str | None, config_path: str | None) -> None:
    """`sync_outbox`, one line per evaluation."""
    from monitoring.core.config import load_config
    from monitoring.errors import NotLoggedError
    from monitoring.track.delivery import sync_outbox
    from monitoring.track.outbox import outbox_folder

    config = load_config(config_path)
    folder = outbox or outbox_folder(config.tracking.outbox)
    results = sync_outbox(config, outbox=folder)
    if not results:
        click.echo(f"nothing waits in the outbox {folder}")
        return
    for result in results:
        where = f" as run {result.run_id}" if result.run_id else ""
        why = f" ({result.reason})" if result.reason and result.outcome != "kept" else ""
        click.echo(f"{result.outcome}: {result.description}{where}{why}")
    kept = [r for r in results if r.outcome == "kept"]
    if kept:
        raise NotLoggedError(
            f"{len(kept)} of {len(results)} evaluation(s) still wait in the outbox {folder}: "
            f"{kept[0].reason}"
        )
