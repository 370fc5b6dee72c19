"""Estimated against realized performance of one model version, drawn on one axes.

`comparison_plots.plot_estimated_performance` lays the metrics out and calls
`draw_estimate` once per (metric, model version) with that version's rows of the trend
table. The columns are drawn as they are; the only thing worked out is which realized
values fall outside the drawn band, to ring them. Artists carry a `gid`:
"estimate" (dashed line with markers), "estimate-band" (the interval, shaded),
"realized" (solid line with markers; NaN where the labels are not known yet) and
"outside" (a ring on each realized value outside the interval).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from monitoring.measure.performance.estimates import CONFIDENCE
from monitoring.track.drift_plots import DRIFT_COLOR
from monitoring.track.trends import ESTIMATE_PREFIX, PERF_PREFIX, estimate_bound_keys

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["BAND_ALPHA", "OUTSIDE_COLOR", "draw_estimate", "legend_once"]

BAND_ALPHA = 0.2
"""Opacity of the interval band: light enough for two versions' bands to overlap."""
OUTSIDE_COLOR = DRIFT_COLOR
"""Ring around a realized value outside its estimate's interval (concept drift shows so)."""


def _column(rows: pd.DataFrame, key: str) -> np.ndarray | None:
    return rows[key].to_numpy(float) if key in rows.columns else None


def draw_estimate(ax: Axes, rows: pd.DataFrame, metric: str, *, color: str, version: str) -> None:
    """One version's `perf_est/<metric>` over `batch_seq`, its interval (`_lower`..`_upper`,
    when both columns exist) as a band, and the realized `perf/<metric>` (when the column
    exists), with a ring on each realized value outside the band.

    `rows` are the version's rows of the trend table in `batch_seq` order. A value outside
    is strictly below the lower or above the upper bound (the bounds are inside, as for
    `Estimate.covers`); NaN is never outside.
    """
    x = rows["batch_seq"].to_numpy(float)
    lower, upper = (_column(rows, key) for key in estimate_bound_keys(metric))
    if lower is not None and upper is not None:
        ax.fill_between(
            x,
            lower,
            upper,
            color=color,
            alpha=BAND_ALPHA,
            lw=0,
            gid="estimate-band",
            label=f"{CONFIDENCE:.0%} interval, version {version}",
        )
    ax.plot(
        x,
        rows[f"{ESTIMATE_PREFIX}{metric}"].to_numpy(float),
        ls="--",
        marker="o",
        ms=4,
        mfc="white",
        color=color,
        gid="estimate",
        label=f"estimate, version {version}",
    )
    realized = _column(rows, f"{PERF_PREFIX}{metric}")
    if realized is None:
        return
    ax.plot(
        x,
        realized,
        marker="o",
        ms=4,
        color=color,
        gid="realized",
        label=f"realized, version {version}",
    )
    if lower is None or upper is None:
        return
    outside = (realized < lower) | (realized > upper)
    if outside.any():
        ax.plot(
            x[outside],
            realized[outside],
            ls="",
            marker="o",
            ms=10,
            mfc="none",
            mec=OUTSIDE_COLOR,
            mew=1.5,
            zorder=4,
            gid="outside",
            label="realized outside the interval",
        )


def legend_once(figure: Figure) -> None:
    """One figure legend, right of the axes, with each label of its axes once."""
    entries = {
        label: handle
        for ax in figure.axes
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    figure.legend(entries.values(), entries.keys(), loc="outside right upper", fontsize=8)
