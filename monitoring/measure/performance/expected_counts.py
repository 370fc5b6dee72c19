"""The counts a classifier's metrics are read from, realized or expected, and the metrics.

Realized counts come from the labels; expected counts replace each row's label by its
(calibrated) class probabilities: the expected number of true positives of class j is the
sum of p_j over the rows predicted j, the expected number of rows of class k the sum of
p_k. One function turns either kind into accuracy, macro precision, recall and F1 and ROC
AUC, so an estimate and the realized value it is checked against are computed the same way
(CBPE's idea, Poisson-binomial sums).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitoring.measure.performance.classification import binned_roc_auc

__all__ = [
    "SCORE_BINS",
    "Counts",
    "auc_classes",
    "auc_of",
    "binned_auc",
    "counts_of",
    "metrics_of",
    "rates_of",
    "score_bins_of",
]

SCORE_BINS = 4096  # as `ClassificationMetrics`: estimated and realized AUC share the bins


@dataclass
class Counts:
    """Per class: rows predicted (`n_pred`), true positives (`tp`), rows truly of the class
    (`n_true`); per class the AUC averages over, histograms of its raw score over the
    positives and the negatives (`pos`, `neg`, on SCORE_BINS bins). Floats: expected
    counts are sums of probabilities."""

    n_pred: np.ndarray
    tp: np.ndarray
    n_true: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def auc_classes(n_classes: int, positive: int) -> list[int]:
    """The classes ROC AUC averages over: the positive one of two, else one-vs-rest."""
    return [positive] if n_classes == 2 else list(range(n_classes))


def score_bins_of(scores: np.ndarray, classes: list[int]) -> np.ndarray:
    """Each row's bin of each AUC class's raw score, offset by SCORE_BINS per class."""
    binned = (scores[:, classes] * SCORE_BINS).astype(np.int64)
    np.minimum(binned, SCORE_BINS - 1, out=binned)
    return binned + np.arange(len(classes)) * SCORE_BINS


def counts_of(
    prob: np.ndarray,
    pred: np.ndarray,
    bins: np.ndarray,
    classes: list[int],
    weights: np.ndarray | None = None,
) -> Counts:
    """The counts of rows whose truth is `prob`, a rows x classes matrix: one-hot labels
    (realized) or class probabilities (expected). `pred` are predicted codes, `bins` from
    `score_bins_of`; `weights` weigh each row (a bootstrap's)."""
    w = np.ones(len(pred)) if weights is None else weights
    k = prob.shape[1]
    n_pred = np.bincount(pred, weights=w, minlength=k)
    tp = np.bincount(pred, weights=w * prob[np.arange(len(pred)), pred], minlength=k)
    n_true = w @ prob
    size = len(classes) * SCORE_BINS
    hit = prob[:, classes] * w[:, None]
    pos = np.bincount(bins.ravel(), weights=hit.ravel(), minlength=size)
    every = np.bincount(bins.ravel(), weights=np.repeat(w, len(classes)), minlength=size)
    shape = (len(classes), SCORE_BINS)
    return Counts(n_pred, tp, n_true, pos.reshape(shape), (every - pos).reshape(shape))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den > 0)
    return out


def metrics_of(counts: Counts) -> dict[str, float]:
    """Accuracy, macro precision, recall and F1 (over classes predicted or present, as
    `ClassificationMetrics`), and ROC AUC (NaN when no class has positives and negatives)."""
    rates = rates_of(counts.n_pred, counts.tp, counts.n_true)
    return {**{k: float(v) for k, v in rates.items()}, "roc_auc": auc_of(counts)}


def rates_of(n_pred: np.ndarray, tp: np.ndarray, n_true: np.ndarray) -> dict[str, np.ndarray]:
    """The label metrics from counts; the last axis is the class (leading axes: draws)."""
    n = n_pred.sum(axis=-1)
    present = (n_pred + n_true) > 1e-12
    used = np.maximum(present.sum(axis=-1), 1)
    precision = (_divide(tp, n_pred) * present).sum(axis=-1) / used
    recall = (_divide(tp, n_true) * present).sum(axis=-1) / used
    f1 = (_divide(2.0 * tp, n_pred + n_true) * present).sum(axis=-1) / used
    accuracy = _divide(tp.sum(axis=-1), n)
    return {
        "accuracy": accuracy,
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }


def binned_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC of positive and negative histograms on ascending bins (last axis), pairs in
    one bin counting 1/2 (`classification.binned_roc_auc`, over any leading axes); NaN
    without positives or negatives."""
    below = np.cumsum(neg, axis=-1) - neg
    pairs = pos.sum(axis=-1) * neg.sum(axis=-1)
    wins = (pos * below).sum(axis=-1) + 0.5 * (pos * neg).sum(axis=-1)
    return np.divide(wins, pairs, out=np.full(np.shape(pairs), np.nan), where=pairs > 0)


def auc_of(counts: Counts) -> float:
    """Macro ROC AUC over the classes with both positives and negatives."""
    aucs = [
        binned_roc_auc(p, n)[0]
        for p, n in zip(counts.pos, counts.neg, strict=True)
        if p.sum() > 0 and n.sum() > 0
    ]
    return float(np.mean(aucs)) if aucs else float("nan")
