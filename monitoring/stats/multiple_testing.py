"""Multiple-testing control across the features of one batch.

With 20 features each tested at alpha = 0.05, a batch from the reference itself raises at
least one alarm 64% of the time. The batch verdict instead rejects hypotheses by:

- `holm` (default): Holm's step-down; the chance of any false alarm (family-wise error
  rate) is at most alpha under any dependence between features;
- `bh`: Benjamini-Hochberg; the expected share of false alarms among alarms (false
  discovery rate) is at most alpha for independent or positively dependent tests; with no
  drift at all it equals the family-wise rate, so a reference-like batch still alarms
  with probability at most alpha. More power when many features drift at once;
- `bonferroni`: each p-value against alpha / m;
- `none`: each p-value against alpha (the family-wise rate grows with m).

Adjusted p-values are returned too, so "adjusted p < alpha" is the rejection rule and
users can read them at any other level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitoring.errors import ConfigError

CORRECTIONS = ("holm", "bh", "bonferroni", "none")


def adjust_p_values(p_values: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values (capped at 1), in the input's order."""
    p = np.asarray(p_values, dtype=np.float64)
    if method not in CORRECTIONS:
        raise ConfigError(f"unknown correction {method!r}; known: {', '.join(CORRECTIONS)}")
    m = p.size
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        # p_(i) * (m - i + 1), made non-decreasing from the smallest up.
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        # p_(i) * m / i, made non-increasing from the largest down.
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def reject(p_values: Sequence[float] | np.ndarray, alpha: float, method: str) -> np.ndarray:
    """Which hypotheses are rejected at level alpha under `method` (boolean mask)."""
    return adjust_p_values(p_values, method) < alpha
