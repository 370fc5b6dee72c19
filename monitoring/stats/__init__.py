"""Drift statistics as pure functions on histograms and reference supports.

No I/O, no MLflow: arrays in, numbers out. `registry` maps a method name to its function,
kind and default threshold.
"""

from monitoring.stats.chi2 import chi2_homogeneity
from monitoring.stats.divergence import (
    hellinger_distance,
    jensen_shannon_distance,
    kl_divergence,
    population_stability_index,
    smoothed_proportions,
)
from monitoring.stats.ecdf import (
    SupportCDFs,
    SupportCounts,
    count_on_support,
    ks_pvalue,
    ks_statistic,
    support_cdfs,
    wasserstein_distance,
)
from monitoring.stats.histogram import bin_counts, category_counts, quantile_edges
from monitoring.stats.registry import METHODS, MethodSpec, get_method

__all__ = [
    "METHODS",
    "MethodSpec",
    "SupportCDFs",
    "SupportCounts",
    "bin_counts",
    "category_counts",
    "chi2_homogeneity",
    "count_on_support",
    "get_method",
    "hellinger_distance",
    "jensen_shannon_distance",
    "kl_divergence",
    "ks_pvalue",
    "ks_statistic",
    "population_stability_index",
    "quantile_edges",
    "smoothed_proportions",
    "support_cdfs",
    "wasserstein_distance",
]
