"""Human-readable summaries of a batch report: Markdown for MLflow, a table for terminals."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from monitoring.evaluation.report import BatchReport
from monitoring.measure.drift_verdict import drift_reason, features_drifted
from monitoring.measure.performance.estimates import CONFIDENCE, Estimate, outside_findings


def decision_rows(report: BatchReport) -> pd.DataFrame:
    """One row per column: the final verdict (the one the status uses), the decision
    method's statistic, adjusted p-value, effect and its floor, and the reason in words."""
    rows = []
    for c in report.columns:
        score = c.decision_score
        rows.append(
            {
                "column": c.column,
                "role": c.role,
                "verdict": "DRIFT" if c.drifted else "ok",
                "method": c.decision_method,
                "statistic": score.statistic if score else float("nan"),
                "p_adjusted": _number(c.adjusted_p_value),
                "effect": _number(c.effect),
                "floor": _number(c.min_effect),
                "missing": c.missing_rate,
                "reason": drift_reason(c),
            }
        )
    return pd.DataFrame(rows)


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def dataset_lines(report: BatchReport) -> list[str]:
    """One line per multivariate test of the inputs."""
    return [
        f"{d.method}: statistic {d.statistic:.4g} (threshold {d.threshold:.4g}), "
        f"p {d.p_value:.3g}, effect {d.effect:.3g} -> {'DRIFT' if d.drifted else 'ok'}"
        for d in report.multivariate
    ]


def terminal_table(report: BatchReport) -> str:
    """The per-column table the CLI prints, then the multivariate tests."""
    table = decision_rows(report)
    text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    return "\n".join([text, *dataset_lines(report)])


def degraded_lines(report: BatchReport) -> list[str]:
    """One line per performance metric significantly worse than the reference's, e.g.
    `accuracy 0.59 against 0.74 on the reference, drop 0.15, p < 1e-50`."""
    return [t.reason for t in report.performance_tests if t.flagged]


def performance_table(report: BatchReport) -> list[str]:
    """The tests against the reference's performance as Markdown table lines (none
    without tests)."""
    if not report.performance_tests:
        return []
    lines = [
        "| metric | batch | reference | drop | adjusted p | minimum drop | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in report.performance_tests:
        verdict = "**DEGRADED**" if t.flagged else "ok"
        lines.append(
            f"| {t.metric} | {t.value:.4g} | {t.reference:.4g} | {t.drop:.3g} | "
            f"{t.adjusted_p_value:.3g} | {t.min_drop:.3g} | {verdict} |"
        )
    return ["", *lines]


def estimate_table(estimates: Mapping[str, Estimate], realized: Mapping[str, float]) -> list[str]:
    """Estimated performance beside the realized figures as Markdown table lines (none
    without estimates); a realized value outside its interval is bold."""
    if not estimates:
        return []
    lines = [
        f"| metric | estimated | {CONFIDENCE:.0%} interval | realized | realized - estimated |",
        "|---|---|---|---|---|",
    ]
    for name, e in estimates.items():
        value = realized.get(name)
        known = value is not None and math.isfinite(value)
        shown = "labels not known yet" if not known else f"{value:.4g}"
        if known and not e.covers(value):  # type: ignore[arg-type]
            shown = f"**{shown} (outside)**"
        gap = f"{value - e.value:+.3g}" if known else ""  # type: ignore[operator]
        interval = f"{e.lower:.4g} to {e.upper:.4g}"
        lines.append(f"| {name} | {e.value:.4g} | {interval} | {shown} | {gap} |")
    return ["", *lines]


def markdown_summary(report: BatchReport, *, title: str) -> str:
    """The run description (`mlflow.note.content`)."""
    drifted = report.drifted_features
    lines = [
        f"## {title}",
        "",
        f"**Status: `{report.status}`** · {report.n_rows:,} rows · reference "
        f"`{report.reference_id}` · batch digest `{report.batch_digest}`",
        "",
        f"- {features_drifted(report.columns)}" + (f" ({', '.join(drifted)})" if drifted else ""),
        f"- Prediction drift: {_flag(report.prediction_drift)}; "
        f"target drift: {_flag(report.target_drift)}",
    ]
    if report.time_range:
        lines.append(f"- Batch time: {report.time_range[0]} to {report.time_range[1]}")
    if report.predicted_by_model:
        lines.append("- Predictions computed by the registered model during evaluation")
    if report.performance:
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in report.performance.items() if not k.startswith("n_")
        )
        lines.append(f"- Performance: {shown}")
    for line in degraded_lines(report):
        lines.append(f"- **Performance degraded**: {line}")
    for line in outside_findings(report.estimated_performance, report.performance):
        lines.append(f"- **Estimate missed**: {line}")
    for line in dataset_lines(report):
        lines.append(f"- Multivariate {line}")
    for q in report.quality_findings:
        lines.append(f"- Data quality, {q.feature}: {q.check.replace('_', ' ')}: {q.reason}")
    for warning in report.warnings:
        lines.append(f"- ⚠ {warning}")
    lines += performance_table(report)
    lines += estimate_table(report.estimated_performance, report.performance)
    lines += [
        "",
        "| column | role | verdict | method | statistic | adjusted p | effect | floor | reason |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in decision_rows(report).itertuples():
        lines.append(
            f"| {row.column} | {row.role} | {row.verdict} | {row.method} | {row.statistic:.4g} | "
            f"{row.p_adjusted:.3g} | {row.effect:.3g} | {row.floor:.3g} | {row.reason} |"
        )
    lines += [
        "",
        "Artifacts: `report.html` (this batch on one page), `drift.csv`, `quality.csv`, "
        "`worst_samples.csv`, `profile.json`, `plots/`.",
    ]
    return "\n".join(lines)


def with_links(
    note: str, *, experiment_id: str, run_id: str, model: str, version: str | None
) -> str:
    """The run description with a line of links in the MLflow UI, made once the run's id
    is known: its one-page report, the registered model version, the version's runs."""
    from urllib.parse import quote

    from monitoring.track.experiments import report_route, view_route

    links = [f"[report.html](#/{report_route(experiment_id, run_id)})"]
    if version is not None:
        links.append(f"[{model} version {version}](#/models/{quote(model)}/versions/{version})")
    links.append(
        f"[the batch runs](#/{view_route(experiment_id)})"
    )
    lines = note.split("\n")
    # After the title and the status line: what a reader needs first.
    at = 3 if len(lines) > 3 else len(lines)
    return "\n".join([*lines[:at], "", f"Open: {' · '.join(links)}", *lines[at:]])


def _flag(value: bool | None) -> str:
    return "n/a" if value is None else ("**yes**" if value else "no")
