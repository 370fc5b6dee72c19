"""Fit the reference's performance estimator, and read one back from the reference files.

A classifier's comes from the reference's truth, predicted labels and class probabilities
(`OutputRows`); a regressor's from a sample of reference rows with inputs, truth and
prediction (`error_model`). Without what it needs there is no estimator, and a note of the
reference says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from monitoring.collect.columns import score_matrix
from monitoring.core.schema import Schema
from monitoring.measure.performance.calibration_map import (
    MIN_CALIBRATION_ROWS,
    ClassificationEstimator,
    fit_classification_estimator,
)
from monitoring.measure.performance.error_model import ErrorModel, fit_error_model
from monitoring.measure.performance.labels import read_labels

__all__ = [
    "ERROR_SAMPLE_ROWS",
    "Estimator",
    "estimator_from_dict",
    "estimator_to_dict",
    "fit_estimator",
]

ERROR_SAMPLE_ROWS = 20_000  # reference rows a regressor's error model is fitted and checked on

Estimator = ClassificationEstimator | ErrorModel


def fit_estimator(
    schema: Schema,
    classes: tuple[str, ...],
    outputs: pd.DataFrame | None,
    sample: pd.DataFrame | None,
    *,
    seed: int,
    notes: list[str],
) -> Estimator | None:
    """The estimator of a batch's performance without labels; None (with a note) when the
    reference lacks truth, predictions or, for a classifier, every class's probability."""
    if not schema.target:
        return None
    if schema.task == "regression":
        model = None
        if sample is not None and schema.prediction and schema.prediction in sample:
            model = fit_error_model(
                sample,
                numerical=schema.numerical,
                categorical=schema.categorical,
                target=schema.target,
                prediction=schema.prediction,
                seed=seed,
            )
        if model is None:
            notes.append(
                "no estimated performance: it needs at least 200 reference rows with truth "
                "and prediction"
            )
        else:
            c = model.check
            notes.append(
                f"estimated performance: error model fitted on {int(c['n_fit'])} reference "
                f"rows, checked on {int(c['n_check'])} others: MAE {c['mae_realized']:.4g}, "
                f"estimated {c['mae_estimated']:.4g}"
            )
        return model
    return _classification(schema, classes, outputs, seed=seed, notes=notes)


def _classification(
    schema: Schema,
    classes: tuple[str, ...],
    outputs: pd.DataFrame | None,
    *,
    seed: int,
    notes: list[str],
) -> ClassificationEstimator | None:
    scores = (
        score_matrix(outputs, schema.prediction_scores, classes)
        if outputs is not None and len(classes) >= 2
        else None
    )
    if outputs is None or scores is None or schema.target not in outputs:
        notes.append(
            "no estimated performance: it needs the reference's truth and every class's "
            "probability (score columns)"
        )
        return None
    truth, missing = read_labels(outputs[schema.target], classes, name=str(schema.target))
    pred = scores.argmax(axis=1)
    if schema.prediction and schema.prediction in outputs:
        named, none = read_labels(outputs[schema.prediction], classes, name=schema.prediction)
        pred = np.where(none, pred, named)
    kept = ~missing
    found = fit_classification_estimator(
        classes, truth[kept], pred[kept], scores[kept], positive=1, seed=seed
    )
    if found is None:
        notes.append(
            f"no estimated performance: checking the calibration needs at least "
            f"{MIN_CALIBRATION_ROWS} reference rows with truth and probabilities"
        )
    else:
        notes.append(found.describe())
    return found


def estimator_to_dict(estimator: Estimator | None) -> dict[str, Any] | None:
    """JSON-ready, for the reference files."""
    if estimator is None:
        return None
    kind = "classification" if isinstance(estimator, ClassificationEstimator) else "regression"
    return {"kind": kind, "model": estimator.to_dict()}


def estimator_from_dict(data: Mapping[str, Any] | None) -> Estimator | None:
    """The estimator saved with the reference files (None in files from before it)."""
    if not data:
        return None
    if data["kind"] == "classification":
        return ClassificationEstimator.from_dict(data["model"])
    return ErrorModel.from_dict(data["model"])
