"""The Wasserstein nulls are simulated once, at fit, and kept with the reference.

They are exactly what `wasserstein_null` simulates, survive a save and load, spare every
evaluation the simulation, and are simulated again when the settings differ.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_frame

import monitoring.measure.drift
from monitoring import evaluate, fit_reference
from monitoring.core.config import DriftConfig, MonitoringConfig
from monitoring.measure.reference import NumericalReference
from monitoring.measure.reference_files import JSON_NAME, load_reference_files, save_reference
from monitoring.stats.calibration import wasserstein_null


@pytest.fixture
def reference():
    return fit_reference(make_frame(3000, seed=1), target="label", prediction="prediction")


def _numeric(reference) -> dict[str, NumericalReference]:
    return {c: p for c, p in reference.profiles.items() if isinstance(p, NumericalReference)}


def _no_simulation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the Wasserstein null was simulated again")

    monkeypatch.setattr(monitoring.measure.drift, "wasserstein_null", refuse)


def test_fit_keeps_exactly_the_simulated_null_of_each_numeric_column(reference):
    numeric = _numeric(reference)
    assert {"x", "size", "proba_b"} <= set(numeric)
    for profile in numeric.values():
        stored = profile.wasserstein_null
        fresh = wasserstein_null(profile.support, profile.support_counts, simulations=2000)
        assert stored is not None and stored.made_with(2000, 0)
        np.testing.assert_array_equal(stored.values, fresh.values)
        assert stored.n_reference == fresh.n_reference == profile.n


def test_saved_and_loaded_nulls_spare_the_evaluation_the_simulation(
    reference, tmp_path, monkeypatch
):
    batch = make_frame(2000, seed=2, shift=0.2)
    expected = evaluate(batch, reference).drift_table
    loaded = load_reference_files(save_reference(reference, tmp_path / "ref"))
    assert loaded.id == reference.id
    for column, profile in _numeric(loaded).items():
        original = reference.profiles[column].wasserstein_null
        np.testing.assert_array_equal(profile.wasserstein_null.values, original.values)
    _no_simulation(monkeypatch)
    pd.testing.assert_frame_equal(evaluate(batch, loaded).drift_table, expected)


def test_other_settings_simulate_again(reference, monkeypatch):
    config = MonitoringConfig(drift=DriftConfig(simulations=500))
    calls = []
    real = monitoring.measure.drift.wasserstein_null

    def counted(*args, **kwargs):
        calls.append(kwargs["simulations"])
        return real(*args, **kwargs)

    monkeypatch.setattr(monitoring.measure.drift, "wasserstein_null", counted)
    report = evaluate(make_frame(500, seed=3), reference, config=config)
    assert calls and set(calls) == {500}
    assert report.column("x").score("wasserstein").threshold > 0


def test_reference_files_from_before_the_stored_nulls_still_load(reference, tmp_path):
    folder = save_reference(reference, tmp_path / "ref")
    meta = json.loads((folder / JSON_NAME).read_text())
    for entry in meta["profiles"]:
        entry.pop("wasserstein_null", None)
    (folder / JSON_NAME).write_text(json.dumps(meta))
    loaded = load_reference_files(folder)
    assert all(p.wasserstein_null is None for p in _numeric(loaded).values())
    batch = make_frame(800, seed=4)
    pd.testing.assert_frame_equal(
        evaluate(batch, loaded).drift_table, evaluate(batch, reference).drift_table
    )
