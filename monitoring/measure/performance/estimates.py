"""Estimated performance: what a batch's performance probably is before its labels arrive.

Both estimators (`estimation` for classifiers, `error_model` for regressors) are fitted on the
reference at fit time and give, for a batch, one `Estimate` per metric: a value and a
confidence interval that accounts for the batch's size (and for the fitted map's own
uncertainty where it is known). They assume that P(label | inputs) is the reference's: under
concept drift the estimate is wrong, which shows when the labels arrive
(`perf_est_error/<metric>` outside the interval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CONFIDENCE",
    "ESTIMATE_ERROR_PREFIX",
    "ESTIMATE_PREFIX",
    "Estimate",
    "estimate_errors",
    "estimate_metrics",
    "outside_findings",
]

CONFIDENCE = 0.95
"""The coverage the intervals aim at."""
ESTIMATE_PREFIX = "perf_est/"
ESTIMATE_ERROR_PREFIX = "perf_est_error/"


@dataclass(frozen=True)
class Estimate:
    """One estimated metric: `value`, and its `lower`-`upper` interval (CONFIDENCE)."""

    metric: str
    value: float
    lower: float
    upper: float

    def covers(self, realized: float) -> bool:
        """Whether `realized` lies inside the interval (bounds included)."""
        return self.lower <= realized <= self.upper


def estimate_metrics(estimates: Mapping[str, Estimate]) -> dict[str, float]:
    """`perf_est/<metric>`, `_lower` and `_upper` of each finite estimate."""
    out: dict[str, float] = {}
    for name, e in estimates.items():
        if not math.isfinite(e.value):
            continue
        out[f"{ESTIMATE_PREFIX}{name}"] = e.value
        for suffix, bound in (("_lower", e.lower), ("_upper", e.upper)):
            if math.isfinite(bound):
                out[f"{ESTIMATE_PREFIX}{name}{suffix}"] = bound
    return out


def estimate_errors(
    estimates: Mapping[str, Estimate], realized: Mapping[str, float]
) -> dict[str, float]:
    """`perf_est_error/<metric>` (realized - estimated) and `perf_est_error/<metric>_outside`
    (1.0 when the realized value is outside the interval), where both are known."""
    out: dict[str, float] = {}
    for name, e in estimates.items():
        value = realized.get(name)
        if value is None or not (math.isfinite(value) and math.isfinite(e.value)):
            continue
        out[f"{ESTIMATE_ERROR_PREFIX}{name}"] = value - e.value
        out[f"{ESTIMATE_ERROR_PREFIX}{name}_outside"] = float(not e.covers(value))
    return out


def outside_findings(
    estimates: Mapping[str, Estimate], realized: Mapping[str, float]
) -> list[str]:
    """Realized values outside their estimate's interval, in words: how concept drift shows
    (the estimate assumes P(label | inputs) unchanged)."""
    out = []
    for name, e in estimates.items():
        value = realized.get(name)
        if value is None or not math.isfinite(value) or e.covers(value):
            continue
        out.append(
            f"realized {name} {value:.4g} is outside the estimate's {CONFIDENCE:.0%} interval "
            f"{e.lower:.4g}-{e.upper:.4g} (estimated {e.value:.4g}): P(label | inputs) may "
            "have changed (concept drift)"
        )
    return out
