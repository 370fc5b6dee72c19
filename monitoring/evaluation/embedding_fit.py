"""The embedding layer's activations over a reference, captured while fitting it.

With `drift.embedding_layer` set, fitting a reference runs the model over each chunk (its
`preprocess`, else the numeric features, as for predictions) under a forward hook on that
layer, keeps a uniform sample of the activations (`embedding_sample.ActivationSample`)
and stores it with the reference (`EmbeddingReference`, part of its id), so that every
batch evaluated with the same layer is tested against it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from monitoring.collect.inference import load_model, run_model
from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig
from monitoring.core.schema import Schema
from monitoring.errors import ConfigError, InvalidValueError
from monitoring.measure.embedding_sample import ActivationSample
from monitoring.measure.multivariate_pass import MIN_MMD_ROWS
from monitoring.measure.reference import EmbeddingReference, Reference


class EmbeddingFit:
    """Runs the model on each reference chunk with the layer hooked; samples what it gives."""

    def __init__(self, model: Any, drift: DriftConfig) -> None:
        from monitoring.measure.embeddings import LayerHook  # torch, only when a model runs

        assert drift.embedding_layer is not None
        self.model = load_model(model) if isinstance(model, str) else model
        self.hook = LayerHook(self.model, drift.embedding_layer)
        self.sample = ActivationSample(drift.mmd_max_samples, drift.seed)

    def prepare(self, chunk: Chunk, schema: Schema) -> None:
        """The chunk's activations into `chunk.derived`, and into the sample (the fit's
        prepare step, on the main thread, chunk after chunk)."""
        with self.hook.capturing(chunk):
            run_model(self.model, chunk.frame, schema)
        self.sample.update(chunk)

    def result(self) -> EmbeddingReference:
        return EmbeddingReference(self.hook.layer, self.sample.result(), self.sample.seen)


def embedding_fit(model: Any, drift: DriftConfig) -> EmbeddingFit | None:
    """What captures the embedding layer at fit; None when `drift.embedding_layer` is not
    set. `model` is a loaded module or an MLflow model URI; an unknown layer is a
    ConfigError that lists the model's layers."""
    if drift.embedding_layer is None:
        return None
    if model is None:
        raise ConfigError(
            f"`drift.embedding_layer` is {drift.embedding_layer!r} but no model was given to "
            "capture it: give the model (`--model-uri`, or `model=`)"
        )
    return EmbeddingFit(model, drift)


def with_embedding(reference: Reference, fit: EmbeddingFit | None) -> Reference:
    """The reference with the activations `fit` sampled, and its id taken again over them."""
    if fit is None:
        return reference
    embedding = fit.result()
    if embedding.n_rows < MIN_MMD_ROWS:
        raise InvalidValueError(
            f"the model gave {embedding.n_rows} rows of layer {embedding.layer!r} activations "
            f"over the reference: the embedding test needs at least {MIN_MMD_ROWS}"
        )
    with_it = dataclasses.replace(reference, embedding=embedding)
    return dataclasses.replace(with_it, id=with_it.digest())
