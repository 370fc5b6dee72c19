"""Plots of a batch report. They compute nothing: results in, a matplotlib Figure out.

Each accepts `ax=None` (a new figure is made) and never calls `plt.show()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from monitoring.measure.drift import ColumnDrift

DRIFT_COLOR, OK_COLOR, REFERENCE_COLOR = "#d62728", "#1f77b4", "#7f7f7f"


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def plot_drift_overview(columns: Sequence[ColumnDrift], *, ax: Axes | None = None) -> Figure:
    """One bar per column: its decision statistic, a tick at its threshold, red if drifted."""
    scored = [c for c in columns if c.decision_score is not None]
    scored.sort(key=lambda c: c.decision_score.statistic)  # type: ignore[union-attr]
    figure, ax = _axes(ax, (8, max(2.5, 0.35 * len(scored) + 1)))
    positions = np.arange(len(scored))
    values = [c.decision_score.statistic for c in scored]  # type: ignore[union-attr]
    colors = [DRIFT_COLOR if c.drifted else OK_COLOR for c in scored]
    ax.barh(positions, values, color=colors)
    for y, column in zip(positions, scored, strict=True):
        threshold = column.decision_score.threshold  # type: ignore[union-attr]
        if np.isfinite(threshold):
            ax.plot([threshold, threshold], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
    ax.set_yticks(positions, [f"{c.column} ({c.role})" for c in scored])
    methods = sorted({c.decision_method for c in scored})
    ax.set_xlabel(f"statistic ({', '.join(methods)}); black tick = threshold")
    drifted = sum(c.drifted for c in scored)
    ax.set_title(f"Drift per column: {drifted} of {len(scored)} drifted")
    return figure


def plot_distribution(column: ColumnDrift, *, ax: Axes | None = None) -> Figure:
    """Reference vs batch proportions on the reference's bins (or categories)."""
    figure, ax = _axes(ax, (8, 3.5))
    reference = column.reference_counts / max(column.reference_counts.sum(), 1)
    batch = column.batch_counts / max(column.batch_counts.sum(), 1)
    positions = np.arange(len(reference))
    width = 0.4
    ax.bar(positions - width / 2, reference, width, label="reference", color=REFERENCE_COLOR)
    ax.bar(
        positions + width / 2,
        batch,
        width,
        label="batch",
        color=DRIFT_COLOR if column.drifted else OK_COLOR,
    )
    ax.set_xticks(positions, column.bin_labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    score = column.decision_score
    detail = f"{score.method} = {score.statistic:.3g}" if score else "no values in the batch"
    ax.set_title(f"{column.column}: {detail} ({'drifted' if column.drifted else 'ok'})")
    ax.legend()
    return figure


def plot_worst_samples(
    worst: pd.DataFrame, *, id_column: str | None = None, ax: Axes | None = None
) -> Figure:
    """The worst samples' errors (bars, red when the input is anomalous), labelled with their
    id and the features that make them unusual."""
    figure, ax = _axes(ax, (9, max(2.5, 0.32 * len(worst) + 1)))
    if worst.empty:
        ax.set_title("No sample with an error (no prediction or no ground truth)")
        return figure
    shown = worst.iloc[::-1]
    positions = np.arange(len(shown))
    flags = shown["anomalous"] if "anomalous" in shown else pd.Series(False, index=shown.index)
    ax.barh(positions, shown["error"], color=[DRIFT_COLOR if f else OK_COLOR for f in flags])
    key = id_column if id_column and id_column in shown else "row"
    labels = [f"{key} {value}" for value in shown[key]]
    if "anomaly_features" in shown:
        labels = [
            f"{label}: {why.split(',')[0]}"
            for label, why in zip(labels, shown["anomaly_features"].astype(str), strict=True)
        ]
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel("error (cross-entropy, 1 - hit, or absolute error); red = anomalous input")
    ax.set_title(f"The {len(worst)} samples with the highest error")
    return figure
