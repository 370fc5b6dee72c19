"""The batch plots show the verdict the status uses: the overview's bar colours and title
agree with `report.drifted_features` and the run description; titles give the reason."""

from __future__ import annotations

import pytest
from conftest import make_frame
from matplotlib.colors import to_hex

from monitoring import evaluate
from monitoring.measure.drift_verdict import SMALL_EFFECT, drift_reason, features_drifted
from monitoring.track.description import markdown_summary
from monitoring.track.drift_plots import (
    DRIFT_COLOR,
    VERDICT_COLORS,
    plot_distribution,
    plot_drift_overview,
)


@pytest.fixture
def report(reference_frame, drifted_frame):
    return evaluate(drifted_frame, reference_frame, target="label")


def _labels(ax) -> dict[int, str]:
    """y position -> tick label (the column, with its role unless a feature)."""
    ticks = zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    return {round(y): label.get_text() for y, label in ticks}


def _bars_of(ax) -> dict:
    """Each bar's label -> the bar."""
    labels = _labels(ax)
    return {labels[round(p.get_y() + p.get_height() / 2)]: p for p in ax.patches}


def _bars(ax) -> dict[str, str]:
    """Each bar's label -> its colour."""
    return {label: to_hex(p.get_facecolor()) for label, p in _bars_of(ax).items()}


def test_overview_colours_and_title_agree_with_the_report_and_description(report):
    ax = plot_drift_overview(report.columns).axes[0]
    bars = _bars(ax)
    features = [c.column for c in report.columns if c.role == "feature"]
    red = [name for name in features if bars[name] == to_hex(DRIFT_COLOR)]
    assert red == [n for n in features if n in report.drifted_features] == ["x"]
    others = {f"{c.column} ({c.role})": c.drifted for c in report.columns if c.role != "feature"}
    assert {name: bars[name] == to_hex(DRIFT_COLOR) for name in others} == others
    count = features_drifted(report.columns)
    assert count == f"{len(report.drifted_features)} of {len(features)} input features drifted"
    assert ax.get_title().startswith(f"{count};")
    assert f"\n- {count} (x)\n" in markdown_summary(report, title="b1")
    assert "effect / its floor" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "drifted"


def test_overview_colours_a_big_statistic_by_its_final_verdict():
    """Like the demo's `region`: x has the batch's largest statistic and is significant, but
    its effect is under the floor, so ok: its bar is not red and stays short of the line."""
    quiet = evaluate(
        make_frame(60_000, seed=5, shift=0.05), make_frame(20_000, seed=1), target="label"
    )
    x = quiet.column("x")
    features = [c for c in quiet.columns if c.role == "feature"]
    assert max(features, key=lambda c: c.decision_score.statistic) is x
    assert x.significant and not x.drifted and quiet.drifted_features == []
    ax = plot_drift_overview(quiet.columns).axes[0]
    bar = _bars_of(ax)["x"]
    assert to_hex(bar.get_facecolor()) == to_hex(VERDICT_COLORS[SMALL_EFFECT])
    assert 0 < bar.get_width() < 1
    assert ax.get_title().startswith("0 of 3 input features drifted;")
    assert "under the floor" in drift_reason(x)


def test_distribution_title_gives_the_verdict_and_its_reason(report):
    x, size = report.column("x"), report.column("size")
    assert plot_distribution(x).axes[0].get_title() == (
        f"x: drifted \u2014 {drift_reason(x, short=True)}"
    )
    title = plot_distribution(size).axes[0].get_title()
    assert title.startswith("size: ok \u2014 not significant, adjusted p ")
