"""Fixed binning fitted on the reference, reused unchanged for every batch.

Numeric features: interior bin edges at reference quantiles; the outer bins are open
(-inf, e_0) and [e_last, +inf), so batch values beyond the reference range still land in a
bin. A value equal to an edge goes to the bin on its right. Categorical features: counts
over a fixed vocabulary plus one last bucket for categories the reference never saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitoring.errors import ConfigError, InvalidValueError


def quantile_edges(values: np.ndarray, *, bins: int) -> np.ndarray:
    """Interior edges at the reference's 1/bins, ..., (bins-1)/bins quantiles (linear).

    Duplicate quantiles (heavy ties) are merged, so fewer bins may result. A constant
    column has no interior edge; callers treat it apart (it cannot be binned usefully).
    """
    if bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins}")
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        raise InvalidValueError("cannot fit bin edges on an empty or all-missing column")
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, probs))
    # An edge at the minimum leaves the first bin empty on the reference: drop it.
    return edges[edges > finite.min()]


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of non-missing `values` in the len(edges) + 1 bins defined by `edges`."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    index = np.searchsorted(edges, x, side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.int64)


def category_counts(values: pd.Series | np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
    """Counts per vocabulary entry, then one last count for unseen categories.

    Missing values are not counted (the missing rate is tracked apart). Values are
    compared as strings, so 1 and "1" are the same category.
    """
    series = pd.Series(values, copy=False)
    codes = category_codes(series[series.notna()], vocabulary)
    return np.bincount(codes, minlength=len(vocabulary) + 1).astype(np.int64)


def category_codes(values: pd.Series | np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
    """Index of each value in `vocabulary`, len(vocabulary) for anything else (unseen or
    missing; callers that need missing apart test it themselves)."""
    series = pd.Series(values, copy=False).astype(str)
    codes = pd.Categorical(series, categories=list(vocabulary)).codes
    return np.where(codes < 0, len(vocabulary), codes)
