"""Store a fitted reference as an MLflow run (kind `reference`) and load it back by id."""

from __future__ import annotations

import json
import math
import tempfile
from typing import TYPE_CHECKING

from monitoring.core.masking import mask_url
from monitoring.errors import NotFittedError, TrackingError
from monitoring.measure.reference import Reference
from monitoring.measure.reference_files import load_reference_files, save_reference
from monitoring.track import tags
from monitoring.track.experiments import all_experiments, experiment_id, mark_failed
from monitoring.track.reference_cache import cached_reference, keep, keep_files

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARTIFACT_DIR = "reference"


def find_reference_run(client: MlflowClient, reference_id: str) -> str | None:
    """The id of a finished run that holds reference `reference_id`, in any experiment."""
    experiments = [e.experiment_id for e in all_experiments(client)]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        filter_string=(
            f"tags.`{tags.KIND}` = '{tags.KIND_REFERENCE}' and "
            f"tags.`{tags.REFERENCE_ID}` = '{reference_id}' and attributes.status = 'FINISHED'"
        ),
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_reference(client: MlflowClient, reference: Reference, *, run_id: str | None = None) -> str:
    """Log the reference once (same content, same id, same run); returns the run id.

    `run_id` logs into that existing run (inside `mlflow run`) instead of a new one.
    """
    existing = find_reference_run(client, reference.id)
    if existing:
        keep(reference)  # the same numbers (the id is their digest): cached for evaluations
        return existing
    from mlflow.entities import Metric, Param, RunTag

    run_id = (
        run_id
        or client.create_run(
            experiment_id(client, tags.REFERENCE_EXPERIMENT), run_name=f"reference-{reference.id}"
        ).info.run_id
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            save_reference(reference, folder)
            client.log_artifacts(run_id, folder, ARTIFACT_DIR)
            keep_files(reference.id, folder)
        params = [
            Param("reference.id", reference.id),
            Param("reference.source", reference.source[:6000]),
            Param("reference.bins", str(reference.bins)),
            Param("reference.smoothing", str(reference.smoothing)),
            Param("reference.max_categories", str(reference.max_categories)),
            Param("schema", json.dumps(reference.schema.to_dict())[:6000]),
        ]
        note = "\n".join(
            [
                f"# Reference `{reference.id}`",
                "",
                f"{reference.n_rows} rows from `{reference.source}`",
                "",
                *_performance_line(reference),
                *[f"- {n}" for n in reference.notes],
            ]
        )
        client.log_batch(
            run_id,
            metrics=[Metric("data/n_rows", reference.n_rows, 0, 0)]
            + _performance(reference)
            + _estimator_check(reference),
            params=params,
            tags=[
                RunTag(tags.NOTE, note),
                RunTag(tags.KIND, tags.KIND_REFERENCE),
                RunTag(tags.REFERENCE_ID, reference.id),
                RunTag(tags.RUN_NAME, f"reference-{reference.id}"),
            ],
        )
    except Exception as error:
        mark_failed(client, run_id, error)
        raise TrackingError(f"logging reference {reference.id} failed: {error}") from error
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _performance(reference: Reference) -> list:
    """The reference's own performance as `perf/<metric>` (what batches are tested against)."""
    from mlflow.entities import Metric

    if reference.performance is None:
        return []
    found = reference.performance.metrics.items()
    return [Metric(f"perf/{k}", float(v), 0, 0) for k, v in found if math.isfinite(v)]


def _estimator_check(reference: Reference) -> list:
    """How estimated performance was checked on held-out reference rows, as
    `perf_est_check/<figure>` (a classifier's ECE and calibration test before and after its
    map; a regressor's error model's held-out figures)."""
    from mlflow.entities import Metric

    check = getattr(reference.estimator, "check", None) or {}
    return [
        Metric(f"perf_est_check/{k}", float(v), 0, 0)
        for k, v in check.items()
        if isinstance(v, int | float) and math.isfinite(v)
    ]


def _performance_line(reference: Reference) -> list[str]:
    if reference.performance is None:
        return []
    shown = ", ".join(
        f"{k} {v:.4g}" for k, v in reference.performance.metrics.items() if not k.startswith("n_")
    )
    return [f"Its own performance, which batches are tested against: {shown}", ""]


def load_reference(client: MlflowClient, reference_id: str) -> Reference:
    """Download and read the reference `reference_id` logged by `log_reference`."""
    run_id = find_reference_run(client, reference_id)
    if run_id is None:
        raise NotFittedError(
            f"no reference with id {reference_id!r} in the tracking store "
            f"{mask_url(client.tracking_uri)}; fit one with "
            "`monitoring reference fit SOURCE`"
        )
    cached = cached_reference(reference_id)  # logged in this store, and checked by digest
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory() as folder:
        local = client.download_artifacts(run_id, ARTIFACT_DIR, folder)
        reference = load_reference_files(local)
        keep_files(reference_id, local)
        return reference
