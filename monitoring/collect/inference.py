"""Run a PyTorch model over a batch chunk and return predictions as columns.

The contract for a user's model (an `nn.Module` logged with `mlflow.pytorch`):
- if it has `preprocess(frame) -> Tensor`, that builds its input from the batch columns;
  otherwise the numeric features are stacked, in the schema's order, as float32;
- `forward` returns, for classification, one logit (or probability) per class in the order
  of its `classes` attribute (else the reference's sorted class labels); for regression one
  value per row;
- pickled models keep these methods: log them with `serialization_format="pickle"`, as
  `monitoring.log_model` does (it also checks the contract on example rows).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from monitoring.core.schema import Schema
from monitoring.errors import ModelError


def load_model(uri: str) -> Any:
    """Load a PyTorch model from an MLflow URI: models:/name/version, models:/name@alias, runs:/."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pytorch.load_model(uri, map_location="cpu")
    except MlflowException as error:
        raise ModelError(f"model {uri!r} cannot be loaded: {error.message}") from error
    except OSError as error:
        raise ModelError(f"model {uri!r} cannot be loaded: {error}") from error
    except (ImportError, AttributeError, pickle.UnpicklingError) as error:
        # a class pickled by reference whose module (or the class in it) is not importable
        raise ModelError(
            f"model {uri!r} cannot be unpickled: {type(error).__name__}: {error} (a model "
            "class defined in a module is pickled by name: that module must be importable here)"
        ) from error
    model.eval()
    return model


def model_classes(model: Any, fallback: Sequence[str]) -> tuple[str, ...]:
    """The class order of the model's output: its `classes` attribute, else `fallback`."""
    classes = getattr(model, "classes", None)
    return tuple(str(c) for c in classes) if classes is not None else tuple(fallback)


def predict_frame(
    model: Any,
    frame: pd.DataFrame,
    schema: Schema,
    classes: Sequence[str],
    *,
    prediction_column: str,
    score_columns: dict[str, str],
) -> pd.DataFrame:
    """Predictions for `frame` as a DataFrame with the prediction (and score) columns."""
    outputs = run_model(model, frame, schema)
    if schema.task == "regression":
        values = model_outputs(outputs, len(frame), None)
        return pd.DataFrame({prediction_column: values}, index=frame.index)
    out = model_outputs(outputs, len(frame), classes)
    is_probability = np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)
    scores = out if is_probability else _softmax(out)
    # The predicted class as codes over the classes: the pass reads them as class codes
    # (`columns.ClassCoder`) without building and hashing one string per row.
    predicted = pd.Categorical.from_codes(
        scores.argmax(axis=1), categories=pd.Index([str(c) for c in classes])
    )
    result = pd.DataFrame({prediction_column: predicted}, index=frame.index)
    for i, label in enumerate(classes):
        if label in score_columns:
            result[score_columns[label]] = scores[:, i]
    return result


def model_outputs(outputs: Any, n_rows: int, classes: Sequence[str] | None) -> np.ndarray:
    """The model's outputs on `n_rows` rows as an array of the contract's shape: one column
    per class (n_rows, len(classes)), or one value per row (n_rows,) when `classes` is None
    (regression). ModelError names the shape when it is not that."""
    out = outputs.detach().cpu().numpy() if hasattr(outputs, "detach") else np.asarray(outputs)
    if classes is None:
        if out.size != n_rows:
            raise ModelError(
                f"the model outputs shape {tuple(out.shape)} for {n_rows} rows but a regression "
                "model returns one value per row (a classifier needs its `classes`)"
            )
        return out.reshape(n_rows)
    if out.size == n_rows * len(classes):
        return out.reshape(n_rows, len(classes))
    got = (
        f"{out.shape[1]} columns per row"
        if out.ndim == 2 and out.shape[0] == n_rows
        else f"shape {tuple(out.shape)} for {n_rows} rows"
    )
    raise ModelError(
        f"the model outputs {got} but there are {len(classes)} classes "
        f"({', '.join(map(str, classes))}): one column per class, in that order"
    )


def run_model(model: Any, frame: pd.DataFrame, schema: Schema) -> Any:
    """The model's raw outputs on `frame` (its `preprocess`, else the numeric features),
    without gradients: what `predict_frame` reads, and what runs alone when only a layer's
    activations are wanted (`drift.embedding_layer` with stored predictions)."""
    import torch

    try:
        with torch.no_grad():
            if hasattr(model, "preprocess"):
                inputs = model.preprocess(frame)
            else:
                stacked = frame[list(schema.numerical)].to_numpy(dtype=np.float32, na_value=np.nan)
                inputs = torch.from_numpy(np.array(stacked, copy=True))
            return model(inputs)
    except Exception as error:  # the user's model may raise anything
        raise ModelError(
            f"the model failed on the batch: {type(error).__name__}: {error}"
        ) from error


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
