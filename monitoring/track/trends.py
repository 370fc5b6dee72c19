"""Trends across batches and model versions, computed from the table of batch runs.

Pure pandas: the tracking layer reads the runs (`monitoring.track.history`), these
functions order them, pick metrics, summarise each version and compare versions on the
batches they share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from monitoring.errors import ConfigError
from monitoring.measure.performance.estimates import ESTIMATE_ERROR_PREFIX, ESTIMATE_PREFIX
from monitoring.measure.performance.tests import reason_text

ID_COLUMNS = ["model_version", "batch_id", "batch_seq", "batch_time", "status", "run_id"]
DATASET_PREFIX = "drift/dataset/"
PERF_PREFIX = "perf/"
DRIFT_FLAG = "drift/dataset/drift"
DEGRADED_FLAG = "perf/degraded"
# Per-metric figures of the tests against the reference (`perf/<metric>_<suffix>`): in the
# runs and the findings, not among the default metrics followed over batches.
PERF_TEST_SUFFIXES = ("_reference", "_drop", "_pvalue", "_adjusted_pvalue", "_degraded")
# An estimate's interval (`perf_est/<metric>_lower`, `_upper`), drawn as a band around it, and
# the flag of a realized value outside it (`perf_est_error/<metric>_outside`): in the runs, not
# among the default metrics followed over batches.
ESTIMATE_BOUND_SUFFIXES = ("_lower", "_upper")
OUTSIDE_SUFFIX = "_outside"
_DECISION = re.compile(r"^drift/(?P<feature>.+)/(?P<method>[^/]+)_threshold$")


def _version_key(version: str) -> tuple[int, float, str]:
    try:
        return (0, float(version), version)
    except ValueError:
        return (1, 0.0, version)


def order_batches(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs sorted by version, then batch time, then batch id, with `batch_seq` (1-based)."""
    frame = runs.copy()
    frame["_version_key"] = frame["model_version"].map(_version_key)
    frame = frame.sort_values(["_version_key", "batch_time", "batch_id"], kind="stable")
    frame = frame.drop(columns="_version_key").reset_index(drop=True)
    frame["batch_seq"] = frame.groupby("model_version", sort=False).cumcount() + 1
    return frame


def versions_in_order(trend: pd.DataFrame) -> list[str]:
    return sorted(trend["model_version"].unique(), key=_version_key)


def decision_metrics(runs: pd.DataFrame, *, drifted_only: bool = True) -> list[str]:
    """The chief statistic of each feature (its decision method's key).

    A batch run logs `drift/<f>/<method>_threshold` for the decision method only, which is
    how the method is found; with `drifted_only`, only features that drifted in some batch.
    """
    keys = []
    for column in runs.columns:
        match = _DECISION.match(str(column))
        if not match or match["feature"] == "dataset":
            continue
        flag = f"drift/{match['feature']}/drifted"
        if drifted_only and not (flag in runs and (runs[flag] > 0).any()):
            continue
        keys.append(f"drift/{match['feature']}/{match['method']}")
    return sorted(k for k in keys if k in runs)


def is_performance_key(key: object) -> bool:
    """A performance metric followed over batches: `perf/<metric>` and `perf/degraded`, not
    the row counts (`perf/n_*`) nor each test's figures (`PERF_TEST_SUFFIXES`)."""
    name = str(key)
    if not name.startswith(PERF_PREFIX) or name.startswith(f"{PERF_PREFIX}n_"):
        return False
    return name == DEGRADED_FLAG or not name.endswith(PERF_TEST_SUFFIXES)


def is_estimate_key(key: object) -> bool:
    """An estimated-performance figure followed over batches: `perf_est/<metric>` (not its
    interval's `_lower`/`_upper`) and `perf_est_error/<metric>` (not its `_outside` flag)."""
    name = str(key)
    if name.startswith(ESTIMATE_PREFIX):
        return len(name) > len(ESTIMATE_PREFIX) and not name.endswith(ESTIMATE_BOUND_SUFFIXES)
    if name.startswith(ESTIMATE_ERROR_PREFIX):
        return len(name) > len(ESTIMATE_ERROR_PREFIX) and not name.endswith(OUTSIDE_SUFFIX)
    return False


def estimated_metric_names(columns: Iterable[object]) -> list[str]:
    """The metrics that have an estimate column `perf_est/<metric>`, in column order."""
    return [
        str(c).removeprefix(ESTIMATE_PREFIX)
        for c in columns
        if is_estimate_key(c) and str(c).startswith(ESTIMATE_PREFIX)
    ]


def estimate_bound_keys(metric: str) -> tuple[str, str]:
    """The keys of the lower and upper bound of `metric`'s estimated interval."""
    lower, upper = ESTIMATE_BOUND_SUFFIXES
    return f"{ESTIMATE_PREFIX}{metric}{lower}", f"{ESTIMATE_PREFIX}{metric}{upper}"


def default_metrics(runs: pd.DataFrame) -> list[str]:
    """Batch-level drift figures, the chief statistic of drifted features, every perf/*
    (with `perf/degraded`, without each test's figures), then every estimate
    (`perf_est/<metric>`) and estimate error (`perf_est_error/<metric>`)."""
    dataset = sorted(c for c in runs.columns if str(c).startswith(DATASET_PREFIX))
    perf = sorted(c for c in runs.columns if is_performance_key(c))
    estimates = sorted(c for c in runs.columns if is_estimate_key(c))
    return dataset + decision_metrics(runs) + perf + estimates


def degradation_findings(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per batch whose performance was significantly worse than the reference's:
    model_version, batch_id, status and `reason` (the flagged metrics in words, read back
    from `perf/<metric>`, `_reference`, `_drop` and `_adjusted_pvalue`)."""
    columns = ["model_version", "batch_id", "status", "reason"]
    flags = [str(c) for c in runs.columns if str(c).endswith("_degraded") and c != DEGRADED_FLAG]
    if not flags:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, run in order_batches(runs).iterrows():
        reasons = []
        for flag in flags:
            if not run.get(flag, 0.0) > 0:
                continue
            key = flag.removesuffix("_degraded")
            suffixes = ("", "_reference", "_drop", "_adjusted_pvalue")
            figures = [run.get(f"{key}{suffix}") for suffix in suffixes]
            if all(pd.notna(v) for v in figures):
                metric = key.removeprefix(PERF_PREFIX)
                reasons.append(reason_text(metric, *(float(v) for v in figures)))
        if reasons:
            rows.append([run["model_version"], run["batch_id"], run["status"], "; ".join(reasons)])
    return pd.DataFrame(rows, columns=columns)


def select_metrics(runs: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    """The requested metric keys (or the defaults); a key no run has is an error."""
    if not metrics:
        return default_metrics(runs)
    missing = [m for m in metrics if m not in runs.columns]
    if missing:
        known = [c for c in runs.columns if "/" in str(c)]
        sample = ", ".join(sorted(known)[:12])
        raise ConfigError(f"metric key {missing[0]!r} is in no batch run; keys include: {sample}")
    return list(metrics)


def filter_time(runs: pd.DataFrame, since: str | None, until: str | None) -> pd.DataFrame:
    """Batches whose time is within [since, until] (ISO dates or datetimes)."""
    low = pd.Timestamp(since) if since else None
    high = pd.Timestamp(until) if until else None
    if low is not None and high is not None and low > high:
        raise ConfigError(f"`--since` ({since}) is after `--until` ({until})")
    keep = pd.Series(True, index=runs.index)
    if low is not None:
        keep &= runs["batch_time"] >= low
    if high is not None:
        keep &= runs["batch_time"] <= high
    return runs[keep]


def trend_table(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (model version, batch): the id columns, the chosen metrics, then the
    interval bounds of each chosen estimate (`perf_est/<metric>_lower`, `_upper`), which
    the plots draw as a band around it."""
    ordered = order_batches(runs)
    chosen = list(metrics)
    bounds = [b for m in estimated_metric_names(chosen) for b in estimate_bound_keys(m)]
    extra = [b for b in dict.fromkeys(bounds) if b in ordered.columns and b not in chosen]
    return ordered[ID_COLUMNS + chosen + extra]


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    present = ~np.isnan(y)
    if present.sum() < 2:
        return float("nan")
    return float(np.polyfit(x[present], y[present], 1)[0])


def summarize(trend: pd.DataFrame, metrics: Sequence[str], alerts: pd.DataFrame) -> pd.DataFrame:
    """Per (version, metric): batches, mean, last, slope per batch; `first_alert`, the first
    batch where a rule on that metric alerted; `share_drifted_batches` on the
    `drift/dataset/drift` row only (a figure of the version, not of each metric)."""
    rows = []
    for version in versions_in_order(trend):
        part = trend[trend["model_version"] == version]
        drifted = part[DRIFT_FLAG].mean() if DRIFT_FLAG in part else float("nan")
        version_alerts = alerts[(alerts["model_version"] == version) & alerts["alert"]]
        for metric in metrics:
            first = (
                version_alerts[version_alerts["metric"] == metric]
                .sort_values("batch_seq")["batch_id"]
                .head(1)
                .tolist()
            )
            values = part[metric].to_numpy(dtype=float)
            rows.append(
                {
                    "model_version": version,
                    "metric": metric,
                    "batches": int(np.sum(~np.isnan(values))),
                    "mean": float(np.nanmean(values)) if np.any(~np.isnan(values)) else np.nan,
                    "last": values[~np.isnan(values)][-1] if np.any(~np.isnan(values)) else np.nan,
                    "slope_per_batch": _slope(part["batch_seq"].to_numpy(dtype=float), values),
                    "share_drifted_batches": drifted if metric == DRIFT_FLAG else np.nan,
                    "first_alert": first[0] if first else "",
                }
            )
    return pd.DataFrame(rows)


def version_differences(trend: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """On batches that several versions evaluated: each version minus the earliest one.

    One row per (batch, metric, version): `baseline_version`, `value`, `baseline_value`,
    `difference`. Empty when no batch id was evaluated by two versions.
    """
    columns = [
        "batch_id",
        "metric",
        "model_version",
        "baseline_version",
        "value",
        "baseline_value",
        "difference",
    ]
    shared_ids = trend.groupby("batch_id")["model_version"].nunique()
    shared = trend[trend["batch_id"].isin(shared_ids[shared_ids >= 2].index)]
    if shared.empty:
        return pd.DataFrame(columns=columns)
    versions = versions_in_order(shared)
    parts = []
    for metric in metrics:
        wide = shared.pivot_table(
            index="batch_id", columns="model_version", values=metric, aggfunc="last"
        )
        wide = wide[[v for v in versions if v in wide.columns]]
        wide = wide[wide.notna().sum(axis=1) >= 2]
        if wide.empty:
            continue
        base_version = wide.notna().idxmax(axis=1)
        base_value = wide.bfill(axis=1).iloc[:, 0]
        long = wide.stack().rename("value").reset_index().dropna(subset=["value"])
        long["baseline_version"] = long["batch_id"].map(base_version)
        long["baseline_value"] = long["batch_id"].map(base_value)
        long = long[long["model_version"] != long["baseline_version"]]
        parts.append(long.assign(metric=metric, difference=long["value"] - long["baseline_value"]))
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]
