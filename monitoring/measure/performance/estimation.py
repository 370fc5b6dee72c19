"""Estimated classification performance of a batch, from its class probabilities alone.

`EstimatedClassification` is an accumulator (`core.accumulator`): per chunk it calibrates
the scores (`calibration_map`) and adds the expected counts (`expected_counts`) with what
their Poisson-binomial variances and covariances need, in memory bounded by classes and
score bins. `result()` gives each metric's `Estimate`:

- accuracy: the mean probability of the predicted class; its variance is the
  Poisson-binomial sum of p(1-p) over rows, divided by n^2;
- macro precision, recall and F1: the ratios of expected counts (CBPE), with an interval
  from draws of the true-positive and true-class counts, jointly normal with the exact
  means and covariances of a sum of independent categorical labels;
- ROC AUC: the AUC of the expected positive and negative histograms of the raw score, with
  the delta method's standard deviation over the score bins' Poisson-binomial variances.

Every estimate is then corrected by the gap (realized - estimated) left on the reference's
held-out rows (`ClassificationEstimator.metric_gap`, shrunk towards 0 by its noise: a
correction in the large, which catches a miscalibration too small for the check to
reject), and its interval widened in quadrature by that gap's standard error (`metric_se`)
and the part of the gap left uncorrected.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, unpack
from monitoring.measure.performance.calibration_map import ClassificationEstimator
from monitoring.measure.performance.estimates import CONFIDENCE, Estimate
from monitoring.measure.performance.expected_counts import (
    SCORE_BINS,
    auc_classes,
    binned_auc,
    rates_of,
    score_bins_of,
)
from monitoring.measure.performance.labels import read_labels
from monitoring.measure.performance.outputs import ModelOutputs

__all__ = ["EstimatedClassification", "shrunk_gap"]

DRAWS = 2000  # joint draws of the counts for the precision, recall and F1 intervals
_ARRAYS = ("n_pred", "exp_tp", "exp_true", "pp", "q", "pos", "count", "var")


class EstimatedClassification:
    """Expected counts of a batch's rows (see the module docstring)."""

    def __init__(self, estimator: ClassificationEstimator, outputs: ModelOutputs, *, seed: int = 0):
        self.estimator = estimator
        self.outputs = outputs
        self.seed = seed
        k = len(estimator.classes)
        self.auc_classes = auc_classes(k, estimator.positive)
        shape = (len(self.auc_classes), SCORE_BINS)
        self.n_pred, self.exp_tp, self.exp_true = np.zeros(k), np.zeros(k), np.zeros(k)
        self.pp, self.q = np.zeros((k, k)), np.zeros((k, k))
        self.pos, self.count, self.var = np.zeros(shape), np.zeros(shape), np.zeros(shape)

    def update(self, chunk: Chunk) -> None:
        scores = self.outputs.score_matrix(chunk)
        if scores is None or not len(scores):
            return
        prob = self.estimator.calibrate(scores)
        column = self.outputs.prediction
        if column and column in chunk.frame.columns:
            pred, missing = read_labels(
                self.outputs.labels(chunk, column), self.estimator.classes, name=column
            )
            if missing.any():  # no stored label: the most probable class
                pred = np.where(missing, scores.argmax(axis=1), pred)
        else:
            pred = scores.argmax(axis=1)
        k = prob.shape[1]
        rows = np.arange(len(pred))
        p_pred = prob[rows, pred]
        self.n_pred += np.bincount(pred, minlength=k)
        self.exp_tp += np.bincount(pred, weights=p_pred, minlength=k)
        self.exp_true += prob.sum(axis=0)
        self.pp += prob.T @ prob
        by_pred = np.zeros_like(prob)
        by_pred[rows, pred] = p_pred
        self.q += by_pred.T @ prob  # q[j, k]: sum over rows predicted j of p_j p_k
        bins = score_bins_of(scores, self.auc_classes).ravel()
        p = prob[:, self.auc_classes].ravel()
        size = self.pos.size
        self.pos += np.bincount(bins, weights=p, minlength=size).reshape(self.pos.shape)
        self.count += np.bincount(bins, minlength=size).reshape(self.pos.shape)
        self.var += np.bincount(bins, weights=p * (1 - p), minlength=size).reshape(self.pos.shape)

    def merge(self, other: EstimatedClassification) -> EstimatedClassification:
        for name in _ARRAYS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def to_state(self) -> bytes:
        return pack({name: getattr(self, name) for name in _ARRAYS})

    def from_state(self, state: bytes) -> EstimatedClassification:
        twin = EstimatedClassification(self.estimator, self.outputs, seed=self.seed)
        arrays, _ = unpack(state)
        for name in _ARRAYS:
            setattr(twin, name, arrays[name])
        return twin

    @property
    def n(self) -> int:
        return int(self.n_pred.sum())

    def result(self) -> dict[str, Estimate]:
        """Each metric's estimate and interval; empty before any row with scores."""
        if self.n == 0:
            return {}
        rng = np.random.default_rng(self.seed)
        z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
        rates = rates_of(self.n_pred, self.exp_tp, self.exp_true)
        draws = self._rate_draws(rng)
        auc, auc_sd = self._auc()
        spread = {"accuracy": self._accuracy_sd(), "roc_auc": auc_sd}
        out = {}
        for name, value in {**rates, "roc_auc": auc}.items():
            value = float(value)
            if not np.isfinite(value):
                continue
            if name in spread:
                low, high = value - z * spread[name], value + z * spread[name]
            else:
                levels = [0.5 - CONFIDENCE / 2, 0.5 + CONFIDENCE / 2]
                low, high = np.quantile(draws[name], levels)
            out[name] = self._widened(name, value, float(low), float(high), z)
        return out

    def _widened(self, name: str, value: float, low: float, high: float, z: float) -> Estimate:
        """The estimate corrected by the reference's held-out gap, shrunk towards 0 by its
        noise (`shrunk_gap`); the interval widened by the gap's standard error and the part
        of the gap left uncorrected; clipped to [0, 1]."""
        se = self.estimator.metric_se.get(name, 0.0)
        gap = self.estimator.metric_gap.get(name, 0.0)
        applied = shrunk_gap(gap, se)
        extra = float(np.hypot(z * se, gap - applied))
        low = value + applied - float(np.hypot(value - low, extra))
        high = value + applied + float(np.hypot(high - value, extra))
        value = min(max(value + applied, 0.0), 1.0)
        return Estimate(name, value, max(low, 0.0), min(high, 1.0))

    def _accuracy_sd(self) -> float:
        """sd of the realized accuracy: sum over rows of p(1-p) of the predicted class / n."""
        return float(np.sqrt(max((self.exp_tp - np.diag(self.q)).sum(), 0.0)) / self.n)

    def _rate_draws(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draws of the precision, recall and F1 macro: (true positives, true-class counts)
        jointly normal with their exact means and covariances."""
        k = len(self.n_pred)
        mean = np.concatenate([self.exp_tp, self.exp_true])
        cov = np.zeros((2 * k, 2 * k))
        cov[:k, :k] = np.diag(self.exp_tp - np.diag(self.q))
        cov[k:, k:] = np.diag(self.exp_true) - self.pp
        cross = np.diag(self.exp_tp) - self.q  # cov(tp_j, true_k)
        cov[:k, k:], cov[k:, :k] = cross, cross.T
        values, vectors = np.linalg.eigh(cov)
        root = vectors * np.sqrt(np.clip(values, 0.0, None))
        drawn = mean + rng.standard_normal((DRAWS, 2 * k)) @ root.T
        tp = np.clip(drawn[:, :k], 0.0, self.n_pred)
        true = np.maximum(drawn[:, k:], tp)
        return rates_of(np.broadcast_to(self.n_pred, tp.shape), tp, true)

    def _auc(self) -> tuple[float, float]:
        """The expected macro ROC AUC and its standard deviation (NaN: no class has
        expected positives and negatives). The sd is the delta method's: a row of bin b
        turning positive moves the AUC by g_b = (N_below(b) - P_above(b) - AUC (N - P)) / PN
        (its own bin's other rows at 1/2), so Var = sum over bins of var_b g_b^2, with
        var_b the bin's Poisson-binomial variance; classes averaged as independent."""
        values, variances = [], []
        for pos, count, var in zip(self.pos, self.count, self.var, strict=True):
            neg = count - pos
            n_pos, n_neg = pos.sum(), neg.sum()
            if n_pos <= 0 or n_neg <= 0:
                continue
            auc = float(binned_auc(pos, neg))
            below = np.cumsum(neg) - neg + 0.5 * neg
            above = n_pos - np.cumsum(pos) + 0.5 * pos
            slope = (below - above - auc * (n_neg - n_pos)) / (n_pos * n_neg)
            values.append(auc)
            variances.append(float(var @ slope**2))
        if not values:
            return float("nan"), float("nan")
        return float(np.mean(values)), float(np.sqrt(np.sum(variances)) / len(values))


def shrunk_gap(gap: float, se: float) -> float:
    """The part of a held-out gap worth correcting: gap * max(0, 1 - se^2 / gap^2) (the
    positive-part James-Stein shrinkage). A gap within its noise (a calibrated model's)
    is not corrected, so it adds no error; a gap well beyond it is corrected almost whole."""
    if gap == 0.0:
        return 0.0
    return gap * max(0.0, 1.0 - (se / gap) ** 2)
