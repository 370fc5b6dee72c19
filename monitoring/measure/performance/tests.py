"""Is a batch's performance significantly worse than the reference's? One-sided tests at
the batch's size, both sides' sampling noise counted, and a frozen result per metric.

The math is pure functions on counts, histograms and moments (tested against scipy, closed
forms and simulation in `tests/test_performance_tests.py`):

- accuracy: Fisher's exact test on the 2 x 2 table (correct, wrong) x (batch, reference),
  one-sided (`fisher_less`);
- macro precision, recall and F1: a z-test whose variance is the delta method's on each
  side's confusion matrix (`confusion_metric`);
- ROC AUC: a z-test with DeLong's variance, computed from the score histograms both sides
  keep (`binned_auc_variance`); the one-vs-rest macro average of several classes takes the
  mean of the classes' standard errors as its own (exact for perfectly correlated AUCs,
  an upper bound otherwise: the test stays valid, a little conservative);
- log loss, MAE and RMSE: Welch's z-test on the mean of each row's cross-entropy, |e|
  or e^2 (`mean_rise_pvalue`), from counts, sums and sums of squares.

`performance_tests` runs them as one family (Holm by default), apart from drift; a metric
is flagged when its adjusted p-value is below alpha and its drop is at least the minimum
that matters (`core.performance_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitoring.core.performance_config import PERFORMANCE_METRICS, PerformanceConfig
from monitoring.errors import ConfigError
from monitoring.measure.performance.classification import ClassificationMetrics
from monitoring.measure.performance.regression import RegressionMetrics
from monitoring.measure.performance.summary import PerformanceSummary, summarize
from monitoring.stats.hypergeometric import hypergeom_cdf
from monitoring.stats.multiple_testing import adjust_p_values

__all__ = [
    "PerformanceTest",
    "binned_auc_variance",
    "confusion_metric",
    "fisher_less",
    "mean_rise_pvalue",
    "p_text",
    "performance_tests",
    "reason_text",
    "z_pvalue",
]


def z_pvalue(drop: npt.ArrayLike, variance: npt.ArrayLike) -> np.ndarray:
    """P(Z >= drop / sd) for a standard normal Z: the one-sided p-value that the drop is
    noise. Where the variance is 0, 0 for a positive drop and 1 otherwise."""
    from scipy.special import ndtr

    d = np.asarray(drop, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr(-d / np.sqrt(v))
    return np.where(v > 0, p, np.where(d > 0, 0.0, 1.0))


def fisher_less(
    successes: npt.ArrayLike, n: npt.ArrayLike, ref_successes: npt.ArrayLike, ref_n: npt.ArrayLike
) -> np.ndarray:
    """One-sided p-value of Fisher's exact test that the batch's success rate is below the
    reference's: P(X <= successes) for X hypergeometric (the batch's n rows drawn from the
    pooled rows, given the pooled successes). Equals
    `scipy.stats.fisher_exact([[s, n - s], [r, m - r]], alternative="less")`, without
    importing `scipy.stats` (`stats.hypergeometric`)."""
    s, m, rows, ref_rows = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.int64) for x in (successes, ref_successes, n, ref_n))
    )
    found = [
        hypergeom_cdf(int(a), int(b + d), int(a + c), int(b))
        for a, c, b, d in zip(s.ravel(), m.ravel(), rows.ravel(), ref_rows.ravel(), strict=True)
    ]
    return np.asarray(found, dtype=np.float64).reshape(s.shape)


def mean_rise_pvalue(
    batch: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    reference: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
) -> tuple[np.ndarray, np.ndarray]:
    """(rise of the mean, one-sided p-value of Welch's z-test that the batch's mean is above
    the reference's), each side given as (count, sum, sum of squares) of a per-row value.
    Sample variances use n - 1; a side needs 2 rows (else NaN)."""
    n_b, sum_b, sq_b = (np.asarray(x, dtype=np.float64) for x in batch)
    n_r, sum_r, sq_r = (np.asarray(x, dtype=np.float64) for x in reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_b, mean_r = sum_b / n_b, sum_r / n_r
        var_b = np.maximum(sq_b - sum_b * mean_b, 0.0) / (n_b - 1)
        var_r = np.maximum(sq_r - sum_r * mean_r, 0.0) / (n_r - 1)
        rise = mean_b - mean_r
        p = z_pvalue(rise, var_b / n_b + var_r / n_r)
    p = np.where((n_b >= 2) & (n_r >= 2), p, np.nan)
    return rise, p


def _moments_as_sums(moments: tuple[int, float, float]) -> tuple[float, float, float]:
    """(count, mean, M2) as (count, sum, sum of squares) for `mean_rise_pvalue`."""
    n, mean, m2 = moments
    return float(n), n * mean, m2 + n * mean * mean


def confusion_metric(confusion: np.ndarray, metric: str) -> tuple[float, float]:
    """Macro `precision`, `recall` or `f1` of a confusion matrix (truth x prediction) and
    its delta-method variance.

    Averaged over the classes present in the truth or the predictions, as
    `ClassificationMetrics` does. The counts are multinomial and the metric f does not
    change when every count is scaled, so Var f ~ sum_ij c_ij (df/dc_ij)^2 (the
    derivatives at the observed counts)."""
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    rows, cols = c.sum(axis=1), c.sum(axis=0)
    k = int(((rows + cols) > 0).sum())
    if k == 0:
        return float("nan"), float("nan")
    eye = np.eye(len(tp))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "precision":
            value = np.where(cols > 0, tp / cols, 0.0)
            grad = np.where(cols > 0, (eye * cols - tp) / cols**2, 0.0)  # column j: class j
        elif metric == "recall":
            value = np.where(rows > 0, tp / rows, 0.0)
            grad = np.where(rows[:, None] > 0, (eye * rows[:, None] - tp[:, None]), 0.0)
            grad = np.where(rows[:, None] > 0, grad / rows[:, None] ** 2, 0.0)
        elif metric == "f1":
            d = rows + cols
            value = np.where(d > 0, 2 * tp / d, 0.0)
            per_class = np.where(d > 0, 2 * tp / d**2, 0.0)  # -dF_j/dD_j
            grad = -(per_class[:, None] + per_class[None, :])  # c_ij is in D_i and D_j
            grad += eye * np.where(d > 0, 2 / d, 0.0)  # and c_jj in tp_j
        else:
            raise ConfigError(f"unknown metric {metric!r}; known: precision, recall, f1")
    grad = grad / k
    return float(value.sum() / k), float((c * grad * grad).sum())


def binned_auc_variance(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> tuple[float, float]:
    """ROC AUC and DeLong's variance from histograms of the positives' and the negatives'
    scores on the same ascending bins, a pair in one bin counting 1/2.

    DeLong et al. (1988): each positive's placement V10 (the share of negatives below it),
    each negative's V01 (the share of positives above it); the AUC is the mean of either,
    and Var = s10^2 / m + s01^2 / n (sample variances over the m positives and n
    negatives). Every row of a bin shares one placement, so the histograms give the exact
    DeLong variance of the binned scores. NaN without 2 positives and 2 negatives."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    m, n = pos.sum(), neg.sum()
    if m < 2 or n < 2:
        return float("nan"), float("nan")
    v10 = (np.cumsum(neg) - 0.5 * neg) / n
    v01 = (m - np.cumsum(pos) + 0.5 * pos) / m
    auc = float(pos @ v10 / m)
    s10 = float(pos @ (v10 - auc) ** 2) / (m - 1)
    s01 = float(neg @ (v01 - auc) ** 2) / (n - 1)
    return auc, s10 / m + s01 / n


def _auc(summary: PerformanceSummary) -> tuple[float, float]:
    """Macro one-vs-rest AUC and its variance (the mean of the classes' standard errors,
    squared: exact when their AUCs move together, otherwise an upper bound)."""
    assert summary.auc_positive is not None and summary.auc_negative is not None
    found = [
        binned_auc_variance(p, n)
        for p, n in zip(summary.auc_positive, summary.auc_negative, strict=True)
    ]
    if not found or any(math.isnan(a) for a, _ in found):
        return float("nan"), float("nan")
    return float(np.mean([a for a, _ in found])), float(np.mean([np.sqrt(v) for _, v in found]))**2


def p_text(p: float) -> str:
    """A p-value for people: `p = 0.012`, or `p < 1e-7` below 0.001."""
    if math.isnan(p):
        return "p n/a"
    if p >= 0.001:
        return f"p = {p:.3f}"
    return f"p < 1e-{-math.ceil(math.log10(p)) if p > 1e-300 else 300}"


@dataclass(frozen=True)
class PerformanceTest:
    """One metric of a batch against the reference's.

    `drop` is how much worse the batch is, in the metric's units: a score's fall or an
    error's rise (negative when the batch is better). `p_value` is one-sided; the
    adjusted one is across the batch's performance family. `flagged`: adjusted p-value
    below alpha and drop at least `min_drop`."""

    metric: str
    value: float
    reference: float
    drop: float
    p_value: float
    adjusted_p_value: float
    min_drop: float
    flagged: bool

    @property
    def reason(self) -> str:
        """E.g. `accuracy 0.59 against 0.74 on the reference, drop 0.15, p < 1e-50`."""
        return reason_text(
            self.metric, self.value, self.reference, self.drop, self.adjusted_p_value
        )


def reason_text(metric: str, value: float, reference: float, drop: float, p_value: float) -> str:
    """A performance test in words (`PerformanceTest.reason`), also from logged metrics."""
    higher_is_better = PERFORMANCE_METRICS[metric][0] if metric in PERFORMANCE_METRICS else True
    return (
        f"{metric} {value:.3g} against {reference:.3g} on the reference, "
        f"{'drop' if higher_is_better else 'rise'} {drop:.3g}, {p_text(p_value)}"
    )


def _raw_test(
    metric: str, batch: PerformanceSummary, reference: PerformanceSummary
) -> tuple[float, float, float] | None:
    """(batch value, reference value, one-sided p-value), None when not computable."""
    if metric in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        if batch.confusion is None or reference.confusion is None:
            return None
        b, r = batch.confusion, reference.confusion
        if metric == "accuracy":
            p = fisher_less(int(np.trace(b)), int(b.sum()), int(np.trace(r)), int(r.sum()))
            return float(np.trace(b) / b.sum()), float(np.trace(r) / r.sum()), float(p)
        name = metric.removesuffix("_macro")
        (value, var_b), (ref, var_r) = confusion_metric(b, name), confusion_metric(r, name)
        return value, ref, float(z_pvalue(ref - value, var_b + var_r))
    if metric == "roc_auc":
        if batch.auc_positive is None or reference.auc_positive is None:
            return None
        (value, var_b), (ref, var_r) = _auc(batch), _auc(reference)
        return value, ref, float(z_pvalue(ref - value, var_b + var_r))
    if metric == "log_loss":
        if batch.log_loss_sums is None or reference.log_loss_sums is None:
            return None
        sides = [(float(s.n), *s.log_loss_sums) for s in (batch, reference)]  # type: ignore[misc]
    else:  # mae, rmse: on each row's |e| or e^2
        if batch.error_moments is None or reference.error_moments is None:
            return None
        key = "mae" if metric == "mae" else "mse"
        sides = [_moments_as_sums(batch.error_moments[key])]
        sides.append(_moments_as_sums(reference.error_moments[key]))
    _, p = mean_rise_pvalue(sides[0], sides[1])
    values = [total / n if n else float("nan") for n, total, _ in sides]
    if metric == "rmse":
        values = [math.sqrt(v) for v in values]
    return values[0], values[1], float(p)


def performance_tests(
    reference: PerformanceSummary | None,
    batch: ClassificationMetrics | RegressionMetrics | PerformanceSummary | None,
    config: PerformanceConfig,
) -> tuple[PerformanceTest, ...]:
    """Every configured metric of the batch against the reference's, as one family.

    Empty when either side has no performance (no truth, no predictions, a reference
    fitted before references kept theirs) or the tasks differ; a metric one side lacks
    (ROC AUC without scores) or whose value is NaN is left out of the family."""
    if batch is not None and not isinstance(batch, PerformanceSummary):
        batch = summarize(batch)
    if reference is None or batch is None or reference.task != batch.task:
        return ()
    found = []
    for metric in config.metrics:
        raw = _raw_test(metric, batch, reference)
        if raw is not None and not any(math.isnan(x) for x in raw):
            found.append((metric, *raw))
    adjusted = adjust_p_values([p for *_, p in found], config.correction)
    out = []
    for (metric, value, ref, p), p_adj in zip(found, adjusted, strict=True):
        drop = ref - value if PERFORMANCE_METRICS[metric][0] else value - ref
        min_drop = config.min_drop_for(metric, ref)
        flagged = bool(p_adj < config.alpha and drop >= min_drop and drop > 0)
        out.append(
            PerformanceTest(
                metric, float(value), float(ref), float(drop), p, float(p_adj), min_drop, flagged
            )
        )
    return tuple(out)
