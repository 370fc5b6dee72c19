"""The registered model version's description, kept current by each evaluation: its last
batch (status, time, a link to its report), the alerts open at it, the batches by status,
the notes, and links to the version's runs.

Only the `## Monitoring` section (to the end of the description) is ours: text a person
wrote above it is kept. It is written after the batch run and the history run, as a
convenience: a failure to write it loses nothing (the next evaluation writes it again),
so it is not an error of the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.track import tags
from monitoring.track.bounds import is_unreachable
from monitoring.track.experiments import report_route, view_route
from monitoring.track.known_batches import KnownBatches
from monitoring.track.registry import ModelInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient

SECTION = "## Monitoring"
NOTES_COUNT = "monitoring.notes.count"  # the version tag that `track.notes` keeps


def version_section(
    model: ModelInfo,
    runs: pd.DataFrame,
    *,
    experiment_id: str,
    alerts: Sequence[str],
    notes: int,
) -> str:
    """The `## Monitoring` section from the version's batch runs (`KnownBatches.frame()`,
    the batch just logged included)."""
    lines = [SECTION, "", "_Written by each evaluation; text above this heading is kept._", ""]
    runs_link = f"#/{view_route(experiment_id)}"
    if runs.empty:
        return "\n".join([*lines, f"No batch evaluated yet. [Runs]({runs_link})"])
    ordered = runs.sort_values(["batch_time", "start_time"])
    last = ordered.iloc[-1]
    report = f"#/{report_route(experiment_id, str(last['run_id']))}"
    counts = ordered["status"].value_counts()
    by_status = ", ".join(f"{n} {status}" for status, n in counts.items())
    when = f"{pd.Timestamp(last['batch_time']):%Y-%m-%d %H:%M}"
    lines += [
        f"- **Last batch**: `{last['batch_id']}` ({when}), status **`{last['status']}`** · "
        f"[its report]({report})",
        f"- **Open alerts**: {', '.join(alerts) if alerts else 'none'}",
        f"- **Batches**: {len(ordered)} ({by_status})",
        f"- **Notes**: {notes}",
        f"- [Every batch run of version {model.version}]({runs_link})",
    ]
    return "\n".join(lines)


def with_section(description: str | None, section: str) -> str:
    """`description` with its `## Monitoring` section (to the end) replaced by `section`."""
    kept = (description or "").split(SECTION)[0].rstrip()
    return f"{kept}\n\n{section}" if kept else section


def update_version_description(
    client: MlflowClient,
    model: ModelInfo,
    runs: pd.DataFrame,
    *,
    experiment_id: str,
    alerts: Sequence[str],
) -> bool:
    """Write the section into the registered version's description; whether it was
    written (False for an unregistered model, or when the store refused: see the module
    docstring)."""
    if not model.registered:
        return False
    try:
        version = client.get_model_version(model.name, model.version)
        notes = int(version.tags.get(NOTES_COUNT, "0") or 0)
        section = version_section(
            model, runs, experiment_id=experiment_id, alerts=alerts, notes=notes
        )
        client.update_model_version(
            model.name, model.version, description=with_section(version.description, section)
        )
    except Exception as error:  # the store's errors only: a bug here still raises
        from mlflow.exceptions import MlflowException

        if isinstance(error, MlflowException) or is_unreachable(error):
            return False
        raise
    return True


def refresh_version_description(
    client: MlflowClient, model: ModelInfo, *, experiment_id: str
) -> bool:
    """The section written again from the store alone (after `labels attach` changed a
    batch's status): the version's batch runs, and the alerts tag of its last one."""
    if not model.registered:
        return False
    runs = KnownBatches(client, model.name, model.version).frame()
    alerts: list[str] = []
    if not runs.empty:
        last = runs.sort_values(["batch_time", "start_time"]).iloc[-1]
        found = client.get_run(str(last["run_id"])).data.tags.get(tags.ALERTS, "")
        alerts = [a.strip() for a in found.split(",") if a.strip()]
    return update_version_description(
        client, model, runs, experiment_id=experiment_id, alerts=alerts
    )

