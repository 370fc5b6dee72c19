"""How unusual is a row given the reference, and which features make it unusual.

Per feature f, the *surprisal* of a value is -ln density_f(x) under a density built from the
reference profile, and its *surprise* is that surprisal minus its mean over the reference
rows, so 0 means "as typical as an average reference row" and features are comparable:

    s_f(x) = -ln density_f(x) - H_f,        H_f = mean over reference rows of -ln density_f

The row score is the sum of the s_f: a naive-Bayes negative log-likelihood ratio, exact if
the features were independent. It misses correlations: a row whose values are each common
but whose combination is rare (young and very rich) scores as typical.

Densities, from smoothed proportions q = (c + s) / (N + K s) as in `stats.divergence`: over
the bins of a numeric feature (and apart, over present / missing); over the categories, the
unseen bucket and "missing" of a categorical one:

- numeric, inner bin [e_j, e_j+1): q_j / (e_j+1 - e_j), flat within the bin;
- numeric, outer bins (-inf, e_0) and [e_last, inf): an exponential decaying away from the
  edge, q_0 / b_0 * exp(-(e_0 - x) / b_0), with b the reference's mean distance to the edge
  in that bin (the maximum-likelihood exponential; peaks over a threshold). So the surprise
  grows linearly with the distance: a value 10 sd from a normal's mean costs ~+18 nats,
  where a flat outer bin with an exponential tail of its own width gives ~+5. The density integrates
  to 1 over the bins. `min_scale` floors b (see DEFAULT_MIN_SCALE);
- categorical: q of the category; every unseen category gets the unseen bucket's q (which
  also holds the reference's categories beyond `max_categories`);
- missing: -ln q of the missing cell. For a numeric feature, present values are measured
  against the reference's typical density exp(-H_cont) (see `fit_numeric_surprise`): a raw
  density has units (per dollar), a probability has none, and mixing them would make a
  missing income look typical in dollars and alarming in millions.

H_f is computed from the profile alone (bin counts; mean distances from `support`), exact
when the profile's support holds every reference value (up to `drift.max_support`).

The threshold is the (1 - flag_rate) quantile of the scores of a random sample of reference
rows: a reference-like row is flagged (score > threshold) with probability ~flag_rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring.collect.columns import label_codes, numeric_values
from monitoring.errors import ColumnNotFoundError, ConfigError, EmptyBatchError, InvalidValueError
from monitoring.measure.reference import CategoricalReference, NumericalReference
from monitoring.stats.divergence import DEFAULT_SMOOTHING, smoothed_proportions

__all__ = [
    "DEFAULT_MIN_SCALE",
    "AnomalyModel",
    "CategoricalSurprise",
    "NumericSurprise",
    "categorical_surprisal",
    "fit_anomaly_model",
    "fit_categorical_surprise",
    "fit_numeric_surprise",
    "numeric_surprisal",
    "surprise_matrix",
    "top_features",
]

DEFAULT_MIN_SCALE = 0.01
"""Floor of an outer bin's exponential scale, as a fraction of its neighbouring bin's width.

Only matters where the reference's values in the outer bin (almost) all tie at its edge,
as under a capped maximum: their mean distance to the edge is ~0, the density an atom. With
0.01, a value beyond the cap by 1% of the neighbouring bin's width costs +1 nat."""

FORMAT_VERSION = 1
_WHERE = "anomaly scoring"


@dataclass(frozen=True, eq=False)
class NumericSurprise:
    """Fitted density of one numeric feature: surprisal per bin at its edge, outer scales."""

    column: str
    edges: np.ndarray  # interior edges e_0 < ... < e_last (at least one)
    bin_surprisal: np.ndarray  # -ln(q_j / width_j); outer bins: -ln(q / b) at their edge
    low_scale: float  # b_0: exponential scale below e_0
    high_scale: float  # b_last: exponential scale above e_last
    missing_surprisal: float  # -ln q_missing
    mean: float  # H_f, the mean surprisal of the reference rows
    kind: str = field(default="numerical", init=False)


@dataclass(frozen=True, eq=False)
class CategoricalSurprise:
    """Fitted probabilities of one categorical feature, as surprisals."""

    column: str
    vocabulary: tuple[str, ...]
    surprisal: np.ndarray  # -ln q per vocabulary entry, then the unseen bucket
    missing_surprisal: float  # -ln q_missing
    mean: float  # H_f
    kind: str = field(default="categorical", init=False)


FeatureSurprise = NumericSurprise | CategoricalSurprise


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


def numeric_surprisal(
    values: np.ndarray,
    *,
    edges: np.ndarray,
    bin_surprisal: np.ndarray,
    low_scale: float,
    high_scale: float,
    missing_surprisal: float,
) -> np.ndarray:
    """-ln density per value: bin_surprisal[j] inside bin j (edges go right, as in
    `bin_counts`), plus (e_0 - x) / low_scale below e_0 and (x - e_last) / high_scale from
    e_last on; NaN (missing) gets missing_surprisal."""
    x = np.asarray(values, dtype=np.float64)
    index = np.searchsorted(edges, x, side="right")
    with np.errstate(over="ignore", invalid="ignore"):
        distance = np.where(index == 0, (edges[0] - x) / low_scale, 0.0)
        distance = np.where(index == edges.size, (x - edges[-1]) / high_scale, distance)
    return np.where(np.isnan(x), missing_surprisal, bin_surprisal[index] + distance)


def categorical_surprisal(
    labels: pd.Series,
    *,
    vocabulary: tuple[str, ...],
    surprisal: np.ndarray,
    missing_surprisal: float,
) -> np.ndarray:
    """-ln q of each label (strings; NaN = missing); labels outside `vocabulary` get the
    unseen bucket's surprisal[-1]."""
    codes = pd.Categorical(labels, categories=list(vocabulary)).codes
    codes = np.where(codes < 0, len(vocabulary), codes)
    return np.where(labels.isna().to_numpy(), missing_surprisal, surprisal[codes])


def _feature_surprisal(feature: FeatureSurprise, series: pd.Series) -> np.ndarray:
    if isinstance(feature, NumericSurprise):
        values = numeric_values(series, column=feature.column, offset=0, where=_WHERE)
        return numeric_surprisal(
            values,
            edges=feature.edges,
            bin_surprisal=feature.bin_surprisal,
            low_scale=feature.low_scale,
            high_scale=feature.high_scale,
            missing_surprisal=feature.missing_surprisal,
        )
    # `categorical_surprisal` on the integer codes: the strings are normalised per
    # distinct value (a Parquet column's dictionary), not per row.
    codes = label_codes(series, feature.vocabulary)  # unseen: len(vocabulary); missing: + 1
    return np.append(feature.surprisal, feature.missing_surprisal)[codes]


def surprise_matrix(frame: pd.DataFrame, features: tuple[FeatureSurprise, ...]) -> np.ndarray:
    """s_f for every row (axis 0) and feature (axis 1, in `features` order)."""
    absent = [f.column for f in features if f.column not in frame.columns]
    if absent:
        raise ColumnNotFoundError(
            f"{_WHERE}: the frame lacks {', '.join(map(repr, absent))} "
            f"(the model scores {', '.join(map(repr, [f.column for f in features]))})"
        )
    out = np.empty((len(frame), len(features)))
    for j, feature in enumerate(features):
        out[:, j] = _feature_surprisal(feature, frame[feature.column]) - feature.mean
    return out


def top_features(contributions: pd.DataFrame, *, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row, the k columns with the largest surprise, largest first (ties: column order)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    values = contributions.to_numpy(dtype=np.float64)
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    names = [str(c) for c in contributions.columns]
    return [[(names[j], float(values[i, j])) for j in row] for i, row in enumerate(order)]


@dataclass(frozen=True, eq=False)
class AnomalyModel:
    """Fitted per-feature densities and a calibrated threshold (see `fit_anomaly_model`)."""

    features: tuple[FeatureSurprise, ...]
    threshold: float
    flag_rate: float
    sample_size: int
    smoothing: float
    min_scale: float

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.features)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """s_f per row (frame's index) and feature (one column each)."""
        matrix = surprise_matrix(frame, self.features)
        return pd.DataFrame(matrix, index=frame.index, columns=list(self.columns))

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Row score sum_f s_f; 0 is an average reference row, higher is more unusual."""
        return surprise_matrix(frame, self.features).sum(axis=1)

    def explain(self, frame: pd.DataFrame, k: int = 3) -> list[str]:
        """Per row, e.g. "income (+6.2), region (+4.1)": the k largest s_f, largest first."""
        tops = top_features(self.contributions(frame), k=k)
        return [", ".join(f"{name} ({value:+.1f})" for name, value in row) for row in tops]

    def is_anomalous(self, scores: np.ndarray) -> np.ndarray:
        """score > threshold (a reference-like row: probability ~flag_rate)."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, floats, strings); inf appears only with smoothing = 0."""
        features: list[dict[str, Any]] = []
        for f in self.features:
            entry: dict[str, Any] = {"column": f.column, "kind": f.kind}
            if isinstance(f, NumericSurprise):
                entry.update(
                    edges=f.edges.tolist(),
                    bin_surprisal=f.bin_surprisal.tolist(),
                    low_scale=f.low_scale,
                    high_scale=f.high_scale,
                )
            else:
                entry.update(vocabulary=list(f.vocabulary), surprisal=f.surprisal.tolist())
            entry.update(missing_surprisal=f.missing_surprisal, mean=f.mean)
            features.append(entry)
        return {
            "format_version": FORMAT_VERSION,
            "threshold": self.threshold,
            "flag_rate": self.flag_rate,
            "sample_size": self.sample_size,
            "smoothing": self.smoothing,
            "min_scale": self.min_scale,
            "features": features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnomalyModel:
        """The model `to_dict` wrote."""
        if data.get("format_version") != FORMAT_VERSION:
            raise InvalidValueError(
                f"anomaly model format_version {data.get('format_version')!r} is not "
                f"{FORMAT_VERSION}"
            )
        features: list[FeatureSurprise] = []
        for entry in data["features"]:
            common = {
                "column": entry["column"],
                "missing_surprisal": float(entry["missing_surprisal"]),
                "mean": float(entry["mean"]),
            }
            if entry["kind"] == "numerical":
                features.append(
                    NumericSurprise(
                        edges=np.asarray(entry["edges"], dtype=np.float64),
                        bin_surprisal=np.asarray(entry["bin_surprisal"], dtype=np.float64),
                        low_scale=float(entry["low_scale"]),
                        high_scale=float(entry["high_scale"]),
                        **common,
                    )
                )
            else:
                features.append(
                    CategoricalSurprise(
                        vocabulary=tuple(entry["vocabulary"]),
                        surprisal=np.asarray(entry["surprisal"], dtype=np.float64),
                        **common,
                    )
                )
        return cls(
            features=tuple(features),
            threshold=float(data["threshold"]),
            flag_rate=float(data["flag_rate"]),
            sample_size=int(data["sample_size"]),
            smoothing=float(data["smoothing"]),
            min_scale=float(data["min_scale"]),
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
    scores = surprise_matrix(sample, tuple(features)).sum(axis=1)
    return AnomalyModel(
        features=tuple(features),
        threshold=float(np.quantile(scores, 1 - flag_rate)),
        flag_rate=float(flag_rate),
        sample_size=len(sample),
        smoothing=float(smoothing),
        min_scale=float(min_scale),
    )


def _renamed(feature: FeatureSurprise, column: str) -> FeatureSurprise:
    """The feature scored from `column` (the mapping's key names the frame's column)."""
    return dataclasses.replace(feature, column=column)
