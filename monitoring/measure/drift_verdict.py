"""Why a column's verdict is what it is: the reason in plain words, the scale the decision
reads, and the drift table that shows both beside every method's own result.

The verdict is `ColumnDrift.drifted` after `decide`: the one the batch status, the run
description, the CLI, `drift.csv`, the metrics and the plots all show. Pure functions of a
decided `ColumnDrift`; see docs/statistics.md, "Reading a verdict".

Calibrated mode (a decided column has `significant` set), in the order they are checked:

- *drifted*: significant after the correction and an effect at or over its floor;
- *small effect*: significant, but the effect (its distance less the distance's mean under no
  drift at this size) under the floor, so the change is real but too small to matter;
- *not significant*: the adjusted p-value is at alpha or above.

Fixed mode: the decision method against its fixed threshold. (Missing rates are data
quality, reported apart.)
"""

from __future__ import annotations

import math

import pandas as pd

from monitoring.measure.drift import ColumnDrift, MethodScore
from monitoring.measure.reference import FEATURE
from monitoring.stats.registry import get_method

DRIFTED = "drifted"
SMALL_EFFECT = "ok: effect under the floor"
NOT_SIGNIFICANT = "ok: not significant"
OK = "ok"
VERDICT_KINDS = (DRIFTED, SMALL_EFFECT, NOT_SIGNIFICANT, OK)
"""What `verdict_kind` returns: the verdict and, for the plots' legend, the path to it."""

CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "bonferroni": "Bonferroni"}

DRIFT_TABLE_COLUMNS = [
    "feature",
    "role",
    "kind",
    "drifted",
    "reason",
    "method",
    "decision",
    "statistic",
    "p_value",
    "adjusted_p_value",
    "threshold",
    "method_drifted",
    "effect_method",
    "effect",
    "min_effect",
]


def _calibrated(column: ColumnDrift) -> bool:
    """Decided by `decide` (calibrated mode); fixed mode never sets `significant`."""
    return column.significant is not None


def _big_enough(column: ColumnDrift) -> bool:
    effect, floor = column.effect, column.min_effect
    return effect is not None and floor is not None and effect >= floor


def verdict_kind(column: ColumnDrift) -> str:
    """The verdict and the path to it, one of `VERDICT_KINDS`."""
    if column.drifted:
        return DRIFTED
    if not _calibrated(column) or column.decision_score is None:
        return OK
    return SMALL_EFFECT if column.significant else NOT_SIGNIFICANT


def decision_scale(column: ColumnDrift) -> float | None:
    """The column on the scale of its decision, where 1 is the line it must pass: in
    calibrated mode the effect divided by its floor (`min_effect`); in fixed mode the
    statistic divided by its fixed threshold (a test: log p / log threshold, so p below the
    threshold is over 1). None without a value; inf over a floor of 0."""
    if _calibrated(column):
        effect, floor = column.effect, column.min_effect
        if effect is None or floor is None:
            return None
        return _ratio(effect, floor)
    score = column.decision_score
    if score is None:
        return None
    if get_method(score.method).kind == "test":
        if score.p_value is None:
            return None
        if not 0 < score.threshold < 1:  # nothing, or everything, passes
            return math.inf if score.p_value < score.threshold else 0.0
        if score.p_value <= 0:
            return math.inf
        return math.log(score.p_value) / math.log(score.threshold)
    return _ratio(score.statistic, score.threshold)


def _ratio(value: float, line: float) -> float:
    if line > 0:
        return value / line
    return math.inf if value > 0 else 0.0


def scale_label(columns: list[ColumnDrift] | tuple[ColumnDrift, ...]) -> str:
    """What `decision_scale` measures, for an axis label."""
    if any(_calibrated(c) for c in columns):
        return "effect / its floor (minimum effect); drifts past 1 when also significant"
    return "statistic / fixed threshold (tests: log p / log threshold); drifts past 1"


def features_drifted(columns: list[ColumnDrift] | tuple[ColumnDrift, ...]) -> str:
    """The count the description and the plots share: "7 of 14 input features drifted"."""
    features = [c for c in columns if c.role == FEATURE]
    return f"{sum(c.drifted for c in features)} of {len(features)} input features drifted"


def drift_reason(column: ColumnDrift, *, short: bool = False) -> str:
    """The verdict's reason in plain words, e.g. "significant (adjusted p 1e-115) but effect
    0.033 under the floor 0.05"; `short` for a plot title. The verdict itself is not
    repeated: it stands beside the reason wherever the reason is shown."""
    score = column.decision_score
    if score is None:
        return "no values in the batch"
    if not _calibrated(column):
        return _fixed_reason(score, short=short)
    adjusted = _p(column.adjusted_p_value)
    if not column.significant:
        if short:
            return f"not significant, adjusted p {adjusted}"
        correction = CORRECTION_NAMES.get(column.correction or "")
        if correction is None:
            return f"not significant (p {_p(score.p_value)})"
        tests = f"{column.n_tests} test{'s' if column.n_tests != 1 else ''}"
        return (
            f"not significant after {correction} over {tests} "
            f"(p {_p(score.p_value)}, adjusted {adjusted})"
        )
    if column.effect is None or column.min_effect is None:
        return f"significant (adjusted p {adjusted}), no effect size"
    effect, floor = _pair(column.effect, column.min_effect)
    if _big_enough(column):
        if short:
            return f"effect {effect} ≥ floor {floor}, adjusted p {adjusted}"
        return f"effect {effect} over the floor {floor}, adjusted p {adjusted}"
    if short:
        return f"effect {effect} < floor {floor}, adjusted p {adjusted}"
    return f"significant (adjusted p {adjusted}) but effect {effect} under the floor {floor}"


def _fixed_reason(score: MethodScore, *, short: bool) -> str:
    prefix = "" if short else "fixed rule: "
    if get_method(score.method).kind == "test":
        p, line = _pair(score.p_value if score.p_value is not None else math.nan, score.threshold)
        sign = "<" if score.drifted else ">="
        return f"{prefix}{score.method} p {p} {sign} {line}"
    value, line = _pair(score.statistic, score.threshold)
    return f"{prefix}{score.method} {value} {'>' if score.drifted else '<='} {line}"


def _p(value: float | None) -> str:
    """A p-value in two significant digits; below 0.001 as a power of ten (1e-115)."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    if value < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-")
    return f"{value:.2g}"


def _pair(value: float, line: float) -> tuple[str, str]:
    """Both numbers with as few significant digits (2 to 6) as tell them apart."""
    for digits in range(2, 7):
        shown = f"{value:.{digits}g}", f"{line:.{digits}g}"
        if shown[0] != shown[1]:
            return shown
    return shown


def drift_table(columns: tuple[ColumnDrift, ...]) -> pd.DataFrame:
    """One row per (column, method): the table users read and `drift.csv` holds.

    Per column, repeated on each of its rows: `drifted` (the final verdict, the one the
    status uses), `reason`, `effect_method`, `effect` and `min_effect` (its floor), so that
    `table[table.decision]` reads one row per column and other per-column findings (data
    quality) join on `feature`. Per method: `statistic`, `p_value` (before any correction),
    `threshold` (calibrated at the batch's size, or fixed) and `method_drifted` (the method
    alone against that threshold); `decision` marks the decision method, whose row alone
    carries `adjusted_p_value`.
    """
    rows = []
    for c in columns:
        reason = drift_reason(c)
        for s in c.scores:
            decision = s.method == c.decision_method
            rows.append(
                {
                    "feature": c.column,
                    "role": c.role,
                    "kind": c.kind,
                    "drifted": c.drifted,
                    "reason": reason,
                    "method": s.method,
                    "decision": decision,
                    "statistic": s.statistic,
                    "p_value": s.p_value,
                    "adjusted_p_value": c.adjusted_p_value if decision else None,
                    "threshold": s.threshold,
                    "method_drifted": s.drifted,
                    "effect_method": c.effect_method,
                    "effect": c.effect,
                    "min_effect": c.min_effect,
                }
            )
    return pd.DataFrame(rows, columns=DRIFT_TABLE_COLUMNS)
