"""Plots of a batch report. They compute nothing: results in, a matplotlib Figure out.

Each accepts `ax=None` (a new figure is made) and never calls `plt.show()`. A new figure's
margins are set from the widths of its longest labels (`_fit_margins`) rather than by
matplotlib's constrained layout, which draws every figure twice: a batch run draws up to
eight of these, and the layout was 40% of their time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.measure.drift_verdict import (
    DRIFTED,
    NOT_SIGNIFICANT,
    OK,
    SMALL_EFFECT,
    VERDICT_KINDS,
    decision_scale,
    drift_reason,
    features_drifted,
    scale_label,
    verdict_kind,
)
from monitoring.measure.reference import FEATURE, PREDICTION, TARGET

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from monitoring.measure.drift import ColumnDrift

DRIFT_COLOR, OK_COLOR, REFERENCE_COLOR = "#d62728", "#1f77b4", "#7f7f7f"
VERDICT_COLORS = {
    DRIFTED: DRIFT_COLOR,
    SMALL_EFFECT: OK_COLOR,
    NOT_SIGNIFICANT: "#aec7e8",  # pale: whatever its length, the change may be noise
    OK: OK_COLOR,
}


PAD_IN = 0.12  # inches around the labels
TICK_IN = 0.1  # a tick and its gap to the label


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    return figure, figure.add_subplot()


def _text_inches(labels: Sequence[str], size: float) -> tuple[float, float]:
    """Width and height (inches) of the widest of `labels` at font `size` (points): the
    few longest by characters are measured, which bounds a proportional font's widest."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    if not labels:
        return 0.0, 0.0
    font, measure = FontProperties(size=size), TextToPath()
    longest = sorted((str(s) for s in labels), key=len, reverse=True)[:3]
    found = [measure.get_text_width_height_descent(s, font, ismath=False) for s in longest]
    return max(w for w, _, _ in found) / 72, max(h + d for _, h, d in found) / 72


def _fit_margins(
    figure: Figure,
    *,
    left: Sequence[str] = (),
    left_size: float = 10,
    right: Sequence[str] = (),
    right_size: float = 10,
    bottom: Sequence[str] = (),
    bottom_size: float = 10,
    rotation: float = 0.0,
    ylabel: bool = False,
    xlabel: bool = True,
    title: bool = True,
) -> None:
    """Margins that hold the tick labels (left, right, bottom, rotated by `rotation`
    degrees), the axis labels and the title; only for a figure this module made."""
    width, height = figure.get_size_inches()
    line = 14 / 72  # one line of 10-point text
    left_w = _text_inches(left, left_size)[0] + TICK_IN + PAD_IN + (line if ylabel else 0)
    right_w = _text_inches(right, right_size)[0] + TICK_IN + 2 * PAD_IN
    label_w, label_h = _text_inches(bottom, bottom_size)
    angle = np.radians(rotation)
    ticks_h = label_w * np.sin(angle) + label_h * np.cos(angle)
    if rotation and bottom:  # the first label, right-aligned on its tick, leans left
        left_w = max(left_w, _text_inches(bottom[:1], bottom_size)[0] * np.cos(angle) + PAD_IN)
    bottom_h = ticks_h + TICK_IN + PAD_IN + (line if xlabel else 0)
    top_h = PAD_IN + (17 / 72 if title else 0)
    figure.subplots_adjust(
        left=min(left_w / width, 0.6),
        right=max(1 - right_w / width, 0.65),
        bottom=min(bottom_h / height, 0.6),
        top=max(1 - top_h / height, 0.65),
    )


def plot_drift_overview(columns: Sequence[ColumnDrift], *, ax: Axes | None = None) -> Figure:
    """One bar per column on the scale of its decision (`decision_scale`: in calibrated mode
    the effect over its floor, in fixed mode the statistic over its threshold), with a line
    at 1; coloured by the final verdict and the path to it (`verdict_kind`), its reason in
    short on the right. Input features first, then prediction and target columns; the
    title counts drifted features as the run description does."""
    order = {FEATURE: 0, PREDICTION: 1, TARGET: 2}
    shown = sorted(
        columns,
        key=lambda c: (order.get(c.role, 3), -_finite(decision_scale(c), 0.0), c.column),
    )
    new = ax is None
    figure, ax = _axes(ax, (11, max(2.5, 0.35 * len(shown) + 1.5)))
    scales = [decision_scale(c) for c in shown]
    finite = [v for v in scales if v is not None and np.isfinite(v)]
    right = max([1.0, *finite]) * 1.15
    positions = np.arange(len(shown))[::-1]  # the first column at the top
    kinds = [verdict_kind(c) for c in shown]
    values = [min(_finite(v, 0.0), right) if v != np.inf else right for v in scales]
    ax.barh(positions, values, color=[VERDICT_COLORS[k] for k in kinds])
    for y, value in zip(positions, scales, strict=True):
        if value == np.inf:
            ax.text(right, y, " inf", va="center", fontsize=8)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlim(0, right)
    names = [
        (c.column if c.role == FEATURE else f"{c.column} ({c.role})")
        + ("" if v is not None else " (no values)")
        for c, v in zip(shown, scales, strict=True)
    ]
    ax.set_yticks(positions, names)
    why = [drift_reason(c, short=True) for c in shown]
    reasons = ax.secondary_yaxis("right")  # why, beside each bar
    reasons.set_yticks(positions, why, fontsize=7)
    reasons.tick_params(length=0)
    features = sum(c.role == FEATURE for c in shown)
    if 0 < features < len(shown):  # a rule between the inputs and the model's columns
        ax.axhline(positions[features - 1] - 0.5, color=REFERENCE_COLOR, linewidth=0.8)
    ax.set_xlabel(scale_label(list(shown)))
    ax.set_title(_overview_title(shown))
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    present = [k for k in VERDICT_KINDS if k in kinds]
    handles = [Patch(color=VERDICT_COLORS[k], label=k) for k in present]
    line = "floor" if any(c.significant is not None for c in shown) else "threshold"
    handles.append(Line2D([], [], color="black", linestyle="--", label=f"1 = the {line}"))
    ax.legend(handles=handles, loc="best", fontsize=8)
    if new:
        _fit_margins(figure, left=names, right=why, right_size=7, bottom=["0.0"])
    return figure


def _finite(value: float | None, default: float) -> float:
    return default if value is None or not np.isfinite(value) else float(value)


def _overview_title(columns: Sequence[ColumnDrift]) -> str:
    """The run description's count of input features, then prediction and target."""
    parts = [features_drifted(list(columns))]
    for role in (PREDICTION, TARGET):
        chosen = [c for c in columns if c.role == role]
        if chosen:
            parts.append(f"{role} {'drifted' if any(c.drifted for c in chosen) else 'ok'}")
    return "; ".join(parts)


def plot_distribution(column: ColumnDrift, *, ax: Axes | None = None) -> Figure:
    """Reference vs batch proportions on the reference's bins (or categories); the title
    gives the final verdict and its reason in short."""
    new = ax is None
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
        color=VERDICT_COLORS[verdict_kind(column)],
    )
    ax.set_xticks(positions, column.bin_labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("share of rows")
    verdict = "drifted" if column.drifted else "ok"
    ax.set_title(f"{column.column}: {verdict} — {drift_reason(column, short=True)}")
    ax.legend()
    if new:
        labels = [str(b) for b in column.bin_labels]
        _fit_margins(
            figure, left=["0.00"], ylabel=True, bottom=labels, bottom_size=8, rotation=35,
            xlabel=False,
        )  # fmt: skip
    return figure


def plot_worst_samples(
    worst: pd.DataFrame, *, id_column: str | None = None, ax: Axes | None = None
) -> Figure:
    """The worst samples' errors (bars, red when the input is anomalous), labelled with their
    id and the features that make them unusual."""
    new = ax is None
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
    if new:
        _fit_margins(figure, left=labels, left_size=8, bottom=["0.0"])
    return figure
