"""Performance accumulators against scikit-learn, over one chunk, many chunks and merges.

Tolerances: 1e-12 (absolute and relative) for metrics computed exactly from counts or float
sums; ROC AUC within `roc_auc_error_bound() + 1e-12` of scikit-learn (exactly, to 1e-12,
on scores already at bin centres); R^2 around 1e9 to 1e-12 (plain Chan merges without
a shift are off by ~2e-10 there, sum-of-squares subtraction by more than 1).
"""

from __future__ import annotations

import math
import pickle
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import monitoring.measure.performance
from monitoring.errors import ConfigError, InvalidValueError, NotFittedError
from monitoring.measure.performance import (
    ClassificationMetrics,
    RegressionMetrics,
    classification_error,
    regression_error,
)
from monitoring.measure.performance.classification import LOG_LOSS_EPS, binned_roc_auc

EXACT = {"rel": 1e-12, "abs": 1e-12}
N_ROWS = 300


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _classification_data(
    n_classes: int, n: int = N_ROWS, seed: int = 0
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Classes c0..c{k-1}, object truth labels and informative softmax scores."""
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(n_classes)]
    truth = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), truth] += 1.0
    return classes, np.array(classes, dtype=object)[truth], _softmax(logits)


def _noisy_predictions(classes: list[str], y_true: np.ndarray, seed: int = 1) -> np.ndarray:
    """Truth with about a third of the rows replaced by a random class."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(y_true.shape[0]) < 0.35
    return np.where(wrong, rng.choice(classes, y_true.shape[0]), y_true).astype(object)


def _with_missing(y_true: np.ndarray, marker: object, every: int = 7) -> np.ndarray:
    out = y_true.astype(object).copy()
    out[::every] = marker
    return out


def _partial_presence_case() -> tuple:
    """c3 only predicted, c2 only true, c4 never seen: macro averages over c0..c3."""
    classes = [f"c{i}" for i in range(5)]
    y_true = np.array(["c0", "c1", "c2", "c0", "c1", "c2", "c0", "c1"], dtype=object)
    y_pred = np.array(["c0", "c1", "c3", "c1", "c1", "c0", "c3", "c0"], dtype=object)
    return classes, y_true, y_pred, None, y_pred


def _argmax_case(n_classes: int) -> tuple:
    """Scores only: the prediction is their argmax."""
    classes, y_true, scores = _classification_data(n_classes)
    return classes, y_true, None, scores, np.array(classes, dtype=object)[scores.argmax(axis=1)]


def _noisy_case(n_classes: int) -> tuple:
    """Scores and a separate prediction that disagrees with their argmax."""
    classes, y_true, scores = _classification_data(n_classes)
    y_pred = _noisy_predictions(classes, y_true)
    return classes, y_true, y_pred, scores, y_pred


LABEL_CASES = [
    pytest.param(lambda: _argmax_case(2), id="binary-argmax"),
    pytest.param(lambda: _argmax_case(3), id="3class-argmax"),
    pytest.param(lambda: _noisy_case(3), id="3class-noisy-pred"),
    pytest.param(_partial_presence_case, id="partial-presence"),
]
SCORE_CASES = [pytest.param(2, id="binary"), pytest.param(3, id="3class")]


@pytest.mark.parametrize("case", LABEL_CASES)
def test_label_metrics_match_sklearn(case) -> None:
    classes, y_true, y_pred, scores, effective = case()
    acc = ClassificationMetrics(classes)
    acc.update(y_true, y_pred, scores)
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_true, effective, average="macro", zero_division=0
    )
    expected = {
        "accuracy": skm.accuracy_score(y_true, effective),
        "precision_macro": p,
        "recall_macro": r,
        "f1_macro": f,
        "n_evaluated": float(len(y_true)),
        "n_missing_truth": 0.0,
    }
    got = {key: acc.result()[key] for key in expected}
    assert got == pytest.approx(expected, **EXACT)
    np.testing.assert_array_equal(
        acc.confusion_matrix(), skm.confusion_matrix(y_true, effective, labels=classes)
    )


@pytest.mark.parametrize("n_classes", SCORE_CASES)
def test_log_loss_matches_sklearn(n_classes: int) -> None:
    classes, y_true, scores = _classification_data(n_classes)
    acc = ClassificationMetrics(classes)
    acc.update(y_true, scores=scores)
    expected = skm.log_loss(y_true, scores, labels=classes)
    assert acc.result()["log_loss"] == pytest.approx(expected, **EXACT)


def _per_class_auc(classes: list[str], y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary: sklearn's AUC of classes[1]; else the mean of sklearn's per-class AUCs.

    Used where rows no longer sum to 1, which sklearn's multiclass OvR refuses.
    """
    per_class = [skm.roc_auc_score(y_true == c, scores[:, i]) for i, c in enumerate(classes)]
    return per_class[1] if len(classes) == 2 else float(np.mean(per_class))


def test_log_loss_clips_zero_probability_of_truth() -> None:
    acc = ClassificationMetrics(["a", "b"])
    acc.update(["a", "b"], scores=[[0.0, 1.0], [0.0, 1.0]])
    assert acc.result()["log_loss"] == pytest.approx(-math.log(LOG_LOSS_EPS) / 2, **EXACT)


def _sklearn_auc(classes: list[str], y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary: classes[1] against the rest; else one-vs-rest macro, both from sklearn."""
    binary = len(classes) == 2
    return (
        skm.roc_auc_score(y_true == classes[1], scores[:, 1])
        if binary
        else skm.roc_auc_score(y_true, scores, multi_class="ovr", average="macro", labels=classes)
    )


@pytest.mark.parametrize(
    "score_bins", [pytest.param(4096, id="4096-bins"), pytest.param(8, id="8-bins")]
)
@pytest.mark.parametrize("n_classes", SCORE_CASES)
def test_roc_auc_within_error_bound_of_sklearn(n_classes: int, score_bins: int) -> None:
    classes, y_true, scores = _classification_data(n_classes)
    acc = ClassificationMetrics(classes, score_bins=score_bins)
    acc.update(y_true, scores=scores)
    bound = acc.roc_auc_error_bound()
    assert 0.0 < bound < 0.5
    assert abs(acc.result()["roc_auc"] - _sklearn_auc(classes, y_true, scores)) <= bound + 1e-12


@pytest.mark.parametrize("n_classes", [*SCORE_CASES, pytest.param(4, id="4class")])
def test_roc_auc_exact_on_bin_centres(n_classes: int) -> None:
    bins = 16
    classes, y_true, scores = _classification_data(n_classes)
    centred = (np.minimum(np.floor(scores * bins), bins - 1) + 0.5) / bins
    acc = ClassificationMetrics(classes, score_bins=bins)
    acc.update(y_true, scores=centred)
    assert acc.result()["roc_auc"] == pytest.approx(
        _per_class_auc(classes, y_true, centred), **EXACT
    )


def test_multiclass_roc_auc_skips_classes_without_positives() -> None:
    classes, y_true, scores = _classification_data(3)
    y_two = np.where(y_true == "c2", "c0", y_true)
    acc = ClassificationMetrics(classes, score_bins=16)
    acc.update(y_two, scores=scores)
    expected = np.mean(
        [skm.roc_auc_score(y_two == c, scores[:, i]) for i, c in enumerate(["c0", "c1"])]
    )
    assert abs(acc.result()["roc_auc"] - expected) <= acc.roc_auc_error_bound() + 1e-12
    assert acc.roc_auc_error_bound() > 0


def test_binned_roc_auc_hand_example() -> None:
    # pairs: 3 positives x 2 negatives = 6; strictly above: 2*1 (bin 1 over bin 0)
    # + 1*2 (bin 2 over both) = 4; tied: 2*1 in bin 1 -> auc (4 + 2/2) / 6, bound (2/2) / 6.
    auc, bound = binned_roc_auc(np.array([0, 2, 1]), np.array([1, 1, 0]))
    assert (auc, bound) == pytest.approx((5 / 6, 1 / 6), **EXACT)


@pytest.mark.parametrize(
    ("positive_class", "column"),
    [pytest.param("c0", 0, id="positive-c0"), pytest.param(None, 1, id="default-classes1")],
)
def test_binary_roc_auc_uses_positive_class(positive_class: str | None, column: int) -> None:
    classes, y_true, scores = _classification_data(2)
    # Skew column 0 so that the two one-vs-rest AUCs differ once binned.
    skewed = np.column_stack([scores[:, 0] ** 2, scores[:, 1]])
    acc = ClassificationMetrics(classes, score_bins=16, positive_class=positive_class)
    acc.update(y_true, scores=skewed)
    expected = skm.roc_auc_score(y_true == classes[column], skewed[:, column])
    assert abs(acc.result()["roc_auc"] - expected) <= acc.roc_auc_error_bound() + 1e-12


def test_roc_auc_nan_when_truth_has_one_class() -> None:
    acc = ClassificationMetrics(["a", "b"])
    acc.update(["a", "a"], scores=[[0.9, 0.1], [0.2, 0.8]])
    assert math.isnan(acc.result()["roc_auc"])
    assert math.isnan(acc.roc_auc_error_bound())


def test_ece_hand_computation() -> None:
    scores = np.array(
        [
            [0.9, 0.05, 0.05],  # truth a, conf .9, bin [.75, 1], right
            [0.1, 0.8, 0.1],  # truth a, conf .8, bin [.75, 1], wrong
            [0.4, 0.35, 0.25],  # truth a, conf .4, bin [.25, .5), right
            [0.3, 0.3, 0.4],  # truth b, conf .4, bin [.25, .5), wrong
            [0.2, 0.6, 0.2],  # truth b, conf .6, bin [.5, .75), right
        ]
    )
    acc = ClassificationMetrics(["a", "b", "c"], calibration_bins=4)
    acc.update(["a", "a", "a", "b", "b"], scores=scores)
    # bins: 2 rows |0.5 - 0.85|, 2 rows |0.5 - 0.4|, 1 row |1 - 0.6|, over 5 rows
    expected = (2 * 0.35 + 2 * 0.1 + 1 * 0.4) / 5
    assert acc.result()["ece"] == pytest.approx(expected, **EXACT)
    assert expected == pytest.approx(0.26, **EXACT)


@pytest.mark.parametrize(
    "marker",
    [
        pytest.param(None, id="none"),
        pytest.param(np.nan, id="nan"),
        pytest.param(pd.NA, id="pd-na"),
    ],
)
def test_missing_truth_rows_are_skipped_and_counted(marker: object) -> None:
    classes, y_true, scores = _classification_data(3)
    y_pred = _noisy_predictions(classes, y_true)
    holed = _with_missing(y_true, marker)
    keep = np.ones(len(y_true), dtype=bool)
    keep[::7] = False
    acc, clean = ClassificationMetrics(classes), ClassificationMetrics(classes)
    acc.update(holed, y_pred, scores)
    clean.update(y_true[keep], y_pred[keep], scores[keep])
    expected = clean.result() | {"n_missing_truth": float((~keep).sum())}
    assert acc.result() == pytest.approx(expected, **EXACT)


def test_all_truth_missing_gives_nan_metrics_and_counts() -> None:
    acc = ClassificationMetrics(["a", "b"])
    acc.update([None, np.nan], scores=[[0.5, 0.5], [0.1, 0.9]])
    result = acc.result()
    assert (result["n_evaluated"], result["n_missing_truth"]) == (0.0, 2.0)
    assert [math.isnan(result[k]) for k in ("accuracy", "f1_macro", "roc_auc", "ece")] == [True] * 4


def test_integral_float_labels_match_integer_classes() -> None:
    # pandas turns an int column with a gap into float: 1.0 must match the class "1".
    y_true = np.asarray(pd.Series([0, 1, None, 1], dtype="Int64"))
    acc = ClassificationMetrics(["0", "1"])
    acc.update(y_true, [0, 1, 1, 0])
    result = acc.result()
    assert (result["accuracy"], result["n_missing_truth"]) == pytest.approx((2 / 3, 1.0), **EXACT)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        pytest.param(
            ["a", "b", "a", "zz"],
            ["a", "b", "a", "b"],
            "`y_true` has label 'zz' at position 3",
            id="truth",
        ),
        pytest.param(
            ["a", None, "a", "b"],
            ["a", "b", "a", "zz"],
            "`y_pred` has label 'zz' at position 3",
            id="prediction",
        ),
        pytest.param(
            ["a", "b"], ["a", None], "`y_pred` is missing at position 1", id="missing-pred"
        ),
        pytest.param(["a", "b"], ["a"], "`y_pred` has 1 rows", id="length"),
    ],
)
def test_bad_labels_are_named_with_their_position(y_true: list, y_pred: list, message: str) -> None:
    acc = ClassificationMetrics(["a", "b"])
    with pytest.raises(InvalidValueError, match=message):
        acc.update(y_true, y_pred)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        pytest.param([[0.5, -0.2], [0.5, 0.5]], "-0.2 at position 0, class 'b'", id="negative"),
        pytest.param([[0.5, 0.5], [1.5, 0.0]], "1.5 at position 1, class 'a'", id="above-one"),
        pytest.param([[0.5, 0.5], [np.nan, 0.5]], "nan at position 1", id="nan"),
        pytest.param([[np.inf, 0.5], [0.5, 0.5]], "inf at position 0", id="inf"),
        pytest.param([[0.5, 0.5]], r"shape \(2, 2\)", id="wrong-shape"),
    ],
)
def test_invalid_scores_are_rejected(scores: list, message: str) -> None:
    acc = ClassificationMetrics(["a", "b"])
    with pytest.raises(InvalidValueError, match=message):
        acc.update(["a", "b"], scores=scores)


def test_rejected_chunk_leaves_state_unchanged() -> None:
    acc = ClassificationMetrics(["a", "b"])
    acc.update(["a", "b", "b"], scores=[[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    before = acc.result()
    with pytest.raises(InvalidValueError):
        acc.update(["a", "b"], scores=[[0.7, 0.3], [0.4, 1.6]])
    assert acc.result() == before


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: ClassificationMetrics(["a", "b"]).result(), id="classification-result"
        ),
        pytest.param(lambda: ClassificationMetrics(["a", "b"]).confusion_matrix(), id="confusion"),
        pytest.param(
            lambda: ClassificationMetrics(["a", "b"]).roc_auc_error_bound(), id="auc-bound"
        ),
        pytest.param(lambda: RegressionMetrics().result(), id="regression-result"),
    ],
)
def test_result_before_update_raises_not_fitted(call) -> None:
    with pytest.raises(NotFittedError, match="update"):
        call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"classes": ["a"]}, "`classes`", id="one-class"),
        pytest.param({"classes": ["a", "a"]}, "`classes`", id="duplicate-class"),
        pytest.param({"classes": ["a", "b"], "score_bins": 0}, "`score_bins`", id="score-bins"),
        pytest.param(
            {"classes": ["a", "b"], "calibration_bins": 1.5},
            "`calibration_bins`",
            id="calibration-bins",
        ),
        pytest.param(
            {"classes": ["a", "b"], "positive_class": "z"},
            "`positive_class`",
            id="unknown-positive",
        ),
        pytest.param(
            {"classes": ["a", "b", "c"], "positive_class": "a"},
            "`positive_class`",
            id="positive-multiclass",
        ),
        pytest.param({"classes": ["a", "b"], "log_loss_eps": 0.0}, "`log_loss_eps`", id="eps"),
    ],
)
def test_invalid_settings_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClassificationMetrics(**kwargs)


def test_scores_must_be_given_always_or_never() -> None:
    with_scores, without = ClassificationMetrics(["a", "b"]), ClassificationMetrics(["a", "b"])
    with_scores.update(["a"], scores=[[0.6, 0.4]])
    without.update(["a"], ["a"])
    with pytest.raises(InvalidValueError, match="with `scores`"):
        with_scores.update(["a"], ["a"])
    with pytest.raises(InvalidValueError, match="with `scores`"):
        with_scores.merge(without)


def test_merge_refuses_different_classes() -> None:
    with pytest.raises(ConfigError, match="`classes`"):
        ClassificationMetrics(["a", "b"]).merge(ClassificationMetrics(["b", "a"]))


def _fit_classification(
    classes: list[str],
    parts: list[slice],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray,
) -> ClassificationMetrics:
    acc = ClassificationMetrics(classes)
    for part in parts:
        acc.update(y_true[part], y_pred[part], scores[part])
    return acc


def _chunking_case(n_classes: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    classes, y_true, scores = _classification_data(n_classes, seed=n_classes)
    return (
        classes,
        _with_missing(y_true, None, every=11),
        _noisy_predictions(classes, y_true),
        scores,
    )


def _slices(cuts: list[int]) -> list[slice]:
    return [slice(a, b) for a, b in pairwise([0, *sorted(cuts), N_ROWS])]


@pytest.mark.parametrize("n_classes", SCORE_CASES)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(cuts=st.lists(st.integers(0, N_ROWS), max_size=12))
def test_classification_chunking_does_not_change_result(n_classes: int, cuts: list[int]) -> None:
    data = _chunking_case(n_classes)
    whole = _fit_classification(data[0], [slice(None)], *data[1:])
    chunked = _fit_classification(data[0], _slices(cuts), *data[1:])
    assert chunked.result() == pytest.approx(whole.result(), **EXACT)
    assert chunked.roc_auc_error_bound() == pytest.approx(whole.roc_auc_error_bound(), **EXACT)
    np.testing.assert_array_equal(chunked.confusion_matrix(), whole.confusion_matrix())


@pytest.mark.parametrize("n_classes", SCORE_CASES)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(cut=st.integers(0, N_ROWS))
def test_classification_merge_equals_single_pass(n_classes: int, cut: int) -> None:
    data = _chunking_case(n_classes)
    whole = _fit_classification(data[0], [slice(None)], *data[1:])
    left = _fit_classification(data[0], [slice(0, cut)], *data[1:])
    right = _fit_classification(data[0], [slice(cut, None)], *data[1:])
    merged = ClassificationMetrics(data[0]).merge(left).merge(right)
    assert merged.result() == pytest.approx(whole.result(), **EXACT)
    np.testing.assert_array_equal(merged.confusion_matrix(), whole.confusion_matrix())


def _fit_classification_rows(n: int) -> ClassificationMetrics:
    rng = np.random.default_rng(n)
    acc = ClassificationMetrics(["c0", "c1", "c2"])
    acc.update(rng.choice(["c0", "c1", "c2"], n), scores=_softmax(rng.normal(size=(n, 3))))
    return acc


def _fit_regression_rows(n: int) -> RegressionMetrics:
    rng = np.random.default_rng(n)
    acc = RegressionMetrics()
    acc.update(rng.normal(size=n), rng.normal(size=n))
    return acc


@pytest.mark.parametrize(
    "fit",
    [
        pytest.param(_fit_classification_rows, id="classification"),
        pytest.param(_fit_regression_rows, id="regression"),
    ],
)
def test_state_size_does_not_grow_with_rows(fit) -> None:
    # Only the width of pickled counters may change (a few bytes); keeping rows would add
    # at least 8 bytes for each of the 19,990 extra rows.
    assert len(pickle.dumps(fit(20_000))) <= len(pickle.dumps(fit(10))) + 32


# --- regression --------------------------------------------------------------------------


def _regression_data(
    n: int = N_ROWS, offset: float = 50.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Truth around `offset` (spread 10) with a few exact zeros, predictions with noise."""
    rng = np.random.default_rng(seed)
    y_true = offset + rng.normal(0.0, 10.0, n)
    y_true[::13] = 0.0
    return y_true, y_true + rng.normal(0.0, 3.0, n)


def _sklearn_regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    nonzero = y_true != 0
    return {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": math.sqrt(skm.mean_squared_error(y_true, y_pred)),
        "r2": skm.r2_score(y_true, y_pred),
        "mape": skm.mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero]),
        "mape_excluded": float((~nonzero).sum()),
        "n_evaluated": float(len(y_true)),
        "n_missing_truth": 0.0,
    }


def test_regression_matches_sklearn() -> None:
    y_true, y_pred = _regression_data()
    acc = RegressionMetrics()
    acc.update(y_true, y_pred)
    assert acc.result() == pytest.approx(_sklearn_regression(y_true, y_pred), **EXACT)


@pytest.mark.parametrize(
    "marker",
    [
        pytest.param(None, id="none"),
        pytest.param(np.nan, id="nan"),
        pytest.param(pd.NA, id="pd-na"),
    ],
)
def test_regression_missing_truth_skipped_and_counted(marker: object) -> None:
    y_true, y_pred = _regression_data()
    keep = np.ones(len(y_true), dtype=bool)
    keep[::7] = False
    acc = RegressionMetrics()
    acc.update(_with_missing(y_true, marker, every=7), y_pred)
    expected = _sklearn_regression(y_true[keep], y_pred[keep]) | {
        "n_missing_truth": float((~keep).sum())
    }
    assert acc.result() == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        pytest.param(
            [1.0, 2.0, 3.0], [1.0, np.nan, 3.0], "`y_pred` has nan at position 1", id="nan-pred"
        ),
        pytest.param(
            [1.0, 2.0, 3.0], [1.0, 2.0, -np.inf], "`y_pred` has -inf at position 2", id="inf-pred"
        ),
        pytest.param([1.0, np.inf], [1.0, 2.0], "`y_true` has inf at position 1", id="inf-truth"),
        pytest.param(["1", "x"], [1.0, 2.0], "`y_true` has 'x' at position 1", id="text-truth"),
        pytest.param([1.0, 2.0], [1.0], "`y_pred` has 1 rows", id="length"),
    ],
)
def test_regression_bad_values_are_named_with_their_position(
    y_true: list, y_pred: list, message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message):
        RegressionMetrics().update(y_true, y_pred)


def test_r2_stable_far_from_zero() -> None:
    # y ~ 1e9 with spread 1: sum(y**2) - n * mean**2 would lose every digit of SS_tot.
    rng = np.random.default_rng(3)
    y_true = 1e9 + rng.normal(0.0, 1.0, 2_000)
    y_pred = y_true + rng.normal(0.0, 0.5, 2_000)
    bounds = np.sort(rng.integers(0, 2_000, 40))
    parts = [slice(a, b) for a, b in pairwise([0, *bounds, 2_000])]
    chunked, left, right = RegressionMetrics(), RegressionMetrics(), RegressionMetrics()
    for part in parts:
        chunked.update(y_true[part], y_pred[part])
    left.update(y_true[:700], y_pred[:700])
    right.update(y_true[700:], y_pred[700:])
    expected = skm.r2_score(y_true, y_pred)
    assert 0.5 < expected < 0.95
    assert chunked.result()["r2"] == pytest.approx(expected, rel=0, abs=1e-12)
    assert right.merge(left).result()["r2"] == pytest.approx(expected, rel=0, abs=1e-12)


@pytest.mark.parametrize(
    ("y_pred", "expected"),
    [
        pytest.param([5.0, 5.0, 5.0], 1.0, id="perfect"),
        pytest.param([5.0, 4.0, 5.0], 0.0, id="imperfect"),
    ],
)
def test_r2_of_constant_truth_follows_sklearn(y_pred: list[float], expected: float) -> None:
    acc = RegressionMetrics()
    acc.update([5.0, 5.0, 5.0], y_pred)
    assert acc.result()["r2"] == skm.r2_score([5.0, 5.0, 5.0], y_pred) == expected


@settings(max_examples=25, deadline=None, derandomize=True)
@given(cuts=st.lists(st.integers(0, N_ROWS), max_size=12), cut=st.integers(0, N_ROWS))
def test_regression_chunking_and_merge_do_not_change_result(cuts: list[int], cut: int) -> None:
    y_true, y_pred = _regression_data(seed=5)
    y_true = _with_missing(y_true, np.nan, every=17).astype(float)
    whole, chunked, left, right = (RegressionMetrics() for _ in range(4))
    whole.update(y_true, y_pred)
    for part in _slices(cuts):
        chunked.update(y_true[part], y_pred[part])
    left.update(y_true[:cut], y_pred[:cut])
    right.update(y_true[cut:], y_pred[cut:])
    assert chunked.result() == pytest.approx(whole.result(), **EXACT)
    assert RegressionMetrics().merge(left).merge(right).result() == pytest.approx(
        whole.result(), **EXACT
    )


# --- per-sample errors -------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", SCORE_CASES)
def test_cross_entropy_per_sample_averages_to_sklearn_log_loss(n_classes: int) -> None:
    classes, y_true, scores = _classification_data(n_classes)
    holed = _with_missing(y_true, None)
    errors = classification_error(holed, scores=scores, classes=classes)
    keep = ~pd.isna(holed)
    np.testing.assert_array_equal(np.isnan(errors), ~keep)
    expected = skm.log_loss(y_true[keep], scores[keep], labels=classes)
    assert np.mean(errors[keep]) == pytest.approx(expected, **EXACT)


def test_cross_entropy_clips_zero_probability() -> None:
    errors = classification_error(["a", "b"], scores=[[0.0, 1.0], [0.0, 1.0]], classes=["a", "b"])
    np.testing.assert_allclose(errors, [-math.log(LOG_LOSS_EPS), 0.0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "classes", [pytest.param(None, id="no-classes"), pytest.param(["c0", "c1", "c2"], id="classes")]
)
def test_zero_one_error_per_sample(classes: list[str] | None) -> None:
    names, y_true, _ = _classification_data(3)
    y_pred = _noisy_predictions(names, y_true)
    errors = classification_error(_with_missing(y_true, pd.NA), y_pred, classes=classes)
    keep = np.ones(len(y_true), dtype=bool)
    keep[::7] = False
    assert set(np.unique(errors[keep])) == {0.0, 1.0}
    assert np.isnan(errors[~keep]).all()
    assert np.mean(errors[keep]) == pytest.approx(
        1 - skm.accuracy_score(y_true[keep], y_pred[keep]), **EXACT
    )


def test_classification_error_unknown_label_is_named() -> None:
    with pytest.raises(InvalidValueError, match="'zz' at position 1"):
        classification_error(["a", "zz"], scores=[[0.5, 0.5], [0.5, 0.5]], classes=["a", "b"])


def test_regression_error_is_absolute_error_with_nan_for_missing() -> None:
    y_true, y_pred = _regression_data()
    holed = _with_missing(y_true, None)
    errors = regression_error(holed, y_pred)
    keep = ~pd.isna(holed)
    np.testing.assert_array_equal(np.isnan(errors), ~keep)
    assert np.mean(errors[keep]) == pytest.approx(
        skm.mean_absolute_error(y_true[keep], y_pred[keep]), **EXACT
    )


def test_package_exports() -> None:
    assert sorted(monitoring.measure.performance.__all__) == [
        "ClassificationMetrics",
        "RegressionMetrics",
        "classification_error",
        "regression_error",
    ]
    assert all(
        hasattr(monitoring.measure.performance, name)
        for name in monitoring.measure.performance.__all__
    )
