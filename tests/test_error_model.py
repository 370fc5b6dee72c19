"""The regression error model (estimated MAE and RMSE without labels): hand computations
of the feature map, the estimates and their intervals; disjoint fit and check halves;
round trips of the model and of the accumulator's state; and the statistical contract on
heteroscedastic data: unbiased and covering under a covariate shift, caught out by a
concept drift."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from monitoring.core.accumulator import Chunk
from monitoring.errors import ColumnNotFoundError, ConfigError
from monitoring.measure.performance.error_model import (
    MIN_ROWS,
    ErrorModel,
    EstimatedRegression,
    fit_error_model,
    split_rows,
)
from monitoring.measure.performance.estimates import CONFIDENCE

ROLES = {"numerical": ["x1", "x2"], "categorical": ["group"], "target": "y", "prediction": "pred"}
GROUPS = np.array(["a", "b", "c", "d"])


def _rows(n: int, rng: np.random.Generator, *, shift: float = 0.0, noise: float = 1.0):
    """y = f(x) + noise with sd 0.5 + |x1| (times `noise`), predicted by f(x)."""
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.uniform(-2.0, 2.0, n)
    group = GROUPS[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])]
    f = 2.0 * x1 + np.sin(x2) + 0.5 * (group == "a")
    y = f + (0.5 + np.abs(x1)) * noise * rng.standard_normal(n)
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group, "y": y, "pred": f})


def _chunk(frame: pd.DataFrame, offset: int = 0) -> Chunk:
    return Chunk(frame.drop(columns="y"), offset, "batch test")


def _run(model: ErrorModel, *frames: pd.DataFrame) -> EstimatedRegression:
    acc = model.accumulator()
    for frame in frames:
        acc.update(_chunk(frame))
    return acc


@pytest.fixture(scope="module")
def small() -> ErrorModel:
    model = fit_error_model(_rows(400, np.random.default_rng(7)), **ROLES, seed=1)
    assert model is not None
    return model


@pytest.fixture(scope="module")
def large() -> ErrorModel:
    model = fit_error_model(_rows(20_000, np.random.default_rng(0)), **ROLES, seed=0)
    assert model is not None
    return model


TINY_BATCH = pd.DataFrame(
    {
        "x1": [-3.0, -0.4, 0.0, np.nan, 0.9, 2.5, 1.0],
        "x2": [0.5, np.nan, -1.9, 1.0, 0.0, 1.5, 0.2],
        "group": ["a", "d", None, "b", "zz", "c", "a"],  # "zz" unseen, None missing
        "y": np.zeros(7),
        "pred": [-5.0, 0.1, 1.0, 2.0, np.nan, 6.0, 2.5],  # row 4: no prediction
    }
)


def _hand_design(d: dict, frame: pd.DataFrame) -> np.ndarray:
    """The feature map of the module docstring, column by column from `to_dict`."""
    columns = [np.ones(len(frame))]

    def numeric(i: int, values: np.ndarray) -> None:
        centre, scale, edges = d["centres"][i], d["scales"][i], np.array(d["edges"][i])
        z = (values - centre) / scale
        columns.append(np.nan_to_num(z))
        for t in edges:
            columns.append(np.nan_to_num(np.maximum(z - (t - centre) / scale, 0.0)))
        bins = [int(np.sum(edges <= v)) if v == v else len(edges) + 1 for v in values]
        columns.extend(np.eye(len(edges) + 2)[bins].T)

    for i, name in enumerate(d["numerical"]):
        numeric(i, frame[name].to_numpy(dtype=float))
    for name, categories in zip(d["categorical"], d["categories"], strict=True):
        size = len(categories)
        codes = [
            size + 1 if v is None else categories.index(v) if v in categories else size
            for v in frame[name]
        ]
        columns.extend(np.eye(size + 2)[codes].T)
    numeric(len(d["numerical"]), frame[d["prediction"]].to_numpy(dtype=float))
    return np.column_stack(columns)


def test_expected_errors_follow_the_feature_map_by_hand(small: ErrorModel) -> None:
    d = small.to_dict()
    design = _hand_design(d, TINY_BATCH)
    assert design.shape[1] == len(d["coef_abs"]) == len(d["coef_ratio"])
    a = np.maximum(design @ d["coef_abs"], 0.0)
    ratio = design @ d["coef_ratio"]
    b = np.maximum(ratio * np.maximum(a * a, d["ratio_floor"]), a * a)
    a[4] = b[4] = np.nan
    expected_abs, expected_sq = small.expected_errors(TINY_BATCH)
    np.testing.assert_allclose(expected_abs, a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(expected_sq, b, rtol=1e-12, atol=1e-12)
    assert np.all(np.delete(expected_sq - expected_abs**2, 4) >= 0)


def test_estimates_and_interval_widths_by_hand(small: ErrorModel) -> None:
    a, b = small.expected_errors(TINY_BATCH)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    n, check = a.size, small.check
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    var_mae = max(np.sum(b - a * a) / n**2, check["abs_residual_var"] / n)
    half_mae = z * math.sqrt(var_mae + check["abs_mean_se"] ** 2)
    mse = b.mean()
    var_mse = max(check["sq_dispersion"] * np.sum(b * b) / n**2, check["sq_residual_var"] / n)
    half_rmse = z * math.sqrt(var_mse + check["sq_mean_se"] ** 2) / (2 * math.sqrt(mse))
    result = _run(small, TINY_BATCH).result()
    mae, rmse = result["mae"], result["rmse"]
    assert mae.value == pytest.approx(a.mean(), rel=1e-12)
    assert rmse.value == pytest.approx(math.sqrt(mse), rel=1e-12)
    assert mae.upper - mae.value == pytest.approx(half_mae, rel=1e-12)
    assert rmse.upper - rmse.value == pytest.approx(half_rmse, rel=1e-12)
    assert mae.lower == pytest.approx(max(a.mean() - half_mae, 0.0), rel=1e-12, abs=1e-12)
    assert rmse.lower == pytest.approx(max(math.sqrt(mse) - half_rmse, 0.0), abs=1e-12)


def test_fit_and_check_halves_are_disjoint_and_cover_the_rows() -> None:
    fit, check = split_rows(1001, seed=3)
    assert np.intersect1d(fit, check).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, check])), np.arange(1001))
    assert (fit.size, check.size) == (500, 501)
    np.testing.assert_array_equal(split_rows(1001, seed=3)[0], fit)
    assert not np.array_equal(split_rows(1001, seed=4)[0], fit)


def test_the_check_counts_the_usable_rows_once() -> None:
    sample = _rows(1000, np.random.default_rng(2))
    sample.loc[:99, "y"] = np.nan
    sample.loc[950:, "pred"] = np.nan
    model = fit_error_model(sample, **ROLES)
    assert model is not None
    assert (model.check["n_fit"], model.check["n_check"]) == (425.0, 425.0)


def test_to_dict_round_trip_gives_identical_expected_errors(small: ErrorModel) -> None:
    again = ErrorModel.from_dict(json.loads(json.dumps(small.to_dict())))
    assert again == small
    mine, theirs = small.expected_errors(TINY_BATCH), again.expected_errors(TINY_BATCH)
    np.testing.assert_array_equal(mine[0], theirs[0])
    np.testing.assert_array_equal(mine[1], theirs[1])


def test_merged_states_equal_one_pass(small: ErrorModel) -> None:
    rows = _rows(3000, np.random.default_rng(3), shift=0.4)
    one = _run(small, rows)
    empty = small.accumulator()
    first = empty.from_state(_run(small, rows.iloc[:1234]).to_state())
    second = empty.from_state(_run(small, rows.iloc[1234:]).to_state())
    merged = first.merge(second)
    assert merged.n == one.n == 3000
    for key, value in one.sums.items():
        assert merged.sums[key] == pytest.approx(value, rel=1e-12)
    for name, estimate in one.result().items():
        for bound in ("value", "lower", "upper"):
            got = getattr(merged.result()[name], bound)
            assert got == pytest.approx(getattr(estimate, bound), rel=1e-12)


def test_missing_predictions_are_skipped_and_missing_features_are_encoded(
    small: ErrorModel,
) -> None:
    acc = _run(small, TINY_BATCH)
    without = _run(small, TINY_BATCH.drop(index=4))
    assert (acc.n, acc.n_skipped) == (6, 1)
    for name, estimate in without.result().items():
        got = acc.result()[name]
        assert (got.value, got.lower, got.upper) == pytest.approx(
            (estimate.value, estimate.lower, estimate.upper), rel=1e-12
        )
    expected_abs, expected_sq = small.expected_errors(TINY_BATCH)
    assert np.isfinite(np.delete(expected_abs, 4)).all()
    assert np.isfinite(np.delete(expected_sq, 4)).all()


def test_no_rows_give_nan_estimates(small: ErrorModel) -> None:
    result = small.accumulator().result()
    assert sorted(result) == ["mae", "rmse"]
    assert all(math.isnan(e.value) and math.isnan(e.lower) for e in result.values())


def test_a_perfect_model_is_estimated_perfect() -> None:
    sample = _rows(500, np.random.default_rng(6)).assign(y=lambda f: f["pred"])
    model = fit_error_model(sample, **ROLES)
    assert model is not None
    result = _run(model, sample).result()
    assert [(e.value, e.lower, e.upper) for e in result.values()] == [(0.0, 0.0, 0.0)] * 2


def test_too_few_usable_rows_give_no_model() -> None:
    sample = _rows(MIN_ROWS + 50, np.random.default_rng(4))
    assert fit_error_model(sample, **ROLES) is not None
    sample.loc[:50, "y"] = np.nan  # 51 rows lost: 199 left
    assert fit_error_model(sample, **ROLES) is None


def test_a_missing_column_and_a_bad_penalty_are_named(small: ErrorModel) -> None:
    with pytest.raises(ColumnNotFoundError, match="'x2'"):
        small.expected_errors(TINY_BATCH.drop(columns="x2"))
    with pytest.raises(ConfigError, match="`ridge`"):
        fit_error_model(_rows(300, np.random.default_rng(5)), **ROLES, ridge=0.0)


BATCH_ROWS = 2000


def _batches(
    model: ErrorModel, batches: int, *, shift: float, noise: float, seed: int
) -> dict[str, np.ndarray]:
    """Per batch and metric: (estimate, lower, upper, realized)."""
    rng = np.random.default_rng(1000 + seed)
    out: dict[str, list[tuple[float, float, float, float]]] = {"mae": [], "rmse": []}
    for _ in range(batches):
        rows = _rows(BATCH_ROWS, rng, shift=shift, noise=noise)
        error = (rows["y"] - rows["pred"]).to_numpy()
        realized = {"mae": np.abs(error).mean(), "rmse": math.sqrt(np.mean(error**2))}
        for name, e in _run(model, rows).result().items():
            out[name].append((e.value, e.lower, e.upper, realized[name]))
    return {name: np.array(values) for name, values in out.items()}


@pytest.fixture(scope="module")
def covariate_shift() -> dict[str, np.ndarray]:
    """10 reference draws of 20,000 rows, each model then estimating 10 batches: the
    intervals include the fitted maps' own uncertainty, which only varies across draws."""
    parts = []
    for seed in range(10):
        model = fit_error_model(_rows(20_000, np.random.default_rng(seed)), **ROLES, seed=seed)
        assert model is not None
        parts.append(_batches(model, 10, shift=0.5, noise=1.0, seed=seed))
    return {name: np.concatenate([p[name] for p in parts]) for name in ("mae", "rmse")}


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_estimates_hold_under_a_covariate_shift(
    covariate_shift: dict[str, np.ndarray], metric: str
) -> None:
    """x1 ~ N(0.5, 1) instead of N(0, 1), the noise model unchanged, 100 batches of 2000
    rows: mean relative error within 0.03, the 95% intervals cover in >= 85% of batches."""
    value, lower, upper, realized = covariate_shift[metric].T
    assert abs(np.mean(value / realized - 1)) <= 0.03
    assert np.mean((lower <= realized) & (realized <= upper)) >= 0.85


def test_concept_drift_falls_outside_the_intervals(large: ErrorModel) -> None:
    """The noise sd doubled: the realized MAE and RMSE leave the interval in most batches."""
    drifted = _batches(large, 100, shift=0.0, noise=2.0, seed=0)
    for values in drifted.values():
        _, lower, upper, realized = values.T
        assert np.mean((realized < lower) | (realized > upper)) >= 0.9
