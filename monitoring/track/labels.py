"""`monitoring labels attach`: labels that arrive late, joined to the batch run they belong to.

The batch run's `samples.parquet` holds each sample's id, prediction and class scores; the
labels known so far are kept beside it (`labels/labels.parquet`). Attaching a part logs,
into the same batch run, the realized `perf/*` on every label known, its tests against the
reference, `perf/label_coverage`, and `perf_est_error/*` (realized minus what was estimated
without labels); the run's status, alerts and description are brought up to date, and the
version's history run gets the figures at the batch's step. Everything is read and checked
before anything is written, under the version's lock.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.core.config import MonitoringConfig
from monitoring.errors import DataError, NoRunsError
from monitoring.evaluation.late_labels import join_labels, measure_labels, read_label_part
from monitoring.evaluation.report import STATUS_ALERT
from monitoring.measure.performance.estimates import (
    ESTIMATE_PREFIX,
    Estimate,
    estimate_errors,
    outside_findings,
)
from monitoring.measure.performance.tests import PerformanceTest
from monitoring.measure.sample_table import ID, SAMPLES_FILE
from monitoring.track import tags
from monitoring.track.batch_run import performance_metrics, quote_value
from monitoring.track.description import estimate_table
from monitoring.track.labels_status import Judged, status_after_labels
from monitoring.track.registry import ModelInfo
from monitoring.track.version_page import refresh_version_description

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["LABELS_FILE", "LabelsAttached", "attach_labels", "find_batch_run"]

LABELS_FILE = "labels/labels.parquet"
SECTION = "\n\n## Labels attached\n"


@dataclass(frozen=True)
class LabelsAttached:
    """What one attach did: the batch run, the labels it knows now and what they show."""

    run_id: str
    model_version: str
    batch_id: str
    n_new: int
    n_labelled: int
    n_unknown: int
    coverage: float
    performance: Mapping[str, float]
    tests: tuple[PerformanceTest, ...]
    estimated: Mapping[str, Estimate]
    status: str
    alerts: tuple[str, ...]
    later: tuple[Judged, ...] = ()  # later batches whose status or alerts changed with these

    @property
    def findings(self) -> list[str]:
        """Degraded metrics and realized figures outside their estimate's interval."""
        degraded = [f"performance degraded: {t.reason}" for t in self.tests if t.flagged]
        return degraded + outside_findings(self.estimated, self.performance)


def find_batch_run(
    client: MlflowClient, model_name: str, batch_id: str, model_version: str | None
) -> Run:
    """The finished batch run of (model, version, batch id); without a version, the one
    version that has the batch (several: NoRunsError listing them)."""
    from monitoring.track.experiments import all_experiments
    from monitoring.track.history import batch_runs_filter, iter_runs

    ids = [e.experiment_id for e in all_experiments(client)]
    wanted = (
        f"{batch_runs_filter(model_name, model_version)} and "
        f"tags.`{tags.BATCH_ID}` = '{quote_value(batch_id)}'"
    )
    found = list(iter_runs(client, ids, wanted))
    which = f"{model_name!r}" + (f" version {model_version}" if model_version else "")
    if not found:
        raise NoRunsError(f"no finished batch run of model {which} for batch {batch_id!r}")
    versions = sorted({r.data.tags.get(tags.MODEL_VERSION, "") for r in found})
    if len(versions) > 1:
        raise NoRunsError(
            f"batch {batch_id!r} of model {model_name!r} was evaluated by versions "
            f"{', '.join(versions)}: give --model-version"
        )
    return max(found, key=lambda r: r.info.start_time)


def _estimates(metrics: Mapping[str, float]) -> dict[str, Estimate]:
    """The estimates the batch run logged (`perf_est/<metric>`, `_lower`, `_upper`)."""
    out = {}
    for key, value in metrics.items():
        name = key.removeprefix(ESTIMATE_PREFIX)
        if not key.startswith(ESTIMATE_PREFIX) or name.endswith(("_lower", "_upper")):
            continue
        low = metrics.get(f"{key}_lower", -math.inf)
        high = metrics.get(f"{key}_upper", math.inf)
        out[name] = Estimate(name, value, low, high)
    return out


def _read(client: MlflowClient, run: Run, folder: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The batch's samples and the labels attached before (None: none yet)."""
    run_id = run.info.run_id
    names = {item.path for item in client.list_artifacts(run_id)}
    if SAMPLES_FILE not in names:
        raise NoRunsError(
            f"batch run {run_id} has no {SAMPLES_FILE}: it was evaluated without an id column "
            "(`schema.id`, --id-col) or before runs kept their samples, so labels cannot be "
            "joined to its predictions; re-evaluate the batch with an id column and --replace"
        )
    samples = pd.read_parquet(client.download_artifacts(run_id, SAMPLES_FILE, folder))
    samples[ID] = samples[ID].astype(str)
    previous = None
    if any(item.path == LABELS_FILE for item in client.list_artifacts(run_id, "labels")):
        previous = pd.read_parquet(client.download_artifacts(run_id, LABELS_FILE, folder))
    return samples, previous


def _metrics(
    performance: Mapping[str, float],
    tests: tuple[PerformanceTest, ...],
    estimated: Mapping[str, Estimate],
    coverage: float,
    n_unknown: int,
) -> dict[str, float]:
    out = performance_metrics(performance, tests)
    out["perf/label_coverage"] = coverage
    out["perf/n_labels_unknown"] = float(n_unknown)
    out.update(estimate_errors(estimated, performance))
    return {k: v for k, v in out.items() if math.isfinite(v)}


def attach_labels(
    source: Any,
    *,
    model_name: str,
    batch_id: str,
    id_column: str,
    target: str,
    model_version: str | None = None,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    config: MonitoringConfig | None = None,
    client: MlflowClient | None = None,
) -> LabelsAttached:
    """Join one part of late labels to the batch run of `batch_id` (see the module
    docstring); `client` defaults to the configured tracking store."""
    from monitoring.track.claim import VersionLock
    from monitoring.track.client import make_client, resolve_tracking_uri
    from monitoring.track.reference_run import load_reference

    config = config or MonitoringConfig()
    client = client or make_client(resolve_tracking_uri(config.tracking.uri))
    run = find_batch_run(client, model_name, batch_id, model_version)
    version = run.data.tags.get(tags.MODEL_VERSION, tags.UNVERSIONED)
    reference = load_reference(client, run.data.tags[tags.REFERENCE_ID])
    numeric = reference.schema.task == "regression"
    part = read_label_part(
        source, id_column=id_column, target=target, query=query, params=params, numeric=numeric
    )
    with VersionLock(client, model_name, version), tempfile.TemporaryDirectory() as folder:
        run = client.get_run(run.info.run_id)  # as it is now that the lock is held
        samples, previous = _read(client, run, folder)
        joined = join_labels(samples[ID], previous, part)
        if joined.known.empty:
            raise DataError(
                f"none of the {len(part):,} labels is for an id of batch {batch_id!r} "
                f"({len(samples):,} samples, ids like {', '.join(samples[ID].head(3))}); "
                f"the labels' ids look like {', '.join(part[ID].head(3))}: is it the right "
                "batch and id column?"
            )
        performance, tests = measure_labels(reference, samples, joined.known, config.performance)
        estimated = _estimates(run.data.metrics)
        metrics = _metrics(performance, tests, estimated, joined.coverage, joined.n_unknown)
        this, later = status_after_labels(client, run, metrics, config)
        result = LabelsAttached(
            run.info.run_id, version, batch_id, joined.n_new, len(joined.known),
            joined.n_unknown, joined.coverage, performance, tests, estimated, this.status,
            this.alerts, tuple(later),
        )  # fmt: skip
        _write(client, run, joined.known, metrics, result, Path(folder))
    return result


def _write(
    client: MlflowClient,
    run: Run,
    known: pd.DataFrame,
    metrics: Mapping[str, float],
    result: LabelsAttached,
    folder: Path,
) -> None:
    """The labels, metrics, status and description into the batch run, then the history."""
    import time

    from mlflow.entities import Metric, RunTag

    run_id = run.info.run_id
    path = folder / "labels.parquet"
    known.to_parquet(path, index=False)
    client.log_artifact(run_id, str(path), "labels")
    stamp = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
        tags=[
            RunTag(tags.STATUS, result.status),
            RunTag(tags.ALERTS, ", ".join(result.alerts)),
            RunTag(tags.NOTE, _description(run.data.tags.get(tags.NOTE, ""), result)),
        ],
    )
    for judged in result.later:  # a window holding this batch changed their verdict
        client.log_batch(
            judged.run_id,
            tags=[
                RunTag(tags.STATUS, judged.status),
                RunTag(tags.ALERTS, ", ".join(judged.alerts)),
            ],
        )
    _update_history(client, run, metrics, result.status, result.later)
    model = ModelInfo(
        run.data.tags.get(tags.MODEL_NAME, ""),
        run.data.tags.get(tags.MODEL_VERSION, tags.UNVERSIONED),
    )
    refresh_version_description(client, model, experiment_id=run.info.experiment_id)


def _description(note: str, result: LabelsAttached) -> str:
    """The run's description brought up to date: the status in its first lines, a
    `Labels attached` line under it, the table of estimates made before the labels left
    out (it said "labels not known yet"), and the `Labels attached` section written anew
    at the end."""
    head = note.split(SECTION)[0]
    head = re.sub(r"\*\*Status: `[a-z]+`\*\*", f"**Status: `{result.status}`**", head, count=1)
    head = re.sub(r"\n- \*\*Labels attached\*\*: [^\n]*", "", head)
    head = re.sub(r"\n\n\| metric \| estimated \|[^\n]*(\n\|[^\n]*)*", "", head)
    shown = ", ".join(
        f"{name} {result.performance[name]:.4g} (estimated {e.value:.4g}"
        f"{'' if e.covers(result.performance[name]) else ', outside its interval'})"
        for name, e in result.estimated.items()
        if name in result.performance
    )
    line = (
        f"\n- **Labels attached**: {result.coverage:.1%} of the rows"
        + (f"; {shown}" if shown else "")
        + " (see the end)"
    )
    first = head.find("\n\n- ")
    head = head + line if first < 0 else head[:first + 1] + line + head[first + 1 :]
    lines = [
        f"{result.n_labelled:,} labels known ({result.coverage:.1%} of the batch's rows); "
        f"status now `{result.status}`.",
        "",
        *(f"- **{found}**" for found in result.findings),
        *estimate_table(result.estimated, result.performance),
    ]
    if result.n_unknown:
        lines.insert(1, f"The last part also held {result.n_unknown:,} ids not in the batch.")
    return head + SECTION + "\n".join(lines)


def _update_history(
    client: MlflowClient,
    run: Run,
    metrics: Mapping[str, float],
    status: str,
    later: tuple[Judged, ...] = (),
) -> None:
    """The version's history run gets the realized figures at the batch's step, and the
    alert flag of the later batches judged again at theirs."""
    import time

    from mlflow.entities import Metric

    from monitoring.track.history import read_batch_runs
    from monitoring.track.history_runs import ALERT_METRIC, find_history_run, history_key
    from monitoring.track.trends import is_estimate_key, is_performance_key, order_batches

    name = run.data.tags[tags.MODEL_NAME]
    version = run.data.tags.get(tags.MODEL_VERSION, tags.UNVERSIONED)
    history = find_history_run(client, run.info.experiment_id, name, version)
    if history is None:
        return
    runs = order_batches(read_batch_runs(client, name, versions=[version]))
    mine = runs[runs["run_id"] == run.info.run_id]
    if mine.empty:
        return
    step = int(mine["batch_seq"].iloc[0])
    # Now, not the batch's time: a later part's figures must be the step's latest value
    # (MLflow breaks a tie of step and time by the largest value).
    stamp = int(time.time() * 1000)
    wanted = [k for k in metrics if is_performance_key(k) or is_estimate_key(k)]
    found = [Metric(history_key(k), metrics[k], stamp, step) for k in wanted]
    found.append(Metric(ALERT_METRIC, float(status == STATUS_ALERT), stamp, step))
    steps = dict(zip(runs["run_id"], runs["batch_seq"].astype(int), strict=True))
    for judged in later:
        if judged.run_id in steps:
            flag = float(judged.status == STATUS_ALERT)
            found.append(Metric(ALERT_METRIC, flag, stamp, steps[judged.run_id]))
    client.log_batch(history.info.run_id, metrics=found)
    _rewrite_table(client, history, runs)


def _rewrite_table(client: MlflowClient, history: Run, runs: pd.DataFrame) -> None:
    """The history table from the batch runs as they are now (their figures and statuses
    changed), when it was current before; a stale one stays stale."""
    from monitoring.track.history_runs import history_digest
    from monitoring.track.history_table import HISTORY_DIGEST, TABLE_DIGEST, replace_table

    digest = history.data.tags.get(HISTORY_DIGEST)
    current = digest == history_digest(runs["run_id"].tolist())
    if current and history.data.tags.get(TABLE_DIGEST) == digest:
        replace_table(client, history.info.run_id, runs, digest)

