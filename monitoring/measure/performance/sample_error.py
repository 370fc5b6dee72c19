"""Per-sample errors, used to pick the k worst samples of a batch.

Each function returns one float per row, NaN where the truth is missing, so that
`np.argsort` with NaN last (or `np.nan*` reductions) rank the rows that can be judged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitoring.errors import InvalidValueError
from monitoring.measure.performance.classification import LOG_LOSS_EPS
from monitoring.measure.performance.labels import read_label_text, read_labels, read_scores
from monitoring.measure.performance.regression import read_predictions, read_truth

__all__ = ["classification_error", "regression_error"]


def classification_error(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    classes: Sequence[str] | None = None,
    *,
    log_loss_eps: float = LOG_LOSS_EPS,
) -> np.ndarray:
    """Per-row error of a classifier: NaN where the truth is missing.

    With `scores` (which needs `classes`, the column order) it is the cross-entropy
    -ln p(true class), p clipped to [log_loss_eps, 1], whose mean is the log loss;
    `y_pred` is then ignored. Without scores it is 1.0 for a wrong `y_pred` and 0.0 for a
    right one, labels compared as str (and checked against `classes` when given).
    """
    if scores is not None:
        if classes is None:
            raise InvalidValueError("`classes` is needed to read `scores`: it names the columns")
        truth, missing = read_labels(y_true, classes, name="y_true")
        prob = read_scores(scores, truth.shape[0], list(classes))
        out = np.full(truth.shape[0], np.nan)
        rows = np.flatnonzero(~missing)
        p_true = np.clip(prob[rows, truth[rows]], log_loss_eps, 1.0)
        out[rows] = -np.log(p_true)
        return out
    if y_pred is None:
        raise InvalidValueError("give `y_pred` or `scores`")
    if classes is not None:
        truth, missing = read_labels(y_true, classes, name="y_true")
        pred, pred_missing = read_labels(y_pred, classes, name="y_pred")
    else:
        truth_text, missing = read_label_text(y_true, "y_true")
        pred_text, pred_missing = read_label_text(y_pred, "y_pred")
        truth = np.full(missing.shape[0], "", dtype=object)
        truth[~missing] = truth_text
        pred = np.full(pred_missing.shape[0], "", dtype=object)
        pred[~pred_missing] = pred_text
    if pred.shape[0] != truth.shape[0]:
        raise InvalidValueError(
            f"`y_pred` has {pred.shape[0]} rows but `y_true` has {truth.shape[0]}"
        )
    if pred_missing.any():
        row = int(np.flatnonzero(pred_missing)[0])
        raise InvalidValueError(f"`y_pred` is missing at position {row} of the chunk")
    out = (pred != truth).astype(np.float64)
    out[missing] = np.nan
    return out


def regression_error(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> np.ndarray:
    """Per-row absolute error |y - yhat|: NaN where the truth is missing."""
    y = read_truth(y_true)
    return np.abs(y - read_predictions(y_pred, y.shape[0]))
