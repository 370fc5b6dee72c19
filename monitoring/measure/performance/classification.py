"""Classification metrics accumulated chunk by chunk, in memory bounded by classes and bins.

The accumulator keeps a confusion matrix, per-class score histograms and calibration
bins; nothing grows with the number of rows, so a batch of any size is read in one
streaming pass and partitions profiled in parallel are combined with `merge`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitoring.core.state import pack, unpack
from monitoring.errors import ConfigError, InvalidValueError, NotFittedError
from monitoring.measure.performance.labels import read_labels, read_scores

__all__ = ["LOG_LOSS_EPS", "ClassificationMetrics", "binned_roc_auc"]

LOG_LOSS_EPS = 1e-15
"""Lower clip of the probability given to the true class in log loss and cross-entropy.

A confident mistake (p = 0) then costs -ln(1e-15) ~ 34.5 instead of infinity, so one row
cannot make the mean infinite. Same value as scikit-learn's historical `eps=1e-15`.
"""


def binned_roc_auc(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """ROC AUC from histograms of positive and negative scores on the same ascending bins.

    A (positive, negative) pair in different bins is ordered exactly; a pair sharing a bin
    counts 1/2. Its exact contribution is 0, 1/2 or 1, so the error is at most half the
    share of pairs that share a bin: that bound is returned with the AUC. Both are NaN
    when there are no positives or no negatives.
    """
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    n_pairs = pos.sum() * neg.sum()
    if n_pairs == 0:
        return float("nan"), float("nan")
    below = np.cumsum(neg) - neg
    tied = float(pos @ neg)
    auc = (float(pos @ below) + 0.5 * tied) / n_pairs
    return auc, 0.5 * tied / n_pairs


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class ClassificationMetrics:
    """Accuracy, macro precision/recall/F1, ROC AUC, log loss and ECE over many chunks.

    Memory is O(classes**2 + classes * score_bins + calibration_bins), whatever the rows.

    - Macro precision, recall and F1 average over the classes present in the truth or the
      predictions seen so far; a class never predicted has precision 0 and F1 uses
      2tp / (2tp + fp + fn). This equals scikit-learn's
      `precision_recall_fscore_support(average="macro", zero_division=0)`.
    - ROC AUC is read from per-class histograms of the scores on `score_bins` equal-width
      bins of [0, 1]; pairs in one bin count 1/2, see `roc_auc_error_bound`. With two
      classes the positive class is `positive_class`, else `classes[1]`; with more it is
      the one-vs-rest macro average over classes with both positives and negatives
      (scikit-learn's `roc_auc_score(multi_class="ovr", average="macro")`). NaN when no
      class qualifies.
    - Log loss is the mean of -ln p(true class), p clipped to [log_loss_eps, 1].
    - ECE: confidence is the max score and the prediction its argmax (not `y_pred`);
      sum over `calibration_bins` equal-width bins of (n_bin / n) |accuracy - confidence|.
    - Rows with missing truth are skipped and counted in `n_missing_truth`.

    Metrics are NaN while no row has truth. The first chunk decides whether scores are
    tracked; every later chunk (and every merged accumulator) must agree.
    """

    def __init__(
        self,
        classes: Sequence[str],
        *,
        score_bins: int = 4096,
        calibration_bins: int = 10,
        positive_class: str | None = None,
        log_loss_eps: float = LOG_LOSS_EPS,
    ) -> None:
        names = tuple(str(c) for c in classes)
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"`classes` must hold at least 2 distinct labels, got {list(names)}")
        for setting, value in (("score_bins", score_bins), ("calibration_bins", calibration_bins)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"`{setting}` must be an integer >= 1, got {value!r}")
        if positive_class is not None and (len(names) != 2 or str(positive_class) not in names):
            raise ConfigError(
                f"`positive_class` must be one of two classes {list(names)}, got {positive_class!r}"
            )
        if not 0.0 < log_loss_eps < 1.0:
            raise ConfigError(f"`log_loss_eps` must be in (0, 1), got {log_loss_eps!r}")
        self._classes = names
        self._score_bins = int(score_bins)
        self._calibration_bins = int(calibration_bins)
        self._positive_class = None if positive_class is None else str(positive_class)
        self._log_loss_eps = float(log_loss_eps)
        k = len(names)
        self._with_scores: bool | None = None  # None until the first update
        self._n_missing = 0
        self._confusion = np.zeros((k, k), dtype=np.int64)
        self._score_hist = np.zeros((k, self._score_bins), dtype=np.int64)
        self._positive_hist = np.zeros((k, self._score_bins), dtype=np.int64)
        self._log_loss_sum = 0.0
        self._log_loss_sq_sum = 0.0  # of each row's cross-entropy: its variance, for tests
        self._cal_count = np.zeros(self._calibration_bins, dtype=np.int64)
        self._cal_correct = np.zeros(self._calibration_bins, dtype=np.int64)
        self._cal_confidence = np.zeros(self._calibration_bins, dtype=np.float64)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class labels, in the order of the score columns."""
        return self._classes

    def update(
        self,
        y_true: npt.ArrayLike,
        y_pred: npt.ArrayLike | None = None,
        scores: npt.ArrayLike | None = None,
    ) -> None:
        """Add one chunk; `y_pred` defaults to the argmax of `scores`.

        The chunk is checked in full before any state changes, so a rejected chunk leaves
        the accumulator as it was.
        """
        if y_pred is None and scores is None:
            raise InvalidValueError("give `y_pred`, `scores` or both")
        with_scores = scores is not None
        if self._with_scores is not None and with_scores != self._with_scores:
            raise InvalidValueError(self._mode_message(self._with_scores))
        truth, missing = read_labels(y_true, self._classes, name="y_true")
        n = truth.shape[0]
        prob = None if scores is None else read_scores(scores, n, self._classes)
        if y_pred is None:
            assert prob is not None
            pred = np.argmax(prob, axis=1)
        else:
            pred, pred_missing = read_labels(y_pred, self._classes, name="y_pred")
            if pred.shape[0] != n:
                raise InvalidValueError(f"`y_pred` has {pred.shape[0]} rows but `y_true` has {n}")
            if pred_missing.any():
                row = int(np.flatnonzero(pred_missing)[0])
                raise InvalidValueError(f"`y_pred` is missing at position {row} of the chunk")

        self._with_scores = with_scores
        n_missing = int(missing.sum())
        self._n_missing += n_missing
        t, p = (truth, pred) if n_missing == 0 else (truth[~missing], pred[~missing])
        k = len(self._classes)
        self._confusion += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        if prob is not None:
            self._add_scores(prob if n_missing == 0 else prob[~missing], t)

    def _add_scores(self, prob: np.ndarray, truth: np.ndarray) -> None:
        """Add the score histograms, log loss and calibration bins of evaluated rows."""
        k, bins = len(self._classes), self._score_bins
        # One (row, class) cell per row read from the flattened array: a single take
        # instead of a 2-D fancy index.
        at_row = np.arange(truth.shape[0]) * k
        binned = (prob * bins).astype(np.int64)
        np.minimum(binned, bins - 1, out=binned)
        binned += np.arange(k) * bins
        self._score_hist += np.bincount(binned.ravel(), minlength=k * bins).reshape(k, bins)
        true_cells = at_row + truth
        self._positive_hist += np.bincount(binned.ravel()[true_cells], minlength=k * bins).reshape(
            k, bins
        )
        flat = prob.ravel()  # a copy only if prob is not C-contiguous
        p_true = np.clip(flat[true_cells], self._log_loss_eps, 1.0)
        cross_entropy = -np.log(p_true)
        self._log_loss_sum += float(cross_entropy.sum())
        self._log_loss_sq_sum += float(cross_entropy @ cross_entropy)

        cal = self._calibration_bins
        best = prob.argmax(axis=1)
        confidence = flat[at_row + best]  # prob.max(axis=1), 3x faster on few classes
        correct = best == truth
        cal_bin = np.minimum((confidence * cal).astype(np.int64), cal - 1)
        self._cal_count += np.bincount(cal_bin, minlength=cal)
        self._cal_correct += np.bincount(cal_bin[correct], minlength=cal)
        self._cal_confidence += np.bincount(cal_bin, weights=confidence, minlength=cal)

    @staticmethod
    def _mode_message(fitted_with_scores: bool) -> str:
        seen = "with" if fitted_with_scores else "without"
        return (
            f"this accumulator was fitted {seen} `scores`; every chunk and every merged "
            "accumulator must do the same"
        )

    def merge(self, other: ClassificationMetrics) -> ClassificationMetrics:
        """Return a new accumulator equal to one fitted on the data of both."""
        for setting in (
            "_classes",
            "_score_bins",
            "_calibration_bins",
            "_positive_class",
            "_log_loss_eps",
        ):
            if getattr(self, setting) != getattr(other, setting):
                raise ConfigError(
                    f"cannot merge accumulators with different `{setting[1:]}`: "
                    f"{getattr(self, setting)!r} and {getattr(other, setting)!r}"
                )
        if None not in (self._with_scores, other._with_scores) and (
            self._with_scores != other._with_scores
        ):
            assert self._with_scores is not None
            raise InvalidValueError(self._mode_message(self._with_scores))
        out = self._twin()
        out._with_scores = other._with_scores if self._with_scores is None else self._with_scores
        out._n_missing = self._n_missing + other._n_missing
        out._confusion = self._confusion + other._confusion
        out._score_hist = self._score_hist + other._score_hist
        out._positive_hist = self._positive_hist + other._positive_hist
        out._log_loss_sum = self._log_loss_sum + other._log_loss_sum
        out._log_loss_sq_sum = self._log_loss_sq_sum + other._log_loss_sq_sum
        out._cal_count = self._cal_count + other._cal_count
        out._cal_correct = self._cal_correct + other._cal_correct
        out._cal_confidence = self._cal_confidence + other._cal_confidence
        return out

    def _twin(self) -> ClassificationMetrics:
        """An empty accumulator with this one's settings."""
        return ClassificationMetrics(
            self._classes,
            score_bins=self._score_bins,
            calibration_bins=self._calibration_bins,
            positive_class=self._positive_class,
            log_loss_eps=self._log_loss_eps,
        )

    _ARRAYS = ("_confusion", "_score_hist", "_positive_hist", "_cal_count", "_cal_correct")

    def to_state(self) -> bytes:
        """The counts (`core.state`); the settings stay with the receiving accumulator."""
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        arrays["_cal_confidence"] = self._cal_confidence
        return pack(
            arrays,
            with_scores=self._with_scores,
            n_missing=self._n_missing,
            log_loss_sum=self._log_loss_sum,
            log_loss_sq_sum=self._log_loss_sq_sum,
        )

    def from_state(self, state: bytes) -> ClassificationMetrics:
        """An accumulator with this one's settings holding `state`."""
        arrays, values = unpack(state)
        out = self._twin()
        for name, array in arrays.items():
            setattr(out, name, array)
        out._with_scores = values["with_scores"]
        out._n_missing = values["n_missing"]
        out._log_loss_sum = values["log_loss_sum"]
        out._log_loss_sq_sum = values["log_loss_sq_sum"]
        return out

    def _require_fitted(self) -> None:
        if self._with_scores is None:
            raise NotFittedError("call update() with at least one chunk first")

    def confusion_matrix(self) -> np.ndarray:
        """Counts of (truth, prediction): rows are the true class, in `classes` order."""
        self._require_fitted()
        return self._confusion.copy()

    def _auc_indices(self) -> list[int]:
        """The classes the ROC AUC averages over (one-vs-rest)."""
        if len(self._classes) == 2:
            positive = self._positive_class or self._classes[1]
            return [self._classes.index(positive)]
        n_pos = self._positive_hist.sum(axis=1)
        n_neg = self._score_hist.sum(axis=1) - n_pos
        return [int(c) for c in np.flatnonzero((n_pos > 0) & (n_neg > 0))]

    def _auc_per_class(self) -> list[tuple[float, float]]:
        """(AUC, error bound) of each class the ROC AUC averages over."""
        return [
            binned_roc_auc(self._positive_hist[c], self._score_hist[c] - self._positive_hist[c])
            for c in self._auc_indices()
        ]

    def auc_histograms(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per class the ROC AUC averages over (rows), the histograms of that class's score
        on the `score_bins` bins over its positives and over its negatives; None without
        scores. What a test of the AUC needs (`performance.tests.binned_auc_variance`)."""
        self._require_fitted()
        if not self._with_scores:
            return None
        indices = self._auc_indices()
        positives = self._positive_hist[indices]
        return positives.copy(), self._score_hist[indices] - positives

    def log_loss_sums(self) -> tuple[float, float] | None:
        """Sum and sum of squares of each evaluated row's cross-entropy (None without
        scores): the mean is the log loss, and with the squares its variance."""
        self._require_fitted()
        if not self._with_scores:
            return None
        return self._log_loss_sum, self._log_loss_sq_sum

    def roc_auc_error_bound(self) -> float:
        """Worst-case |binned ROC AUC - exact ROC AUC|, macro-averaged like the AUC.

        A (positive, negative) pair whose scores share one of the `score_bins` bins counts
        1/2 where the exact AUC counts 0, 1/2 or 1, so the bound is half the share of pairs
        that share a bin. NaN where the AUC is NaN or no scores were given.
        """
        self._require_fitted()
        per_class = self._auc_per_class() if self._with_scores else []
        return float(np.mean([b for _, b in per_class])) if per_class else float("nan")

    def result(self) -> dict[str, float]:
        """The metrics of every row seen so far (see the class docstring)."""
        self._require_fitted()
        cm = self._confusion
        n = int(cm.sum())
        nan = float("nan")
        tp = np.diag(cm).astype(np.float64)
        n_pred, n_true = cm.sum(axis=0), cm.sum(axis=1)
        present = (n_pred + n_true) > 0
        precision = _divide(tp, n_pred)[present]
        recall = _divide(tp, n_true)[present]
        f1 = _divide(2.0 * tp, n_pred + n_true)[present]
        out = {
            "accuracy": float(tp.sum() / n) if n else nan,
            "precision_macro": float(precision.mean()) if n else nan,
            "recall_macro": float(recall.mean()) if n else nan,
            "f1_macro": float(f1.mean()) if n else nan,
        }
        if self._with_scores:
            aucs = [auc for auc, _ in self._auc_per_class()]
            errors = np.abs(self._cal_correct - self._cal_confidence)
            out["roc_auc"] = float(np.mean(aucs)) if aucs else nan
            out["log_loss"] = self._log_loss_sum / n if n else nan
            out["ece"] = float(errors.sum() / n) if n else nan
        out["n_evaluated"] = float(n)
        out["n_missing_truth"] = float(self._n_missing)
        return out
