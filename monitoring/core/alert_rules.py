"""Alert rules over one metric's series, one value per batch, oldest batch first.

A rule says when a metric "stays bad for several batches". Everything here is pure and
causal: the decision at batch t reads batches 0..t only, so replaying a history gives the
alerts that would have been raised live.

    kind           a batch is bad when                          the rule alerts when
    k_of_n         value > bad_above (default 0.5: a 0/1 flag)  >= k of the last n batches are bad
    floor          value < floor   (> floor if lower is better) >= k of the last n batches are bad
    margin         value < baseline - margin (mirrored)         >= k of the last n batches are bad
    cusum          -                                            one-sided CUSUM > threshold
    page_hinkley   -                                            Page-Hinkley > threshold

CUSUM and Page-Hinkley work on values standardised by the mean and standard deviation of the
first `warmup` batches, so `drift` and `threshold` are in standard deviations, and they are
silent during the warmup. A missing value (NaN: the metric was not logged for a batch) is
never bad, still takes its place in a k-of-n window, and leaves CUSUM and Page-Hinkley
where they were. Infinite values are refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monitoring.core.validation import check_fraction, check_int, setting_error
from monitoring.errors import ConfigError, InvalidValueError

__all__ = [
    "DEFAULT_BAD_ABOVE",
    "DEFAULT_RULES",
    "KINDS",
    "MAX_EXACT_N",
    "MIN_SD",
    "AlertRule",
    "alert_series",
    "bad_series",
    "cusum_statistic",
    "false_alarm_probability",
    "first_alert",
    "mean_batches_to_false_alarm",
    "page_hinkley_statistic",
    "rules_from_config",
]

WINDOW_KINDS = ("k_of_n", "floor", "margin")
SEQUENTIAL_KINDS = ("cusum", "page_hinkley")
KINDS = WINDOW_KINDS + SEQUENTIAL_KINDS

DEFAULT_BAD_ABOVE = 0.5
"""k_of_n without `bad_above`: a 0/1 flag such as `drift/dataset/drift` is bad when 1."""

MIN_SD = 1e-6
"""Floor on the warmup standard deviation (metric units): a constant warmup gives z = dx / 1e-6."""

MAX_EXACT_N = 12
"""Largest window for `mean_batches_to_false_alarm` (a chain of 2^(n-1) states)."""

# The setting that only one kind reads, and must read: (field, kind, required).
_KIND_ONLY = (("bad_above", "k_of_n", False), ("floor", "floor", True), ("margin", "margin", True))


def _check_number(
    key: str, value: object, *, minimum: float | None = None, strict: bool = False
) -> None:
    """A finite number (bools refused), >= minimum, or > minimum when strict."""
    valid = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if valid and minimum is not None:
        valid = value > minimum if strict else value >= minimum  # type: ignore[operator]
    if not valid:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise setting_error(key, f"a finite number{bound}", value)


@dataclass(frozen=True)
class AlertRule:
    """One rule over one metric's series (oldest batch first). See the module docstring.

    `k`, `n`: window kinds alert when >= k of the last n batches are bad.
    `bad_above` (k_of_n, default 0.5), `floor` (required for floor), `margin` (required for
    margin, >= 0, against the `baseline` given at evaluation or else the warmup mean).
    `higher_is_better`: the direction of floor, margin, cusum and page_hinkley (k_of_n is
    always "higher is worse"). `drift` (the allowance delta/k) and `threshold` (h, lambda)
    are in warmup standard deviations. `warmup` (>= 2) batches estimate the mean and sd.
    `name`: display name; `label` derives one when it is None.
    """

    metric: str
    kind: str = "k_of_n"
    k: int = 3
    n: int = 3
    bad_above: float | None = None
    floor: float | None = None
    margin: float | None = None
    higher_is_better: bool = True
    drift: float = 0.5
    threshold: float = 5.0
    warmup: int = 20
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise setting_error("alerts.metric", "a non-empty metric key", self.metric)
        if self.kind not in KINDS:
            raise setting_error("alerts.kind", f"one of {', '.join(KINDS)}", self.kind)
        check_int("alerts.k", self.k, 1)
        check_int("alerts.n", self.n, 1)
        if self.k > self.n:
            raise setting_error("alerts.k", f"an integer <= `alerts.n` ({self.n})", self.k)
        for key, kind, required in _KIND_ONLY:
            value = getattr(self, key)
            if value is not None and self.kind != kind:
                raise ConfigError(
                    f"`alerts.{key}` applies only to kind {kind!r}, not {self.kind!r}"
                )
            if value is None and self.kind == kind and required:
                raise setting_error(f"alerts.{key}", f"set for kind {kind!r}", value)
            if value is not None:
                _check_number(f"alerts.{key}", value, minimum=0 if key == "margin" else None)
        if not isinstance(self.higher_is_better, bool):
            raise setting_error("alerts.higher_is_better", "true or false", self.higher_is_better)
        _check_number("alerts.drift", self.drift, minimum=0)
        _check_number("alerts.threshold", self.threshold, minimum=0, strict=True)
        check_int("alerts.warmup", self.warmup, 2)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise setting_error("alerts.name", "a non-empty string or absent", self.name)

    @property
    def label(self) -> str:
        """`name`, else e.g. "drift/dataset/drift > 0.5 in 3 of the last 3 batches"."""
        if self.name is not None:
            return self.name
        worse = "<" if self.higher_is_better else ">"
        if self.kind in SEQUENTIAL_KINDS:
            test = "CUSUM" if self.kind == "cusum" else "Page-Hinkley"
            change = "drop" if self.higher_is_better else "rise"
            return f"{self.metric} {test} {change} > {self.threshold:g} sd"
        if self.kind == "k_of_n":
            condition = f"> {_bad_above(self):g}"
        elif self.kind == "floor":
            condition = f"{worse} {self.floor:g}"
        else:
            condition = f"{worse} baseline {'-' if self.higher_is_better else '+'} {self.margin:g}"
        return f"{self.metric} {condition} in {self.k} of the last {self.n} batches"


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(metric="drift/dataset/drift"),
    AlertRule(metric="perf/degraded", k=2, n=3),
)
"""Alert when the dataset drifted in 3 of the last 3 batches, or when performance was
significantly worse than the reference's in 2 of the last 3 (docs/alerts.md: at most one
false alert in about 225 batches when each batch false-alarms at the bound 0.05, one in
about 3,000 at the measured rate of about 0.013)."""

_FIELDS = tuple(field.name for field in dataclasses.fields(AlertRule))


def _bad_above(rule: AlertRule) -> float:
    return DEFAULT_BAD_ABOVE if rule.bad_above is None else float(rule.bad_above)


def _as_series(values: Sequence[float] | np.ndarray) -> np.ndarray:
    series = np.asarray(values, dtype=float)
    if series.ndim != 1:
        raise InvalidValueError(
            f"a metric series must be one-dimensional, got shape {series.shape}"
        )
    infinite = np.flatnonzero(np.isinf(series))
    if infinite.size:
        index = int(infinite[0])
        raise InvalidValueError(
            f"batch {index} of the series is {series[index]}; use NaN if missing"
        )
    return series


def _warmup(series: np.ndarray, warmup: int) -> tuple[np.ndarray, int]:
    """The first `warmup` non-missing values and the index of the first batch after them."""
    present = np.flatnonzero(~np.isnan(series))
    if present.size < warmup:
        return series[present], series.size
    return series[present[:warmup]], int(present[warmup - 1]) + 1


def _standardise(
    series: np.ndarray, warmup: int, higher_is_better: bool, min_sd: float
) -> tuple[np.ndarray, int]:
    """z_t = sign (x_t - mean) / max(sd, min_sd) over the warmup; "bad" is z > 0."""
    check_int("warmup", warmup, 2)
    _check_number("min_sd", min_sd, minimum=0, strict=True)
    values, start = _warmup(series, warmup)
    if start >= series.size:
        return np.full(series.size, np.nan), series.size
    sd = max(float(np.std(values, ddof=1)), min_sd)
    sign = -1.0 if higher_is_better else 1.0
    return sign * (series - float(np.mean(values))) / sd, start


def cusum_statistic(
    values: Sequence[float] | np.ndarray,
    *,
    drift: float = 0.5,
    warmup: int = 20,
    higher_is_better: bool = True,
    min_sd: float = MIN_SD,
) -> np.ndarray:
    """One-sided CUSUM in the bad direction, per batch (NaN during the warmup).

    With mu and sd the mean and sample sd (ddof 1, floored at `min_sd`) of the first `warmup`
    non-missing values, z_t = -(x_t - mu) / sd when higher is better, else +(x_t - mu) / sd;
    from the first batch after the warmup, S_t = max(0, S_{t-1} + z_t - drift), S = 0 before.
    A missing x_t leaves S_t = S_{t-1}. A rule alerts while S_t > threshold (no reset).
    """
    _check_number("drift", drift, minimum=0)
    series = _as_series(values)
    z, start = _standardise(series, warmup, higher_is_better, min_sd)
    out = np.full(series.size, np.nan)
    total = 0.0
    for t in range(start, series.size):
        if not np.isnan(z[t]):
            total = max(0.0, total + float(z[t]) - drift)
        out[t] = total
    return out


def page_hinkley_statistic(
    values: Sequence[float] | np.ndarray,
    *,
    drift: float = 0.5,
    warmup: int = 20,
    higher_is_better: bool = True,
    min_sd: float = MIN_SD,
) -> np.ndarray:
    """Page-Hinkley in the bad direction, per batch (NaN during the warmup).

    On the same z_t as `cusum_statistic`, with zbar_t the running mean of z over every
    non-missing batch up to t (warmup included) and delta = `drift`, from the first batch
    after the warmup: m_t = sum over tested i <= t of (z_i - zbar_i - delta),
    M_t = min(0, m_i for i <= t), PH_t = m_t - M_t. A missing x_t leaves everything as it
    was. A rule alerts while PH_t > lambda = threshold.
    """
    _check_number("drift", drift, minimum=0)
    series = _as_series(values)
    z, start = _standardise(series, warmup, higher_is_better, min_sd)
    out = np.full(series.size, np.nan)
    seen = z[:start][~np.isnan(z[:start])]
    count, mean = seen.size, float(seen.mean()) if seen.size else 0.0
    cumulative = lowest = 0.0
    for t in range(start, series.size):
        if not np.isnan(z[t]):
            count += 1
            mean += (float(z[t]) - mean) / count
            cumulative += float(z[t]) - mean - drift
            lowest = min(lowest, cumulative)
        out[t] = cumulative - lowest
    return out


def bad_series(
    rule: AlertRule, values: Sequence[float] | np.ndarray, *, baseline: float | None = None
) -> np.ndarray:
    """Per batch, whether it is bad under a k_of_n, floor or margin rule (NaN is never bad).

    margin compares with `baseline` when given, else with the mean of the first `rule.warmup`
    non-missing values, and those warmup batches are never bad. k_of_n and floor ignore it.
    """
    if rule.kind not in WINDOW_KINDS:
        raise ConfigError(
            f"bad_series applies to kinds {', '.join(WINDOW_KINDS)}; rule {rule.label!r} is "
            f"{rule.kind!r} (plot cusum_statistic or page_hinkley_statistic instead)"
        )
    series = _as_series(values)
    if rule.kind == "k_of_n":
        return series > _bad_above(rule)
    if rule.kind == "floor":
        start, limit = 0, float(rule.floor)  # type: ignore[arg-type]
    else:
        if baseline is None:  # too few values: start = len(series), nothing is bad
            warm, start = _warmup(series, rule.warmup)
            center = float(np.mean(warm)) if warm.size else 0.0
        else:
            _check_number("baseline", baseline)
            start, center = 0, float(baseline)
        margin = float(rule.margin)  # type: ignore[arg-type]
        limit = center - margin if rule.higher_is_better else center + margin
    bad = series < limit if rule.higher_is_better else series > limit
    bad[:start] = False
    return bad


def alert_series(
    rule: AlertRule, values: Sequence[float] | np.ndarray, *, baseline: float | None = None
) -> np.ndarray:
    """Per batch, whether the rule is in alert given the batches up to and including it.

    Window kinds: >= k of the last n `bad_series` flags (fewer batches at the start).
    cusum / page_hinkley: the statistic > `rule.threshold` (never during the warmup).
    NaN values are never bad and leave the sequential statistics unchanged.
    """
    if rule.kind in WINDOW_KINDS:
        counts = np.cumsum(bad_series(rule, values, baseline=baseline), dtype=np.int64)
        window = counts.copy()
        window[rule.n :] -= counts[: -rule.n]
        return window >= rule.k
    statistic = cusum_statistic if rule.kind == "cusum" else page_hinkley_statistic
    scores = statistic(
        values, drift=rule.drift, warmup=rule.warmup, higher_is_better=rule.higher_is_better
    )
    return np.nan_to_num(scores, nan=0.0) > rule.threshold


def first_alert(
    rule: AlertRule, values: Sequence[float] | np.ndarray, *, baseline: float | None = None
) -> int | None:
    """The index of the first batch in alert, or None."""
    hits = np.flatnonzero(alert_series(rule, values, baseline=baseline))
    return int(hits[0]) if hits.size else None


def rules_from_config(items: Sequence[Mapping[str, object]]) -> tuple[AlertRule, ...]:
    """Rules from the `[[alerts.rules]]` tables of a parsed TOML file (unknown keys refused)."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise setting_error("alerts.rules", "a list of tables ([[alerts.rules]])", items)
    rules = []
    for number, item in enumerate(items, start=1):
        where = f"[[alerts.rules]] number {number}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: must be a table, got {item!r}")
        unknown = sorted(set(item) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown key `alerts.{unknown[0]}`; known: {', '.join(_FIELDS)}"
            )
        if "metric" not in item:
            raise ConfigError(f"{where}: `alerts.metric` is required")
        try:
            rules.append(AlertRule(**item))  # type: ignore[arg-type]
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error
    return tuple(rules)


def _check_window(k: object, n: object) -> None:
    check_int("k", k, 1)
    check_int("n", n, 1)
    if k > n:  # type: ignore[operator]
        raise setting_error("k", f"an integer <= `n` ({n})", k)


def false_alarm_probability(k: int, n: int, alpha: float) -> float:
    """P(Binomial(n, alpha) >= k): the chance that one given batch with a full window (itself
    and the n - 1 before it) is in k-of-n alert, every batch independently bad with
    probability alpha."""
    _check_window(k, n)
    check_fraction("alpha", alpha)
    return math.fsum(math.comb(n, j) * alpha**j * (1 - alpha) ** (n - j) for j in range(k, n + 1))


def mean_batches_to_false_alarm(k: int, n: int, alpha: float) -> float:
    """Expected number of batches up to and including the first k-of-n alert (the average run
    length), every batch independently bad with probability alpha, starting with no history.

    Exact: a Markov chain whose state is the last n - 1 outcomes (the 2^(n-1) states with
    fewer than k bad ones; n <= MAX_EXACT_N), with Q the moves that do not alert and
    ARL = ((I - Q)^-1 1)[no history]. The chain is solved by eliminating states one at a time
    in the manner of Grassmann, Taksar and Heyman (GTH): 1 - Q_jj is summed from the other
    ways out of j rather than subtracted, so only non-negative numbers are added and the
    result keeps full relative precision even for ARLs of 1e15 batches (a plain solve of
    (I - Q) m = 1 loses about log10(ARL) digits). At most 0.3 s for n = 12.
    For k = n it equals (1 - alpha^n) / ((1 - alpha) alpha^n); for k = 1 it is 1 / alpha.
    """
    _check_window(k, n)
    check_fraction("alpha", alpha)
    if n > MAX_EXACT_N:
        raise setting_error("n", f"an integer <= {MAX_EXACT_N} for the exact chain", n)
    keep = (1 << (n - 1)) - 1
    states = [state for state in range(keep + 1) if state.bit_count() < k]  # others unreachable
    position = {state: i for i, state in enumerate(states)}
    moves = np.zeros((len(states), len(states)))  # Q: the next batch raises no alert
    alerts = np.zeros(len(states))  # the next batch raises the alert
    for i, state in enumerate(states):
        for outcome, probability in ((0, 1 - alpha), (1, alpha)):
            if state.bit_count() + outcome >= k:
                alerts[i] += probability
            else:
                moves[i, position[((state << 1) | outcome) & keep]] += probability
    steps = np.ones(len(states))  # expected batches spent before leaving, per state
    for j in range(len(states) - 1, 0, -1):  # eliminate all but the empty history (index 0)
        into, out = np.flatnonzero(moves[:j, j]), np.flatnonzero(moves[j, :j])
        leave = alerts[j] + moves[j, out].sum()  # 1 - Q_jj without a subtraction
        share = moves[into, j] / leave
        moves[np.ix_(into, out)] += np.outer(share, moves[j, out])
        alerts[into] += share * alerts[j]
        steps[into] += share * steps[j]
    return float(steps[0] / alerts[0])
