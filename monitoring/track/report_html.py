"""`report.html`: one batch on one page, readable in thirty seconds and in MLflow's artifact
viewer. Self-contained (styles inline, plots as data URIs, no script, no font): it works
offline and inside the viewer's sandboxed frame.

Top to bottom: the verdict and why; data-quality findings; drifted features ranked by how
far they are past their line, each with its distribution against the reference;
performance with its tests and its estimates' intervals; the version's last batches as a
small trend; the worst samples with their anomaly explanation; notes.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from monitoring.evaluation.report import BatchReport
from monitoring.measure.drift_verdict import decision_scale, drift_reason, features_drifted
from monitoring.measure.performance.estimates import CONFIDENCE, outside_findings
from monitoring.track.description import dataset_lines, degraded_lines

REPORT_FILE = "report.html"
TREND_BATCHES = 12  # the version's last batches shown (this one included)
WORST_SHOWN = 10
_COLOURS = {
    "ok": "#2e7d32",
    "quality": "#ef6c00",
    "drift": "#c62828",
    "degraded": "#ad1457",
    "alert": "#6a1b9a",
}
_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;
color:#1f2328;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#d0d7de;padding-bottom:4px}.badge{display:inline-block;color:#fff;border-radius:4px;
padding:2px 10px;font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.meta{color:#57606a}table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid
#d0d7de;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#c62828;font-weight:600}
.feature{margin:12px 0 18px}img{max-width:100%;border:1px solid #d0d7de}
.why li{margin:2px 0}svg{vertical-align:middle}
"""


def render_report(
    report: BatchReport,
    *,
    title: str,
    folder: Path,
    keys: Mapping[str, str],
    recent: pd.DataFrame | None = None,
) -> str:
    """The page for `report`. `folder` holds the run's artifacts (its plots, when drawn);
    `keys` maps columns to their metric keys (the plots' file names); `recent` is the
    version's earlier batch runs (`KnownBatches.frame()`), None when not known."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        _header(report, title),
        _why(report),
        _quality(report),
        _drifted(report, folder, keys),
        _performance(report),
        _trend(report, recent),
        _worst(report),
        _notes(report),
        _footer(report),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def _header(report: BatchReport, title: str) -> str:
    colour = _COLOURS.get(report.status, "#57606a")
    when = ""
    if report.time_range:
        when = f" · batch time {_e(report.time_range[0])} to {_e(report.time_range[1])}"
    return (
        f"<h1>{_e(title)}</h1><p><span class='badge' style='background:{colour}'>"
        f"{_e(report.status)}</span> <span class='meta'>{report.n_rows:,} rows{when} · "
        f"reference <code>{_e(report.reference_id)}</code></span></p>"
    )


def _why(report: BatchReport) -> str:
    """The verdict's reasons, most severe first."""
    lines = [f"Alert rules firing: {_e(', '.join(report.alerts))}"] if report.alerts else []
    lines += [f"Performance degraded: {_e(line)}" for line in degraded_lines(report)]
    drifted = report.drifted_features
    summary = features_drifted(report.columns) + (f" ({', '.join(drifted)})" if drifted else "")
    lines.append(_e(summary))
    lines += [f"Multivariate {_e(line)}" for line in dataset_lines(report)]
    lines += [
        f"Data quality, {_e(q.feature)}: {_e(q.check.replace('_', ' '))}"
        for q in report.quality_findings
    ]
    lines += [
        f"Estimate missed: {_e(line)}"
        for line in outside_findings(report.estimated_performance, report.performance)
    ]
    lines += [f"Warning: {_e(w)}" for w in report.warnings]
    items = "".join(f"<li>{line}</li>" for line in lines)
    return f"<h2>Why: {_e(report.status)}</h2><ul class='why'>{items}</ul>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _quality(report: BatchReport) -> str:
    findings = report.quality_findings
    if not findings:
        return "<h2>Data quality</h2><p>No finding.</p>"
    rows = [[_e(q.feature), _e(q.check.replace("_", " ")), _e(q.reason)] for q in findings]
    return "<h2>Data quality</h2>" + _table(["column", "check", "finding"], rows, set())


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _drifted(report: BatchReport, folder: Path, keys: Mapping[str, str]) -> str:
    """Columns that drifted, input features first, furthest past their line first; then
    the columns with a quality finding only."""
    flagged = {q.feature for q in report.quality_findings}
    ranked = sorted(
        (c for c in report.columns if c.drifted or c.column in flagged),
        key=lambda c: (not c.drifted, c.role != "feature", -(decision_scale(c) or 0.0)),
    )
    out = ["<h2>Drifted features</h2>"]
    overview = _image(folder / "plots" / "drift_overview.png", "drift overview")
    if not ranked:
        out.append("<p>No column drifted.</p>")
    for c in ranked:
        score = c.decision_score
        scale = decision_scale(c)
        facts = [
            f"{_e(c.role)}, {_e(c.decision_method)} {_num(score.statistic if score else None)}",
            f"effect {_num(c.effect, 3)} (floor {_num(c.min_effect, 3)})",
            f"adjusted p {_num(c.adjusted_p_value, 3)}",
        ]
        if scale is not None and math.isfinite(scale):
            facts.append(f"{scale:.1f}x its line")
        verdict = "<span class='bad'>DRIFT</span>" if c.drifted else "quality finding"
        image = _image(
            folder / "plots" / "distributions" / f"{keys.get(c.column, c.column)}.png",
            f"{c.column} against the reference",
        )
        out.append(
            f"<div class='feature'><b>{_e(c.column)}</b> {verdict}: {' · '.join(facts)}<br>"
            f"<span class='meta'>{_e(drift_reason(c))}</span><br>{image}</div>"
        )
    if overview:
        out.append(f"<details><summary>Every column</summary>{overview}</details>")
    return "".join(out)


def _performance(report: BatchReport) -> str:
    out = ["<h2>Performance</h2>"]
    if report.performance_tests:
        rows = [
            [
                _e(t.metric),
                _num(t.value),
                _num(t.reference),
                _num(t.drop, 3),
                _num(t.adjusted_p_value, 3),
                "<span class='bad'>DEGRADED</span>" if t.flagged else "ok",
            ]
            for t in report.performance_tests
        ]
        header = ["metric", "batch", "reference", "drop", "adjusted p", "verdict"]
        out.append(_table(header, rows, {1, 2, 3, 4}))
    elif report.performance:
        rows = [[_e(k), _num(v)] for k, v in report.performance.items()]
        out.append(_table(["metric", "batch"], rows, {1}))
    else:
        out.append("<p>No ground truth in this batch: performance is not measured.</p>")
    if report.estimated_performance:
        rows = []
        for name, e in report.estimated_performance.items():
            realized = report.performance.get(name)
            known = realized is not None and math.isfinite(realized)
            shown = _num(realized) if known else "labels not known yet"
            if known and not e.covers(realized):  # type: ignore[arg-type]
                shown = f"<span class='bad'>{shown} (outside)</span>"
            rows.append([_e(name), _num(e.value), f"{_num(e.lower)} to {_num(e.upper)}", shown])
        header = ["metric", "estimated", f"{CONFIDENCE:.0%} interval", "realized"]
        out.append("<p>Estimated from the model's outputs alone:</p>")
        out.append(_table(header, rows, {1}))
    return "".join(out)


def _chief(frame: pd.DataFrame) -> str | None:
    """The performance column the trend shows: realized, else estimated."""
    for key in ("perf/accuracy", "perf/rmse", "perf/mae", "perf_est/accuracy", "perf_est/mae"):
        if key in frame and frame[key].notna().any():
            return key
    return None


def _trend(report: BatchReport, recent: pd.DataFrame | None) -> str:
    if recent is None:
        return ""
    shown = ("batch_id", "batch_time", "start_time", "status", "drift/dataset/share_drifted")
    rows = recent[[c for c in recent.columns if c in shown or c.startswith(("perf/", "perf_est/"))]]
    if not rows.empty and "batch_id" in rows and report.batch_id is not None:
        rows = rows[rows["batch_id"] != report.batch_id]
    if not rows.empty:
        rows = rows.sort_values(["batch_time", "start_time"]).tail(TREND_BATCHES - 1)
    this = {
        "batch_id": report.batch_id or "this batch",
        "batch_time": pd.Timestamp(report.time_range[0]) if report.time_range else pd.NaT,
        "status": report.status,
        "drift/dataset/share_drifted": _share(report),
        **{f"perf/{k}": v for k, v in report.performance.items()},
        **{f"perf_est/{k}": e.value for k, e in report.estimated_performance.items()},
    }
    frame = (
        pd.concat([rows, pd.DataFrame([this])], ignore_index=True)
        if len(rows)
        else pd.DataFrame([this])
    )
    chief = _chief(frame)
    share = "drift/dataset/share_drifted"
    lines = [_spark(frame[share], "share of features drifted")] if share in frame else []
    if chief:
        lines.append(_spark(frame[chief], chief))
    table_rows = [
        [
            _e(values["batch_id"]),
            _e(values["batch_time"]) if pd.notna(values["batch_time"]) else "",
            _e(values["status"]),
            _num(values.get(share), 3),
            _num(values.get(chief), 4) if chief else "",
        ]
        for values in frame.to_dict("records")
    ]
    header = ["batch", "time", "status", "share drifted", chief or ""]
    return (
        "<h2>This version's last batches</h2>" + "".join(lines) + _table(header, table_rows, {3, 4})
    )


def _share(report: BatchReport) -> float:
    features = [c for c in report.columns if c.role == "feature"]
    return sum(c.drifted for c in features) / len(features) if features else 0.0


def _spark(values: pd.Series, label: str, width: int = 320, height: int = 48) -> str:
    """A sparkline of `values` (this batch last, as a dot) with its label and range."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = [v for v in numbers if math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = width / max(len(numbers) - 1, 1)
    points = [
        (i * step, height - 4 - (v - low) / span * (height - 8))
        for i, v in enumerate(numbers)
        if math.isfinite(v)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    return (
        f"<p><svg width='{width + 8}' height='{height}' role='img' aria-label='{_e(label)}'>"
        f"<polyline fill='none' stroke='#0969da' stroke-width='2' points='{path}'/>"
        f"<circle cx='{last_x:.1f}' cy='{last_y:.1f}' r='4' fill='#c62828'/></svg> "
        f"{_e(label)}: {low:.3g} to {high:.3g}, this batch {finite[-1]:.3g}</p>"
    )


def _worst(report: BatchReport) -> str:
    worst = report.worst_samples
    if worst.empty:
        return ""
    ident = report.reference.schema.id
    shown = worst.head(WORST_SHOWN)
    columns = [c for c in (ident or "row", "error", "anomalous", "anomaly_features") if c in shown]
    columns += [c for c in (report.reference.schema.target, "prediction") if c and c in shown]
    rows = [
        [_num(v) if isinstance(v, float) else _e(v) for v in r]
        for r in shown[columns].itertuples(index=False)
    ]
    return (
        f"<h2>Worst samples</h2><p class='meta'>The {len(shown)} rows with the highest error "
        "(all of them in <code>worst_samples.csv</code>); <i>anomalous</i> rows are unlike "
        "the reference's inputs, and <i>anomaly_features</i> says in which columns.</p>"
        + _table(columns, rows, {columns.index("error")} if "error" in columns else set())
    )


def _notes(report: BatchReport) -> str:
    """A batch gets notes after it is logged: how to add them, and where they go."""
    return (
        "<h2>Notes</h2><p>None when this page was made. Add one on any sample of the batch "
        "(<code>monitoring notes add --run-id RUN --sample-ids ID,... --verdict "
        "anomaly-ignore --text ...</code>); notes are logged beside this run under "
        "<code>notes/</code> and listed on the model version's page.</p>"
    )


def _footer(report: BatchReport) -> str:
    return (
        f"<p class='meta'>Batch digest <code>{_e(report.batch_digest)}</code> · source "
        f"{_e(report.source)} · every column's tests in <code>drift.csv</code>, data quality "
        "in <code>quality.csv</code>, plots in <code>plots/</code>.</p>"
    )
