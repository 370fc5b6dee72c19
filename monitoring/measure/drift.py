"""Compare a batch profile with its reference: a score per method, a decision per column.

Calibrated mode (`drift.decision_mode = "calibrated"`, the default), see docs/statistics.md:

- every distance gets a p-value and a threshold calibrated at the batch's size
  (`stats.calibration`); tests keep their own p-value, with threshold alpha;
- a column's hypothesis is its decision method's p-value;
- the columns of every role (input features, prediction, target) and the multivariate
  tests form one family, adjusted for multiple testing (`drift.correction`), so that a
  reference-like batch is called drifted (any role) with probability at most alpha;
- a column drifted when its hypothesis is rejected *and* its effect size (a distance in
  interpretable units; for a categorical column at least the share of rows in categories
  the reference never saw) reaches the minimum effect.

Fixed mode: a column drifted when its decision method crosses a fixed threshold; no
correction; each multivariate test is decided alone at alpha (with its minimum effect).
Missing rates are data quality (`measure.quality`) in both modes; `missing_delta` stays in
the drift table as information. `dataset_drift` speaks for the input features only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from monitoring.core.config import DriftConfig
from monitoring.measure.batch_counts import BatchCounts, ColumnCounts, NumericalCounts
from monitoring.measure.multivariate import DatasetDrift
from monitoring.measure.reference import (
    ColumnReference,
    NumericalReference,
    Reference,
)
from monitoring.stats.calibration import BridgeNull, histogram_nulls, wasserstein_null
from monitoring.stats.multiple_testing import adjust_p_values
from monitoring.stats.registry import Comparison, MethodResult, MethodSpec, get_method

MISSING_METHOD = "missing_delta"


@dataclass(frozen=True)
class MethodScore:
    """One method's verdict on one column."""

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    error_bound: float | None = None
    null_mean: float | None = None


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
    effect_method: str | None = None
    min_effect: float | None = None
    adjusted_p_value: float | None = None
    significant: bool | None = None
    correction: str | None = None  # calibrated: the correction and how many hypotheses it
    n_tests: int | None = None  # adjusted together (its family), for the reason

    @property
    def p_value(self) -> float | None:
        """The decision method's (unadjusted) p-value."""
        score = self.decision_score
        return None if score is None else score.p_value

    @property
    def effect(self) -> float | None:
        """The effect size (calibrated mode only): the effect method's statistic less its
        mean under no drift at this batch size, floored at 0, so that sampling noise alone
        gives about 0 at any n and the value reads in the statistic's own units. For a
        categorical column, at least the share of rows in categories the reference never
        saw beyond its own rare share: 5% of rows in new categories is a 0.05 effect."""
        score = self.score(self.effect_method) if self.effect_method else None
        if score is None:
            return None
        effect = max(score.statistic - (score.null_mean or 0.0), 0.0)
        if self.unseen_rate is not None and self.reference_counts.sum():
            rare = float(self.reference_counts[-1] / self.reference_counts.sum())
            effect = max(effect, self.unseen_rate - rare)
        return effect

    def score(self, method: str) -> MethodScore | None:
        return next((s for s in self.scores if s.method == method), None)

    @property
    def decision_score(self) -> MethodScore | None:
        return self.score(self.decision_method)


def bin_labels(profile: ColumnReference) -> tuple[str, ...]:
    """Readable names of the reference's bins (or categories, then unseen)."""
    if isinstance(profile, NumericalReference):
        edges = [f"{e:.4g}" for e in profile.edges]
        if not edges:
            return ("all",)
        return (
            f"< {edges[0]}",
            *(f"[{a}, {b})" for a, b in zip(edges, edges[1:], strict=False)),
            f">= {edges[-1]}",
        )
    return (*profile.vocabulary, "(unseen)")


def score_column(
    profile: ColumnReference, summary: ColumnCounts, config: DriftConfig, *, smoothing: float
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
        if isinstance(profile, NumericalReference) and isinstance(summary, NumericalCounts):
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
            if config.calibrated:
                scores.append(
                    _calibrated_score(spec, result, profile, summary.n, config, smoothing)
                )
                continue
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
    missing_p = _missing_p_value(profile.n_missing, profile.n, summary.n_missing, summary.n)
    scores.append(
        MethodScore(
            MISSING_METHOD, delta, missing_p, missing_threshold, abs(delta) > missing_threshold
        )
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
        drifted=bool(decided),
        n=summary.n,
        missing_rate=missing_rate,
        reference_missing_rate=profile.missing_rate,
        unseen_rate=unseen,
        reference_counts=profile.counts,
        batch_counts=summary.counts.copy(),
        bin_labels=bin_labels(profile),
        effect_method=config.effect_for(profile.kind) if config.calibrated else None,
        min_effect=config.min_effect_for(profile.kind) if config.calibrated else None,
    )


def _calibrated_score(
    spec: MethodSpec,
    result: MethodResult,
    profile: ColumnReference,
    n: int,
    config: DriftConfig,
    smoothing: float,
) -> MethodScore:
    """A method's score with its p-value and threshold calibrated at the batch's size n."""
    alpha = config.alpha
    null_mean: float | None = None
    if spec.null == "own":
        p_value, threshold = result.p_value, alpha
    elif spec.null == "bridge":
        assert isinstance(profile, NumericalReference)
        null = wasserstein_null_of(profile, config)
        scale = profile.std if spec.name == "wasserstein_scaled" and profile.std else 1.0
        p_value = null.p_value(result.statistic * scale, n)
        threshold = null.threshold(alpha, n) / scale
        null_mean = null.mean(n) / scale
    else:
        fit = histogram_nulls(
            profile.counts, n, smoothing=smoothing, simulations=config.simulations, seed=config.seed
        )[spec.name]
        p_value, threshold, null_mean = (
            fit.p_value(result.statistic),
            fit.threshold(alpha),
            fit.mean,
        )
    drifted = p_value is not None and p_value < alpha
    return MethodScore(
        spec.name, result.statistic, p_value, threshold, drifted, result.error_bound, null_mean
    )


def _stored_null(profile: NumericalReference, config: DriftConfig) -> BridgeNull | None:
    """The null simulated at fit, when it was made with these settings."""
    stored = profile.wasserstein_null
    if stored is not None and stored.made_with(config.simulations, config.seed):
        return stored
    return None


def wasserstein_null_of(profile: NumericalReference, config: DriftConfig) -> BridgeNull:
    """The column's Wasserstein null: the one simulated at fit when it was made with these
    settings (`drift.simulations`, `drift.seed`), else simulated now (and cached)."""
    stored = _stored_null(profile, config)
    if stored is not None:
        return stored
    return wasserstein_null(
        profile.support,
        profile.support_counts,
        simulations=config.simulations,
        seed=config.seed,
    )


def batch_free_nulls(reference: Reference, config: DriftConfig) -> list[Callable[[], object]]:
    """What `decide_drift` will need that does not depend on the batch and the reference does
    not already hold, as calls a streaming pass can make while chunks arrive: Wasserstein
    nulls (about 1 ms a column once the shared bridges are drawn; cached, so `decide_drift`
    then finds them)."""
    if not config.needs_wasserstein_null:
        return []
    return [
        functools.partial(wasserstein_null_of, profile, config)
        for profile in reference.profiles.values()
        if isinstance(profile, NumericalReference)
        and len(profile.support)
        and _stored_null(profile, config) is None
    ]


def batch_size_nulls(
    reference: Reference, config: DriftConfig, rows: int
) -> list[Callable[[], object]]:
    """The histogram nulls `decide_drift` will need if the batch has `rows` values in every
    column the reference had no missing value in, as calls to make ahead (cached by
    `histogram_nulls`; one per distinct reference histogram). A small batch's pass runs in
    one thread, so these take the idle core meanwhile; a guess that misses (the batch has
    missing values there) only costs that core's time."""
    if not config.calibrated or rows <= 0:
        return []
    histograms = {
        profile.counts.tobytes(): profile.counts
        for profile in reference.profiles.values()
        if profile.n_missing == 0
        and any(get_method(m).null == "histogram" for m in config.methods_for(profile.kind))
    }
    return [
        functools.partial(
            histogram_nulls,
            counts,
            rows,
            smoothing=reference.smoothing,
            simulations=config.simulations,
            seed=config.seed,
        )
        for counts in histograms.values()
    ]


def _missing_p_value(
    ref_missing: int, ref_present: int, missing: int, present: int
) -> float | None:
    """Two-sided two-proportion z-test of the missing rate; None when nothing is missing."""
    if ref_missing == 0 and missing == 0:
        return None
    n1, n2 = ref_missing + ref_present, missing + present
    if n1 == 0 or n2 == 0:
        return None
    pooled = (ref_missing + missing) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (missing / n2 - ref_missing / n1) / spread
    return float(2 * special.ndtr(-abs(z)))  # two-sided normal tail


def decide_drift(
    profile: BatchCounts,
    config: DriftConfig,
    dataset: Sequence[DatasetDrift] = (),
    *,
    mapper: Callable[[Callable[[str], ColumnDrift], list[str]], Iterable[ColumnDrift]] = map,
) -> tuple[tuple[ColumnDrift, ...], tuple[DatasetDrift, ...]]:
    """Every column of the batch scored against the reference, in schema order (input
    features first), and decided with the batch-level `dataset` tests. Columns share
    nothing, so `mapper` (a map function, e.g. the engine's) may score them side by side."""
    reference = profile.reference
    order = {c: i for i, c in enumerate(reference.schema.columns)}
    columns = sorted(profile.columns, key=lambda c: order.get(c, len(order)))

    def one(column: str) -> ColumnDrift:
        return score_column(
            reference.profiles[column],
            profile.columns[column],
            config,
            smoothing=reference.smoothing,
        )

    compared = tuple(mapper(one, columns))
    if not config.calibrated:
        # Rules of thumb per feature; each multivariate test alone at alpha.
        return compared, tuple(d.decided(d.p_value < config.alpha) for d in dataset)
    return decide(compared, tuple(dataset), config)


def decide(
    columns: tuple[ColumnDrift, ...], dataset: tuple[DatasetDrift, ...], config: DriftConfig
) -> tuple[tuple[ColumnDrift, ...], tuple[DatasetDrift, ...]]:
    """Multiple-testing control over every column's decision test (input features, the
    prediction and the target) and the batch-level tests together, as one family, then the
    effect-size gate (calibrated mode). One family, so that the status's drift verdict
    (whatever the role) false-alarms at most at `drift.alpha`, not once per role. Missing
    rates are data quality (`measure.quality`), not drift."""
    hypotheses: list[tuple[str, int, float]] = [
        ("column", i, c.p_value) for i, c in enumerate(columns) if c.p_value is not None
    ]
    hypotheses += [("dataset", j, d.p_value) for j, d in enumerate(dataset)]
    adjusted = adjust_p_values([h[2] for h in hypotheses], config.correction)
    rejected = {
        (h[0], h[1]): (float(a), bool(a < config.alpha))
        for h, a in zip(hypotheses, adjusted, strict=True)
    }
    decided = []
    for i, c in enumerate(columns):
        adjusted_p, significant = rejected.get(("column", i), (None, False))
        effect = c.effect
        big_enough = effect is not None and c.min_effect is not None and effect >= c.min_effect
        decided.append(
            dataclasses.replace(
                c,
                adjusted_p_value=adjusted_p,
                significant=significant,
                drifted=bool(significant and big_enough),
                correction=config.correction,
                n_tests=len(hypotheses),
            )
        )
    dataset_out = tuple(d.decided(rejected[("dataset", j)][1]) for j, d in enumerate(dataset))
    return tuple(decided), dataset_out
