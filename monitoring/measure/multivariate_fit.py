"""Fit the reconstruction model of `multivariate` on a sample of reference rows: normal-score
maps from the fitted columns, principal components on one half of the sample, the null of
the mean error calibrated on the other half."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import special

from monitoring.collect.columns import numeric_values
from monitoring.measure.multivariate import GRID, MMD_REFERENCE_ROWS, ReconstructionModel
from monitoring.measure.reference import NumericalReference


def normal_score_grid(
    profile: NumericalReference, size: int = GRID
) -> tuple[np.ndarray, np.ndarray]:
    """Support points and their normal scores at the reference's mid-CDF, at most `size`."""
    u = np.asarray(profile.support, dtype=np.float64)
    c = np.asarray(profile.support_counts, dtype=np.float64)
    m = c.sum()
    mid = (np.cumsum(c) - c / 2) / m
    if len(u) > size:
        keep = np.unique(np.searchsorted(mid, np.linspace(mid[0], mid[-1], size)))
        keep = np.unique(np.concatenate(([0], np.minimum(keep, len(u) - 1), [len(u) - 1])))
        u, mid = u[keep], mid[keep]
    return u, special.ndtri(mid)


def fit_reconstruction(
    profiles: Mapping[str, NumericalReference],
    sample: pd.DataFrame,
    *,
    variance: float,
    seed: int = 0,
) -> ReconstructionModel | None:
    """Fit on one random half of `sample`, calibrate on the other; None with < 2 features
    or fewer than 20 sample rows."""
    columns = tuple(profiles)
    if len(columns) < 2 or len(sample) < 20:
        return None
    grids = [normal_score_grid(profiles[c]) for c in columns]
    values = {
        c: numeric_values(sample[c], column=c, offset=0, where="reference sample") for c in columns
    }
    staged = ReconstructionModel(
        columns=columns,
        grid_x=tuple(g[0] for g in grids),
        grid_z=tuple(g[1] for g in grids),
        center=np.zeros(len(columns)),
        components=np.zeros((len(columns), 0)),
        explained=0.0,
        error_mean=0.0,
        error_std=0.0,
        n_calibration=0,
    )
    z = staged.scores(values)
    order = np.random.default_rng(seed).permutation(len(z))
    fit_rows, calibration_rows = order[: len(z) // 2], order[len(z) // 2 :]
    center = z[fit_rows].mean(axis=0)
    centered = z[fit_rows] - center
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    share = np.cumsum(singular**2) / np.sum(singular**2)
    k = int(np.searchsorted(share, variance) + 1)
    k = min(k, len(columns) - 1)  # keep at least one direction to miss
    components = vt[:k].T
    fitted = dataclasses.replace(
        staged, center=center, components=components, explained=float(share[k - 1])
    )
    held_out = {c: v[calibration_rows] for c, v in values.items()}
    errors = fitted.errors(held_out)
    sample = fitted.scores({c: v[:MMD_REFERENCE_ROWS] for c, v in held_out.items()})
    return dataclasses.replace(
        fitted,
        error_mean=float(errors.mean()),
        error_std=float(errors.std(ddof=1)),
        n_calibration=len(errors),
        # Rounded as stored, so a reloaded reference tests exactly the same rows.
        sample=np.round(sample, 4),
    )
