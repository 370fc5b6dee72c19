"""The frozen result of evaluating one batch. Only the tracking layer turns it into MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.errors import ColumnNotFoundError
from monitoring.measure.drift import ColumnDrift
from monitoring.measure.drift_verdict import drift_table
from monitoring.measure.multivariate import DatasetDrift
from monitoring.measure.reference import FEATURE, PREDICTION, TARGET, Reference

if TYPE_CHECKING:
    import pyarrow as pa

STATUS_OK, STATUS_QUALITY, STATUS_DRIFT, STATUS_DEGRADED, STATUS_ALERT = (
    "ok",
    "quality",
    "drift",
    "degraded",
    "alert",
)
STATUSES = (STATUS_OK, STATUS_QUALITY, STATUS_DRIFT, STATUS_DEGRADED, STATUS_ALERT)
"""In order of severity: a data-quality finding, input drift, performance significantly
worse than the reference's, an alert rule across batches."""


@dataclass(frozen=True)
class BatchReport:
    """What one batch evaluation found. `drift_table` has one row per (column, method), with
    each column's final verdict and its reason; `worst_samples` the rows with the highest
    error; `segments` where the error sits per feature bin or category (None without
    performance); `samples` every sample's id in batch order (`measure.sample_table`;
    None without an id column)."""

    reference: Reference
    columns: tuple[ColumnDrift, ...]
    n_rows: int
    performance: Mapping[str, float]
    worst_samples: pd.DataFrame
    batch_digest: str
    source: str
    source_name: str
    profile: Mapping[str, Any]
    time_range: tuple[str, str] | None = None
    batch_id: str | None = None
    predicted_by_model: bool = False
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    alerts: tuple[str, ...] = ()
    segments: pd.DataFrame | None = None
    multivariate: tuple[DatasetDrift, ...] = ()
    quality: tuple[Any, ...] = ()  # data-quality checks; each has a bool `flagged`
    performance_tests: tuple[Any, ...] = ()  # performance against the reference's; `flagged`
    samples: pa.Table | None = None
    # Performance estimated from the model's outputs alone (labels or not): metric ->
    # `performance.estimates.Estimate` (value and interval). Empty without an estimator.
    estimated_performance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def reference_id(self) -> str:
        return self.reference.id

    @property
    def drift_table(self) -> pd.DataFrame:
        """One row per (column, method): `drifted` is the column's final verdict (the one the
        status uses) and `reason` says why in words; each method's own result is under
        `method_drifted`, `p_value` (raw) and `adjusted_p_value` (see `drift_verdict`).
        `quality` holds the column's data-quality findings in words ("15 of 100 rows
        outside the reference range (15 under the reference minimum 202) ..."), empty when
        none."""
        table = drift_table(self.columns)
        found: dict[str, list[str]] = {}
        for q in self.quality_findings:
            found.setdefault(q.feature, []).append(q.reason)
        return table.assign(quality=[" / ".join(found.get(f, [])) for f in table["feature"]])

    def _role_drift(self, role: str) -> bool | None:
        chosen = [c for c in self.columns if c.role == role]
        return any(c.drifted for c in chosen) if chosen else None

    @property
    def dataset_drift(self) -> bool:
        """Whether any input feature, or a multivariate test of the inputs, drifted
        (prediction and target are kept apart)."""
        return bool(self._role_drift(FEATURE)) or any(d.drifted for d in self.multivariate)

    @property
    def prediction_drift(self) -> bool | None:
        return self._role_drift(PREDICTION)

    @property
    def target_drift(self) -> bool | None:
        return self._role_drift(TARGET)

    @property
    def drifted_features(self) -> list[str]:
        """The input features whose final verdict is drifted (`ColumnDrift.drifted` after the
        multiple-testing correction and the effect-size gate), in schema order; prediction
        and target columns are left out (`prediction_drift`, `target_drift`)."""
        return [c.column for c in self.columns if c.role == FEATURE and c.drifted]

    @property
    def quality_findings(self) -> tuple[Any, ...]:
        """The data-quality checks that flagged this batch."""
        return tuple(q for q in self.quality if q.flagged)

    @property
    def degraded(self) -> bool:
        """Whether performance is significantly and materially worse than the reference's."""
        return any(t.flagged for t in self.performance_tests)

    @property
    def status(self) -> str:
        """The most severe of (`STATUSES`): `alert` when an alert rule fired across batches
        (set by the tracking layer), `degraded` when performance fell, `drift` when inputs,
        prediction or target drifted, `quality` on a data-quality finding, else `ok`."""
        if self.alerts:
            return STATUS_ALERT
        if self.degraded:
            return STATUS_DEGRADED
        if self.dataset_drift or self.prediction_drift or self.target_drift:
            return STATUS_DRIFT
        return STATUS_QUALITY if self.quality_findings else STATUS_OK

    def column(self, name: str) -> ColumnDrift:
        """The drift of column `name`; ColumnNotFoundError (a KeyError) when absent."""
        for column in self.columns:
            if column.column == name:
                return column
        raise ColumnNotFoundError(f"no column {name!r} in this report")
