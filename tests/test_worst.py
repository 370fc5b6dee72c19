"""WorstSamples: the streamed top k equals a full sort, however scoring is deferred."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.explain.worst_samples import WorstSamples


class _ColumnScorer:
    """Anomaly score = the value of column `x`; counts the rows it was asked to score."""

    def __init__(self) -> None:
        self.scored = 0

    def assess(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        self.scored += len(rows)
        scores = rows["x"].to_numpy(dtype=np.float64)
        return scores, scores > 2.0

    def explain(self, rows: pd.DataFrame) -> list[str]:
        return [f"x={v:.2f}" for v in rows["x"]]


def _stream(worst: WorstSamples, frame: pd.DataFrame, errors: np.ndarray, chunk: int) -> int:
    """Offer `frame` in chunks; the most rows held (kept or waiting) after any chunk."""
    held = 0
    for start in range(0, len(frame), chunk):
        rows = frame.iloc[start : start + chunk]
        worst.offer(rows, errors[start : start + chunk], offset=start)
        held = max(held, worst._errors.size)
    return held


@pytest.mark.parametrize("hard", [True, False], ids=["tied errors", "continuous errors"])
@pytest.mark.parametrize("limit", [0, 60, 10_000])
@pytest.mark.parametrize("chunk", [7, 100, 5_000])
def test_top_k_equals_a_full_sort(hard, limit, chunk):
    rng = np.random.default_rng(3)
    n, k = 5_000, 20
    frame = pd.DataFrame({"x": rng.normal(size=n), "color": rng.choice(["r", "g"], n)})
    errors = rng.integers(0, 2, n).astype(float) if hard else rng.random(n)
    errors[rng.random(n) < 0.1] = np.nan  # rows without an error never enter
    scorer = _ColumnScorer()
    worst = WorstSamples(k, scorer, pending_limit=limit)
    held = _stream(worst, frame, errors, chunk)
    result = worst.result()

    known = np.flatnonzero(~np.isnan(errors))
    x = frame["x"].to_numpy()
    expected = known[np.lexsort((known, -x[known], -errors[known]))][:k]
    np.testing.assert_array_equal(result["row"].to_numpy(), expected)
    np.testing.assert_array_equal(result["error"].to_numpy(), errors[expected])
    np.testing.assert_array_equal(result["anomaly_score"].to_numpy(), x[expected])
    front = ["row", "error", "anomaly_score", "anomalous", "anomaly_features"]
    assert list(result.columns[:5]) == front
    assert result["color"].tolist() == frame["color"].to_numpy()[expected].tolist()
    # Memory stays O(k): past the limit, the waiting rows are scored and cut to k.
    assert k <= held <= max(limit, 4 * k, 1000)


def test_continuous_errors_are_scored_once_at_the_end():
    rng = np.random.default_rng(4)
    n, k = 20_000, 10
    frame = pd.DataFrame({"x": rng.normal(size=n)})
    scorer = _ColumnScorer()
    worst = WorstSamples(k, scorer)
    _stream(worst, frame, rng.random(n), 1_000)
    assert scorer.scored == 0  # nothing scored while streaming
    worst.result()
    # Only rows at or above the final k-th error are scored: exactly k without ties.
    assert scorer.scored == k


def test_without_a_scorer_and_with_k_zero():
    errors = np.array([0.5, 0.9, np.nan, 0.9, 0.1])
    frame = pd.DataFrame({"x": np.arange(5.0)})
    worst = WorstSamples(2)
    worst.offer(frame, errors, offset=10)
    assert worst.result()["row"].tolist() == [11, 13]
    none = WorstSamples(0)
    none.offer(frame, errors, offset=0)
    assert none.result().empty
