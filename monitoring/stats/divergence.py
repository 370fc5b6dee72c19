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

DEFAULT_SMOOTHING = 0.5


def smoothed_proportions(counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """Proportions per bin after adding `smoothing` pseudo-counts to every bin."""
    c = np.asarray(counts, dtype=np.float64)
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    total = c.sum() + smoothing * c.size
    if total <= 0:
        raise ValueError("cannot normalise a histogram with no counts and no smoothing")
    return (c + smoothing) / total


def _pair(
    reference_counts: np.ndarray, batch_counts: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(reference_counts)
    b = np.asarray(batch_counts)
    if r.shape != b.shape:
        raise ValueError(f"histograms differ in shape: {r.shape} vs {b.shape}")
    p = smoothed_proportions(r, smoothing=smoothing)
    return p, smoothed_proportions(b, smoothing=smoothing)


def _kl(q: np.ndarray, p: np.ndarray) -> float:
    with np.errstate(divide="ignore"):
        terms = np.where(q > 0, q * np.log(q / p), 0.0)
    return float(np.sum(terms))


def kl_divergence(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """KL(batch || reference) = sum q_i ln(q_i / p_i).

    Direction: how surprising the batch is under the reference (2 n KL is the G-test
    statistic of the batch against the reference's proportions). 0 when equal, unbounded.
    """
    p, q = _pair(reference_counts, batch_counts, smoothing)
    return _kl(q, p)


def population_stability_index(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """PSI = sum (q_i - p_i) ln(q_i / p_i), the symmetric KL. Rules of thumb: 0.1 / 0.25."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    with np.errstate(divide="ignore"):
        return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_distance(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """Jensen-Shannon distance with base-2 logarithms: sqrt of the JS divergence, in [0, 1].

    Same definition as `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
    """
    p, q = _pair(reference_counts, batch_counts, smoothing)
    m = 0.5 * (p + q)
    divergence = 0.5 * (_kl(p, m) + _kl(q, m)) / np.log(2.0)
    return float(np.sqrt(max(divergence, 0.0)))


def hellinger_distance(
    reference_counts: np.ndarray, batch_counts: np.ndarray, *, smoothing: float = DEFAULT_SMOOTHING
) -> float:
    """Hellinger distance sqrt(1 - sum sqrt(p_i q_i)), in [0, 1]."""
    p, q = _pair(reference_counts, batch_counts, smoothing)
    affinity = float(np.sum(np.sqrt(p * q)))
    return float(np.sqrt(max(1.0 - affinity, 0.0)))
