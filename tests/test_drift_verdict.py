"""A column's verdict explains itself: the reason for each path to it, the scale its plot
uses, and the drift table that shows the final verdict beside each method's own."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from monitoring import MonitoringConfig, evaluate
from monitoring.core.config import DriftConfig
from monitoring.measure.drift import ColumnDrift, MethodScore
from monitoring.measure.drift_verdict import (
    DRIFTED,
    NOT_SIGNIFICANT,
    OK,
    SMALL_EFFECT,
    decision_scale,
    drift_reason,
    features_drifted,
    verdict_kind,
)


def _column(
    *,
    drifted: bool,
    significant: bool | None,
    statistic: float = 0.35,
    threshold: float = 0.0077,
    p_value: float | None = 1e-117,
    adjusted: float | None = 1.419e-115,
    effect: float | None = 0.033,
    min_effect: float | None = 0.05,
    method: str = "psi",
    correction: str | None = "holm",
    n_tests: int | None = 31,
    role: str = "feature",
    name: str = "region",
) -> ColumnDrift:
    """A categorical column decided as given: `method` decides, `tvd` is the effect (its
    statistic is the effect plus a no-drift mean of 0.01)."""
    scores = [MethodScore(method, statistic, p_value, threshold, drifted)]
    if effect is not None:
        scores.append(MethodScore("tvd", effect + 0.01, None, 0.03, True, null_mean=0.01))
    calibrated = significant is not None
    return ColumnDrift(
        column=name,
        role=role,
        kind="categorical",
        scores=tuple(scores),
        decision_method=method,
        drifted=drifted,
        n=2000,
        missing_rate=0.0,
        reference_missing_rate=0.0,
        unseen_rate=0.0,
        reference_counts=np.array([10, 10, 0]),
        batch_counts=np.array([9, 9, 2]),
        bin_labels=("a", "b", "(unseen)"),
        effect_method="tvd" if calibrated and effect is not None else None,
        min_effect=min_effect if calibrated else None,
        adjusted_p_value=adjusted if calibrated else None,
        significant=significant,
        correction=correction if calibrated else None,
        n_tests=n_tests if calibrated else None,
    )


@pytest.mark.parametrize(
    ("column", "reason", "kind"),
    [
        pytest.param(
            _column(drifted=True, significant=True, effect=0.21, adjusted=3.1e-8),
            "effect 0.21 over the floor 0.05, adjusted p 3e-8",
            DRIFTED,
            id="significant-and-big",
        ),
        pytest.param(
            _column(drifted=False, significant=True),
            "significant (adjusted p 1e-115) but effect 0.033 under the floor 0.05",
            SMALL_EFFECT,
            id="significant-small-effect",
        ),
        pytest.param(
            _column(drifted=False, significant=False, p_value=0.012, adjusted=0.37, effect=0.2),
            "not significant after Holm over 31 tests (p 0.012, adjusted 0.37)",
            NOT_SIGNIFICANT,
            id="not-significant",
        ),
        pytest.param(
            _column(drifted=False, significant=False, p_value=0.3, adjusted=0.3, correction="none"),
            "not significant (p 0.3)",
            NOT_SIGNIFICANT,
            id="not-significant-no-correction",
        ),
        pytest.param(
            _column(drifted=True, significant=None, statistic=0.31, threshold=0.25),
            "fixed rule: psi 0.31 > 0.25",
            DRIFTED,
            id="fixed-distance-drifted",
        ),
        pytest.param(
            _column(drifted=False, significant=None, statistic=0.12, threshold=0.2),
            "fixed rule: psi 0.12 <= 0.2",
            OK,
            id="fixed-distance-ok",
        ),
        pytest.param(
            _column(drifted=True, significant=None, statistic=0.0501, threshold=0.05),
            "fixed rule: psi 0.0501 > 0.05",
            DRIFTED,
            id="fixed-digits-tell-the-numbers-apart",
        ),
        pytest.param(
            _column(drifted=True, significant=None, method="chi2", p_value=0.003, threshold=0.05),
            "fixed rule: chi2 p 0.003 < 0.05",
            DRIFTED,
            id="fixed-test-drifted",
        ),
    ],
)
def test_the_reason_names_the_path_to_the_verdict(column, reason, kind):
    assert drift_reason(column) == reason
    assert verdict_kind(column) == kind


def test_a_column_without_values_says_so():
    empty = replace(_column(drifted=False, significant=False, effect=None), scores=())
    assert drift_reason(empty) == "no values in the batch"
    assert decision_scale(empty) is None


@pytest.mark.parametrize(
    ("column", "short"),
    [
        pytest.param(
            _column(drifted=True, significant=True, effect=0.21, adjusted=3.1e-8),
            "effect 0.21 \u2265 floor 0.05, adjusted p 3e-8",
            id="drifted",
        ),
        pytest.param(
            _column(drifted=False, significant=True),
            "effect 0.033 < floor 0.05, adjusted p 1e-115",
            id="small-effect",
        ),
        pytest.param(
            _column(drifted=False, significant=False, adjusted=0.37),
            "not significant, adjusted p 0.37",
            id="not-significant",
        ),
        pytest.param(
            _column(drifted=True, significant=None, statistic=0.31, threshold=0.25),
            "psi 0.31 > 0.25",
            id="fixed",
        ),
    ],
)
def test_the_short_reason_fits_a_plot_title(column, short):
    assert drift_reason(column, short=True) == short


@pytest.mark.parametrize(
    ("column", "scale"),
    [
        pytest.param(_column(drifted=False, significant=True), 0.033 / 0.05, id="effect/floor"),
        pytest.param(
            _column(drifted=True, significant=None, statistic=0.31, threshold=0.25),
            0.31 / 0.25,
            id="fixed-distance",
        ),
        pytest.param(
            _column(drifted=True, significant=None, method="chi2", p_value=0.0025, threshold=0.05),
            2.0,
            id="fixed-test-log-p",
        ),
        pytest.param(
            _column(drifted=True, significant=True, effect=0.2, min_effect=0.0),
            math.inf,
            id="floor-zero",
        ),
    ],
)
def test_the_decision_scale_puts_the_line_at_one(column, scale):
    assert decision_scale(column) == pytest.approx(scale)


def test_the_count_is_over_input_features_only():
    columns = (
        _column(drifted=True, significant=True, effect=0.2, name="a"),
        _column(drifted=False, significant=True, name="b"),
        _column(drifted=True, significant=True, effect=0.2, name="p", role="prediction"),
    )
    assert features_drifted(columns) == "1 of 2 input features drifted"


def test_the_drift_table_shows_the_final_verdict_beside_each_methods(
    reference_frame, drifted_frame
):
    report = evaluate(drifted_frame, reference_frame, target="label")
    table = report.drift_table
    decisions = table[table["decision"]].set_index("feature")
    assert list(decisions.index) == [c.column for c in report.columns]
    for column in report.columns:
        rows = table[table["feature"] == column.column]
        assert rows["drifted"].eq(column.drifted).all()
        assert rows["reason"].eq(drift_reason(column)).all()
        assert list(rows["method_drifted"]) == [s.drifted for s in column.scores]
        assert decisions.loc[column.column, "adjusted_p_value"] == column.adjusted_p_value
        assert rows.loc[~rows["decision"], "adjusted_p_value"].isna().all()
    features = decisions[decisions["role"] == "feature"]
    assert list(features.index[features["drifted"]]) == report.drifted_features == ["x"]
    assert decisions.loc["x", "reason"].startswith("effect ")
    assert decisions.loc["size", "reason"].startswith("not significant after Holm over ")


def test_the_drift_table_in_fixed_mode_gives_the_rule(reference_frame, drifted_frame):
    config = MonitoringConfig(drift=DriftConfig(decision_mode="fixed"))
    report = evaluate(drifted_frame, reference_frame, target="label", config=config)
    decisions = report.drift_table.query("decision").set_index("feature")
    assert decisions.loc["x", "reason"].startswith("fixed rule: psi ")
    assert " > " in decisions.loc["x", "reason"] and decisions.loc["x", "drifted"]
    assert decisions["adjusted_p_value"].isna().all()
