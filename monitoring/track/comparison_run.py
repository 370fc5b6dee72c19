"""Log a comparison (trend tables and plots) as a run tagged `monitoring.kind=comparison`."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from monitoring.errors import TrackingError
from monitoring.track import tags
from monitoring.track.comparison import Comparison, markdown_table, write_outputs
from monitoring.track.experiments import experiment_id, mark_failed

if TYPE_CHECKING:
    from mlflow import MlflowClient


def log_comparison(client: MlflowClient, comparison: Comparison, *, experiment: str) -> str:
    """One run holding trend.csv, summary.csv, alerts.csv, differences.csv and the plots."""
    from mlflow.entities import Metric, Param, RunTag

    versions = sorted(comparison.trend["model_version"].unique())
    run_id = client.create_run(
        experiment_id(client, experiment),
        run_name=f"{comparison.model_name}-comparison",
    ).info.run_id
    try:
        with tempfile.TemporaryDirectory() as folder:
            write_outputs(comparison, folder)
            client.log_artifacts(run_id, folder)
        fired = comparison.alerts[comparison.alerts["alert"]]
        note = "\n".join(
            [
                f"## Comparison of {comparison.model_name}",
                "",
                f"{len(comparison.trend)} batches, versions {', '.join(versions)}; "
                f"{fired['batch_id'].nunique()} batches in alert.",
                "",
                markdown_table(comparison.summary),
            ]
        )
        client.log_batch(
            run_id,
            metrics=[
                Metric("data/n_batches", float(len(comparison.trend)), 0, 0),
                Metric("data/n_alert_batches", float(fired["batch_id"].nunique()), 0, 0),
            ],
            params=[
                Param("model.name", comparison.model_name),
                Param("model.versions", ",".join(versions)[:6000]),
                Param("metrics", ",".join(comparison.metrics)[:6000]),
            ],
            tags=[
                RunTag(tags.KIND, tags.KIND_COMPARISON),
                RunTag(tags.MODEL_NAME, comparison.model_name),
                RunTag(tags.NOTE, note[:5000]),
            ],
        )
    except Exception as error:
        mark_failed(client, run_id, error)
        raise TrackingError(f"logging the comparison failed: {error}") from error
    client.set_terminated(run_id, "FINISHED")
    return run_id
