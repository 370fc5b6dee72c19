"""Estimated regression performance before the labels arrive (NannyML's "DLE" idea).

Two ridge regressions learn, from a sample of reference rows, a row's expected error
e = target - prediction given its features and prediction: one for |e|, one for e^2 relative
to the squared |e| estimate (E[e^2] / E[|e|]^2 is one number for noise of one shape, pi/2
if normal: so the e^2 map follows the |e| map's scale, also past the reference's range
under a covariate shift, instead of fitting the noisy e^2 anew). A batch's estimated MAE is
its rows' mean expected |e|, its RMSE the root of their mean expected e^2. The maps are
fitted on a seeded half of the sample and checked on the other, whose residuals size the
intervals: the maps' own uncertainty (the standard error of their mean residual) and a
floor on the batch's sampling noise. It assumes that P(target | inputs) is the reference's.

The feature map is small and fixed, learned from the fit half. Its columns, in order:

    intercept
    per numeric feature, then the prediction:  standardized value z (missing: 0), a hinge
        max(z - t, 0) per quantile edge t (missing: 0), one-hot of the bin on those edges
        (`bin_codes`: the last column marks missing); piecewise linear, with jumps, and
        extrapolated past the outer edges along the outer slopes
    per categorical feature:  one-hot of its `TOP_CATEGORIES` most frequent categories,
        then one column for any other category and one for missing
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from monitoring.collect.columns import bin_codes, label_codes, label_values, numeric_values
from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, unpack
from monitoring.errors import ColumnNotFoundError, ConfigError, InvalidValueError
from monitoring.measure.performance.estimates import CONFIDENCE, Estimate

__all__ = [
    "BINS",
    "MIN_ROWS",
    "RATIO_FLOOR",
    "RIDGE",
    "TOP_CATEGORIES",
    "ErrorModel",
    "EstimatedRegression",
    "fit_error_model",
    "split_rows",
]

MIN_ROWS = 200
"""Fewer usable reference rows (target and prediction known) than this: no error model."""
BINS = 8
"""Quantile bins per numeric feature (fewer where values repeat)."""
TOP_CATEGORIES = 20
"""Categories of a categorical feature that get their own column."""
RIDGE = 1.0
"""The ridge penalty (on the sum of squared residuals; the intercept is not penalized).
Every column is a standardized value or a 0/1 indicator, so 1.0 only matters for columns
that hold a handful of rows (a rare category): it keeps them near the intercept."""

RATIO_FLOOR = 1e-3
"""Squared expected |e| below this share of its mean on the fit half is raised to it before
e^2 is divided by it, so that a row predicted near-perfectly does not blow the ratio up."""

_Block = tuple[np.ndarray, np.ndarray, int]
"""One feature's encoding: its dense columns (rows x k, k = 0 for a categorical feature),
its codes, and how many codes there are (the one-hot columns)."""


def split_rows(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, check rows): a seeded permutation of range(n) cut in two disjoint halves,
    each sorted; the check half takes the odd row when n is odd."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def ridge_fit(design: np.ndarray, y: np.ndarray, *, ridge: float = RIDGE) -> np.ndarray:
    """Closed-form ridge coefficients; the first column (the intercept) is not penalized."""
    penalty = np.full(design.shape[1], ridge)
    penalty[0] = 0.0
    gram = design.T @ design + np.diag(penalty)
    return np.linalg.solve(gram, design.T @ y)


def _design(blocks: Sequence[_Block], n: int) -> np.ndarray:
    """The feature map as a dense matrix (fit only: a batch uses `_linear`)."""
    columns = [np.ones((n, 1))]
    for dense, codes, width in blocks:
        columns += [dense, np.eye(width)[codes]]  # the codes one-hot
    return np.hstack(columns)


def _linear(blocks: Sequence[_Block], coef: np.ndarray, n: int) -> np.ndarray:
    """`_design(blocks, n) @ coef` without building the matrix: one gather per feature."""
    out = np.full(n, coef[0])
    at = 1
    for dense, codes, width in blocks:
        k = dense.shape[1]
        out += dense @ coef[at : at + k] + coef[at + k : at + k + width][codes]
        at += k + width
    return out


def _listed(value: Any) -> Any:
    """Tuples (nested too) as lists and mappings as dicts, for JSON."""
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    return dict(value) if isinstance(value, Mapping) else value


def _column(frame: pd.DataFrame, name: str, where: str) -> pd.Series:
    if name not in frame.columns:
        raise ColumnNotFoundError(f"{where}: column {name!r} (used by the error model) is absent")
    return frame[name]


def _numeric_scale(values: np.ndarray, bins: int) -> tuple[float, float, tuple[float, ...]]:
    """(centre, scale, quantile edges) of the fit half's values of one numeric column."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return 0.0, 1.0, ()
    spread = float(present.std())
    quantiles = np.quantile(present, np.arange(1, bins) / bins)
    edges = tuple(float(e) for e in np.unique(quantiles))
    return float(present.mean()), spread if spread > 0 else 1.0, edges


def _top_categories(series: pd.Series, top: int) -> tuple[str, ...]:
    """The `top` most frequent categories, ties broken by name (so the fit is repeatable)."""
    counts = label_values(series).dropna().value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(str(name) for name, _ in ranked[:top])


@dataclass(frozen=True)
class ErrorModel:
    """The fitted maps from a row to its expected |e| and e^2, and the held-out `check`.

    `centres`, `scales` and `edges` hold one entry per numeric feature, then one for the
    prediction; `coef_abs` and `coef_ratio` follow the feature map of the module docstring.
    Expected |e| = max(map . coef_abs, 0) = a; expected e^2 = max(map . coef_ratio *
    max(a^2, ratio_floor), a^2), never below a^2 so that Var(|e|) is never negative.
    `check` holds the held-out figures: row counts (`n_fit`, `n_check`), realized and
    estimated mean |e| and e^2, the models' residual variances and the standard errors
    of their mean residuals.
    """

    numerical: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    prediction: str
    centres: tuple[float, ...]
    scales: tuple[float, ...]
    edges: tuple[tuple[float, ...], ...]
    categories: tuple[tuple[str, ...], ...]
    coef_abs: tuple[float, ...]
    coef_ratio: tuple[float, ...]
    ratio_floor: float
    check: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: names, lists of floats or strings, and the `check` figures."""
        return {f.name: _listed(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorModel:
        """The model that `to_dict` wrote."""
        try:
            return cls(
                numerical=tuple(str(c) for c in d["numerical"]),
                categorical=tuple(str(c) for c in d["categorical"]),
                target=str(d["target"]),
                prediction=str(d["prediction"]),
                centres=tuple(float(v) for v in d["centres"]),
                scales=tuple(float(v) for v in d["scales"]),
                edges=tuple(tuple(float(v) for v in e) for e in d["edges"]),
                categories=tuple(tuple(str(v) for v in c) for c in d["categories"]),
                coef_abs=tuple(float(v) for v in d["coef_abs"]),
                coef_ratio=tuple(float(v) for v in d["coef_ratio"]),
                ratio_floor=float(d["ratio_floor"]),
                check={str(k): float(v) for k, v in d["check"].items()},
            )
        except KeyError as exc:
            raise InvalidValueError(f"an error model lacks {exc}") from exc

    def _blocks(
        self, frame: pd.DataFrame, offset: int, where: str
    ) -> tuple[list[_Block], np.ndarray]:
        """The rows' encoding, and which rows have a prediction."""
        blocks: list[_Block] = []
        *numeric, prediction = [
            numeric_values(_column(frame, c, where), column=c, offset=offset, where=where)
            for c in (*self.numerical, self.prediction)
        ]
        for i, values in enumerate(numeric):
            blocks.append(self._numeric_block(values, i))
        for column, categories in zip(self.categorical, self.categories, strict=True):
            codes = label_codes(_column(frame, column, where), categories)
            blocks.append((np.empty((len(codes), 0)), codes, len(categories) + 2))
        blocks.append(self._numeric_block(prediction, len(self.numerical)))
        return blocks, ~np.isnan(prediction)

    def _numeric_block(self, values: np.ndarray, i: int) -> _Block:
        edges = np.asarray(self.edges[i], dtype=np.float64)
        z = (values - self.centres[i]) / self.scales[i]
        hinges = np.maximum(z[:, None] - (edges - self.centres[i]) / self.scales[i], 0.0)
        dense = np.nan_to_num(np.column_stack([z, hinges]), nan=0.0)
        return dense, bin_codes(values, edges), edges.size + 2

    def expected_errors(
        self, frame: pd.DataFrame, *, offset: int = 0, where: str = "batch"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row: expected |e| and expected e^2; NaN where the prediction is missing."""
        blocks, known = self._blocks(frame, offset, where)
        n = len(frame)
        expected_abs = np.maximum(_linear(blocks, np.asarray(self.coef_abs), n), 0.0)
        squared = expected_abs * expected_abs
        ratio = _linear(blocks, np.asarray(self.coef_ratio), n)
        expected_sq = np.maximum(ratio * np.maximum(squared, self.ratio_floor), squared)
        expected_abs[~known] = np.nan
        expected_sq[~known] = np.nan
        return expected_abs, expected_sq

    def accumulator(self) -> EstimatedRegression:
        """An empty `EstimatedRegression` for one batch."""
        return EstimatedRegression(self)


def fit_error_model(
    sample: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    target: str,
    prediction: str,
    seed: int = 0,
    ridge: float = RIDGE,
    bins: int = BINS,
    top_categories: int = TOP_CATEGORIES,
) -> ErrorModel | None:
    """The error model of a uniform sample of reference rows, or None when fewer than
    `MIN_ROWS` have both target and prediction. Fitted on one half (`split_rows`), checked
    on the other."""
    if not ridge > 0:
        raise ConfigError(f"`ridge` must be a number > 0, got {ridge!r}")
    if bins < 2:
        raise ConfigError(f"`bins` must be an integer >= 2, got {bins!r}")
    if top_categories < 1:
        raise ConfigError(f"`top_categories` must be an integer >= 1, got {top_categories!r}")
    where = "reference sample"

    def read(frame: pd.DataFrame, column: str) -> np.ndarray:
        return numeric_values(_column(frame, column, where), column=column, offset=0, where=where)

    y, yhat = read(sample, target), read(sample, prediction)
    usable = sample.loc[~np.isnan(y) & ~np.isnan(yhat)].reset_index(drop=True)
    if len(usable) < MIN_ROWS:
        return None
    fit_rows, check_rows = split_rows(len(usable), seed=seed)
    fit, held = usable.iloc[fit_rows], usable.iloc[check_rows]
    scales = [_numeric_scale(read(fit, c), bins) for c in (*numerical, prediction)]
    unfitted = ErrorModel(
        numerical=tuple(numerical),
        categorical=tuple(categorical),
        target=target,
        prediction=prediction,
        centres=tuple(s[0] for s in scales),
        scales=tuple(s[1] for s in scales),
        edges=tuple(s[2] for s in scales),
        categories=tuple(_top_categories(fit[c], top_categories) for c in categorical),
        coef_abs=(),
        coef_ratio=(),
        ratio_floor=0.0,
        check={},
    )
    blocks, _ = unfitted._blocks(fit, 0, where)
    design = _design(blocks, len(fit))
    error = read(fit, target) - read(fit, prediction)
    coef_abs = ridge_fit(design, np.abs(error), ridge=ridge)
    squared = np.maximum(design @ coef_abs, 0.0) ** 2
    floor = max(RATIO_FLOOR * float(squared.mean()), np.finfo(float).tiny)  # > 0: e = 0
    coef_ratio = ridge_fit(design, error * error / np.maximum(squared, floor), ridge=ridge)
    model = replace(
        unfitted,
        coef_abs=tuple(float(v) for v in coef_abs),
        coef_ratio=tuple(float(v) for v in coef_ratio),
        ratio_floor=floor,
    )
    held_error = read(held, target) - read(held, prediction)
    check = held_out_check(held_error, *model.expected_errors(held, where=where))
    return replace(model, check={"n_fit": float(len(fit)), **check})


def held_out_check(
    error: np.ndarray, expected_abs: np.ndarray, expected_sq: np.ndarray
) -> dict[str, float]:
    """The held-out figures of the two maps on rows with realized errors `error`.

    `*_residual_var`: the variance of realized minus expected per row; `*_mean_se`: the
    standard error of their mean (the maps' own uncertainty); `sq_dispersion`: the mean
    squared e^2 residual over the mean squared expected e^2, so that a batch's variance of
    e^2 follows its rows' scale (for noise of one shape, Var(e^2 | x) = k E[e^2 | x]^2).
    """
    n = error.size
    residual_abs = np.abs(error) - expected_abs
    residual_sq = error * error - expected_sq
    var_abs, var_sq = float(residual_abs.var(ddof=1)), float(residual_sq.var(ddof=1))
    return {
        "n_check": float(n),
        "mae_realized": float(np.abs(error).mean()),
        "mae_estimated": float(expected_abs.mean()),
        "mse_realized": float((error * error).mean()),
        "mse_estimated": float(expected_sq.mean()),
        "abs_residual_var": var_abs,
        "sq_residual_var": var_sq,
        "abs_mean_se": math.sqrt(var_abs / n),
        "sq_mean_se": math.sqrt(var_sq / n),
        "sq_dispersion": float(np.mean(residual_sq**2) / max(np.mean(expected_sq**2), 1e-300)),
    }


def estimated_intervals(
    n: int,
    sums: Mapping[str, float],
    check: Mapping[str, float],
    *,
    confidence: float = CONFIDENCE,
) -> dict[str, Estimate]:
    """MAE and RMSE estimates of `n` rows from the sums `EstimatedRegression` keeps.

    Var(MAE) = max(sum of per-row Var(|e|) / n^2, abs_residual_var / n) + abs_mean_se^2;
    Var(MSE) = max(sq_dispersion * sum of expected e^2 squared / n^2, sq_residual_var / n)
    + sq_mean_se^2, and RMSE's by the delta method. Lower bounds are clipped at 0.
    """
    if n == 0:
        return {m: Estimate(m, math.nan, math.nan, math.nan) for m in ("mae", "rmse")}
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mae = sums["abs"] / n
    var_mae = max(sums["var_abs"] / n**2, check["abs_residual_var"] / n)
    half_mae = z * math.sqrt(var_mae + check["abs_mean_se"] ** 2)
    mse = sums["sq"] / n
    var_mse = max(check["sq_dispersion"] * sums["sq_sq"] / n**2, check["sq_residual_var"] / n)
    se_mse = math.sqrt(var_mse + check["sq_mean_se"] ** 2)
    rmse = math.sqrt(mse)
    half_rmse = z * se_mse / (2 * rmse) if rmse > 0 else math.sqrt(z * se_mse)
    return {
        "mae": Estimate("mae", mae, max(mae - half_mae, 0.0), mae + half_mae),
        "rmse": Estimate("rmse", rmse, max(rmse - half_rmse, 0.0), rmse + half_rmse),
    }


_SUMS = ("abs", "sq", "var_abs", "sq_sq")


class EstimatedRegression:
    """Estimated MAE and RMSE of a batch (an accumulator): sums over the rows that have a
    prediction of expected |e|, expected e^2, per-row Var(|e|) = E[e^2] - E[|e|]^2 and
    expected e^2 squared. Rows without a prediction are skipped and counted."""

    def __init__(self, model: ErrorModel) -> None:
        self.model = model
        self.n = 0
        self.n_skipped = 0
        self.sums = dict.fromkeys(_SUMS, 0.0)

    def update(self, chunk: Chunk) -> None:
        expected_abs, expected_sq = self.model.expected_errors(
            chunk.frame, offset=chunk.offset, where=chunk.where
        )
        known = ~np.isnan(expected_abs)
        a, b = expected_abs[known], expected_sq[known]
        self.n += int(a.size)
        self.n_skipped += int(known.size - a.size)
        for key, values in zip(_SUMS, (a, b, b - a * a, b * b), strict=True):
            self.sums[key] += float(values.sum())

    def merge(self, other: EstimatedRegression) -> EstimatedRegression:
        self.n += other.n
        self.n_skipped += other.n_skipped
        for key in _SUMS:
            self.sums[key] += other.sums[key]
        return self

    def result(self) -> dict[str, Estimate]:
        """Estimates "mae" and "rmse" (NaN values while no row has a prediction)."""
        return estimated_intervals(self.n, self.sums, self.model.check)

    def to_state(self) -> bytes:
        return pack(n=self.n, n_skipped=self.n_skipped, sums=self.sums)

    def from_state(self, state: bytes) -> EstimatedRegression:
        _, values = unpack(state)
        out = EstimatedRegression(self.model)
        out.n, out.n_skipped = int(values["n"]), int(values["n_skipped"])
        out.sums = {key: float(values["sums"][key]) for key in _SUMS}
        return out
