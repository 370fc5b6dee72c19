"""Pure trend logic: ordering, metric choice, version differences (hand-built tables)."""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring.track.trends import default_metrics, order_batches, version_differences


def _runs(rows):
    return pd.DataFrame(
        [
            {
                "model_version": v,
                "batch_id": b,
                "batch_time": pd.Timestamp(t),
                "status": "ok",
                "run_id": f"{v}-{b}",
                "perf/accuracy": a,
            }
            for v, b, t, a in rows
        ]
    )


def test_versions_compare_against_the_earliest_that_saw_the_batch():
    trend = order_batches(
        _runs(
            [
                ("1", "b1", "2026-01-01", 0.80),
                ("2", "b1", "2026-01-01", 0.85),
                ("3", "b1", "2026-01-01", 0.90),
                ("2", "b2", "2026-01-02", 0.70),
                ("3", "b2", "2026-01-02", 0.60),
                ("1", "b3", "2026-01-03", 0.50),
            ]
        )
    )
    diffs = version_differences(trend, ["perf/accuracy"]).sort_values(["batch_id", "model_version"])
    assert diffs[["batch_id", "model_version", "baseline_version"]].values.tolist() == [
        ["b1", "2", "1"],
        ["b1", "3", "1"],
        ["b2", "3", "2"],
    ]
    assert diffs["difference"].tolist() == pytest.approx([0.05, 0.10, -0.10])


def test_no_shared_batch_gives_an_empty_table():
    trend = order_batches(_runs([("1", "a", "2026-01-01", 0.8), ("2", "b", "2026-01-02", 0.9)]))
    assert version_differences(trend, ["perf/accuracy"]).empty


def test_batches_are_numbered_by_time_within_each_version():
    trend = order_batches(
        _runs(
            [
                ("2", "late", "2026-01-05", 0.1),
                ("10", "x", "2026-01-01", 0.2),
                ("2", "early", "2026-01-01", 0.3),
            ]
        )
    )
    assert trend[["model_version", "batch_id", "batch_seq"]].values.tolist() == [
        ["2", "early", 1],
        ["2", "late", 2],
        ["10", "x", 1],
    ]


def test_default_metrics_pick_the_decision_statistic_of_drifted_features_only():
    runs = pd.DataFrame(
        {
            "drift/dataset/drift": [0.0, 1.0],
            "drift/age/psi": [0.01, 0.3],
            "drift/age/psi_threshold": [0.2, 0.2],
            "drift/age/ks": [0.1, 0.2],
            "drift/age/drifted": [0.0, 1.0],
            "drift/city/chi2": [1.0, 2.0],
            "drift/city/chi2_threshold": [0.05, 0.05],
            "drift/city/drifted": [0.0, 0.0],
            "perf/accuracy": [0.9, 0.8],
            "perf/n_evaluated": [100.0, 100.0],
        }
    )
    assert default_metrics(runs) == ["drift/dataset/drift", "drift/age/psi", "perf/accuracy"]
