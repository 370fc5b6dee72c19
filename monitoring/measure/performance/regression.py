"""Regression metrics accumulated chunk by chunk in constant memory.

The accumulator keeps a handful of sums and the shifted mean / M2 of the truth, merged
with Chan et al.'s parallel formula, so R^2 stays accurate when y sits far from zero
(y ~ 1e9 with a spread of 1), where sum-of-squares subtraction loses every digit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitoring.core.state import pack, unpack
from monitoring.errors import InvalidValueError, NotFittedError

__all__ = ["RegressionMetrics", "combine_moments", "read_predictions", "read_truth"]


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, for readable messages."""
    return value.item() if isinstance(value, np.generic) else value


def _as_float(values: npt.ArrayLike, name: str) -> np.ndarray:
    """Return a 1-D float array, missing values (None, NaN, pd.NA) as NaN."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidValueError(f"`{name}` must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    out = np.asarray(pd.to_numeric(arr, errors="coerce"), dtype=np.float64)
    unparsable = np.flatnonzero(np.isnan(out) & ~np.asarray(pd.isna(arr), dtype=bool))
    if unparsable.size:
        row = int(unparsable[0])
        raise InvalidValueError(
            f"`{name}` has {_plain(arr[row])!r} at position {row} of the chunk, "
            "which is not a number"
        )
    return out


def read_truth(values: npt.ArrayLike, *, name: str = "y_true") -> np.ndarray:
    """Truth as float64, NaN where missing; an infinite value raises InvalidValueError."""
    y = _as_float(values, name)
    infinite = np.flatnonzero(np.isinf(y))
    if infinite.size:
        row = int(infinite[0])
        raise InvalidValueError(f"`{name}` has {float(y[row])!r} at position {row} of the chunk")
    return y


def read_predictions(values: npt.ArrayLike, n_rows: int, *, name: str = "y_pred") -> np.ndarray:
    """Predictions as float64; a missing or non-finite one raises InvalidValueError."""
    y = _as_float(values, name)
    if y.shape[0] != n_rows:
        raise InvalidValueError(f"`{name}` has {y.shape[0]} rows but `y_true` has {n_rows}")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        row = int(bad[0])
        raise InvalidValueError(
            f"`{name}` has {float(y[row])!r} at position {row} of the chunk: predictions must be "
            f"finite ({bad.size} such row(s))"
        )
    return y


def combine_moments(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> tuple[int, float, float]:
    """Chan et al.'s merge of (count, mean, M2) of two disjoint samples in one frame.

    M2 is the sum of squared deviations from the mean. No sum of squares is subtracted,
    so nothing cancels catastrophically.
    """
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return (n, mean_b, m2_b) if n_a == 0 else (n, mean_a, m2_a)
    delta = mean_b - mean_a
    return n, mean_a + delta * (n_b / n), m2_a + m2_b + delta * delta * (n_a * n_b / n)


def _moments_of(values: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, M2) of a non-empty array."""
    mean = float(values.mean())
    deviations = values - mean
    return int(values.size), mean, float(deviations @ deviations)


class RegressionMetrics:
    """MAE, RMSE, R^2 and MAPE over many chunks, in constant memory.

    - Rows with missing (NaN) truth are skipped and counted in `n_missing_truth`.
    - R^2 = 1 - SSE / SS_tot, SS_tot from the truth's mean and M2 kept relative to a
      shift (the first truth value seen) and merged with `combine_moments`. As in
      scikit-learn's `r2_score`, constant truth gives 1.0 for a perfect fit and 0.0
      otherwise; fewer than 2 rows give NaN.
    - MAPE = mean |y - yhat| / |y| over rows with y != 0, as a fraction (not percent);
      rows with y == 0 are left out and counted in `mape_excluded`.

    Metrics are NaN while no row has truth.
    """

    def __init__(self) -> None:
        self._fitted = False
        self._n_missing = 0
        self._abs_sum = 0.0
        self._sq_sum = 0.0
        self._shift: float | None = None  # first truth value seen: the frame of _mean
        self._moments: tuple[int, float, float] = (0, 0.0, 0.0)
        self._ape_sum = 0.0
        self._ape_count = 0
        self._ape_excluded = 0
        # (count, mean, M2) of each row's |e| and e^2: their variances, for tests
        self._abs_moments: tuple[int, float, float] = (0, 0.0, 0.0)
        self._sq_moments: tuple[int, float, float] = (0, 0.0, 0.0)

    def update(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> None:
        """Add one chunk; a rejected chunk leaves the accumulator unchanged."""
        y_all = read_truth(y_true)
        yhat_all = read_predictions(y_pred, y_all.shape[0])
        known = ~np.isnan(y_all)
        y, yhat = y_all[known], yhat_all[known]
        self._fitted = True
        self._n_missing += int((~known).sum())
        if y.size == 0:
            return
        err = np.abs(y - yhat)
        squared = err * err
        self._abs_sum += float(err.sum())
        self._sq_sum += float(squared.sum())
        self._abs_moments = combine_moments(self._abs_moments, _moments_of(err))
        self._sq_moments = combine_moments(self._sq_moments, _moments_of(squared))
        if self._shift is None:
            self._shift = float(y[0])
        centred = y - self._shift
        mean = float(centred.mean())
        chunk = (int(y.size), mean, float(((centred - mean) ** 2).sum()))
        self._moments = combine_moments(self._moments, chunk)
        nonzero = y != 0
        self._ape_sum += float((err[nonzero] / np.abs(y[nonzero])).sum())
        self._ape_count += int(nonzero.sum())
        self._ape_excluded += int(y.size - nonzero.sum())

    def merge(self, other: RegressionMetrics) -> RegressionMetrics:
        """Return a new accumulator equal to one fitted on the data of both."""
        out = RegressionMetrics()
        out._fitted = self._fitted or other._fitted
        out._n_missing = self._n_missing + other._n_missing
        out._abs_sum = self._abs_sum + other._abs_sum
        out._sq_sum = self._sq_sum + other._sq_sum
        out._ape_sum = self._ape_sum + other._ape_sum
        out._ape_count = self._ape_count + other._ape_count
        out._ape_excluded = self._ape_excluded + other._ape_excluded
        out._abs_moments = combine_moments(self._abs_moments, other._abs_moments)
        out._sq_moments = combine_moments(self._sq_moments, other._sq_moments)
        out._shift = self._shift if self._shift is not None else other._shift
        n_b, mean_b, m2_b = other._moments
        if other._shift is not None and out._shift is not None:
            mean_b += other._shift - out._shift  # move other's mean into out's frame
        out._moments = combine_moments(self._moments, (n_b, mean_b, m2_b))
        return out

    def to_state(self) -> bytes:
        """The sums and moments (`core.state`)."""
        return pack(
            fitted=self._fitted,
            n_missing=self._n_missing,
            abs_sum=self._abs_sum,
            sq_sum=self._sq_sum,
            shift=self._shift,
            moments=list(self._moments),
            ape_sum=self._ape_sum,
            ape_count=self._ape_count,
            ape_excluded=self._ape_excluded,
            abs_moments=list(self._abs_moments),
            sq_moments=list(self._sq_moments),
        )

    def from_state(self, state: bytes) -> RegressionMetrics:
        """An accumulator holding `state`."""
        _, values = unpack(state)
        out = RegressionMetrics()
        out._fitted, out._n_missing = values["fitted"], values["n_missing"]
        out._abs_sum, out._sq_sum, out._shift = values["abs_sum"], values["sq_sum"], values["shift"]
        n, mean, m2 = values["moments"]
        out._moments = (n, mean, m2)
        out._ape_sum, out._ape_count = values["ape_sum"], values["ape_count"]
        out._ape_excluded = values["ape_excluded"]
        out._abs_moments = tuple(values["abs_moments"])  # type: ignore[assignment]
        out._sq_moments = tuple(values["sq_moments"])  # type: ignore[assignment]
        return out

    def error_moments(self) -> dict[str, tuple[int, float, float]]:
        """(count, mean, M2) of each evaluated row's absolute error (`mae`) and squared
        error (`mse`): what a test of MAE or RMSE needs."""
        if not self._fitted:
            raise NotFittedError("call update() with at least one chunk first")
        return {"mae": self._abs_moments, "mse": self._sq_moments}

    def result(self) -> dict[str, float]:
        """The metrics of every row seen so far (see the class docstring)."""
        if not self._fitted:
            raise NotFittedError("call update() with at least one chunk first")
        n, _, ss_tot = self._moments
        nan = float("nan")
        if n < 2:
            r2 = nan
        elif ss_tot == 0.0:
            r2 = 1.0 if self._sq_sum == 0.0 else 0.0
        else:
            r2 = 1.0 - self._sq_sum / ss_tot
        return {
            "mae": self._abs_sum / n if n else nan,
            "rmse": float(np.sqrt(self._sq_sum / n)) if n else nan,
            "r2": r2,
            "mape": self._ape_sum / self._ape_count if self._ape_count else nan,
            "mape_excluded": float(self._ape_excluded),
            "n_evaluated": float(n),
            "n_missing_truth": float(self._n_missing),
        }
