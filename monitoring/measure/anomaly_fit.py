"""Fitting the anomaly model of `monitoring.measure.anomaly` from reference profiles: each
feature's density as surprisals (numeric: flat inner bins and exponential outer tails;
categorical: smoothed shares), then the threshold, calibrated on a sample of reference rows.

See `monitoring.measure.anomaly` for what the surprise of a value is and how rows are scored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from monitoring.errors import ConfigError, EmptyBatchError, InvalidValueError
from monitoring.measure.anomaly import (
    EXTREME_FEATURES,
    AnomalyModel,
    CategoricalSurprise,
    FeatureSurprise,
    NumericSurprise,
    extreme_sums,
    surprise_matrix,
)
from monitoring.measure.reference import CategoricalReference, NumericalReference
from monitoring.stats.divergence import DEFAULT_SMOOTHING, smoothed_proportions

__all__ = [
    "DEFAULT_MIN_SCALE",
    "fit_anomaly_model",
    "fit_categorical_surprise",
    "fit_numeric_surprise",
]

DEFAULT_MIN_SCALE = 0.01
"""Floor of an outer bin's exponential scale, as a fraction of its neighbouring bin's width.

Only matters where the reference's values in the outer bin (almost) all tie at its edge,
as under a capped maximum: their mean distance to the edge is ~0, the density an atom. With
0.01, a value beyond the cap by 1% of the neighbouring bin's width costs +1 nat."""


def _neg_log(q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -np.log(q)


def _weighted_mean(surprisal: np.ndarray, counts: np.ndarray) -> float:
    """sum c_i / N * surprisal_i over cells with c_i > 0 (an empty cell's inf costs nothing)."""
    c = np.asarray(counts, dtype=np.float64)
    used = c > 0
    return float(np.sum(c[used] * surprisal[used]) / c.sum())


def _numeric_bins(profile: NumericalReference) -> tuple[np.ndarray, np.ndarray]:
    """Edges and counts; a one-bin profile (>= 1 - 1/bins of its values tied at the minimum)
    is split at its second distinct value, counts taken from the support."""
    if profile.support.size < 2:
        raise InvalidValueError(
            f"reference column {profile.column!r} is constant: its density cannot be scaled; "
            "leave it out of the anomaly model"
        )
    if profile.edges.size > 0:
        return np.asarray(profile.edges, dtype=np.float64), np.asarray(profile.counts)
    weights = np.asarray(profile.support_counts, dtype=np.float64)
    low = profile.n * weights[0] / weights.sum()
    return np.asarray(profile.support[1:2], dtype=np.float64), np.array([low, profile.n - low])


def fit_numeric_surprise(
    profile: NumericalReference,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    min_scale: float = DEFAULT_MIN_SCALE,
) -> NumericSurprise:
    """Density of a numeric profile (flat inner bins, exponential outer bins) and its H_f.

    Bins: q_j = (c_j + s) / (n + k s), widths w_j; outer "widths" are the scales
    b_0 = mean(e_0 - x | x < e_0), b_last = mean(x - e_last | x >= e_last) over `support`,
    each at least `min_scale` x the neighbouring bin's width (with one edge: the other outer
    bin's span to the reference min or max). H_cont = sum_j c_j/n (-ln(q_j / w_j) + d_j / b_j)
    (d_j: the mean distance, outer bins only) is the reference's mean -ln density.
    Presence: q_present, q_missing = (n + s, n_missing + s) / (N + 2 s).

    surprisal(x) = -ln q_present - ln(q_j / w_j) + d(x) / b_j - H_cont,  surprisal(NaN) =
    -ln q_missing, i.e. the density is measured in units of the reference's typical density
    exp(-H_cont): unit-free, so a missing value compares with a present one the same way
    whether the column is in dollars or in millions. H_f = mean surprisal of the reference
    rows = -(n/N) ln q_present - (n_missing/N) ln q_missing.
    """
    edges, counts = _numeric_bins(profile)
    support = np.asarray(profile.support, dtype=np.float64)
    weights = np.asarray(profile.support_counts, dtype=np.float64)
    below = support < edges[0]
    above = support >= edges[-1]
    low_distance = _mean_distance(edges[0] - support[below], weights[below])
    high_distance = _mean_distance(support[above] - edges[-1], weights[above])
    low_neighbour = (edges[1] if edges.size > 1 else support[-1]) - edges[0]
    high_neighbour = edges[-1] - (edges[-2] if edges.size > 1 else support[0])
    low_scale = max(low_distance, min_scale * low_neighbour)
    high_scale = max(high_distance, min_scale * high_neighbour)
    if not (low_scale > 0 and high_scale > 0):
        raise InvalidValueError(
            f"reference column {profile.column!r}: an outer bin has zero width "
            f"(scales {low_scale}, {high_scale}); use min_scale > 0"
        )
    q = smoothed_proportions(counts, smoothing=smoothing)
    widths = np.concatenate([[low_scale], np.diff(edges), [high_scale]])
    density_surprisal = _neg_log(q / widths)
    # Mean over the rows of an outer bin: -ln(q / b) at the edge plus mean distance / b.
    at_edge = np.zeros(widths.size)
    at_edge[0], at_edge[-1] = low_distance / low_scale, high_distance / high_scale
    typical = _weighted_mean(density_surprisal + at_edge, counts)
    presence = np.array([profile.n, profile.n_missing], dtype=np.float64)
    present, missing = _neg_log(smoothed_proportions(presence, smoothing=smoothing))
    return NumericSurprise(
        column=profile.column,
        edges=edges,
        bin_surprisal=present + density_surprisal - typical,
        low_scale=float(low_scale),
        high_scale=float(high_scale),
        missing_surprisal=float(missing),
        mean=_weighted_mean(np.array([present, missing]), presence),
    )


def _mean_distance(distances: np.ndarray, weights: np.ndarray) -> float:
    return float(np.average(distances, weights=weights)) if distances.size else 0.0


def fit_categorical_surprise(
    profile: CategoricalReference, *, smoothing: float = DEFAULT_SMOOTHING
) -> CategoricalSurprise:
    """-ln q over vocabulary, unseen bucket and missing; H_f = sum_i c_i/N (-ln q_i)."""
    cells = np.append(profile.counts, profile.n_missing)
    surprisal = _neg_log(smoothed_proportions(cells, smoothing=smoothing))
    return CategoricalSurprise(
        column=profile.column,
        vocabulary=tuple(profile.vocabulary),
        surprisal=surprisal[:-1],
        missing_surprisal=float(surprisal[-1]),
        mean=_weighted_mean(surprisal, cells),
    )


def fit_anomaly_model(
    profiles: Mapping[str, NumericalReference | CategoricalReference],
    sample: pd.DataFrame,
    *,
    flag_rate: float = 0.01,
    smoothing: float = DEFAULT_SMOOTHING,
    min_scale: float = DEFAULT_MIN_SCALE,
) -> AnomalyModel:
    """Densities from `profiles` (pass the features only), threshold from `sample`.

    `sample`: a random sample of reference rows, at least 1 / flag_rate of them; the
    threshold is the (1 - flag_rate) quantile (linear) of their scores. With ties (mostly
    categorical features) the flagged share can fall below flag_rate.
    """
    if isinstance(flag_rate, bool) or not isinstance(flag_rate, int | float):
        raise ConfigError(f"`flag_rate` must be a number in (0, 1), got {flag_rate!r}")
    if not 0 < flag_rate < 1:
        raise ConfigError(f"`flag_rate` must be a number in (0, 1), got {flag_rate!r}")
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) or smoothing < 0:
        raise ConfigError(f"`smoothing` must be a number >= 0, got {smoothing!r}")
    if isinstance(min_scale, bool) or not isinstance(min_scale, int | float) or min_scale <= 0:
        raise ConfigError(f"`min_scale` must be a number > 0, got {min_scale!r}")
    if not profiles:
        raise ConfigError("an anomaly model needs at least one feature profile")
    if len(sample) == 0:
        raise EmptyBatchError("the calibration sample for the anomaly model has no rows")
    needed = math.ceil(round(1 / flag_rate, 9))
    if len(sample) < needed:
        raise ConfigError(
            f"`flag_rate` {flag_rate} needs a calibration sample of at least {needed} rows, "
            f"got {len(sample)}"
        )
    features: list[FeatureSurprise] = []
    for column, profile in profiles.items():
        if isinstance(profile, NumericalReference):
            fitted: FeatureSurprise = fit_numeric_surprise(
                profile, smoothing=smoothing, min_scale=min_scale
            )
        else:
            fitted = fit_categorical_surprise(profile, smoothing=smoothing)
        features.append(_renamed(fitted, column))
    threshold, extreme_threshold = flag_thresholds(
        surprise_matrix(sample, tuple(features)), flag_rate
    )
    return AnomalyModel(
        features=tuple(features),
        threshold=threshold,
        flag_rate=float(flag_rate),
        sample_size=len(sample),
        smoothing=float(smoothing),
        min_scale=float(min_scale),
        extreme_threshold=extreme_threshold,
    )


def flag_thresholds(matrix: np.ndarray, flag_rate: float) -> tuple[float, float]:
    """(sum threshold, extreme threshold) that together flag `flag_rate` of the sample's
    rows (`matrix`: rows x features surprises).

    The extreme threshold is the (1 - flag_rate / 2) quantile of each row's
    `extreme_sums`; the sum threshold is then the value that the sums of the rows not
    flagged by it must pass for flag_rate of all rows to be flagged (ties can flag fewer).
    With no more features than EXTREME_FEATURES the two rules coincide: the sum alone."""
    scores = matrix.sum(axis=1)
    if matrix.shape[1] <= EXTREME_FEATURES:
        return float(np.quantile(scores, 1 - flag_rate)), float("inf")
    extreme = extreme_sums(matrix)
    extreme_threshold = float(np.quantile(extreme, 1 - flag_rate / 2))
    by_extreme = extreme > extreme_threshold
    wanted = int(round(flag_rate * len(scores))) - int(by_extreme.sum())
    rest = np.sort(scores[~by_extreme])[::-1]
    if wanted <= 0 or rest.size == 0:
        return float(rest[0]) if rest.size else float(scores.max()), extreme_threshold
    # flag the `wanted` highest remaining sums: the threshold sits between two of them
    upper = rest[min(wanted, rest.size) - 1]
    lower = rest[wanted] if wanted < rest.size else upper
    return float((upper + lower) / 2) if lower < upper else float(lower), extreme_threshold


def _renamed(feature: FeatureSurprise, column: str) -> FeatureSurprise:
    """The feature scored from `column` (the mapping's key names the frame's column)."""
    return dataclasses.replace(feature, column=column)
