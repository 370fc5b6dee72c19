"""Evaluate a batch and log it as an MLflow run: what the CLI, MLproject and demo call."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.collect.sources import Source
from monitoring.core.config import MonitoringConfig
from monitoring.errors import DuplicateBatchError
from monitoring.evaluation.batch import evaluate
from monitoring.evaluation.fit import fit_reference
from monitoring.evaluation.report import BatchReport
from monitoring.measure.multivariate import DatasetDrift
from monitoring.measure.reference import Reference
from monitoring.track import (
    ModelInfo,
    load_reference,
    log_reference,
    make_client,
    resolve_model,
    resolve_tracking_uri,
    tags,
)
from monitoring.track.batch_run import duplicate_error, find_batch_runs, ignored_in_previous
from monitoring.track.bounds import bounded_requests
from monitoring.track.delivery import deliver, reachable
from monitoring.track.early_evaluation import EarlyEvaluation
from monitoring.track.experiments import mark_failed
from monitoring.track.known_batches import KnownBatches
from monitoring.track.references import REFERENCE_ID, is_reference_id

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "REFERENCE_ID",
    "LoggedEvaluation",
    "evaluate_and_log",
    "experiment_name_for",
    "is_reference_id",
    "obtain_reference",
]


@dataclass(frozen=True)
class LoggedEvaluation:
    """A batch evaluation and where it was logged."""

    report: BatchReport
    run_id: str
    experiment: str
    tracking_uri: str
    model: ModelInfo
    batch_id: str
    experiment_id: str = ""
    early: bool = False  # evaluated in a forked process while the store was opened

    def description(self) -> str:
        """The run's description in Markdown, as the MLflow UI shows it."""
        from monitoring.track.batch_run import run_name
        from monitoring.track.description import markdown_summary

        return markdown_summary(self.report, title=run_name(self.model, self.batch_id))


def obtain_reference(
    client: MlflowClient,
    reference: Reference | pd.DataFrame | str | Source,
    config: MonitoringConfig,
    *,
    model: Any = None,
    require_features: bool = True,
) -> Reference:
    """A reference id is loaded from the store; data is fitted and logged once (`model` and
    `require_features` as for `fit_reference`: the model runs for `drift.embedding_layer`)."""
    if isinstance(reference, Reference):
        fitted = reference
    elif is_reference_id(reference):
        return load_reference(client, reference)  # type: ignore[arg-type]
    else:
        fitted = fit_reference(
            reference, config=config, model=model, require_features=require_features
        )
    log_reference(client, fitted)
    return fitted


def experiment_name_for(config: MonitoringConfig, model_name: str) -> str:
    """The experiment of a monitored model (`tracking.experiment`, default monitoring-NAME)."""
    return config.tracking.experiment.format(model_name=model_name)


@bounded_requests()
def evaluate_and_log(
    batch: pd.DataFrame | str | Source,
    *,
    reference: Reference | pd.DataFrame | str | Source,
    config: MonitoringConfig | None = None,
    batch_id: str | None = None,
    model_uri: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    model: Any = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    replace: bool = False,
    client: MlflowClient | None = None,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
    dataset_tests: Sequence[DatasetDrift] = (),
    known: KnownBatches | None = None,
    early: EarlyEvaluation | None = None,
) -> LoggedEvaluation:
    """Evaluate `batch` and log one run for it. Nothing is logged when evaluation fails.

    `reference` takes the forms of `monitoring.evaluate` (`track.references`): a fitted
    Reference, data to fit one from (logged as a reference run), or a stored reference id.

    `batch_id` defaults to the source name and the batch's content digest. `model` is an
    already loaded module to use instead of loading `model_uri`. `run_id` logs into an
    existing run (the one `mlflow run` created) instead of a new one. With `replace`, the
    samples that notes marked anomaly-ignore on the replaced run are left out of a second
    set of performance metrics (`perf/<metric>_excl_ignored`), and its notes carry over.
    `dataset_tests` (such as `monitoring.embedding_drift`) join the batch verdict and are
    logged as `drift/dataset/<method>`. `known` (`KnownBatches`) keeps the version's batch
    runs between calls, so that a loop over batches reads them from the store once.
    `early`: the same evaluation already running in a forked process
    (`track/early_evaluation.py`), whose report is used when it is of this reference.

    The finished evaluation is kept in the local outbox until its run is FINISHED: when
    the store fails, NotLoggedError says where, and `sync_outbox` logs it later
    (docs/reliability.md). MLflow's HTTP retries are bounded meanwhile (`track.bounds`).
    """
    config = config or MonitoringConfig()
    uri = resolve_tracking_uri(config.tracking.uri)
    with reachable(uri, "nothing was evaluated"):
        client = client or make_client(uri)
        info = resolve_model(
            client, model_uri=model_uri, model_name=model_name, model_version=model_version
        )
        experiment = experiment_name_for(config, info.name)
        checked = known is not None and batch_id not in known.batch_ids()
        if batch_id is not None and not replace and run_id is None and not checked:
            _refuse_duplicate(client, experiment, info, batch_id)
        if known is not None and isinstance(reference, Reference) and known.stored(reference.id):
            fitted = reference  # logged already: spare the search
        else:
            fitted = obtain_reference(
                client,
                reference,
                config,
                model=model if model is not None else model_uri,
                require_features=not dataset_tests,
            )
            if known is not None:
                known.stored(fitted.id, add=True)
        ignored = (
            ignored_in_previous(client, experiment, info, batch_id) if replace and batch_id else ()
        )
    made = early.result() if early is not None else None
    used_early = made is not None and made.report.reference_id == fitted.id
    if used_early:
        report, drawn = made.report, made.plots
    else:
        drawn = None
        report = evaluate(
            batch,
            fitted,
            config=config,
            model=model if model is not None else model_uri,
            batch_id=batch_id,
            query=query,
            params=params,
            progress=progress,
            ignored_samples=ignored,
            dataset_tests=dataset_tests,
        )
    batch_id = batch_id or f"{report.source_name}-{report.batch_digest[:8]}"
    try:
        delivered = deliver(
            client,
            report,
            model=info,
            batch_id=batch_id,
            experiment=experiment,
            config=config,
            replace=replace,
            run_id=run_id,
            known=known,
            drawn=drawn,
        )
    except DuplicateBatchError as error:
        if run_id is not None:  # the `mlflow run` run says why it holds nothing
            _mark_refused(client, run_id, batch_id, error)
        raise
    if run_id is not None:  # `mlflow run` chose the experiment
        experiment = client.get_experiment(delivered.experiment_id).name
    return LoggedEvaluation(
        delivered.report,
        delivered.run_id,
        experiment,
        client.tracking_uri,
        info,
        batch_id,
        delivered.experiment_id,
        early=used_early,
    )


def _mark_refused(client: MlflowClient, run_id: str, batch_id: str, error: Exception) -> None:
    """The run `mlflow run` created, named for the refusal, with the reason, FAILED."""
    with contextlib.suppress(Exception):  # the refusal is the error to show, not this
        client.set_tag(run_id, tags.RUN_NAME, f"{batch_id} · refused: already evaluated")
        client.set_tag(run_id, tags.NOTE, f"Refused: {error}. Nothing was logged in this run.")
    mark_failed(client, run_id, error)


def _refuse_duplicate(client: MlflowClient, experiment: str, model: ModelInfo, batch_id: str):
    """Fail before the (possibly long) evaluation when the batch id is taken."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    runs = find_batch_runs(client, found.experiment_id, model, batch_id)
    if runs:
        raise duplicate_error(model, batch_id, runs[0].info.run_id)
