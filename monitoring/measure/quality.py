"""Data-quality checks: a minority of broken rows is not drift, and says so.

Each check counts the rows of a batch that look broken and tests that count against the
rate a batch drawn like the reference would show (a binomial upper tail, or a
two-proportion test), so that a handful of impossible values is a finding in a small batch
and sampling noise is not one in a large batch:

    out_of_range    values past the reference minimum or maximum by more than
                    `quality.range_margin` of its interdecile range; null: for exchangeable
                    data, k of n batch values fall under the smallest of m reference values
                    with probability C(n, k) / C(n + m, k) (exact, whatever the reference
                    sample), each side, Bonferroni over the two; the margin only makes it
                    conservative
    unseen          rows in categories the reference never saw; null rate: the reference's
                    own rare-category share plus Good-Turing's missing mass (N1 + 1)/(m + 1),
                    N1 the categories it saw once, itself estimated from m rows (a
                    two-proportion test, one-sided)
    missing         the missing rate against the reference's (two-proportion z-test) and
                    moved by more than `drift.missing_rate_threshold`
    duplicate_ids   rows whose id repeats an earlier row's; null rate (d + 1)/(m + 1), d the
                    reference's repeated rows
    anomalous_rows  rows flagged by the anomaly model against its calibration sample's
                    flagged rows (exact, conditional on their total: the batch's share of
                    it is binomial with the batch's share of rows), and at least
                    `quality.anomaly_rate_factor` times its rate
    row_volume      the batch's rows against the model version's earlier batches (a
                    factor rule, applied where those batches are known: the tracking layer)

The checks form their own family in the multiple-testing control (Holm at
`quality.alpha`): they neither dilute the drift tests nor are diluted by them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from monitoring.core.config import MonitoringConfig, QualityConfig
from monitoring.measure.batch_counts import BatchCounts, CategoricalCounts, NumericalCounts
from monitoring.measure.quality_counts import AnomalyFlags, DuplicateIds
from monitoring.measure.reference import FEATURE, CategoricalReference, NumericalReference
from monitoring.stats.multiple_testing import adjust_p_values

DATASET = "dataset"  # the `feature` of batch-level checks
OUT_OF_RANGE, UNSEEN, MISSING = "out_of_range", "unseen", "missing"
DUPLICATE_IDS, ANOMALOUS_ROWS, ROW_VOLUME = "duplicate_ids", "anomalous_rows", "row_volume"


@dataclass(frozen=True)
class QualityCheck:
    """One check on one column (or the whole batch): rows affected, the rate a reference-like
    batch shows, the p-value and the decision."""

    feature: str
    check: str
    count: int
    n: int
    expected_rate: float
    p_value: float | None
    detail: str  # what was found, in words: "15 of 100 rows under the reference minimum 202"
    material: bool = True  # large enough to matter (the checks with a minimum effect)
    adjusted_p_value: float | None = None
    flagged: bool = False

    @property
    def rate(self) -> float:
        return self.count / self.n if self.n else 0.0

    @property
    def reason(self) -> str:
        """The decision in words, with the detail."""
        if self.p_value is None:
            return f"{self.detail}: {'a finding' if self.flagged else 'within bounds'}"
        adjusted = self.adjusted_p_value if self.adjusted_p_value is not None else self.p_value
        if self.flagged:
            return f"{self.detail} (expected {self.expected_rate:.2%}, adjusted p {adjusted:.2g})"
        if adjusted < 1 and not self.material:
            return f"{self.detail}: significant but too small to matter"
        return f"{self.detail}: not significant (adjusted p {adjusted:.2g})"


def binomial_upper_p(count: int, n: int, rate: float) -> float:
    """P(X >= count) for X ~ Binomial(n, rate): exact (scipy.special.bdtrc)."""
    if count <= 0:
        return 1.0
    if rate <= 0.0:
        return 0.0
    return float(special.bdtrc(count - 1, n, min(rate, 1.0)))


def two_proportion_p(
    count: int, n: int, reference_count: int, reference_n: int, *, one_sided: bool
) -> float | None:
    """z-test of count/n against reference_count/reference_n (pooled variance): upper tail
    when one_sided, else two-sided; None when neither side has any."""
    if n == 0 or reference_n == 0 or (count == 0 and reference_count == 0):
        return None
    pooled = (count + reference_count) / (n + reference_n)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n + 1 / reference_n))
    if spread == 0:
        return 1.0
    z = (count / n - reference_count / reference_n) / spread
    return float(special.ndtr(-z) if one_sided else 2 * special.ndtr(-abs(z)))


def below_reference_p(count: int, n: int, m: int) -> float:
    """P(at least `count` of n exchangeable batch values fall under the smallest of m
    reference values) = C(n, count) / C(n + m, count): the ranks of all n + m values are a
    uniform permutation, and the count lowest are then all batch values."""
    if count <= 0:
        return 1.0
    if count > n:
        return 0.0
    total = n + m
    log_p = (
        special.gammaln(n + 1)
        - special.gammaln(n - count + 1)
        - special.gammaln(total + 1)
        + special.gammaln(total - count + 1)
    )
    return float(np.exp(log_p))


def out_of_range(
    feature: str, below: int, above: int, n: int, *, m: int, low: float, high: float
) -> QualityCheck:
    """Values outside [low, high], the range of m reference values (past a margin: the
    counts come from `NumericalCounts`)."""
    expected = 2 / (m + 1)
    count = below + above
    p_value = min(1.0, 2 * min(below_reference_p(below, n, m), below_reference_p(above, n, m)))
    parts = []
    if below:
        parts.append(f"{below:,} under the reference minimum {low:.4g}")
    if above:
        parts.append(f"{above:,} over the reference maximum {high:.4g}")
    detail = f"{count:,} of {n:,} rows outside the reference range" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    return QualityCheck(feature, OUT_OF_RANGE, count, n, expected, p_value, detail)


def unseen(
    feature: str, count: int, n: int, *, m: int, rare: int, singletons: int | None
) -> QualityCheck:
    """Rows in categories the reference never saw (`count` includes its categories beyond
    `drift.max_categories`, `rare` of its m rows, which share the bucket)."""
    pseudo = rare + (singletons or 0) + 1  # the reference's unseen mass, as a count of m + 1
    expected = min(pseudo / (m + 1), 1.0)
    p_value = two_proportion_p(count, n, pseudo, m + 1, one_sided=True)
    detail = f"{count:,} of {n:,} rows in categories the reference never saw"
    return QualityCheck(
        feature, UNSEEN, count, n, expected, 1.0 if p_value is None else p_value, detail
    )


def missing(
    feature: str, count: int, n: int, *, reference_count: int, m: int, threshold: float
) -> QualityCheck | None:
    """The missing rate against the reference's; None when neither side misses a value."""
    p_value = two_proportion_p(count, n, reference_count, m, one_sided=False)
    if p_value is None:
        return None
    reference_rate = reference_count / m if m else 0.0
    delta = (count / n if n else 0.0) - reference_rate
    detail = (
        f"{count:,} of {n:,} rows missing ({count / max(n, 1):.1%}; reference {reference_rate:.1%})"
    )
    return QualityCheck(
        feature,
        MISSING,
        count,
        n,
        reference_rate,
        p_value,
        detail,
        material=abs(delta) > threshold,
    )


def duplicate_ids(column: str, count: int, n: int, *, reference_count: int, m: int) -> QualityCheck:
    """Rows whose id repeats an earlier row's."""
    expected = (reference_count + 1) / (m + 1)
    detail = f"{count:,} of {n:,} rows repeat an earlier row's {column!r}"
    return QualityCheck(
        DATASET, DUPLICATE_IDS, count, n, expected, binomial_upper_p(count, n, expected), detail
    )


def anomalous_rows(
    count: int, n: int, *, reference_count: int, m: int, factor: float
) -> QualityCheck:
    """Rows the anomaly model flags, against its calibration sample's flagged rows."""
    expected = reference_count / m if m else 0.0
    # Two rare counts compared exactly: given their total, the batch's part is binomial
    # with the batch's share of the rows under equal rates (the z-test is anti-conservative
    # for the handful of flagged rows a small batch has).
    p_value = binomial_upper_p(count, count + reference_count, n / (n + m)) if n else None
    detail = f"{count:,} of {n:,} rows anomalous"
    return QualityCheck(
        DATASET,
        ANOMALOUS_ROWS,
        count,
        n,
        expected,
        1.0 if p_value is None else p_value,
        detail,
        material=count / max(n, 1) >= factor * expected,
    )


def row_volume(n: int, earlier: Sequence[int], config: QualityConfig) -> QualityCheck | None:
    """The batch's rows against the median of the earlier batches' (a factor rule, no
    p-value); None with fewer than `quality.volume_batches` earlier batches."""
    if len(earlier) < config.volume_batches:
        return None
    usual = float(np.median(earlier))
    factor = config.volume_factor
    flagged = n < usual / factor or n > usual * factor
    detail = f"{n:,} rows against a median of {usual:,.0f} in the last {len(earlier)} batches"
    check = QualityCheck(DATASET, ROW_VOLUME, n, n, 0.0, None, detail)
    return dataclasses.replace(check, flagged=flagged)


def decide_quality(
    checks: Sequence[QualityCheck], config: QualityConfig
) -> tuple[QualityCheck, ...]:
    """Holm over the checks with a p-value (`quality.alpha`); flagged when rejected and
    material. Checks without a p-value keep their own decision."""
    tested = [i for i, c in enumerate(checks) if c.p_value is not None]
    adjusted = adjust_p_values([checks[i].p_value for i in tested], "holm")  # type: ignore[misc]
    out = list(checks)
    for i, value in zip(tested, adjusted, strict=True):
        check = checks[i]
        out[i] = dataclasses.replace(
            check,
            adjusted_p_value=float(value),
            flagged=bool(value < config.alpha and check.material),
        )
    return tuple(out)


def batch_quality(
    counts: BatchCounts,
    config: MonitoringConfig,
    *,
    duplicates: DuplicateIds | None = None,
    anomalies: AnomalyFlags | None = None,
) -> list[QualityCheck]:
    """Every check the pass can decide (all but row volume), undecided: per input feature
    its range or unseen categories and its missing rate, then the batch-level checks."""
    reference = counts.reference
    checks: list[QualityCheck | None] = []
    for column, found in counts.columns.items():
        fitted = reference.profiles[column]
        if fitted.role != FEATURE:
            continue
        if isinstance(found, NumericalCounts) and isinstance(fitted, NumericalReference):
            if fitted.minimum is not None and fitted.maximum is not None:
                checks.append(
                    out_of_range(
                        column,
                        found.below,
                        found.above,
                        found.n,
                        m=fitted.n,
                        low=fitted.minimum,
                        high=fitted.maximum,
                    )
                )
        elif isinstance(found, CategoricalCounts) and isinstance(fitted, CategoricalReference):
            checks.append(
                unseen(
                    column,
                    int(found.counts[-1]),
                    found.n,
                    m=fitted.n,
                    rare=int(fitted.counts[-1]),
                    singletons=fitted.singletons,
                )
            )
        checks.append(
            missing(
                column,
                found.n_missing,
                found.n + found.n_missing,
                reference_count=fitted.n_missing,
                m=fitted.n + fitted.n_missing,
                threshold=config.drift.missing_rate_threshold,
            )
        )
    if duplicates is not None and reference.id_duplicate_rows is not None:
        checks.append(
            duplicate_ids(
                duplicates.column,
                duplicates.result(),
                duplicates.rows,
                reference_count=reference.id_duplicate_rows,
                m=reference.n_rows,
            )
        )
    if anomalies is not None:
        model = anomalies.model
        flagged, rows = anomalies.result()
        checks.append(
            anomalous_rows(
                flagged,
                rows,
                reference_count=round(model.flag_rate * model.sample_size),
                m=model.sample_size,
                factor=config.quality.anomaly_rate_factor,
            )
        )
    return [c for c in checks if c is not None]
