"""Plots of the trend table: artists counted and read back, PNGs written (Agg backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from monitoring.errors import ColumnNotFoundError, DataError
from monitoring.track.comparison import build_comparison
from monitoring.track.comparison_plots import (
    STATUS_COLORS,
    comparison_figures,
    feature_columns,
    plot_drift_heatmap,
    plot_estimated_performance,
    plot_metric_over_batches,
    plot_performance,
    save_comparison_plots,
)
from monitoring.track.trends import default_metrics, estimated_metric_names, trend_table

NAN = float("nan")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHARE = "drift/dataset/share_drifted"

# Per version, 8 batches in batch_seq order.
COLUMNS = {
    "1": {
        "status": ["ok", "ok", "ok", "ok", "ok", "drift", "ok", "ok"],
        "drift/dataset/drift": [0, 0, 0, 0, 0, 1, 0, 0],
        SHARE: [0, 0, 1 / 3, 0, 1 / 3, 2 / 3, 1 / 3, 0],
        "drift/age/psi": [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08],
        "drift/age/psi_threshold": [0.2] * 8,
        "drift/age/ks": [0.1] * 8,
        "drift/geo/region/psi": [0.02] * 8,
        "perf/accuracy": [0.9, 0.89, NAN, 0.87, 0.86, 0.85, 0.84, 0.83],
        "perf/roc_auc": [0.95] * 8,
    },
    "2": {
        "status": ["ok", "ok", "ok", "ok", "ok", "ok", "drift", "alert"],
        "drift/dataset/drift": [0, 0, 0, 0, 0, 0, 1, 1],
        SHARE: [0, NAN, 0, 1 / 3, 0, 1 / 3, 2 / 3, 1],
        "drift/age/psi": [0.05, 0.1, 0.15, 0.2, NAN, 0.3, 0.35, 0.4],
        "drift/age/psi_threshold": [0.2] * 8,
        "drift/age/ks": [0.2] * 8,
        "drift/geo/region/psi": [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.3, 0.3],
        "perf/accuracy": [0.92] * 8,
        "perf/roc_auc": [0.96, 0.96, 0.95, 0.95, 0.94, 0.94, 0.93, 0.93],
    },
}
FEATURES = ["age", "geo/region"]


def make_trend(n_batches: int = 8) -> pd.DataFrame:
    """2 versions x n batches; version 2 sees batches w03.. (it was deployed later)."""
    frames = []
    for offset, (version, values) in enumerate(COLUMNS.items()):
        seq = np.arange(1, n_batches + 1)
        frame = pd.DataFrame(
            {
                "model_version": version,
                "batch_id": [f"w{s + 2 * offset:02d}" for s in seq],
                "batch_seq": seq,
                "batch_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(seq * 7, "D"),
                "run_id": [f"run-{version}-{s}" for s in seq],
            }
        )
        frames.append(frame.assign(**{k: np.resize(v, n_batches) for k, v in values.items()}))
    trend = pd.concat(frames, ignore_index=True)
    trend.loc[3, "batch_time"] = pd.NaT
    return trend


def make_alerts() -> pd.DataFrame:
    """share_drifted > 0.5 fires at v1 batch 6 and v2 batches 7, 8; an age rule at v2 6."""
    trend = make_trend()
    share = trend[["model_version", "batch_id", "batch_seq"]].assign(
        rule="share>0.5", metric=SHARE, alert=trend[SHARE] > 0.5
    )
    age = trend[["model_version", "batch_id", "batch_seq"]].assign(
        rule="age-psi", metric="drift/age/psi", alert=trend["drift/age/psi"] > 0.25
    )
    return pd.concat([share, age], ignore_index=True)


@pytest.fixture
def trend() -> pd.DataFrame:
    return make_trend()


def _gid(artists, gid: str) -> list:
    return [a for a in artists if a.get_gid() == gid]


# plot_metric_over_batches


def test_metric_plot_has_one_line_per_version_with_gaps(trend):
    figure = plot_metric_over_batches(trend, SHARE)
    ax = figure.axes[0]
    lines = _gid(ax.lines, "version")
    assert isinstance(figure, Figure)
    assert [line.get_label() for line in lines] == ["version 1", "version 2"]
    np.testing.assert_array_equal(lines[1].get_ydata(), COLUMNS["2"][SHARE])
    assert ax.get_title() == SHARE
    # where two versions give the same values, the later one's dashes show the earlier's line
    assert lines[0].get_linestyle() == "-" and lines[1].get_linestyle() == "--"
    assert lines[0].get_linewidth() > lines[1].get_linewidth()


def test_metric_plot_markers_are_coloured_by_status_and_skip_nan(trend):
    ax = plot_metric_over_batches(trend, SHARE).axes[0]
    markers = _gid(ax.collections, "status")
    colours = [to_hex(c) for c in markers[1].get_facecolors()]
    expected = [STATUS_COLORS[s] for s in COLUMNS["2"]["status"]]
    expected.pop(1)  # the NaN at batch 2 has no marker
    assert [len(m.get_offsets()) for m in markers] == [8, 7]
    assert colours == expected


def test_metric_plot_legend_always_lists_every_status(trend):
    only_ok = trend.assign(status="ok")
    legend = plot_metric_over_batches(only_ok, SHARE).axes[0].get_legend()
    assert {"ok", "drift", "alert"} <= {t.get_text() for t in legend.get_texts()}


def test_alert_markers_sit_at_exactly_the_alerting_batches(trend):
    ax = plot_metric_over_batches(trend, SHARE, alerts=make_alerts()).axes[0]
    markers = {line.get_label(): list(line.get_xdata()) for line in _gid(ax.lines, "alerts")}
    assert markers == {"alerts, version 1": [6.0], "alerts, version 2": [7.0, 8.0]}


def test_alerts_for_other_metrics_draw_no_markers(trend):
    ax = plot_metric_over_batches(trend, "perf/accuracy", alerts=make_alerts()).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert (_gid(ax.lines, "alerts"), "alert fired" in legend) == ([], False)


def test_threshold_draws_one_horizontal_line(trend):
    ax = plot_metric_over_batches(trend, SHARE, threshold=0.5).axes[0]
    (line,) = _gid(ax.lines, "threshold")
    assert list(line.get_ydata()) == [0.5, 0.5]


def test_few_batches_label_every_tick_with_batch_ids(trend):
    ax = plot_metric_over_batches(trend, SHARE).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [f"w{s:02d}\nw{s + 2:02d}" for s in range(1, 9)]


def test_many_batches_get_sparse_ticks():
    ax = plot_metric_over_batches(make_trend(40), SHARE).axes[0]
    assert 2 <= len(ax.get_xticks()) <= 10


def test_metric_plot_draws_on_a_given_axes(trend):
    figure = Figure()
    ax = figure.add_subplot()
    assert plot_metric_over_batches(trend, SHARE, ax=ax) is figure


def test_missing_metric_names_the_available_columns(trend):
    with pytest.raises(ColumnNotFoundError, match="perf/accuracy"):
        plot_metric_over_batches(trend, "perf/f1")


# plot_drift_heatmap


@pytest.mark.parametrize(
    ("columns", "features"),
    [
        pytest.param(["drift/age/psi"], {"age": "drift/age/psi"}, id="plain"),
        pytest.param(["drift/geo/region/psi"], {"geo/region": "drift/geo/region/psi"}, id="slash"),
        pytest.param(["drift/a/psi/psi"], {"a/psi": "drift/a/psi/psi"}, id="method-in-name"),
        pytest.param(["drift/dataset/psi", "drift/age/ks"], {}, id="dataset-and-other-method"),
        pytest.param(["drift/age/psi_threshold", "drift/psi", "perf/psi"], {}, id="not-psi"),
    ],
)
def test_feature_columns_parse(columns, features):
    assert feature_columns(columns, "psi") == features


def test_heatmap_image_is_features_by_batches_with_the_table_values(trend):
    ax = plot_drift_heatmap(trend, model_version="2").axes[0]
    (image,) = ax.images
    expected = [COLUMNS["2"]["drift/age/psi"], COLUMNS["2"]["drift/geo/region/psi"]]
    assert image.get_array().shape == (2, 8)
    np.testing.assert_array_equal(image.get_array().filled(NAN), expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == FEATURES
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"w{s:02d}" for s in range(3, 11)]


def test_heatmap_has_a_colorbar(trend):
    figure = plot_drift_heatmap(trend)
    assert len(figure.axes) == 2


def test_heatmap_outlines_exactly_the_cells_above_threshold(trend):
    ax = plot_drift_heatmap(trend, model_version="2", threshold=0.2).axes[0]
    cells = sorted(p.get_xy() for p in _gid(ax.patches, "above-threshold"))
    # (column, row) - 0.5: age at batches 6-8, geo/region at batches 7-8.
    assert cells == [(4.5, -0.5), (5.5, -0.5), (5.5, 0.5), (6.5, -0.5), (6.5, 0.5)]


@pytest.mark.parametrize(
    ("keep", "shown"),
    [
        pytest.param(lambda t: t, "2", id="tie-takes-last-listed"),
        pytest.param(lambda t: t[~((t.model_version == "2") & (t.batch_seq > 5))], "1", id="most"),
    ],
)
def test_heatmap_defaults_to_the_version_with_most_batches(trend, keep, shown):
    ax = plot_drift_heatmap(keep(trend)).axes[0]
    assert ax.get_title().startswith(f"psi per feature, model version {shown}")


def test_heatmap_other_method(trend):
    (image,) = plot_drift_heatmap(trend, method="ks", model_version="1").axes[0].images
    np.testing.assert_array_equal(image.get_array(), [COLUMNS["1"]["drift/age/ks"]])


def test_heatmap_unknown_version_lists_the_versions(trend):
    with pytest.raises(DataError, match="versions: 1, 2"):
        plot_drift_heatmap(trend, model_version="3")


def test_heatmap_without_method_columns_fails_clearly(trend):
    with pytest.raises(ColumnNotFoundError, match="wasserstein"):
        plot_drift_heatmap(trend, method="wasserstein")


# plot_performance


def test_performance_has_one_axes_per_metric_with_a_line_per_version(trend):
    figure = plot_performance(trend)
    assert [ax.get_title() for ax in figure.axes] == ["perf/accuracy", "perf/roc_auc"]
    assert [len(_gid(ax.lines, "version")) for ax in figure.axes] == [2, 2]


def test_performance_grid_has_at_most_three_columns(trend):
    wide = trend.assign(**{"perf/f1": 0.8, "perf/precision": 0.7})
    figure = plot_performance(wide)
    geometry = {ax.get_subplotspec().get_geometry()[:2] for ax in figure.axes}
    assert (len(figure.axes), geometry) == (4, {(2, 3)})


def test_performance_on_a_given_axes_draws_every_metric_there(trend):
    figure = Figure()
    ax = figure.add_subplot()
    plot_performance(trend, ax=ax)
    assert (len(figure.axes), len(_gid(ax.lines, "version"))) == (1, 4)


def test_performance_selected_metrics(trend):
    figure = plot_performance(trend, metrics=["perf/roc_auc"])
    assert [ax.get_title() for ax in figure.axes] == ["perf/roc_auc"]


def test_performance_without_perf_columns_still_returns_a_figure(trend):
    figure = plot_performance(trend.drop(columns=["perf/accuracy", "perf/roc_auc"]))
    assert (len(figure.axes), len(figure.axes[0].lines)) == (1, 0)


# save_comparison_plots


def test_save_writes_every_plot_as_png(trend, tmp_path):
    paths = save_comparison_plots(
        trend, tmp_path / "plots", alerts=make_alerts(), thresholds={SHARE: 0.5, "psi": 0.2}
    )
    assert [p.name for p in paths] == [
        "metric_drift_dataset_share_drifted.png",
        "metric_drift_dataset_drift.png",
        "drift_heatmap.png",
        "performance.png",
    ]
    assert [p.read_bytes()[:8] for p in paths] == [PNG_SIGNATURE] * 4


def test_save_skips_what_the_table_lacks(trend, tmp_path):
    drift_only = trend.drop(columns=["perf/accuracy", "perf/roc_auc", "drift/dataset/drift"])
    paths = save_comparison_plots(drift_only, tmp_path)
    assert [p.name for p in paths] == [
        "metric_drift_dataset_share_drifted.png",
        "drift_heatmap.png",
    ]


def test_save_works_with_a_single_batch(tmp_path):
    single = make_trend(1).iloc[:1]
    paths = save_comparison_plots(single, tmp_path)
    assert [p.read_bytes()[:8] for p in paths] == [PNG_SIGNATURE] * 4


def test_save_leaves_no_pyplot_figures(trend, tmp_path):
    import matplotlib.pyplot as plt

    save_comparison_plots(trend, tmp_path)
    assert plt.get_fignums() == []


# plot_estimated_performance: per version, 6 batches with an estimate and its interval;
# labels (the realized value) only for the first 4.

EST, LOWER, UPPER = "perf_est/accuracy", "perf_est/accuracy_lower", "perf_est/accuracy_upper"
REALIZED, ERROR = "perf/accuracy", "perf_est_error/accuracy"
ESTIMATES = {
    "1": {
        EST: [0.90, 0.89, 0.88, 0.88, 0.87, 0.86],
        LOWER: [0.86, 0.85, 0.84, 0.84, 0.83, 0.82],
        UPPER: [0.94, 0.93, 0.92, 0.92, 0.91, 0.90],
        REALIZED: [0.91, 0.88, 0.87, 0.92, NAN, NAN],  # 0.92 at batch 4 is the upper bound
    },
    "2": {
        EST: [0.92, 0.92, 0.91, 0.90, 0.90, 0.89],
        LOWER: [0.88, 0.88, 0.87, 0.86, 0.86, 0.85],
        UPPER: [0.96, 0.96, 0.95, 0.94, 0.94, 0.93],
        REALIZED: [0.93, 0.90, 0.80, 0.89, NAN, NAN],  # 0.80 at batch 3 is below 0.87
    },
}
ESTIMATE_KEYS = [EST, LOWER, UPPER, ERROR, f"{ERROR}_outside"]


def make_estimate_trend() -> pd.DataFrame:
    """2 versions x 6 batches of estimated and realized accuracy (and the estimate errors)."""
    frames = []
    for version, values in ESTIMATES.items():
        seq = np.arange(1, 7)
        realized, estimate = np.array(values[REALIZED]), np.array(values[EST])
        outside = (realized < values[LOWER]) | (realized > values[UPPER])
        frame = pd.DataFrame(
            {
                "model_version": version,
                "batch_id": [f"w{s:02d}" for s in seq],
                "batch_seq": seq,
                "batch_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(seq * 7, "D"),
                "status": "ok",
                "run_id": [f"run-{version}-{s}" for s in seq],
                **values,
                ERROR: realized - estimate,
                f"{ERROR}_outside": np.where(np.isnan(realized), NAN, outside.astype(float)),
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _band_edges(band) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batches a band spans and its lowest and highest vertex at each."""
    (path,) = band.get_paths()
    xs, ys = path.vertices.T
    seqs = np.unique(xs)
    return (
        seqs,
        np.array([ys[xs == s].min() for s in seqs]),
        np.array([ys[xs == s].max() for s in seqs]),
    )


def test_estimate_band_spans_exactly_each_versions_interval():
    ax = plot_estimated_performance(make_estimate_trend()).axes[0]
    edges = [_band_edges(band) for band in _gid(ax.collections, "estimate-band")]
    expected = [(np.arange(1, 7), v[LOWER], v[UPPER]) for v in ESTIMATES.values()]
    np.testing.assert_allclose(np.array(edges, dtype=float), np.array(expected, dtype=float))


def test_estimate_is_dashed_and_realized_is_solid_with_only_the_labelled_batches():
    ax = plot_estimated_performance(make_estimate_trend()).axes[0]
    estimates, realized = _gid(ax.lines, "estimate"), _gid(ax.lines, "realized")
    assert [line.get_linestyle() for line in estimates + realized] == ["--", "--", "-", "-"]
    np.testing.assert_array_equal(
        [line.get_ydata() for line in estimates], [v[EST] for v in ESTIMATES.values()]
    )
    assert [int(np.isfinite(line.get_ydata()).sum()) for line in realized] == [4, 4]


def test_outside_ring_marks_only_the_realized_value_outside_its_interval():
    ax = plot_estimated_performance(make_estimate_trend()).axes[0]
    rings = [(list(line.get_xdata()), list(line.get_ydata())) for line in _gid(ax.lines, "outside")]
    assert rings == [([3.0], [0.80])]  # version 2, batch 3; 0.92 on the bound is inside


def test_estimate_plot_has_one_axes_per_estimated_metric():
    trend = make_estimate_trend().assign(**{"perf_est/f1_macro": 0.7, "perf/f1_macro": 0.6})
    figure = plot_estimated_performance(trend)
    counts = [
        (
            ax.get_title(),
            *(
                len(_gid([*ax.lines, *ax.collections], g))
                for g in ("estimate", "estimate-band", "realized")
            ),
        )
        for ax in figure.axes
    ]
    assert counts == [("accuracy", 2, 2, 2), ("f1_macro", 2, 0, 2)]  # f1_macro has no bounds


def test_estimate_plot_legend_names_each_version_once_and_the_outside_ring():
    figure = plot_estimated_performance(make_estimate_trend())
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "95% interval, version 1",
        "estimate, version 1",
        "realized, version 1",
        "95% interval, version 2",
        "estimate, version 2",
        "realized, version 2",
        "realized outside the interval",
    ]


def test_estimate_plot_selected_metric_must_have_an_estimate():
    with pytest.raises(ColumnNotFoundError, match="perf_est/rmse"):
        plot_estimated_performance(make_estimate_trend(), metrics=["rmse"])


def test_estimate_plot_without_estimates_still_returns_a_figure(trend):
    figure = plot_estimated_performance(trend)
    assert [(ax.get_title(), len(ax.lines)) for ax in figure.axes] == [("no perf_est/* metrics", 0)]


@pytest.mark.parametrize(
    ("dropped", "names"),
    [
        pytest.param([], ["performance.png", "performance_estimated.png"], id="both"),
        pytest.param([REALIZED], ["performance_estimated.png"], id="estimates-only"),
        pytest.param(ESTIMATE_KEYS, ["performance.png"], id="realized-only"),
    ],
)
def test_comparison_figures_add_the_estimate_plot_only_with_estimates(dropped, names):
    assert sorted(comparison_figures(make_estimate_trend().drop(columns=dropped))) == names


def test_save_writes_the_estimate_plot_as_png(tmp_path):
    paths = save_comparison_plots(make_estimate_trend(), tmp_path)
    assert [(p.name, p.read_bytes()[:8]) for p in paths] == [
        ("performance.png", PNG_SIGNATURE),
        ("performance_estimated.png", PNG_SIGNATURE),
    ]


# the trend table's estimate columns


def test_default_metrics_follow_estimates_and_errors_but_not_bounds_or_flags():
    runs = make_estimate_trend().assign(**{"drift/dataset/drift": 0.0, "perf/n_rows": 100.0})
    assert default_metrics(runs) == ["drift/dataset/drift", REALIZED, EST, ERROR]


@pytest.mark.parametrize(
    "columns",
    [
        pytest.param([EST, LOWER, UPPER, ERROR, f"{ERROR}_outside", REALIZED], id="all"),
        pytest.param(["perf_est_error/accuracy", "perf_est/", "perf/f1"], id="none"),
    ],
)
def test_estimated_metric_names_come_from_the_estimate_columns_only(columns):
    assert estimated_metric_names(columns) == (["accuracy"] if EST in columns else [])


@pytest.mark.parametrize(
    "metrics",
    [
        pytest.param([EST], id="estimate"),
        pytest.param([EST, UPPER], id="bound-chosen-too"),
    ],
)
def test_trend_table_carries_the_bounds_of_each_chosen_estimate_once(metrics):
    table = trend_table(make_estimate_trend().drop(columns="batch_seq"), metrics)
    assert sorted(table.columns[6:]) == [EST, LOWER, UPPER]


def test_compare_draws_the_band_from_the_default_metrics():
    runs = make_estimate_trend().drop(columns="batch_seq")
    figures = build_comparison("churn", runs).figures()
    ax = figures["performance_estimated.png"].axes[0]
    assert [len(_gid(ax.collections, "estimate-band")), len(_gid(ax.lines, "outside"))] == [2, 1]
