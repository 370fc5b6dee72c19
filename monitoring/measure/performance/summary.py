"""What one side (the reference at fit, a batch after its pass) keeps of its performance for
the tests against the other (`performance.tests`): the metrics, and the counts and moments
their sampling variance needs. The reference's is saved with the reference files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.measure.performance.classification import ClassificationMetrics
from monitoring.measure.performance.regression import RegressionMetrics

__all__ = ["PerformanceSummary", "summarize"]

_ARRAYS = ("confusion", "auc_positive", "auc_negative")


@dataclass(frozen=True)
class PerformanceSummary:
    """Performance of the rows with truth, and what testing it needs.

    - `metrics`: as the accumulator reports them (`perf/<metric>`);
    - classification: `confusion` (truth x prediction counts, `classes` order); with
      scores, `auc_positive` / `auc_negative` (per class the ROC AUC averages over, the
      histograms of its score over its positives and its negatives, on the accumulator's
      bins) and `log_loss_sums` (sum and sum of squares of each row's cross-entropy);
    - regression: `error_moments`, (count, mean, M2) of each row's |e| (`mae`) and e^2
      (`mse`).
    """

    task: str
    n: int
    metrics: Mapping[str, float]
    classes: tuple[str, ...] = ()
    confusion: np.ndarray | None = None
    auc_positive: np.ndarray | None = None
    auc_negative: np.ndarray | None = None
    log_loss_sums: tuple[float, float] | None = None
    error_moments: Mapping[str, tuple[int, float, float]] | None = None

    @property
    def with_scores(self) -> bool:
        """Whether class probabilities were scored (each row's error is then its
        cross-entropy, else 1 for a wrong label)."""
        return self.log_loss_sums is not None

    def to_parts(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-ready values and named arrays, for the reference files."""
        values = {
            "task": self.task,
            "n": self.n,
            "metrics": dict(self.metrics),
            "classes": list(self.classes),
            "log_loss_sums": None if self.log_loss_sums is None else list(self.log_loss_sums),
            "error_moments": (
                None
                if self.error_moments is None
                else {k: list(v) for k, v in self.error_moments.items()}
            ),
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        return values, arrays

    @classmethod
    def from_parts(
        cls, values: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> PerformanceSummary:
        """The summary `to_parts` wrote."""
        sums = values.get("log_loss_sums")
        moments = values.get("error_moments")
        return cls(
            task=values["task"],
            n=int(values["n"]),
            metrics={k: float(v) for k, v in values["metrics"].items()},
            classes=tuple(values.get("classes", ())),
            log_loss_sums=None if sums is None else (float(sums[0]), float(sums[1])),
            error_moments=(
                None
                if moments is None
                else {k: (int(v[0]), float(v[1]), float(v[2])) for k, v in moments.items()}
            ),
            **{name: np.asarray(arrays[name]) for name in _ARRAYS if name in arrays},
        )

    def update_digest(self, digest: hashlib._Hash) -> None:
        """Feed the summary's content into a reference's digest."""
        values, arrays = self.to_parts()
        digest.update(json.dumps(values, sort_keys=True).encode())
        for name in sorted(arrays):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arrays[name]).tobytes())


def summarize(metrics: ClassificationMetrics | RegressionMetrics) -> PerformanceSummary | None:
    """The summary of an accumulator; None when no row had truth."""
    found = metrics.result()
    n = int(found["n_evaluated"])
    if n == 0:
        return None
    if isinstance(metrics, RegressionMetrics):
        return PerformanceSummary("regression", n, found, error_moments=metrics.error_moments())
    histograms = metrics.auc_histograms()
    return PerformanceSummary(
        "classification",
        n,
        found,
        classes=metrics.classes,
        confusion=metrics.confusion_matrix(),
        auc_positive=None if histograms is None else histograms[0],
        auc_negative=None if histograms is None else histograms[1],
        log_loss_sums=metrics.log_loss_sums(),
    )
