"""The models a reference fit makes from its collected columns and its sample of rows:
the Wasserstein nulls (simulated in the engine's pool), the anomaly score and the
reconstruction model of the numeric inputs."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future

import numpy as np
import pandas as pd

from monitoring.core.config import DriftConfig
from monitoring.core.engine import Engine
from monitoring.measure.anomaly import AnomalyModel
from monitoring.measure.anomaly_fit import fit_anomaly_model
from monitoring.measure.multivariate import ReconstructionModel
from monitoring.measure.multivariate_fit import fit_reconstruction
from monitoring.measure.reference import FEATURE, ColumnReference, NumericalReference
from monitoring.stats.calibration import BridgeNull, wasserstein_null


def submit_wasserstein_nulls(
    engine: Engine, profiles: Mapping[str, ColumnReference], drift: DriftConfig
) -> dict[str, Future[BridgeNull]]:
    """Each numeric column's Wasserstein null (about 1 ms a column on the shared bridges),
    taken once at fit, so that no batch evaluated against this reference has to."""
    if not drift.needs_wasserstein_null:
        return {}
    return {
        c: engine.submit(
            wasserstein_null,
            p.support,
            p.support_counts,
            simulations=drift.simulations,
            seed=drift.seed,
        )
        for c, p in profiles.items()
        if isinstance(p, NumericalReference) and len(p.support)
    }


def anomaly_model(
    profiles: Mapping[str, ColumnReference],
    sample: pd.DataFrame | None,
    drift: DriftConfig,
    notes: list[str],
) -> AnomalyModel | None:
    """The anomaly score of inputs, calibrated on a sample of reference rows."""
    features = {c: p for c, p in profiles.items() if p.role == FEATURE}
    needed = int(np.ceil(1 / drift.anomaly_flag_rate))
    if sample is None or len(sample) < needed or not features:
        notes.append(
            f"no anomaly score: calibrating a {drift.anomaly_flag_rate:g} flag rate needs "
            f"at least {needed} reference rows"
        )
        return None
    return fit_anomaly_model(
        features,
        sample[list(features)],
        flag_rate=drift.anomaly_flag_rate,
        smoothing=drift.smoothing,
    )


def multivariate_model(
    profiles: Mapping[str, ColumnReference],
    sample: pd.DataFrame | None,
    drift: DriftConfig,
    notes: list[str],
) -> ReconstructionModel | None:
    """The reconstruction model of the numeric inputs, fitted and calibrated on the sample."""
    numeric = {
        c: p for c, p in profiles.items() if p.role == FEATURE and isinstance(p, NumericalReference)
    }
    model = None
    if sample is not None:
        model = fit_reconstruction(
            numeric, sample, variance=drift.multivariate_variance, seed=drift.seed
        )
    if model is None:
        notes.append(
            "no multivariate drift test: it needs at least 2 numeric input features and "
            "20 reference rows"
        )
    return model
