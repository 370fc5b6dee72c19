"""Plots of the comparer's trend table. They compute nothing: a table in, a Figure out.

The trend table has one row per (model_version, batch): `model_version`, `batch_id`,
`batch_seq` (1-based order within the version), `batch_time`, `status`, `run_id`, then one
float column per MLflow metric key (NaN where a batch lacks it). Each plot accepts
`ax=None` (a new figure is made; `plot_estimated_performance`, a grid of bands, always makes
its own), returns the Figure and never calls `plt.show()`.
Artists carry a `gid` ("version", "status", "alerts", "threshold", "above-threshold"; the
estimated-performance plot's are listed in `estimate_plots`) so callers and tests can find
them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from monitoring.errors import ColumnNotFoundError, DataError
from monitoring.track.drift_plots import DRIFT_COLOR
from monitoring.track.estimate_plots import draw_estimate, legend_once
from monitoring.track.trends import ESTIMATE_PREFIX, estimated_metric_names

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "feature_columns",
    "plot_drift_heatmap",
    "plot_estimated_performance",
    "plot_metric_over_batches",
    "plot_performance",
    "save_comparison_plots",
]

STATUS_COLORS = {"ok": "#2ca02c", "drift": "#ff7f0e", "alert": DRIFT_COLOR}
"""Marker colour per batch status; the legend always lists all three."""
UNKNOWN_STATUS_COLOR = "#c7c7c7"
VERSION_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22")
"""Line colour per model version, cycled; free of the status colours."""
VERSION_STYLES = ("-", "--", ":", "-.")  # a later version dashed over an earlier one
MAX_LABELLED_BATCHES = 20
"""Up to this many batches every tick is labelled with its batch id; beyond, about 10 are."""
HEATMAP_CMAP = "YlOrRd"
PERF_GRID_COLUMNS = 3
SHARE_DRIFTED, DATASET_DRIFT = "drift/dataset/share_drifted", "drift/dataset/drift"
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _require(
    table: pd.DataFrame, columns: Iterable[str], hint: str = "", *, name: str = "trend table"
) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ColumnNotFoundError(f"{name} has no column {', '.join(map(repr, missing))}{hint}")


def _versions(trend: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(version, its rows sorted by batch_seq), in the table's order of versions."""
    groups = trend.groupby("model_version", sort=False)
    return [(str(v), rows.sort_values("batch_seq", kind="stable")) for v, rows in groups]


def _label_batches(ax: Axes, positions: Sequence[float], labels: Sequence[str]) -> None:
    """Every x tick labelled when few batches, else about ten evenly spaced ones."""
    if len(positions) > MAX_LABELLED_BATCHES:
        keep = np.unique(np.linspace(0, len(positions) - 1, 10).round().astype(int))
        positions, labels = [positions[i] for i in keep], [labels[i] for i in keep]
    ax.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)


def _seq_labels(trend: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Each batch_seq and its batch id(s), one line per distinct id across versions."""
    ids = trend.groupby("batch_seq", sort=True)["batch_id"].unique()
    return [int(s) for s in ids.index], ["\n".join(map(str, v)) for v in ids]


def plot_metric_over_batches(
    trend: pd.DataFrame,
    metric: str,
    *,
    threshold: float | None = None,
    alerts: pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One line per model version over batch_seq, markers coloured by status.

    `threshold` draws a dashed horizontal line; `alerts` (columns model_version,
    batch_seq, metric, alert) puts a red triangle at the top of the axes above each batch
    whose alert is True for `metric`, one row of triangles per version. NaN leaves a gap.
    """
    from matplotlib.lines import Line2D

    hint = f"; metric columns: {', '.join(c for c in trend.columns if '/' in c)}"
    _require(trend, ["model_version", "batch_id", "batch_seq", "status", metric], hint)
    figure, ax = _new_axes(ax, (9, 4))
    handles: list[Line2D] = []
    fired = None
    if alerts is not None:
        _require(alerts, ["model_version", "batch_seq", "metric", "alert"], name="alerts table")
        fired = alerts[(alerts["metric"] == metric) & alerts["alert"].eq(True)]
        fired = None if fired.empty else fired
    for i, (version, rows) in enumerate(_versions(trend)):
        color = VERSION_COLORS[i % len(VERSION_COLORS)]
        x, y = rows["batch_seq"].to_numpy(float), rows[metric].to_numpy(float)
        (line,) = ax.plot(
            x,
            y,
            color=color,
            linestyle=VERSION_STYLES[i % len(VERSION_STYLES)],  # visible where lines overlap
            linewidth=2.4 if i == 0 else 1.6,
            gid="version",
            label=f"version {version}",
        )
        handles.append(line)
        present = ~np.isnan(y)
        status = [STATUS_COLORS.get(s, UNKNOWN_STATUS_COLOR) for s in rows["status"]]
        ax.scatter(
            x[present],
            y[present],
            c=[c for c, p in zip(status, present, strict=True) if p],
            edgecolors=color,
            s=36,
            zorder=3,
            gid="status",
        )
        if fired is not None:
            seqs = np.unique(fired.loc[fired["model_version"].astype(str) == version, "batch_seq"])
            ax.plot(
                seqs.astype(float),
                np.full(len(seqs), 0.95 - 0.05 * i),
                "v",
                color=DRIFT_COLOR,
                markeredgecolor=color,
                markersize=9,
                transform=ax.get_xaxis_transform(),
                gid="alerts",
                label=f"alerts, version {version}",
            )
    for status, color in STATUS_COLORS.items():
        handles.append(Line2D([], [], ls="", marker="o", color=color, mec="grey", label=status))
    if threshold is not None:
        handles.append(
            ax.axhline(
                threshold,
                color="black",
                ls="--",
                lw=1,
                gid="threshold",
                label=f"threshold {threshold:g}",
            )
        )
    if fired is not None:
        handles.append(Line2D([], [], ls="", marker="v", color=DRIFT_COLOR, label="alert fired"))
    _label_batches(ax, *_seq_labels(trend))
    ax.margins(y=0.2 if fired is not None else 0.1)
    ax.set_xlabel("batch (order within its model version)")
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return figure


def feature_columns(columns: Iterable[str], method: str) -> dict[str, str]:
    """Feature name -> column for `drift/<feature>/<method>` columns, `drift/dataset/` excluded.

    The feature is everything between the first `drift/` and the last `/<method>`, so it
    may itself contain `/`.
    """
    prefix, suffix = "drift/", f"/{method}"
    return {
        c[len(prefix) : -len(suffix)]: c
        for c in columns
        if c.startswith(prefix)
        and c.endswith(suffix)
        and len(c) > len(prefix) + len(suffix)
        and not c.startswith("drift/dataset/")
    }


def plot_drift_heatmap(
    trend: pd.DataFrame,
    *,
    method: str = "psi",
    model_version: str | None = None,
    threshold: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Features (rows) by batches of one model version (columns), colour = the statistic.

    Without `model_version` the version with the most batches is shown (on a tie, the
    one listed last). Cells above `threshold` are outlined in black (gid
    "above-threshold") and the threshold is marked on the colorbar; NaN cells are blank.
    """
    _require(trend, ["model_version", "batch_id", "batch_seq"])
    features = feature_columns(trend.columns, method)
    if not features:
        raise ColumnNotFoundError(f"trend table has no `drift/<feature>/{method}` column")
    versions = dict(_versions(trend))
    if model_version is None:
        counts = {v: rows["batch_seq"].nunique() for v, rows in versions.items()}
        model_version = [v for v, n in counts.items() if n == max(counts.values())][-1]
    if str(model_version) not in versions:
        raise DataError(
            f"model version {model_version!r} is not in the trend table; "
            f"versions: {', '.join(versions)}"
        )
    rows = versions[str(model_version)]
    values = rows[list(features.values())].to_numpy(float).T
    figure, ax = _new_axes(
        ax, (min(16, max(6, 0.5 * values.shape[1] + 3)), max(2.5, 0.4 * len(features) + 1.5))
    )
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap=HEATMAP_CMAP, aspect="auto", interpolation="nearest"
    )
    colorbar = figure.colorbar(image, ax=ax, label=method)
    if threshold is not None:
        from matplotlib.patches import Rectangle

        colorbar.ax.axhline(threshold, color="black", lw=1.5)
        for i, j in zip(*np.nonzero(np.nan_to_num(values, nan=-math.inf) > threshold), strict=True):
            ax.add_patch(
                Rectangle(
                    (j - 0.5, i - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="black",
                    linewidth=2,
                    gid="above-threshold",
                )
            )
    _label_batches(ax, list(range(values.shape[1])), [str(b) for b in rows["batch_id"]])
    ax.set_yticks(range(len(features)), list(features), fontsize=8)
    ax.set_xlabel("batch")
    detail = f"; outlined: > {threshold:g}" if threshold is not None else ""
    ax.set_title(f"{method} per feature, model version {model_version}{detail}")
    return figure


def plot_performance(
    trend: pd.DataFrame, *, metrics: Sequence[str] | None = None, ax: Axes | None = None
) -> Figure:
    """Each `perf/*` column (or `metrics`) over batch_seq, one line per model version.

    With `ax=None`, one subplot per metric in a grid of at most three columns; with `ax`,
    every metric on that axes (colour per metric, line style per version). No metric at
    all gives an axes that says so.
    """
    _require(trend, ["model_version", "batch_id", "batch_seq"])
    metrics = [c for c in trend.columns if c.startswith("perf/")] if metrics is None else metrics
    _require(trend, metrics)
    versions = _versions(trend)
    if ax is not None or not metrics:
        figure, ax = _new_axes(ax, (8, 3.5))
        styles = ("-", "--", ":", "-.")
        for k, metric in enumerate(metrics):
            for i, (version, rows) in enumerate(versions):
                ax.plot(
                    rows["batch_seq"],
                    rows[metric],
                    ls=styles[i % len(styles)],
                    marker="o",
                    ms=4,
                    color=VERSION_COLORS[k % len(VERSION_COLORS)],
                    gid="version",
                    label=f"{metric} (version {version})",
                )
        _finish_perf_axes(ax, trend, "performance" if metrics else "no perf/* metrics")
        if metrics:
            ax.legend(fontsize=8)
        return figure
    figure, axes = _metric_grid(len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (version, rows) in enumerate(versions):
            ax.plot(
                rows["batch_seq"],
                rows[metric],
                marker="o",
                ms=4,
                color=VERSION_COLORS[i % len(VERSION_COLORS)],
                gid="version",
                label=f"version {version}",
            )
        _finish_perf_axes(ax, trend, metric)
    figure.legend(
        *figure.axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8
    )
    return figure


def plot_estimated_performance(
    trend: pd.DataFrame, *, metrics: Sequence[str] | None = None
) -> Figure:
    """Estimated performance with its interval, and the realized one where known.

    `metrics` are metric names (default: each with a `perf_est/<metric>` column), one
    subplot each in a grid of at most three columns; per model version (its colour) the
    estimate dashed, its interval shaded, the realized `perf/<metric>` solid (gaps where
    labels are not known yet), rings where it is outside the interval: see
    `estimate_plots.draw_estimate`. No metric at all gives an axes that says so.
    """
    _require(trend, ["model_version", "batch_id", "batch_seq"])
    names = estimated_metric_names(trend.columns) if metrics is None else list(metrics)
    _require(trend, [f"{ESTIMATE_PREFIX}{m}" for m in names])
    figure, axes = _metric_grid(max(1, len(names)))
    for ax, name in zip(axes, names, strict=False):
        for i, (version, rows) in enumerate(_versions(trend)):
            color = VERSION_COLORS[i % len(VERSION_COLORS)]
            draw_estimate(ax, rows, name, color=color, version=version)
        _finish_perf_axes(ax, trend, name)
    if not names:
        _finish_perf_axes(axes[0], trend, "no perf_est/* metrics")
    else:
        legend_once(figure)
    return figure


def _metric_grid(n: int) -> tuple[Figure, list[Axes]]:
    """A figure with `n` subplots in a grid of at most `PERF_GRID_COLUMNS` columns."""
    from matplotlib.figure import Figure

    ncols = min(PERF_GRID_COLUMNS, n)
    nrows = math.ceil(n / ncols)
    figure = Figure(figsize=(4.2 * ncols + 1.5, 3.2 * nrows), layout="constrained")
    return figure, [figure.add_subplot(nrows, ncols, k + 1) for k in range(n)]


def _finish_perf_axes(ax: Axes, trend: pd.DataFrame, title: str) -> None:
    _label_batches(ax, *_seq_labels(trend))
    ax.set_xlabel("batch")
    ax.set_title(title)


def _safe_file_name(name: str) -> str:
    return _UNSAFE_FILE_CHARS.sub("_", name)


def comparison_figures(
    trend: pd.DataFrame,
    *,
    alerts: pd.DataFrame | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Figure]:
    """The comparison plots that the table has data for, by file name.

    `metric_<key>.png` for `drift/dataset/share_drifted` and `drift/dataset/drift`,
    `drift_heatmap.png` when a `drift/<feature>/psi` column exists, `performance.png` when
    a `perf/*` column exists, `performance_estimated.png` when a `perf_est/<metric>` one
    does. `thresholds` maps a metric key to its threshold line; its
    `"psi"` entry outlines the heatmap's cells.
    """
    thresholds = thresholds or {}
    figures: dict[str, Figure] = {}
    for metric in (SHARE_DRIFTED, DATASET_DRIFT):
        if metric in trend.columns:
            figures[f"metric_{_safe_file_name(metric)}.png"] = plot_metric_over_batches(
                trend, metric, threshold=thresholds.get(metric), alerts=alerts
            )
    if feature_columns(trend.columns, "psi"):
        figures["drift_heatmap.png"] = plot_drift_heatmap(trend, threshold=thresholds.get("psi"))
    if any(c.startswith("perf/") for c in trend.columns):
        figures["performance.png"] = plot_performance(trend)
    if estimated_metric_names(trend.columns):
        figures["performance_estimated.png"] = plot_estimated_performance(trend)
    return figures


def save_comparison_plots(
    trend: pd.DataFrame,
    out_dir: str | Path,
    *,
    alerts: pd.DataFrame | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write `comparison_figures` as PNGs into `out_dir` (created when missing); return
    their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, figure in comparison_figures(trend, alerts=alerts, thresholds=thresholds).items():
        figure.savefig(out / name, dpi=100)
        paths.append(out / name)
    return paths
