"""Compare a batch profile with its reference: a score per method, a decision per column.

A column is drifted when its decision method (configured per feature type) crosses its
threshold, or when its missing rate moved by more than `drift.missing_rate_threshold`.
Input features, the prediction and the target are decided apart: `dataset_drift` speaks
for the input features only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.config import DriftConfig
from monitoring.profile import BatchProfile, NumericalSummary, Summary
from monitoring.reference import NumericalProfile, Profile
from monitoring.stats.registry import Comparison, get_method

MISSING_METHOD = "missing_delta"
DRIFT_TABLE_COLUMNS = [
    "feature",
    "role",
    "kind",
    "method",
    "statistic",
    "p_value",
    "threshold",
    "drifted",
    "decision",
]


@dataclass(frozen=True)
class MethodScore:
    """One method's verdict on one column."""

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    error_bound: float | None = None


@dataclass(frozen=True)
class ColumnDrift:
    """Everything measured on one column of the batch against the reference."""

    column: str
    role: str
    kind: str
    scores: tuple[MethodScore, ...]
    decision_method: str
    drifted: bool
    n: int
    missing_rate: float
    reference_missing_rate: float
    unseen_rate: float | None
    reference_counts: np.ndarray
    batch_counts: np.ndarray
    bin_labels: tuple[str, ...]

    def score(self, method: str) -> MethodScore | None:
        return next((s for s in self.scores if s.method == method), None)

    @property
    def decision_score(self) -> MethodScore | None:
        return self.score(self.decision_method)


def bin_labels(profile: Profile) -> tuple[str, ...]:
    """Readable names of the reference's bins (or categories, then unseen)."""
    if isinstance(profile, NumericalProfile):
        edges = [f"{e:.4g}" for e in profile.edges]
        if not edges:
            return ("all",)
        return (
            f"< {edges[0]}",
            *(f"[{a}, {b})" for a, b in zip(edges, edges[1:], strict=False)),
            f">= {edges[-1]}",
        )
    return (*profile.vocabulary, "(unseen)")


def compare_column(
    profile: Profile, summary: Summary, config: DriftConfig, *, smoothing: float
) -> ColumnDrift:
    """Score one column with every configured method and decide whether it drifted.

    `smoothing` is the reference's own (fixed when it was fitted), not the current config's.
    """
    total = summary.n + summary.n_missing
    missing_rate = summary.n_missing / total if total else 0.0
    delta = missing_rate - profile.missing_rate
    scores: list[MethodScore] = []
    if summary.n > 0:
        exact: dict[str, object] = {}
        if isinstance(profile, NumericalProfile) and isinstance(summary, NumericalSummary):
            exact = {
                "support": profile.support,
                "support_counts": profile.support_counts,
                "batch_support": summary.support,
                "reference_std": profile.std,
            }
        comparison = Comparison(profile.counts, summary.counts, smoothing, **exact)  # type: ignore[arg-type]
        for name in config.methods_for(profile.kind):
            spec = get_method(name)
            result = spec.compute(comparison)
            threshold = config.threshold(name)
            scores.append(
                MethodScore(
                    name,
                    result.statistic,
                    result.p_value,
                    threshold,
                    spec.is_drifted(result, threshold),
                    result.error_bound,
                )
            )
    missing_threshold = config.missing_rate_threshold
    scores.append(
        MethodScore(MISSING_METHOD, delta, None, missing_threshold, abs(delta) > missing_threshold)
    )
    decision = config.decision_for(profile.kind)
    decided = next((s.drifted for s in scores if s.method == decision), False)
    unseen = None
    if profile.kind == "categorical":
        unseen = float(summary.counts[-1] / summary.n) if summary.n else 0.0
    return ColumnDrift(
        column=profile.column,
        role=profile.role,
        kind=profile.kind,
        scores=tuple(scores),
        decision_method=decision,
        drifted=bool(decided or scores[-1].drifted),
        n=summary.n,
        missing_rate=missing_rate,
        reference_missing_rate=profile.missing_rate,
        unseen_rate=unseen,
        reference_counts=profile.counts,
        batch_counts=summary.counts.copy(),
        bin_labels=bin_labels(profile),
    )


def compare(profile: BatchProfile, config: DriftConfig) -> tuple[ColumnDrift, ...]:
    """Every column of the profile compared, in schema order (input features first)."""
    reference = profile.reference
    order = {c: i for i, c in enumerate(reference.schema.columns)}
    columns = sorted(profile.columns, key=lambda c: order.get(c, len(order)))
    return tuple(
        compare_column(
            reference.profiles[c], profile.columns[c], config, smoothing=reference.smoothing
        )
        for c in columns
    )


def drift_table(columns: tuple[ColumnDrift, ...]) -> pd.DataFrame:
    """One row per (column, method): the table users read and `drift.csv` holds."""
    rows = [
        {
            "feature": c.column,
            "role": c.role,
            "kind": c.kind,
            "method": s.method,
            "statistic": s.statistic,
            "p_value": s.p_value,
            "threshold": s.threshold,
            "drifted": s.drifted,
            "decision": s.method == c.decision_method,
        }
        for c in columns
        for s in c.scores
    ]
    return pd.DataFrame(rows, columns=DRIFT_TABLE_COLUMNS)
