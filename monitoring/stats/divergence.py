"""Divergences between a reference histogram and a batch histogram on the same bins.

All take raw counts (reference first, batch second) and smooth them the same way:
each bin gets `smoothing` pseudo-counts before normalising,

    p_i = (r_i + s) / (sum(r) + k s),   q_i = (b_i + s) / (sum(b) + k s),

with k bins. The default s = 0.5 (Jeffreys' prior) keeps every divergence finite on
disjoint support without the tiny epsilons that blow PSI up to hundreds; s = 0 disables
smoothing (and gives inf where a bin is empty on one side only). Natural logarithms.
"""

from __future__ import annotations

import numpy as np

from monitoring.errors import ConfigError, InvalidValueError

DEFAULT_SMOOTHING = 0.5


def smoothed_proportions(counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """Proportions per bin after adding `smoothing` pseudo-counts to every bin.

    Works along the last axis, so a (simulations, bins) array gives one row per histogram.
    """
    c = np.asarray(counts, dtype=np.float64)
    if smoothing < 0:
        raise ConfigError(f"smoothing must be >= 0, got {smoothing}")
    total = c.sum(axis=-1, keepdims=True) + smoothing * c.shape[-1]
    if np.any(total <= 0):
        raise InvalidValueError("cannot normalise a histogram with no counts and no smoothing")
    return (c + smoothing) / total


def _pair(
    reference_counts: np.ndarray, batch_counts: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(reference_counts)
    b = np.asarray(batch_counts)
    if r.shape[-1:] != b.shape[-1:]:
        raise InvalidValueError(f"histograms differ in shape: {r.shape} vs {b.shape}")
    p = smoothed_proportions(r, smoothing=smoothing)
    return p, smoothed_proportions(b, smoothing=smoothing)


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q / p), 0.0)
    return np.sum(terms, axis=-1)


def _psi(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum((q - p) * np.log(q / p), axis=-1)


def _js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p + q)
    divergence = 0.5 * (_kl(p, m) + _kl(q, m)) / np.log(2.0)
    return np.sqrt(np.maximum(divergence, 0.0))


def _hellinger(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    affinity = np.sum(np.sqrt(p * q), axis=-1)
    return np.sqrt(np.maximum(1.0 - affinity, 0.0))


def _tvd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 0.5 * np.sum(np.abs(q - p), axis=-1)


_ROW_FUNCTIONS = {
    "kl": lambda p, q: _kl(q, p),
    "psi": _psi,
    "js": _js,
    "hellinger": _hellinger,
    "tvd": _tvd,
}
HISTOGRAM_DIVERGENCES = tuple(_ROW_FUNCTIONS)


def divergence_rows(
    name: str,
    reference_counts: np.ndarray,
    batch_counts: np.ndarray,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
) -> np.ndarray:
    """One histogram divergence per row of (rows, bins) count arrays (rows broadcast).

    The same formulas as the scalar functions below, vectorised for the simulated nulls
    of `stats.calibration`.
    """
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return np.asarray(_ROW_FUNCTIONS[name](p, q), dtype=np.float64)


def every_divergence_rows(
    reference_counts: np.ndarray,
    batch_counts: np.ndarray,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
) -> dict[str, np.ndarray]:
    """Every histogram divergence per row, the smoothed proportions computed once for all
    (what a simulated null needs; each equals `divergence_rows` of its name)."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return {
        name: np.asarray(function(p, q), dtype=np.float64)
        for name, function in _ROW_FUNCTIONS.items()
    }


def kl_divergence(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """KL(batch || reference) = sum q_i ln(q_i / p_i).

    Direction: how surprising the batch is under the reference (2 n KL is the G-test
    statistic of the batch against the reference's proportions). 0 when equal, unbounded.
    """
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return float(_kl(q, p))


def population_stability_index(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """PSI = sum (q_i - p_i) ln(q_i / p_i), the symmetric KL. Rules of thumb: 0.1 / 0.25."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return float(_psi(p, q))


def jensen_shannon_distance(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """Jensen-Shannon distance with base-2 logarithms: sqrt of the JS divergence, in [0, 1].

    Same definition as `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
    """
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return float(_js(p, q))


def hellinger_distance(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """Hellinger distance sqrt(1 - sum sqrt(p_i q_i)), in [0, 1]."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return float(_hellinger(p, q))


def total_variation_distance(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """Total variation distance, half the L1 distance, in [0, 1]: the share of rows that
    would have to move to another bin (or category) to turn one histogram into the other."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return float(_tvd(p, q))
