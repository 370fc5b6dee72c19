"""`monitoring doctor`: list (and fix) what interrupted or concurrent evaluations left.

The library is imported inside the command, so that `monitoring --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from monitoring.cli.options import EXIT_INCONSISTENT, handle_errors


@click.command(
    "doctor",
    help="List runs left RUNNING by killed evaluations, duplicate batch runs, history runs "
    "that miss batches or are several per version, abandoned locks and evaluations waiting "
    "in the outbox; with --fix, repair what is in the store (the outbox is `monitoring "
    f"sync`'s). Exits with code {EXIT_INCONSISTENT} while something is left to repair.",
)
@click.option("--model-name", help="Only this model's runs (default: every model).")
@click.option(
    "--fix",
    is_flag=True,
    help="Repair: mark orphan runs FAILED, keep the first of duplicate batch runs, bring "
    "history runs up to date, free abandoned locks.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML settings: tracking.",
)
@handle_errors
def doctor_command(model_name: str | None, fix: bool, config_path: str | None) -> None:
    """`doctor`, one line per finding."""
    from monitoring.core.config import load_config
    from monitoring.track.doctor import doctor

    findings = doctor(load_config(config_path), model_name=model_name, fix=fix)
    for finding in findings:
        click.echo(finding.line())
    if not findings:
        click.echo("no inconsistencies")
    if any(not f.fixed for f in findings):
        sys.exit(EXIT_INCONSISTENT)
