"""What one batch run holds (BRIEF.md): its metrics, params, artifacts and dataset inputs,
computed from a BatchReport; and reading batch runs back by batch id.

`batch_content` renders a run from these before anything is logged, and `publish` writes
it: created with its identifying tags, artifacts, then metrics/params/tags in batched
calls, then FINISHED. A failure on the way marks the run FAILED with the reason in
`monitoring.error`, so a FINISHED run is always complete (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.errors import DuplicateBatchError
from monitoring.evaluation.report import BatchReport
from monitoring.measure.drift_verdict import decision_scale
from monitoring.measure.performance.estimates import estimate_errors, estimate_metrics
from monitoring.measure.performance.tests import PerformanceTest
from monitoring.measure.reference import FEATURE
from monitoring.measure.sample_table import SAMPLES_FILE, write_samples
from monitoring.track import tags
from monitoring.track.registry import ModelInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_PARAM_LENGTH = 6000
LARGE_TABLE_ROWS = 500  # the UI previews 500 CSV rows: larger tables also go as Parquet


def batch_filter(model: ModelInfo, batch_id: str) -> str:
    """search_runs filter for the finished batch runs of (model, version, batch id)."""
    return (
        f"tags.`{tags.KIND}` = '{tags.KIND_BATCH}' and "
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model.name)}' and "
        f"tags.`{tags.MODEL_VERSION}` = '{quote_value(model.version)}' and "
        f"tags.`{tags.BATCH_ID}` = '{quote_value(batch_id)}' and attributes.status = 'FINISHED'"
    )


def quote_value(value: str) -> str:
    """A value for a search_runs filter string, single quotes doubled."""
    return value.replace("'", "''")


def run_name(model: ModelInfo, batch_id: str) -> str:
    """`<batch id> · <model> v<version>`: the batch id first, since the runs table cuts a
    long name at its end."""
    version = f"v{model.version}" if model.registered else "unversioned"
    return f"{batch_id} · {model.name} {version}"


def performance_metrics(
    performance: Mapping[str, float], tests: Sequence[PerformanceTest]
) -> dict[str, float]:
    """`perf/<metric>` and, per test against the reference's own performance,
    `perf/<metric>_reference`, `_drop`, `_adjusted_pvalue`, `_degraded`, and
    `perf/degraded`: the same keys when a batch is logged and when its labels arrive."""
    out = {f"perf/{name}": float(value) for name, value in performance.items()}
    for t in tests:
        prefix = f"perf/{t.metric}"
        out[f"{prefix}_reference"], out[f"{prefix}_drop"] = t.reference, t.drop
        out[f"{prefix}_adjusted_pvalue"] = t.adjusted_p_value
        out[f"{prefix}_degraded"] = float(t.flagged)
    if tests:
        out["perf/degraded"] = float(any(t.flagged for t in tests))
    return out


def metrics_of(report: BatchReport, keys: Mapping[str, str]) -> dict[str, float]:
    """The run's metrics, keyed as BRIEF.md says; non-finite values dropped. A few per
    column: the decision's statistic and threshold, the effect, the adjusted p-value and
    the verdict. The other methods, raw p-values and rates are in `drift.csv`,
    `quality.csv` and `performance.csv`."""
    out: dict[str, float] = {}
    for c in report.columns:
        prefix = f"drift/{keys[c.column]}"
        decision = c.score(c.decision_method) if c.decision_method else None
        if decision is not None:
            out[f"{prefix}/{decision.method}"] = decision.statistic
            out[f"{prefix}/{decision.method}_threshold"] = decision.threshold
        if c.adjusted_p_value is not None:
            out[f"{prefix}/adjusted_pvalue"] = c.adjusted_p_value
        if c.effect is not None:
            out[f"{prefix}/effect"] = c.effect
        out[f"{prefix}/drifted"] = float(c.drifted)
    features = [c for c in report.columns if c.role == FEATURE]
    drifted = len(report.drifted_features)
    out["drift/dataset/drift"] = float(report.dataset_drift)
    out["drift/dataset/n_drifted"] = float(drifted)
    out["drift/dataset/share_drifted"] = drifted / len(features) if features else 0.0
    for d in report.multivariate:
        out[f"drift/dataset/{d.method}"] = d.statistic
        out[f"drift/dataset/{d.method}_pvalue"] = d.p_value
        out[f"drift/dataset/{d.method}_threshold"] = d.threshold
        out[f"drift/dataset/{d.method}_effect"] = d.effect
        out[f"drift/dataset/{d.method}_drifted"] = float(d.drifted)
    if report.prediction_drift is not None:
        out["drift/dataset/prediction_drift"] = float(report.prediction_drift)
    if report.target_drift is not None:
        out["drift/dataset/target_drift"] = float(report.target_drift)
    out.update(performance_metrics(report.performance, report.performance_tests))
    out.update(estimate_metrics(report.estimated_performance))
    out.update(estimate_errors(report.estimated_performance, report.performance))
    out.update(quality_metrics(report, keys))
    out["data/n_rows"] = float(report.n_rows)
    out["data/n_features"] = float(len(features))
    # Every feature has one cell per row, so the share of missing cells is the mean rate.
    rates = [c.missing_rate for c in features]
    out["data/missing_rate"] = sum(rates) / len(rates) if rates else 0.0
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


def quality_metrics(report: BatchReport, keys: Mapping[str, str]) -> dict[str, float]:
    """`quality/<feature>/<check>` (the share of rows affected) and `_flagged`;
    `quality/dataset/flagged` and `quality/dataset/n_flagged` for alert rules (the
    p-values, adjusted by Holm over the quality family, are in `quality.csv`)."""
    out: dict[str, float] = {}
    for q in report.quality:
        prefix = f"quality/{keys.get(q.feature, q.feature)}/{q.check}"
        out[prefix] = q.rate if q.check != "row_volume" else float(q.count)
        out[f"{prefix}_flagged"] = float(q.flagged)
    out["quality/dataset/flagged"] = float(bool(report.quality_findings))
    out["quality/dataset/n_flagged"] = float(len(report.quality_findings))
    return out


def quality_table(report: BatchReport) -> pd.DataFrame:
    """Every data-quality check: rows affected, the expected rate, raw and adjusted
    p-values, the decision and what was found."""
    columns = ["feature", "check", "count", "n", "rate", "expected_rate", "p_value",
               "adjusted_p_value", "flagged", "detail"]  # fmt: skip
    rows = [
        [q.feature, q.check, q.count, q.n, q.rate, q.expected_rate, q.p_value,
         q.adjusted_p_value, q.flagged, q.detail]  # fmt: skip
        for q in report.quality
    ]
    return pd.DataFrame(rows, columns=columns)


def performance_table(report: BatchReport) -> pd.DataFrame:
    """Each performance metric against the reference's: drop, raw and adjusted p-values."""
    return pd.DataFrame(
        [dataclasses.asdict(t) for t in report.performance_tests],
        columns=[f.name for f in dataclasses.fields(PerformanceTest)],
    )


def _params(report: BatchReport, model: ModelInfo, batch_id: str, config: Mapping[str, str]):
    from mlflow.entities import Param

    values = {f"config.{k}": v for k, v in config.items()}
    values.update(
        {
            "batch.id": batch_id,
            "batch.digest": report.batch_digest,
            "source.description": report.source,
            "source.name": report.source_name,
            "reference.id": report.reference_id,
            "model.name": model.name,
            "model.version": model.version,
            "model.uri": model.uri or "",
            "model.predicted_in_run": str(report.predicted_by_model),
        }
    )
    # An empty setting (no exclusions, no model URI) says nothing: MLflow's params table
    # would show a row of '' for each.
    return [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in values.items() if str(v) != ""]


def _write_artifacts(
    report: BatchReport,
    folder: Path,
    keys: Mapping[str, str],
    top: int | None,
    drawn: Path | None = None,
) -> None:
    """The tables, and the plots unless `top` is None (`evaluation.plots`); `drawn`: a
    folder where `draw_plots` already drew them (`track/early_evaluation.py`)."""
    report.drift_table.to_csv(folder / "drift.csv", index=False)
    report.worst_samples.to_csv(folder / "worst_samples.csv", index=False)
    if len(report.worst_samples) > LARGE_TABLE_ROWS:
        report.worst_samples.to_parquet(folder / "worst_samples.parquet", index=False)
    if report.samples is not None:  # every sample id: notes may name any of them
        write_samples(report.samples, folder / SAMPLES_FILE)
    if report.segments is not None:
        report.segments.to_csv(folder / "segments.csv", index=False)
    quality_table(report).to_csv(folder / "quality.csv", index=False)
    if report.performance_tests:
        performance_table(report).to_csv(folder / "performance.csv", index=False)
    (folder / "profile.json").write_text(json.dumps(report.profile, indent=1), encoding="utf-8")
    (folder / "schema.json").write_text(
        json.dumps(report.reference.schema.to_dict(), indent=1), encoding="utf-8"
    )
    changed = {name: key for name, key in keys.items() if name != key}
    if changed:
        (folder / "feature_keys.json").write_text(json.dumps(changed, indent=1), encoding="utf-8")
    if top is not None and drawn is not None:
        shutil.copytree(drawn, folder / "plots")
    elif top is not None:
        draw_plots(report, folder / "plots", keys, top)


def plots_wanted(mode: str, status: str) -> bool:
    """Whether a batch run of this status gets plots under `evaluation.plots` = `mode`."""
    return mode == "all" or (mode == "findings" and status != "ok")


def draw_plots(report: BatchReport, plots: Path, keys: Mapping[str, str], top: int) -> None:
    """The drift overview, the worst samples, and the distributions of the columns that
    drifted or have a data-quality finding (the `top` most drifted): a batch without a
    finding has nothing more to show than the overview, and each plot costs 0.1-0.2 s."""
    from monitoring.track.drift_plots import (
        plot_distribution,
        plot_drift_overview,
        plot_worst_samples,
    )

    (plots / "distributions").mkdir(parents=True)
    plot_drift_overview(report.columns).savefig(plots / "drift_overview.png", dpi=90)
    if report.performance:
        plot_worst_samples(report.worst_samples, id_column=report.reference.schema.id).savefig(
            plots / "worst_samples.png", dpi=90
        )
    flagged = {q.feature for q in report.quality_findings}
    ranked = sorted(  # drifted first, then by how far each is on its decision's scale
        (
            c
            for c in report.columns
            if c.decision_score is not None and (c.drifted or c.column in flagged)
        ),
        key=lambda c: (not c.drifted, -(decision_scale(c) or 0.0)),
    )
    for column in ranked[:top]:
        figure = plot_distribution(column)
        figure.savefig(plots / "distributions" / f"{keys[column.column]}.png", dpi=80)


def _table_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as text, so `log_table` can write JSON."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype(str)
    return out


def _dataset_inputs(report: BatchReport):
    from mlflow.entities import Dataset, DatasetInput, InputTag

    def dataset(name: str, digest: str, source: str, rows: int, context: str) -> DatasetInput:
        entity = Dataset(
            name=name,
            digest=digest,
            source_type="monitoring",
            source=json.dumps({"description": source}),
            profile=json.dumps({"num_rows": rows}),
        )
        return DatasetInput(entity, [InputTag("mlflow.data.context", context)])

    return [
        dataset(report.source_name, report.batch_digest, report.source, report.n_rows, "batch"),
        dataset(
            f"reference-{report.reference_id}",
            report.reference_id,
            report.reference.source,
            report.reference.n_rows,
            "reference",
        ),
    ]


def duplicate_error(model: ModelInfo, batch_id: str, run_id: str) -> DuplicateBatchError:
    return DuplicateBatchError(
        f"batch {batch_id!r} was already evaluated for {model.name} version {model.version} "
        f"(run {run_id}); pass --replace to evaluate it again"
    )


def find_batch_runs(client: MlflowClient, experiment: str, model: ModelInfo, batch_id: str):
    return client.search_runs([experiment], filter_string=batch_filter(model, batch_id))


def carry_notes(client: MlflowClient, old_run: str, new_run: str) -> None:
    """Copy a replaced run's notes (artifacts under notes/ and their tags) to its successor,
    so findings and anomaly-ignore decisions survive a re-evaluation."""
    from mlflow.entities import RunTag

    old_tags = client.get_run(old_run).data.tags
    notes_tags = [RunTag(k, v) for k, v in old_tags.items() if k.startswith(tags.NOTES_PREFIX)]
    if not notes_tags:
        return
    if client.list_artifacts(old_run, "notes"):
        with tempfile.TemporaryDirectory() as folder:
            local = client.download_artifacts(old_run, "notes", folder)
            client.log_artifacts(new_run, local, "notes")
    client.log_batch(new_run, tags=notes_tags)


def ignored_in_previous(
    client: MlflowClient, experiment: str, model: ModelInfo, batch_id: str
) -> tuple[str, ...]:
    """Sample ids marked anomaly-ignore on the finished run(s) of this batch id."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return ()
    ids: list[str] = []
    for run in find_batch_runs(client, found.experiment_id, model, batch_id):
        value = run.data.tags.get(tags.IGNORED_SAMPLES, "")
        ids += [part.strip() for part in value.split(",") if part.strip()]
    return tuple(dict.fromkeys(ids))
