"""A classifier's calibration, checked on held-out reference rows, and the map that corrects
it when the check fails: estimated performance reads the probabilities through it.

At fit, the reference rows with truth and class probabilities are split in two disjoint
halves by a seeded permutation. The raw probabilities are tested on the check half
(`calibration_test`); when they fail, an isotonic map per class is fitted on the other half
(and checked on the check half again). The check half then gives the map's own
uncertainty: a bootstrap of (realized - estimated) per metric, whose standard deviation
widens every interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.measure.performance.expected_counts import (
    auc_classes,
    binned_auc,
    counts_of,
    metrics_of,
    rates_of,
    score_bins_of,
)

__all__ = [
    "CALIBRATION_ALPHA",
    "MIN_CALIBRATION_ROWS",
    "ClassificationEstimator",
    "apply_maps",
    "calibration_test",
    "fit_classification_estimator",
    "fit_isotonic",
    "pool_adjacent_violators",
    "split_rows",
]

MIN_CALIBRATION_ROWS = 200  # reference rows with truth and probabilities, both halves
CALIBRATION_ALPHA = 0.01  # the raw probabilities are mapped when the test rejects at this
CHECK_BINS = 10  # equal-count bins of each tested class's probability
BOOTSTRAP = 100  # resamples of the check half for the map's uncertainty
BOOTSTRAP_BINS = 256  # score bins of the resampled ROC AUC
BOOTSTRAP_ROWS = 10_000  # check rows resampled at most: see `_check_gaps`

Map = tuple[np.ndarray, np.ndarray]  # (score breakpoints, calibrated probability)


def split_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (fit, check) row indices, each sorted: a seeded permutation cut in half."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-decreasing fit of `values` (isotonic regression),
    by pooling adjacent violators: blocks merge while a block's mean exceeds the next's.
    `scipy.optimize.isotonic_regression` gives the same (tested), but importing
    scipy.optimize costs a fresh process 0.28 s, 50 times this loop over 10,000 values."""
    means: list[float] = []
    sizes: list[float] = []
    lengths: list[int] = []
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        mean, size, length = value, weight, 1
        while means and means[-1] >= mean:
            total = size + sizes[-1]
            mean = (mean * size + means[-1] * sizes[-1]) / total
            size, length = total, length + lengths[-1]
            means.pop(), sizes.pop(), lengths.pop()
        means.append(mean)
        sizes.append(size)
        lengths.append(length)
    return np.repeat(np.asarray(means), lengths)


def fit_isotonic(scores: np.ndarray, hits: np.ndarray) -> Map:
    """The non-decreasing map from a score to the share of hits (isotonic regression,
    `pool_adjacent_violators`), kept as the ends of its constant blocks; `np.interp`
    between them is linear, and constant past the ends."""
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=hits.astype(np.float64)) / counts
    fitted = pool_adjacent_violators(means, counts.astype(np.float64))
    changes = np.flatnonzero(np.diff(fitted) != 0)
    ends = np.unique(np.concatenate([[0, len(values) - 1], changes, changes + 1]))
    return values[ends].astype(np.float64), fitted[ends].astype(np.float64)


def apply_maps(scores: np.ndarray, maps: Sequence[Map | None]) -> np.ndarray:
    """Calibrated probabilities (rows x classes); a class without a map keeps its scores.
    With two classes one is mapped and the other is its complement; with more,
    each row is renormalised to sum to 1 (one-vs-rest maps)."""
    if all(m is None for m in maps):
        return scores
    out = scores.copy()
    if len(maps) == 2:
        c = 0 if maps[0] is not None else 1
        out[:, c] = np.interp(scores[:, c], *maps[c])  # type: ignore[misc]
        out[:, 1 - c] = 1.0 - out[:, c]
        return out
    for c, found in enumerate(maps):
        if found is not None:
            out[:, c] = np.interp(scores[:, c], *found)
    total = out.sum(axis=1, keepdims=True)
    flat = np.full_like(out, 1.0 / out.shape[1])
    return np.divide(out, total, out=flat, where=total > 0)


def calibration_test(
    prob: np.ndarray, truth: np.ndarray, tested: Sequence[int]
) -> dict[str, float]:
    """Whether labels look drawn from `prob`: per tested class, CHECK_BINS equal-count bins
    of its probability, sum of (observed - expected)^2 / Poisson-binomial variance, against
    chi-squared with one degree per bin (known probabilities, nothing fitted: Hosmer and
    Lemeshow's statistic without their -2). Also the expected calibration error (ECE) of the
    most probable class on 10 equal-width bins, as `ClassificationMetrics` reports it."""
    from scipy.special import chdtrc

    statistic, df = 0.0, 0
    for c in tested:
        p, hit = prob[:, c], (truth == c).astype(np.float64)
        edges = np.unique(np.quantile(p, np.linspace(0, 1, CHECK_BINS + 1)[1:-1]))
        b = np.searchsorted(edges, p, side="right")
        observed = np.bincount(b, weights=hit, minlength=len(edges) + 1)
        expected = np.bincount(b, weights=p, minlength=len(edges) + 1)
        variance = np.bincount(b, weights=p * (1 - p), minlength=len(edges) + 1)
        used = variance > 1e-9
        statistic += float(((observed - expected)[used] ** 2 / variance[used]).sum())
        df += int(used.sum())
    confidence = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == truth).astype(np.float64)
    cal = np.minimum((confidence * 10).astype(np.int64), 9)
    gap = np.bincount(cal, weights=correct - confidence, minlength=10)
    return {
        "statistic": statistic,
        "df": float(df),
        "p_value": float(chdtrc(df, statistic)) if df else float("nan"),
        "ece": float(np.abs(gap).sum() / len(truth)),
    }


@dataclass(frozen=True, eq=False)
class ClassificationEstimator:
    """How a batch's classification performance is estimated from its class probabilities:
    the maps (one per class, None: used as they are), the reference check's figures
    (`check`), and per metric the gap left on the check half, realized minus estimated
    (`metric_gap`: added to every estimate, shrunk by its noise) and its standard error
    (`metric_se`: widens every interval)."""

    classes: tuple[str, ...]
    positive: int  # the class whose score the binary ROC AUC ranks by
    maps: tuple[Map | None, ...]
    check: Mapping[str, float] = field(default_factory=dict)
    metric_se: Mapping[str, float] = field(default_factory=dict)
    metric_gap: Mapping[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "classification"

    @property
    def calibrated(self) -> bool:
        """Whether the raw probabilities passed the check (no map)."""
        return all(m is None for m in self.maps)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        return apply_maps(scores, self.maps)

    def describe(self) -> str:
        """The check's result in words (a note of the reference)."""
        c = self.check
        found = (
            f"estimated performance: calibration checked on {int(c['n_check'])} held-out "
            f"reference rows: ECE {c['ece_raw']:.3f}, calibration test p = {c['p_value_raw']:.3g}"
        )
        gap = self.metric_gap.get("accuracy")
        se = self.metric_se.get("accuracy", 0.0)
        left = "" if gap is None else f"; accuracy gap left {gap:+.4f} (se {se:.4f})"
        if self.calibrated:
            return f"{found}: probabilities used as they are{left}"
        return (
            f"{found}: isotonic map fitted on {int(c['n_fit'])} other rows; ECE after the "
            f"map {c['ece_mapped']:.3f} (p = {c['p_value_mapped']:.3g}){left}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (saved with the reference files)."""
        return {
            "kind": self.kind,
            "classes": list(self.classes),
            "positive": self.positive,
            "maps": [None if m is None else [m[0].tolist(), m[1].tolist()] for m in self.maps],
            "check": dict(self.check),
            "metric_se": dict(self.metric_se),
            "metric_gap": dict(self.metric_gap),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationEstimator:
        maps = tuple(
            None if m is None else (np.asarray(m[0], float), np.asarray(m[1], float))
            for m in data["maps"]
        )
        return cls(
            tuple(data["classes"]),
            int(data["positive"]),
            maps,
            data["check"],
            data["metric_se"],
            data.get("metric_gap", {}),
        )


def _check_gaps(prob: np.ndarray, truth: np.ndarray, pred: np.ndarray, scores: np.ndarray,
                positive: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """Per metric, (realized - estimated) on the check half, and its standard deviation
    over BOOTSTRAP Poisson-bootstrap resamples of it: how far the estimate sits from the
    truth, and how well that is known.

    The gap is taken on every check row. Its spread is resampled on BOOTSTRAP_ROWS of them
    at most, drawn at random, and scaled by sqrt(rows resampled / check rows): the
    metrics' standard deviations fall as 1 / sqrt(rows), and the resamples' weight
    matrices would otherwise grow with the reference (a 100,000-row reference spent 0.41 s
    of its 0.7 s fit on 100 x 50,000 weights). Smaller references resample every row."""
    k = prob.shape[1]
    classes = auc_classes(k, positive)
    hits = np.eye(k)[truth]
    bins = score_bins_of(scores, classes)
    realized = metrics_of(counts_of(hits, pred, bins, classes))
    estimated = metrics_of(counts_of(prob, pred, bins, classes))
    gap = {
        name: value - estimated[name]
        for name, value in realized.items()
        if np.isfinite(value - estimated[name])
    }
    scale = 1.0
    if len(truth) > BOOTSTRAP_ROWS:
        scale = float(np.sqrt(BOOTSTRAP_ROWS / len(truth)))
        kept = np.sort(
            np.random.default_rng([seed, BOOTSTRAP_ROWS]).choice(
                len(truth), BOOTSTRAP_ROWS, replace=False
            )
        )
        prob, pred, scores, hits = prob[kept], pred[kept], scores[kept], hits[kept]
    real, est = _resampled_metrics(prob, pred, scores, hits, classes, seed)
    spread = {
        name: scale * float(np.nanstd(real[name] - est[name], ddof=1)) for name in gap
    }
    return gap, spread


Resampled = dict[str, np.ndarray]  # a metric's value on each resample


def _resampled_metrics(prob: np.ndarray, pred: np.ndarray, scores: np.ndarray,
                       hits: np.ndarray, classes: Sequence[int],
                       seed: int) -> tuple[Resampled, Resampled]:  # fmt: skip
    """The metrics, realized and estimated, on each of BOOTSTRAP Poisson resamples of the
    rows: weight matrices, all at once, with ROC AUC on BOOTSTRAP_BINS coarser score bins
    (its spread, not its value)."""
    k = prob.shape[1]
    weights = np.random.default_rng(seed).poisson(1.0, (BOOTSTRAP, len(pred))).astype(float)
    predicted = np.eye(k)[pred]
    n_pred = weights @ predicted
    # Per AUC class: rows sorted by their coarse score bin, and where each occupied bin
    # starts; a resample's histogram is then one `reduceat` of its sorted weights.
    groups = []
    for c in classes:
        coarse = np.minimum((scores[:, c] * BOOTSTRAP_BINS).astype(np.int64), BOOTSTRAP_BINS - 1)
        order = np.argsort(coarse, kind="stable")
        starts = np.flatnonzero(np.diff(coarse[order], prepend=-1))
        sorted_weights = weights[:, order]
        every = np.add.reduceat(sorted_weights, starts, axis=1)
        groups.append((c, order, starts, sorted_weights, every))

    def resampled(truth_like: np.ndarray) -> Resampled:
        tp = weights @ (predicted * truth_like)
        found = rates_of(n_pred, tp, weights @ truth_like)
        aucs = []
        for c, order, starts, sorted_weights, every in groups:
            pos = np.add.reduceat(sorted_weights * truth_like[order, c], starts, axis=1)
            aucs.append(binned_auc(pos, every - pos))
        return {**found, "roc_auc": np.nanmean(aucs, axis=0)}

    return resampled(hits), resampled(prob)


def fit_classification_estimator(
    classes: tuple[str, ...],
    truth: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray,
    *,
    positive: int = 1,
    seed: int = 0,
) -> ClassificationEstimator | None:
    """The estimator from reference rows: truth and predicted class codes, raw class
    probabilities (rows x classes). None under MIN_CALIBRATION_ROWS rows."""
    if len(truth) < MIN_CALIBRATION_ROWS:
        return None
    fit, check = split_rows(len(truth), seed)
    k = len(classes)
    tested = [positive] if k == 2 else list(range(k))
    raw = calibration_test(scores[check], truth[check], tested)
    found = {"n_fit": float(len(fit)), "n_check": float(len(check)),
             "ece_raw": raw["ece"], "p_value_raw": raw["p_value"]}  # fmt: skip
    maps: list[Map | None] = [None] * k
    if raw["p_value"] < CALIBRATION_ALPHA:
        for c in tested:
            maps[c] = fit_isotonic(scores[fit, c], truth[fit] == c)
        mapped = calibration_test(apply_maps(scores[check], maps), truth[check], tested)
        found.update(ece_mapped=mapped["ece"], p_value_mapped=mapped["p_value"])
    prob = apply_maps(scores[check], maps)
    gap, spread = _check_gaps(prob, truth[check], pred[check], scores[check], positive, seed)
    return ClassificationEstimator(classes, positive, tuple(maps), found, spread, gap)
