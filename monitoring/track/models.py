"""Log a PyTorch model the way `monitoring` loads it, check it, then register it.

`log_model` is the model contract in one call: it sets `classes` (and `preprocess`) on the
model, logs it with `mlflow.pytorch` in pickle format, loads it back through the loader the
batch evaluation uses and runs it on a few example rows; only a model that passes is
registered.

Why a model class needs help to pickle: cloudpickle pickles a class defined in `__main__`
(a training script, a notebook, a test function) by value, with the code of its methods.
For a method that names a package (`torch`) it also records the package's imported
submodules whose dotted names are made only of names the method uses
(`cloudpickle.cloudpickle._find_imported_submodules`). torch puts objects that are module
subclasses, not modules, in `sys.modules`: `torch.classes` (`_Classes`), `torch.ops`
(`_Ops`), `torch.backends.cudnn`, ... So an `__init__` that calls `torch.nn.Linear(...)` and
sets `self.classes = [...]` drags `torch.classes` along, which cloudpickle cannot pickle:
`TypeError: cannot pickle '_Classes' object`. The attribute's value plays no part (a tuple
fails the same, so does any method that names both `torch` and `classes`); setting
`model.classes` from outside the class works because then no method names `classes`.
While it logs, `log_model` pickles such objects by name (`importlib.import_module`, through
`copyreg`), so a model class may name `classes` or `ops` wherever it likes.
"""

from __future__ import annotations

import contextlib
import copyreg
import importlib
import pickle
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring.collect.inference import load_model, model_outputs, run_model
from monitoring.core.config import SchemaConfig
from monitoring.core.schema import Schema, infer_schema
from monitoring.errors import ConfigError, EmptyBatchError, ModelError
from monitoring.track.client import make_client
from monitoring.track.experiments import experiment_id
from monitoring.track.registry import ModelInfo, resolve_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRAINING_EXPERIMENT = "monitoring-training"


def log_model(
    model: Any,
    name: str,
    *,
    classes: Sequence[object] | None = None,
    preprocess: Callable[[pd.DataFrame], Any] | None = None,
    example: pd.DataFrame | None = None,
    schema: Schema | SchemaConfig | None = None,
    metrics: Mapping[str, float] | None = None,
    pip_requirements: list[str] | None = None,
    client: MlflowClient | None = None,
) -> ModelInfo:
    """Log the `nn.Module` `model`, check it, and register it as a new version of `name`.

    `classes` (required for a classifier, left out for a regressor) are the labels of the
    model's output columns, in order; they are set as `model.classes` (replacing the model's
    own) as strings. `preprocess(frame) -> Tensor`, when given, is set as `model.preprocess`
    and builds the model's input from the batch columns; without one the numeric features
    are stacked in the schema's order. The model is logged with `mlflow.pytorch` (pickle
    format) in the active run, else in a new run of the `monitoring-training` experiment,
    then loaded back as a batch evaluation loads it. With `example` (a few reference rows)
    it then runs on them as in a batch: it must output one column per class (or one value
    per row) and only finite values. `schema` gives the column roles for stacking the
    features (`reference.schema`, or a `SchemaConfig`); by default they are inferred from
    `example` as `fit_reference` infers them. `metrics` are logged in the run.

    ModelError says what is wrong when the model cannot be pickled, loaded back or run, or
    its outputs break the contract; nothing is registered then. `client` defaults to the
    configured tracking store (MLFLOW_TRACKING_URI, else ./mlflow.db).
    """
    import mlflow

    client = make_client() if client is None else client
    example_schema = _example_schema(example, schema)
    if classes is not None:
        model.classes = _class_labels(classes)
    if preprocess is not None:
        model.preprocess = preprocess
    with _run(client, name):
        uri = _log(model, pip_requirements)
        loaded = load_model(uri)
        if example is not None and example_schema is not None:
            check_model(loaded, example, example_schema)
        if metrics:
            mlflow.log_metrics(dict(metrics))
        version = mlflow.register_model(uri, name)
    return resolve_model(client, model_uri=f"models:/{name}/{version.version}")


def register_pytorch_model(
    client: MlflowClient,
    model: Any,
    *,
    name: str,
    metrics: Mapping[str, float] | None = None,
    pip_requirements: list[str] | None = None,
) -> ModelInfo:
    """`log_model` without example rows (the model is loaded back, not run), client first:
    the spelling the demo and the tests use for a model that already has its `classes`."""
    return log_model(model, name, metrics=metrics, pip_requirements=pip_requirements, client=client)


def check_model(model: Any, example: pd.DataFrame, schema: Schema) -> None:
    """Run `model` on `example` as a batch evaluation does and check its outputs: one
    column per entry of `model.classes` (one value per row without classes), all finite."""
    classes = getattr(model, "classes", None)
    labels = None if classes is None else [str(c) for c in classes]
    values = model_outputs(run_model(model, example, schema), len(example), labels)
    finite = np.isfinite(values.astype(np.float64)).reshape(len(example), -1).all(axis=1)
    if not finite.all():
        bad = example.index[~finite]
        raise ModelError(
            f"the model outputs NaN or inf on {len(bad)} of the {len(example)} example rows "
            f"(first: row {bad[0]!r})"
        )


def _class_labels(classes: Sequence[object]) -> list[str]:
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise ConfigError(f"`classes` must be a list of labels, got {classes!r}")
    labels = [str(c) for c in classes]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise ConfigError(f"`classes` must be at least 2 distinct labels, got {labels}")
    return labels


def _example_schema(
    example: pd.DataFrame | None, schema: Schema | SchemaConfig | None
) -> Schema | None:
    """The roles the example rows are read with; checked before anything is logged."""
    if example is None:
        return None
    if not isinstance(example, pd.DataFrame):
        raise ConfigError(f"`example` must be a DataFrame, got {type(example).__name__}")
    if example.empty:
        raise EmptyBatchError("`example` has no rows: give a few reference rows")
    if isinstance(schema, Schema):
        return schema
    return infer_schema(example, schema or SchemaConfig(), require_features=False)[0]


def _run(client: MlflowClient, name: str) -> contextlib.AbstractContextManager[Any]:
    """The active run (a training script's own), else a new training run of `name`."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        return contextlib.nullcontext(active)
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    return mlflow.start_run(
        experiment_id=experiment_id(client, TRAINING_EXPERIMENT), run_name=f"train-{name}"
    )


def _log(model: Any, pip_requirements: list[str] | None) -> str:
    """Log `model` in the active run (pickle format, so custom methods survive); its URI."""
    import mlflow.pytorch
    import torch

    requirements = pip_requirements or [f"torch=={torch.__version__.split('+')[0]}"]
    try:
        with _module_objects_pickled_by_name():
            logged = mlflow.pytorch.log_model(
                model, name="model", serialization_format="pickle", pip_requirements=requirements
            )
    except (TypeError, pickle.PicklingError) as error:
        raise ModelError(f"the model cannot be pickled: {type(error).__name__}: {error}") from error
    return str(logged.model_uri)


@contextlib.contextmanager
def _module_objects_pickled_by_name() -> Iterator[None]:
    """Pickle the module subclasses that packages put in `sys.modules` (`torch.classes`) by
    name while the block runs: see the module docstring. It changes `copyreg`'s table for
    the whole process, only for types that could not be pickled at all."""
    added = {
        type(module)
        for module in list(sys.modules.values())
        if isinstance(module, types.ModuleType)
        and type(module) is not types.ModuleType
        and type(module) not in copyreg.dispatch_table
        and type(module).__reduce_ex__ is object.__reduce_ex__
        and type(module).__reduce__ is object.__reduce__
    }
    for kind in added:
        copyreg.pickle(kind, _by_name)
    try:
        yield
    finally:
        for kind in added:
            copyreg.dispatch_table.pop(kind, None)


def _by_name(module: types.ModuleType) -> tuple[Callable[[str], Any], tuple[str]]:
    name = module.__name__
    if sys.modules.get(name) is not module:
        raise pickle.PicklingError(f"{name} is not sys.modules[{name!r}]: it cannot be named")
    return importlib.import_module, (name,)
