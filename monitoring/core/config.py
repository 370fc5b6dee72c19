"""Typed configuration: one schema that the TOML file, CLI flags and Python all build.

Every value is checked when the object is built, with one message formula:
"`drift.bins` must be an integer >= 2, got 1". The tracking store itself is MLflow's own
`MLFLOW_TRACKING_URI` when set; `tracking.uri` is only the fallback.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring.core.alert_rules import DEFAULT_RULES, AlertRule, rules_from_config
from monitoring.core.masking import mask_secrets
from monitoring.core.performance_config import PerformanceConfig
from monitoring.core.validation import check_fraction, check_int, setting_error
from monitoring.errors import ConfigError
from monitoring.stats.multiple_testing import CORRECTIONS
from monitoring.stats.registry import CATEGORICAL, METHODS, NUMERICAL

TASKS = ("classification", "regression")
EXTRA_COLUMNS = ("ignore", "error")
DECISION_MODES = ("calibrated", "fixed")
MULTIVARIATE_METHODS = ("reconstruction", "mmd")


def _check_methods(key: str, names: tuple[str, ...], feature_type: str) -> None:
    for name in names:
        if name not in METHODS:
            raise setting_error(
                key, f"a list of registered methods ({', '.join(sorted(METHODS))})", name
            )
        if feature_type not in METHODS[name].feature_types:
            raise ConfigError(f"`{key}`: method {name!r} does not apply to {feature_type} features")


@dataclass(frozen=True)
class DriftConfig:
    """How reference and batch are compared. See docs in mlruns_config/monitoring.toml."""

    bins: int = 10
    smoothing: float = 0.5
    max_categories: int = 50
    numerical_methods: tuple[str, ...] = (
        "kl",
        "psi",
        "js",
        "hellinger",
        "ks",
        "wasserstein",
        "wasserstein_scaled",
    )
    categorical_methods: tuple[str, ...] = ("kl", "psi", "js", "hellinger", "chi2")
    numerical_decision: str = "psi"
    categorical_decision: str = "psi"
    missing_rate_threshold: float = 0.1
    thresholds: Mapping[str, float] = field(default_factory=dict)
    max_support: int = 200_000
    anomaly_flag_rate: float = 0.01
    seed: int = 0
    decision_mode: str = "calibrated"
    alpha: float = 0.05
    correction: str = "holm"
    simulations: int = 2000
    numerical_effect: str = "wasserstein_scaled"
    min_effect_numerical: float = 0.075
    categorical_effect: str = "tvd"
    min_effect_categorical: float = 0.05
    multivariate: tuple[str, ...] = ("reconstruction",)
    multivariate_variance: float = 0.65
    min_effect_multivariate: float = 0.1
    mmd_max_samples: int = 2000
    mmd_permutations: int = 200
    mmd_max_permutations: int = 2000
    embedding_layer: str | None = None

    def __post_init__(self) -> None:
        check_int("drift.bins", self.bins, 2)
        check_int("drift.max_categories", self.max_categories, 1)
        check_int("drift.max_support", self.max_support, 100)
        if (
            isinstance(self.smoothing, bool)
            or not isinstance(self.smoothing, int | float)
            or self.smoothing < 0
        ):
            raise setting_error("drift.smoothing", "a number >= 0", self.smoothing)
        check_fraction("drift.missing_rate_threshold", self.missing_rate_threshold)
        check_fraction("drift.anomaly_flag_rate", self.anomaly_flag_rate)
        check_fraction("drift.alpha", self.alpha)
        check_fraction("drift.multivariate_variance", self.multivariate_variance)
        check_int("drift.simulations", self.simulations, 100)
        check_int("drift.mmd_max_samples", self.mmd_max_samples, 10)
        check_int("drift.mmd_permutations", self.mmd_permutations, 1)
        check_int("drift.mmd_max_permutations", self.mmd_max_permutations, self.mmd_permutations)
        if self.embedding_layer is not None and (
            not isinstance(self.embedding_layer, str) or not self.embedding_layer
        ):
            raise setting_error("drift.embedding_layer", "a layer name", self.embedding_layer)
        if self.decision_mode not in DECISION_MODES:
            raise setting_error(
                "drift.decision_mode", f"one of {', '.join(DECISION_MODES)}", self.decision_mode
            )
        if self.correction not in CORRECTIONS:
            raise setting_error(
                "drift.correction", f"one of {', '.join(CORRECTIONS)}", self.correction
            )
        for key in ("min_effect_numerical", "min_effect_categorical", "min_effect_multivariate"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise setting_error(f"drift.{key}", "a number >= 0", value)
        object.__setattr__(self, "multivariate", tuple(self.multivariate))
        for name in self.multivariate:
            if name not in MULTIVARIATE_METHODS:
                raise setting_error(
                    "drift.multivariate", f"a list of {', '.join(MULTIVARIATE_METHODS)}", name
                )
        _check_methods("drift.numerical_effect", (self.numerical_effect,), NUMERICAL)
        _check_methods("drift.categorical_effect", (self.categorical_effect,), CATEGORICAL)
        for key in ("numerical_effect", "categorical_effect"):
            if METHODS[getattr(self, key)].kind != "distance":
                raise setting_error(
                    f"drift.{key}", "a distance method (not a test)", getattr(self, key)
                )
        object.__setattr__(self, "numerical_methods", tuple(self.numerical_methods))
        object.__setattr__(self, "categorical_methods", tuple(self.categorical_methods))
        _check_methods("drift.numerical_methods", self.numerical_methods, NUMERICAL)
        _check_methods("drift.categorical_methods", self.categorical_methods, CATEGORICAL)
        _check_methods("drift.numerical_decision", (self.numerical_decision,), NUMERICAL)
        _check_methods("drift.categorical_decision", (self.categorical_decision,), CATEGORICAL)
        for name, value in dict(self.thresholds).items():
            if name not in METHODS:
                known = ", ".join(sorted(METHODS))
                raise setting_error(
                    "drift.thresholds", f"keyed by registered methods ({known})", name
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise setting_error(f"drift.thresholds.{name}", "a number >= 0", value)
        object.__setattr__(self, "thresholds", dict(self.thresholds))

    def threshold(self, method: str) -> float:
        """The threshold in force for `method`: configured, else the registry's default."""
        return float(self.thresholds.get(method, METHODS[method].default_threshold))

    def methods_for(self, feature_type: str) -> tuple[str, ...]:
        """Methods computed for a feature type, the decision (and effect) methods included."""
        if feature_type == NUMERICAL:
            names, decision = self.numerical_methods, self.numerical_decision
        else:
            names, decision = self.categorical_methods, self.categorical_decision
        wanted = [decision]
        if self.calibrated:
            wanted.append(self.effect_for(feature_type))
        return tuple(dict.fromkeys((*names, *wanted)))

    @property
    def calibrated(self) -> bool:
        return self.decision_mode == "calibrated"

    @property
    def needs_wasserstein_null(self) -> bool:
        """Whether deciding reads each numeric column's Brownian-bridge null: a calibrated
        Wasserstein method, as a test or as the effect size."""
        return self.calibrated and any(
            METHODS[name].null == "bridge" for name in self.methods_for(NUMERICAL)
        )

    def effect_for(self, feature_type: str) -> str:
        """The distance whose value is the feature's effect size."""
        return self.numerical_effect if feature_type == NUMERICAL else self.categorical_effect

    def min_effect_for(self, feature_type: str) -> float:
        if feature_type == NUMERICAL:
            return float(self.min_effect_numerical)
        return float(self.min_effect_categorical)

    def decision_for(self, feature_type: str) -> str:
        return self.numerical_decision if feature_type == NUMERICAL else self.categorical_decision


@dataclass(frozen=True)
class SchemaConfig:
    """Column roles. Anything left empty is inferred from the reference (and reported)."""

    id: str | None = None
    timestamp: str | None = None
    target: str | None = None
    prediction: str | None = None
    prediction_scores: Mapping[str, str] = field(default_factory=dict)
    numerical: tuple[str, ...] | None = None
    categorical: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    task: str | None = None
    # A batch column the reference does not have: "ignore" (reported once, not monitored,
    # kept in worst_samples.csv) or "error".
    extra_columns: str = "ignore"

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise setting_error("schema.task", f"one of {', '.join(TASKS)}", self.task)
        if self.extra_columns not in EXTRA_COLUMNS:
            raise setting_error(
                "schema.extra_columns", f"one of {', '.join(EXTRA_COLUMNS)}", self.extra_columns
            )
        for name in ("numerical", "categorical"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "prediction_scores", dict(self.prediction_scores))


@dataclass(frozen=True)
class QualityConfig:
    """Data-quality checks (docs/statistics.md, "Data quality"): their own family in the
    multiple-testing control, so they neither dilute nor are diluted by the drift tests."""

    alpha: float = 0.01
    # A value is outside the reference's range when it is past its minimum or maximum by
    # more than this share of the reference's interdecile range (a shift is not a break).
    range_margin: float = 0.1
    # A batch's anomalous-row rate is a finding from this multiple of the reference's on.
    anomaly_rate_factor: float = 2.0
    # Row volume: a finding when a batch has fewer than 1/factor or more than factor times
    # the median rows of the model version's earlier batches (at least `volume_batches`).
    volume_factor: float = 5.0
    volume_batches: int = 3

    def __post_init__(self) -> None:
        check_fraction("quality.alpha", self.alpha)
        margin = self.range_margin
        if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
            raise setting_error("quality.range_margin", "a number >= 0", margin)
        for key in ("anomaly_rate_factor", "volume_factor"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 1:
                raise setting_error(f"quality.{key}", "a number > 1", value)
        check_int("quality.volume_batches", self.volume_batches, 1)


PLOT_MODES = ("all", "findings", "none")
"""Plots per batch run: always, only when the status is not ok, never."""


@dataclass(frozen=True)
class EvaluationConfig:
    """How a batch is read and what is kept of it."""

    chunk_size: int = 100_000
    worst_k: int = 20
    plot_top_features: int = 6
    threads: int = 0
    plots: str = "all"

    def __post_init__(self) -> None:
        check_int("evaluation.chunk_size", self.chunk_size, 1)
        check_int("evaluation.threads", self.threads, 0)
        check_int("evaluation.worst_k", self.worst_k, 0)
        check_int("evaluation.plot_top_features", self.plot_top_features, 0)
        if self.plots not in PLOT_MODES:
            raise setting_error("evaluation.plots", f"one of {', '.join(PLOT_MODES)}", self.plots)


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs go. `uri` is used only when MLFLOW_TRACKING_URI is unset; `history`
    keeps a parent run per model version whose metric history draws batches as lines.
    `outbox`: the folder where a finished evaluation waits until it is logged
    (MONITORING_OUTBOX wins; default: the user's cache). `stale_after`: seconds without a
    sign of life after which another evaluation's lock or run counts as abandoned
    (docs/reliability.md)."""

    uri: str | None = None
    experiment: str = "monitoring-{model_name}"
    history: bool = True
    outbox: str | None = None
    stale_after: float = 600.0

    def __post_init__(self) -> None:
        if not self.experiment:
            raise setting_error("tracking.experiment", "a non-empty name", self.experiment)
        if self.outbox is not None and (not isinstance(self.outbox, str) or not self.outbox):
            raise setting_error("tracking.outbox", "a folder path", self.outbox)
        stale = self.stale_after
        if isinstance(stale, bool) or not isinstance(stale, int | float) or not stale > 0:
            raise setting_error("tracking.stale_after", "a number of seconds > 0", stale)


@dataclass(frozen=True)
class AlertConfig:
    """Rules across batches (see docs/alerts.md); default: 3 of the last 3 batches drifted.

    `rules` takes AlertRule objects or the tables of `[[alerts.rules]]`.
    """

    rules: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.rules is None:
            rules: tuple[Any, ...] = tuple(DEFAULT_RULES)
        else:
            tables = [r for r in self.rules if not isinstance(r, AlertRule)]
            built = iter(rules_from_config(tables)) if tables else iter(())
            rules = tuple(r if isinstance(r, AlertRule) else next(built) for r in self.rules)
        object.__setattr__(self, "rules", rules)


@dataclass(frozen=True)
class MonitoringConfig:
    """The whole configuration."""

    drift: DriftConfig = field(default_factory=DriftConfig)
    schema: SchemaConfig = field(default_factory=SchemaConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def replace(self, section: str, **changes: Any) -> MonitoringConfig:
        """A copy with some fields of one section changed (None values are ignored)."""
        kept = {key: value for key, value in changes.items() if value is not None}
        if not kept:
            return self
        updated = dataclasses.replace(getattr(self, section), **kept)
        return dataclasses.replace(self, **{section: updated})

    def flat(self) -> dict[str, str]:
        """The effective configuration as `section.key` -> string, for MLflow params;
        a password in a value (a `tracking.uri` with user info) is masked."""
        out: dict[str, str] = {}
        for section in dataclasses.fields(self):
            for item in dataclasses.fields(getattr(self, section.name)):
                value = getattr(getattr(self, section.name), item.name)
                if value and isinstance(value, tuple) and all(hasattr(v, "label") for v in value):
                    value = "; ".join(v.label for v in value)  # alert rules, in words
                elif isinstance(value, tuple):
                    value = ",".join(map(str, value))
                elif isinstance(value, Mapping):
                    value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
                out[f"{section.name}.{item.name}"] = mask_secrets(str(value))
        return out


_SECTIONS = {
    "drift": DriftConfig,
    "schema": SchemaConfig,
    "evaluation": EvaluationConfig,
    "tracking": TrackingConfig,
    "alerts": AlertConfig,
    "performance": PerformanceConfig,
    "quality": QualityConfig,
}


def config_from_mapping(data: Mapping[str, Any], *, origin: str = "config") -> MonitoringConfig:
    """Build the config from nested dicts (a parsed TOML file); unknown keys are errors."""
    sections: dict[str, Any] = {}
    for name, values in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{origin}: unknown section [{name}]; known: {', '.join(_SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{name}] must be a table")
        known = {f.name for f in dataclasses.fields(_SECTIONS[name])}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{origin}: unknown key `{name}.{unknown[0]}`; known: {', '.join(sorted(known))}"
            )
        try:
            sections[name] = _SECTIONS[name](**values)
        except TypeError as error:
            raise ConfigError(f"{origin}: [{name}]: {error}") from error
    return MonitoringConfig(**sections)


def load_config(path: str | Path | None) -> MonitoringConfig:
    """Read a TOML config file; None gives the defaults."""
    if path is None:
        return MonitoringConfig()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {file} is not valid TOML: {error}") from error
    return config_from_mapping(data, origin=str(file))
