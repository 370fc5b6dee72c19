"""One registry of drift methods: name -> function, kind, default threshold, feature types.

A distance is "drifted" when its statistic exceeds the threshold; a test when its p-value
falls below the threshold (alpha). `null` says where a distance's calibrated threshold
comes from (`stats.calibration`): simulated histograms, or the Brownian-bridge limit of
Wasserstein; tests ("own") have their p-value already. Everything that lists, validates
or explains methods reads this table, so adding a method here is the only change needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from monitoring.errors import ConfigError
from monitoring.stats.chi2 import chi2_homogeneity
from monitoring.stats.divergence import (
    hellinger_distance,
    jensen_shannon_distance,
    kl_divergence,
    population_stability_index,
    total_variation_distance,
)
from monitoring.stats.ecdf import (
    SupportCDFs,
    SupportCounts,
    ks_pvalue,
    ks_statistic,
    support_cdfs,
    wasserstein_distance,
)

NUMERICAL = "numerical"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Comparison:
    """What a method may read about one feature: reference and batch, already summarised."""

    reference_hist: np.ndarray
    batch_hist: np.ndarray
    smoothing: float
    support: np.ndarray | None = None
    support_counts: np.ndarray | None = None
    batch_support: SupportCounts | None = None
    reference_std: float | None = None

    @cached_property
    def cdfs(self) -> SupportCDFs:
        """Both CDFs on the support, computed once for KS and Wasserstein."""
        assert self.support_counts is not None and self.batch_support is not None
        return support_cdfs(self.support_counts, self.batch_support)

    @cached_property
    def wasserstein(self) -> tuple[float, float]:
        """(distance, error bound), computed once for the raw and the scaled method."""
        assert self.support is not None and self.support_counts is not None
        assert self.batch_support is not None
        return wasserstein_distance(
            self.support, self.support_counts, self.batch_support, cdfs=self.cdfs
        )


@dataclass(frozen=True)
class MethodResult:
    statistic: float
    p_value: float | None = None
    error_bound: float | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A drift method as the rest of the code sees it."""

    name: str
    kind: Literal["distance", "test"]
    feature_types: frozenset[str]
    default_threshold: float
    description: str
    compute: Callable[[Comparison], MethodResult]
    null: Literal["histogram", "bridge", "own"] = "histogram"

    def is_drifted(self, result: MethodResult, threshold: float) -> bool:
        """Distances drift above the threshold, tests below it (p-value < alpha)."""
        if self.kind == "test":
            return result.p_value is not None and result.p_value < threshold
        return result.statistic > threshold


def _histogram_method(function: Callable[..., float]) -> Callable[[Comparison], MethodResult]:
    def compute(c: Comparison) -> MethodResult:
        return MethodResult(function(c.reference_hist, c.batch_hist, smoothing=c.smoothing))

    return compute


def _ks(c: Comparison) -> MethodResult:
    assert c.support_counts is not None and c.batch_support is not None
    statistic = ks_statistic(c.support_counts, c.batch_support, cdfs=c.cdfs)
    return MethodResult(
        statistic, ks_pvalue(statistic, int(c.support_counts.sum()), c.batch_support.n)
    )


def _wasserstein(c: Comparison) -> MethodResult:
    distance, bound = c.wasserstein
    return MethodResult(distance, error_bound=bound)


def _wasserstein_scaled(c: Comparison) -> MethodResult:
    raw = _wasserstein(c)
    scale = c.reference_std if c.reference_std else 1.0
    bound = raw.error_bound / scale if raw.error_bound is not None else None
    return MethodResult(raw.statistic / scale, error_bound=bound)


def _chi2(c: Comparison) -> MethodResult:
    statistic, p_value = chi2_homogeneity(c.reference_hist, c.batch_hist)
    return MethodResult(statistic, p_value)


_BOTH = frozenset({NUMERICAL, CATEGORICAL})
_NUM = frozenset({NUMERICAL})
_CAT = frozenset({CATEGORICAL})

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "kl",
            "distance",
            _BOTH,
            0.1,
            "KL(batch || reference) on the reference bins",
            _histogram_method(kl_divergence),
        ),
        MethodSpec(
            "psi",
            "distance",
            _BOTH,
            0.2,
            "population stability index on the reference bins",
            _histogram_method(population_stability_index),
        ),
        MethodSpec(
            "js",
            "distance",
            _BOTH,
            0.1,
            "Jensen-Shannon distance (base 2) on the reference bins",
            _histogram_method(jensen_shannon_distance),
        ),
        MethodSpec(
            "hellinger",
            "distance",
            _BOTH,
            0.1,
            "Hellinger distance on the reference bins",
            _histogram_method(hellinger_distance),
        ),
        MethodSpec(
            "tvd",
            "distance",
            _BOTH,
            0.1,
            "total variation distance on the reference bins: the share of rows that moved",
            _histogram_method(total_variation_distance),
        ),
        MethodSpec(
            "ks",
            "test",
            _NUM,
            0.05,
            "two-sample Kolmogorov-Smirnov statistic, exact; p-value exact up to 10,000 rows a "
            "side, asymptotic above (as scipy's ks_2samp)",
            _ks,
            "own",
        ),
        MethodSpec(
            "wasserstein",
            "distance",
            _NUM,
            float("inf"),
            "Wasserstein-1 distance in the feature's own units (no default fixed threshold)",
            _wasserstein,
            "bridge",
        ),
        MethodSpec(
            "wasserstein_scaled",
            "distance",
            _NUM,
            0.1,
            "Wasserstein-1 distance divided by the reference standard deviation",
            _wasserstein_scaled,
            "bridge",
        ),
        MethodSpec(
            "chi2",
            "test",
            _CAT,
            0.05,
            "chi-squared homogeneity test over categories (unseen ones included)",
            _chi2,
            "own",
        ),
    )
}


def get_method(name: str) -> MethodSpec:
    """The registered method `name`; an unknown name lists the registered ones."""
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ConfigError(f"unknown drift method {name!r}; registered methods: {known}") from None
