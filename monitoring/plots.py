"""Plots of a batch report. They compute nothing: results in, a matplotlib Figure out.

Each accepts `ax=None` (a new figure is made) and never calls `plt.show()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from monitoring.drift import ColumnDrift

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
