"""The `[performance]` section: per-batch tests of performance against the reference's.

A batch with labels is compared, metric by metric, with the reference's own performance
(one-sided: worse than the reference), at the batch's size; the tests form their own
multiple-testing family. A metric only counts as degraded when its drop is significant
and at least `min_drop` (docs/statistics.md, "Performance against the reference").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitoring.core.validation import check_fraction, check_int, setting_error
from monitoring.stats.multiple_testing import CORRECTIONS

ABSOLUTE, RELATIVE = "absolute", "relative"

PERFORMANCE_METRICS: Mapping[str, tuple[bool, str, float]] = {
    # metric: (higher is better, how its minimum drop is read, default minimum drop)
    "accuracy": (True, ABSOLUTE, 0.02),
    "precision_macro": (True, ABSOLUTE, 0.02),
    "recall_macro": (True, ABSOLUTE, 0.02),
    "f1_macro": (True, ABSOLUTE, 0.02),
    "roc_auc": (True, ABSOLUTE, 0.02),
    "log_loss": (False, RELATIVE, 0.05),
    "mae": (False, RELATIVE, 0.05),
    "rmse": (False, RELATIVE, 0.05),
}
"""The tested metrics. An absolute minimum is in the metric's units (0.02: two points of
accuracy); a relative one is a share of the reference's value (0.05: the log loss, MAE or
RMSE rose by 5%)."""


def _default_min_drop() -> dict[str, float]:
    return {name: spec[2] for name, spec in PERFORMANCE_METRICS.items()}


@dataclass(frozen=True)
class PerformanceConfig:
    """Performance against the reference's. See docs in mlruns_config/monitoring.toml.

    `min_drop` overrides the defaults of some metrics; the others keep theirs.
    `min_segment_rows` is the fewest rows a segment needs, in the batch and in the
    reference, for its error to be tested (a normal approximation)."""

    metrics: tuple[str, ...] = tuple(PERFORMANCE_METRICS)
    alpha: float = 0.05
    correction: str = "holm"
    min_drop: Mapping[str, float] = field(default_factory=_default_min_drop)
    min_segment_rows: int = 30

    def __post_init__(self) -> None:
        known = ", ".join(PERFORMANCE_METRICS)
        object.__setattr__(self, "metrics", tuple(self.metrics))
        for name in self.metrics:
            if name not in PERFORMANCE_METRICS:
                raise setting_error("performance.metrics", f"a list of {known}", name)
        check_fraction("performance.alpha", self.alpha)
        if self.correction not in CORRECTIONS:
            raise setting_error(
                "performance.correction", f"one of {', '.join(CORRECTIONS)}", self.correction
            )
        for name, value in dict(self.min_drop).items():
            if name not in PERFORMANCE_METRICS:
                raise setting_error("performance.min_drop", f"keyed by {known}", name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise setting_error(f"performance.min_drop.{name}", "a number >= 0", value)
        object.__setattr__(self, "min_drop", {**_default_min_drop(), **dict(self.min_drop)})
        check_int("performance.min_segment_rows", self.min_segment_rows, 2)

    def min_drop_for(self, metric: str, reference_value: float) -> float:
        """The smallest drop of `metric` that counts, in the metric's units."""
        value = float(self.min_drop[metric])
        if PERFORMANCE_METRICS[metric][1] == RELATIVE:
            return value * abs(reference_value)
        return value
