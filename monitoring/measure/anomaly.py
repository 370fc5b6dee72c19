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
  against the reference's typical density exp(-H_cont) (see `anomaly_fit`): a raw
  density has units (per dollar), a probability has none, and mixing them would make a
  missing income look typical in dollars and alarming in millions.

H_f is computed from the profile alone (bin counts; mean distances from `support`), exact
when the profile's support holds every reference value (up to `drift.max_support`).

A row is flagged anomalous when its score passes `threshold`, or when the sum of its
EXTREME_FEATURES largest surprises passes `extreme_threshold`: a value far outside the
reference on one or two features among thirty ordinary ones is flagged, where the sum of
all thirty would drown it (a units bug divides a few correlated features at once). Both
thresholds are set on a random sample of reference rows so that together they flag
flag_rate of them: the extreme sum at its (1 - flag_rate / 2) quantile, then the whole sum
so that the union flags flag_rate (`anomaly_fit.flag_thresholds`).

This module holds the fitted model and scores and explains rows with it; fitting it from
the reference profiles is `monitoring.measure.anomaly_fit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitoring.collect.columns import label_codes, numeric_values
from monitoring.errors import ColumnNotFoundError, ConfigError, InvalidValueError

__all__ = [
    "AnomalyModel",
    "CategoricalSurprise",
    "FeatureSurprise",
    "NumericSurprise",
    "categorical_surprisal",
    "numeric_surprisal",
    "surprise_matrix",
    "surprise_matrix_of",
    "top_features",
]

FORMAT_VERSION = 2  # 2: `extreme_threshold` (files of version 1 load with the sum alone)
EXTREME_FEATURES = 2  # the largest surprises summed for the second flag rule


def extreme_sums(matrix: np.ndarray) -> np.ndarray:
    """Per row, the sum of its EXTREME_FEATURES largest surprises (all, with fewer)."""
    k = min(EXTREME_FEATURES, matrix.shape[1])
    if k == 0:
        return np.zeros(matrix.shape[0])
    return np.partition(matrix, matrix.shape[1] - k, axis=1)[:, -k:].sum(axis=1)
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


def surprise_matrix_of(
    columns: Mapping[str, np.ndarray], features: tuple[FeatureSurprise, ...]
) -> np.ndarray:
    """`surprise_matrix` from values already read: per feature its float values (numeric,
    NaN = missing) or its category codes over the same vocabulary (`columns.label_codes`:
    unseen, then missing, last), as the streaming pass has them."""
    rows = len(next(iter(columns.values()))) if columns else 0
    out = np.empty((rows, len(features)))
    for j, feature in enumerate(features):
        found = columns[feature.column]
        if isinstance(feature, NumericSurprise):
            out[:, j] = numeric_surprisal(
                found,
                edges=feature.edges,
                bin_surprisal=feature.bin_surprisal,
                low_scale=feature.low_scale,
                high_scale=feature.high_scale,
                missing_surprisal=feature.missing_surprisal,
            )
        else:
            out[:, j] = np.append(feature.surprisal, feature.missing_surprisal)[found]
        out[:, j] -= feature.mean
    return out


def top_features(contributions: pd.DataFrame, *, k: int = 3) -> list[list[tuple[str, float]]]:
    """Per row, the k columns with the largest surprise, largest first (ties: column order)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"`k` must be an integer >= 1, got {k!r}")
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
    extreme_threshold: float = float("inf")  # the largest surprises' sum alone flags a row

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

    def assess(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each row's score and whether it is anomalous, from one surprise matrix."""
        return self.assess_matrix(surprise_matrix(frame, self.features))

    def assess_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`assess` of a surprise matrix (rows x features, `surprise_matrix`)."""
        scores = matrix.sum(axis=1)
        flags = scores > self.threshold
        if np.isfinite(self.extreme_threshold):
            flags |= extreme_sums(matrix) > self.extreme_threshold
        return scores, flags

    def explain(self, frame: pd.DataFrame, k: int = 3) -> list[str]:
        """Per row, e.g. "income (+6.2), region (+4.1)": the k largest s_f, largest first."""
        tops = top_features(self.contributions(frame), k=k)
        return [", ".join(f"{name} ({value:+.1f})" for name, value in row) for row in tops]

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
            "extreme_threshold": self.extreme_threshold,
            "features": features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnomalyModel:
        """The model `to_dict` wrote."""
        if data.get("format_version") not in (1, FORMAT_VERSION):
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
            extreme_threshold=float(data.get("extreme_threshold", float("inf"))),
        )
