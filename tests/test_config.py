"""Typed configuration: the shipped TOML is valid, errors follow one formula."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring import ConfigError, MonitoringConfig, load_config
from monitoring.core.config import DriftConfig, EvaluationConfig, config_from_mapping

SHIPPED = Path(__file__).resolve().parents[1] / "mlruns_config" / "monitoring.toml"


def test_shipped_config_is_valid_and_equals_the_defaults():
    assert load_config(SHIPPED) == MonitoringConfig()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: DriftConfig(bins=1), "`drift.bins` must be an integer >= 2, got 1", id="bins"
        ),
        pytest.param(
            lambda: DriftConfig(smoothing=-1),
            "`drift.smoothing` must be a number >= 0",
            id="smoothing",
        ),
        pytest.param(
            lambda: DriftConfig(numerical_methods=("chi2",)),
            "method 'chi2' does not apply to numerical features",
            id="method-type",
        ),
        pytest.param(
            lambda: EvaluationConfig(chunk_size=0),
            "`evaluation.chunk_size` must be an integer >= 1, got 0",
            id="chunk-size",
        ),
        pytest.param(
            lambda: config_from_mapping({"drift": {"binz": 3}}),
            "unknown key `drift.binz`",
            id="unknown-key",
        ),
        pytest.param(
            lambda: config_from_mapping({"drfit": {}}),
            "unknown section [drfit]",
            id="unknown-section",
        ),
    ],
)
def test_invalid_settings_name_the_setting(build, message):
    with pytest.raises(ConfigError) as error:
        build()
    assert message in str(error.value)


def test_thresholds_override_the_registry_defaults():
    config = DriftConfig(thresholds={"psi": 0.1})
    assert config.threshold("psi") == 0.1
    assert config.threshold("js") == 0.1  # registry default
    assert config.threshold("ks") == 0.05


def test_flat_config_is_strings_for_mlflow_params():
    flat = MonitoringConfig().flat()
    assert flat["drift.bins"] == "10"
    assert flat["drift.numerical_decision"] == "psi"
    assert all(isinstance(v, str) for v in flat.values())


def test_flat_config_writes_alert_rules_in_words_not_as_a_repr():
    rules = MonitoringConfig().flat()["alerts.rules"]
    assert rules == (
        "drift/dataset/drift > 0.5 in 3 of the last 3 batches; "
        "perf/degraded > 0.5 in 2 of the last 3 batches"
    )
    assert "AlertRule(" not in rules
