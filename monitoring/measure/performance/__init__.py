"""Model performance over chunks, in one streaming pass and memory bounded by classes and bins.

Accumulators (`update` per chunk, `merge` across partitions, `result` at the end) for
classification and regression, and per-sample errors to pick the worst rows of a batch.
"""

from __future__ import annotations

from monitoring.measure.performance.classification import ClassificationMetrics
from monitoring.measure.performance.regression import RegressionMetrics
from monitoring.measure.performance.sample_error import classification_error, regression_error

__all__ = [
    "ClassificationMetrics",
    "RegressionMetrics",
    "classification_error",
    "regression_error",
]
