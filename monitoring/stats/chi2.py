"""Chi-squared test of homogeneity between reference and batch category counts."""

from __future__ import annotations

import numpy as np


def chi2_homogeneity(reference_counts: np.ndarray, batch_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-squared on the 2 x k table [reference; batch], no continuity correction.

    Categories empty on both sides are dropped (they carry no information); an unseen
    category is one more column, counted like any other. Returns (statistic, p-value),
    the same as `scipy.stats.chi2_contingency(table, correction=False)` with dof k - 1.
    With fewer than two informative categories the table says nothing: (0.0, 1.0).
    """
    table = np.vstack([reference_counts, batch_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    from scipy import special

    dof = table.shape[1] - 1
    return statistic, float(special.chdtrc(dof, statistic))  # chi2(dof).sf
