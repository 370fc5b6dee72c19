"""`monitoring compare`: trends across batches and model versions, read from MLflow.

    result = monitoring.compare("credit-default")
    result.trend, result.summary, result.alerts, result.differences, result.findings

The tracking store is the memory: nothing else keeps state between batches.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.core.alert_rules import DEFAULT_RULES, AlertRule, alert_series
from monitoring.errors import NoRunsError
from monitoring.track.trends import (
    degradation_findings,
    filter_time,
    select_metrics,
    summarize,
    trend_table,
    version_differences,
    versions_in_order,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

ALERT_COLUMNS = ["model_version", "batch_id", "batch_seq", "rule", "metric", "alert"]


@dataclass(frozen=True)
class Comparison:
    """What `compare` found for one model. `findings`: the batches whose performance was
    significantly worse than the reference's, with the reason in words."""

    model_name: str
    metrics: tuple[str, ...]
    trend: pd.DataFrame
    summary: pd.DataFrame
    alerts: pd.DataFrame
    differences: pd.DataFrame
    rules: tuple[AlertRule, ...]
    findings: pd.DataFrame = field(default_factory=lambda: degradation_findings(pd.DataFrame()))
    notes: tuple[str, ...] = ()  # how the runs were read, when not from the history tables

    def figures(self) -> dict[str, Figure]:
        """The history plots `monitoring compare --out` writes, as matplotlib Figures by
        file name (share of drifted features and batch drift over batches, the per-feature
        drift heatmap, performance): to show in a notebook or save."""
        from monitoring.track.comparison_plots import comparison_figures

        return comparison_figures(self.trend, alerts=self.alerts)


def rule_name(rule: AlertRule) -> str:
    return rule.label


def evaluate_rules(trend: pd.DataFrame, rules: Sequence[AlertRule]) -> pd.DataFrame:
    """One row per (version, batch, rule): whether the rule is in alert at that batch."""
    parts = []
    for version in versions_in_order(trend):
        part = trend[trend["model_version"] == version]
        for rule in rules:
            if rule.metric not in part:
                continue
            values = part[rule.metric].to_numpy(dtype=float)
            flags = alert_series(rule, values)  # margin: baseline = the first warmup batches
            parts.append(
                pd.DataFrame(
                    {
                        "model_version": version,
                        "batch_id": part["batch_id"].to_numpy(),
                        "batch_seq": part["batch_seq"].to_numpy(dtype=int),
                        "rule": rule_name(rule),
                        "metric": rule.metric,
                        "alert": np.asarray(flags, dtype=bool),
                    },
                    columns=ALERT_COLUMNS,
                )
            )
    if not parts:
        return pd.DataFrame(columns=ALERT_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def build_comparison(
    model_name: str,
    runs: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    rules: Sequence[AlertRule] = DEFAULT_RULES,
) -> Comparison:
    """The comparison from a table of batch runs (see `tracking.history.read_batch_runs`)."""
    chosen = select_metrics(runs, metrics)
    kept = filter_time(runs, since, until)
    if kept.empty:
        raise NoRunsError(f"no batch of {model_name!r} falls between {since} and {until}")
    rule_metrics = [r.metric for r in rules if r.metric in kept and r.metric not in chosen]
    trend = trend_table(kept, [*chosen, *rule_metrics])
    alerts = evaluate_rules(trend, rules)
    return Comparison(
        model_name=model_name,
        metrics=tuple(chosen),
        trend=trend,
        summary=summarize(trend, chosen, alerts),
        alerts=alerts,
        differences=version_differences(trend, chosen),
        rules=tuple(rules),
        findings=degradation_findings(kept),
    )


def compare(
    model_name: str,
    *,
    versions: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    rules: Sequence[AlertRule] | None = None,
    client: MlflowClient | None = None,
    from_runs: bool = False,
) -> Comparison:
    """Compare the finished batch runs of `model_name` across batches and versions.

    Each version's runs come from its history run's table (one download) when that table is
    up to date (`track.history_table`), else from the batch runs (one search per page of
    runs); `from_runs` always reads the batch runs.
    """
    from monitoring.track import make_client
    from monitoring.track.history_table import combined, read_for_compare

    client = client or make_client()
    parts = read_for_compare(client, model_name, versions=versions, from_runs=from_runs)
    notes = tuple(
        f"version {p.version}: read its {len(p.runs):,} batch runs ({p.why})"
        for p in parts
        if not p.from_table and not from_runs
    )
    result = build_comparison(
        model_name,
        combined(parts),
        metrics=metrics,
        since=since,
        until=until,
        rules=DEFAULT_RULES if rules is None else rules,
    )
    return dataclasses.replace(result, notes=notes)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def render(comparison: Comparison, fmt: str) -> str:
    """The trend table as text: table, csv, json or markdown."""
    trend = comparison.trend.assign(batch_time=comparison.trend["batch_time"].astype(str))
    if fmt == "csv":
        return trend.to_csv(index=False)
    if fmt == "json":
        return json.dumps(
            {
                "model_name": comparison.model_name,
                "trend": json.loads(trend.to_json(orient="records")),
                "summary": json.loads(comparison.summary.to_json(orient="records")),
                "alerts": json.loads(
                    comparison.alerts[comparison.alerts["alert"]].to_json(orient="records")
                ),
            },
            indent=1,
        )
    if fmt == "markdown":
        return markdown_table(trend.drop(columns=["run_id"]))
    return trend.drop(columns=["run_id"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")


def write_outputs(comparison: Comparison, out_dir: str | Path) -> list[Path]:
    """trend.csv, summary.csv, alerts.csv, differences.csv, findings.csv and the plots,
    into `out_dir`."""
    from monitoring.track.comparison_plots import save_comparison_plots

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (
        ("trend", comparison.trend),
        ("summary", comparison.summary),
        ("alerts", comparison.alerts),
        ("differences", comparison.differences),
        ("findings", comparison.findings),
    ):
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    written += save_comparison_plots(comparison.trend, folder, alerts=comparison.alerts)
    return written
