"""Embeddings of a PyTorch model: the activations of one named layer, one row per sample.

Image and text models take pixels or token ids, whose per-feature drift says little; what
the model makes of them does. Capturing the output of an inner layer (the pooled features
of a CNN, the hidden states of an encoder) gives a numeric matrix per batch, and a
multivariate two-sample test on the reference's and the batch's matrices detects drift in
what the model sees.

    names = layer_names(model)                  # the names `capture_activations` accepts
    reference = capture_activations(model, "features", reference_loader, max_rows=5_000)
    current = capture_activations(model, "features", batch_loader, max_rows=5_000)

How:
- a forward hook on ``dict(model.named_modules())[layer]`` records the layer's output
  while the model runs each batch under ``torch.no_grad()`` in eval mode; the hook is
  removed and every submodule's training flag restored afterwards, whatever happens;
- the inputs are an iterable of batches: a Tensor, a tuple or list whose first element is
  the input tensor (what a DataLoader over an ``(x, y)`` dataset yields), or a dict whose
  ``"inputs"`` key holds it; the model is called as ``model(tensor)``. A single Tensor is one
  batch; a map-style ``Dataset`` (one sample per index) is read through a DataLoader of
  `DATASET_BATCH_SIZE`; a DataLoader or an ``IterableDataset`` is iterated as it is;
- the output becomes one float32 row per sample: a tuple output (an RNN's
  ``(output, h)``) gives its first element; a 3-D output is a sequence, ``(batch, seq,
  features)``, and is averaged over the sequence axis, padding included. A layer with
  ``batch_first=False`` (the default of ``nn.LSTM``, ``nn.GRU``, ``nn.MultiheadAttention``)
  gives ``(seq, batch, features)`` and is averaged over its first axis; a layer without the
  attribute takes that of its first submodule that has one (``nn.TransformerEncoderLayer``
  and ``nn.TransformerEncoder`` keep theirs in their attention), and is batch-first if none
  has. Any other shape is flattened per sample. If the layer runs more than once in one
  forward pass (a cell in a loop), its last output is kept. A PackedSequence output is
  refused: hook a layer after the sequence is padded.

Inside a batch evaluation or a reference fit (``drift.embedding_layer``), the model already
runs over each chunk (its predictions): ``LayerHook(model, layer).capturing(chunk)`` wraps
that forward pass with the same hook and leaves the rows in ``chunk.derived[EMBEDDINGS]``,
where ``embedding_sample`` samples them; no second pass over the inputs.

Memory: without ``max_rows`` every row is kept. With it, each row gets a random key from a
generator seeded by ``seed`` and the rows with the ``max_rows`` smallest keys are kept as the
stream goes (a reservoir sample): a uniform sample of the whole stream, in stream order, in
O(max_rows x width) memory however long the stream is, and the same rows for the same seed
and inputs whatever the batch sizes.

Errors (``monitoring.errors``): an unknown layer, a layer the forward pass never reaches, or
a bad ``max_rows`` is a ``ConfigError``; no rows is an ``EmptyBatchError``; a NaN or infinite
activation is an ``InvalidValueError``; a batch of an unknown kind is a ``DataError``; the
model raising is a ``ModelError``. ``torch`` is imported when this module is.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence
from torch.utils.data import DataLoader, Dataset, IterableDataset

from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig
from monitoring.errors import (
    ConfigError,
    DataError,
    EmptyBatchError,
    InvalidValueError,
    ModelError,
    MonitoringError,
)
from monitoring.measure.embedding_sample import EMBEDDINGS, embedding_test
from monitoring.measure.multivariate import DatasetDrift

__all__ = ["DATASET_BATCH_SIZE", "LISTED_LAYERS", "capture_activations", "layer_names"]

DATASET_BATCH_SIZE = 256
"""Samples per forward pass when `capture_activations` is given a map-style Dataset."""

LISTED_LAYERS = 30
"""How many layer names an unknown-layer error lists before counting the rest."""

INPUTS_KEY = "inputs"
"""The key of a dict batch that holds the input tensor."""


def layer_names(model: torch.nn.Module) -> list[str]:
    """Names accepted by `capture_activations` (model.named_modules(), without the root '')."""
    return [name for name, _ in model.named_modules() if name]


def capture_activations(
    model: torch.nn.Module,
    layer: str,
    inputs: Iterable[Any],
    *,
    max_rows: int | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Activations of `layer` for every row of `inputs`: one row per sample, 2-D float32.

    `inputs`: batches, each a Tensor, a tuple/list whose first element is the input tensor,
    or a dict with the key "inputs"; or one Tensor (one batch); or a Dataset/DataLoader.
    `max_rows`: keep a seeded uniform sample of at most this many rows (None: keep all).
    `device`: where the inputs go (None: the device of the model's first parameter, or CPU).
    Sequence outputs (batch, seq, features) are averaged over seq; see the module docstring.
    """
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1
    ):
        raise ConfigError(f"`max_rows` must be an integer >= 1 or None, got {max_rows!r}")
    hook = LayerHook(model, layer)
    target = torch.device(device) if device is not None else _model_device(model)
    reservoir = _Reservoir(max_rows, seed)
    modes = {submodule: submodule.training for submodule in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), hook:
            for number, batch in enumerate(_batches(inputs)):
                tensor = _input_tensor(batch, number)
                if tensor.shape[0] == 0:
                    continue
                try:
                    model(tensor.to(target))
                except Exception as error:  # the user's model may raise anything
                    raise ModelError(
                        f"the model failed on batch {number}: {type(error).__name__}: {error}"
                    ) from error
                reservoir.add(hook.take(f"batch {number}", reservoir.seen))
    finally:
        for submodule, training in modes.items():
            submodule.training = training
    if reservoir.seen == 0:
        raise EmptyBatchError(f"the inputs gave no rows to capture layer {layer!r} on")
    return reservoir.result()


class LayerHook:
    """What `layer` of `model` outputs in each forward pass, one float32 row per sample
    (pooled as the module docstring says), while used as a context manager: a forward hook,
    removed on exit whatever happens. `take` returns the last forward pass's rows."""

    def __init__(self, model: torch.nn.Module, layer: str) -> None:
        modules = dict(model.named_modules())
        if not layer or layer not in modules:
            raise ConfigError(f"unknown layer {layer!r}: {_available(layer_names(model))}")
        self.layer = layer
        self._module = modules[layer]
        self._axis = 0 if _batch_first(self._module) is False else 1
        self._captured: list[torch.Tensor] = []
        self._error: MonitoringError | None = None
        self._handle: Any = None

    def _hook(self, _module: torch.nn.Module, _args: Any, output: Any) -> None:
        # Copied now: a later in-place operation (ReLU(inplace=True)) would change it. Only the
        # last call is kept, so a cell run in a loop holds one output, not one per step.
        try:
            self._captured[:] = [_pooled(output, self.layer, self._axis)]
        except MonitoringError as error:  # raised by `take`, not inside the user's forward
            self._error = error

    def __enter__(self) -> LayerHook:
        self._captured.clear()
        self._error = None
        self._handle = self._module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @contextlib.contextmanager
    def capturing(self, chunk: Chunk) -> Iterator[None]:
        """Around a chunk's forward pass (a pass's prepare step): its activations then go
        to `chunk.derived[EMBEDDINGS]`, for `embedding_sample`."""
        with self:
            yield
        chunk.derived[EMBEDDINGS] = self.take(chunk.where, chunk.offset)

    def take(self, where: str, first_row: int) -> np.ndarray:
        """The rows the layer gave in the last forward pass over `where` (whose first row is
        the inputs' `first_row`), checked finite; the hook then waits for the next pass."""
        error, self._error = self._error, None
        if error is not None:
            raise error
        if not self._captured:
            raise ConfigError(
                f"layer {self.layer!r} did not run in the forward pass of {where}: "
                "it is not on the model's forward path; choose a layer that is"
            )
        rows = self._captured.pop().cpu().numpy()
        _check_finite(rows, self.layer, where, first_row)
        return rows


class _Reservoir:
    """The rows with the `size` smallest seeded random keys seen so far (all rows if None)."""

    def __init__(self, size: int | None, seed: int) -> None:
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._rows: list[np.ndarray] = []
        self._keys = np.empty(0)
        self._positions = np.empty(0, dtype=np.int64)

    def add(self, rows: np.ndarray) -> None:
        positions = np.arange(self.seen, self.seen + len(rows))
        self.seen += len(rows)
        if self.size is None:
            self._rows.append(rows)
            return
        keys = self._rng.random(len(rows))
        if len(self._keys) == self.size:  # full: only keys below the largest kept can enter
            entering = keys < self._keys.max()
            rows, keys, positions = rows[entering], keys[entering], positions[entering]
        if len(rows) == 0:
            return
        kept = np.concatenate([*self._rows, rows])
        all_keys = np.concatenate([self._keys, keys])
        all_positions = np.concatenate([self._positions, positions])
        if len(all_keys) > self.size:
            smallest = np.argpartition(all_keys, self.size - 1)[: self.size]
            kept, all_keys, all_positions = (
                kept[smallest],
                all_keys[smallest],
                all_positions[smallest],
            )
        self._rows, self._keys, self._positions = [kept], all_keys, all_positions

    def result(self) -> np.ndarray:
        rows = np.concatenate(self._rows)
        if self.size is None:
            return rows
        return rows[np.argsort(self._positions, kind="stable")]


def _batches(inputs: Iterable[Any] | torch.Tensor) -> Iterator[Any]:
    if isinstance(inputs, torch.Tensor):
        return iter([inputs])
    if isinstance(inputs, Dataset) and not isinstance(inputs, IterableDataset):
        return iter(DataLoader(inputs, batch_size=DATASET_BATCH_SIZE))
    return iter(inputs)


def _input_tensor(batch: Any, number: int) -> torch.Tensor:
    if isinstance(batch, dict):
        if INPUTS_KEY not in batch:
            raise DataError(
                f"batch {number} is a dict without the key {INPUTS_KEY!r} "
                f"(its keys: {', '.join(map(repr, batch))})"
            )
        tensor = batch[INPUTS_KEY]
    elif isinstance(batch, tuple | list):
        if not batch:
            raise DataError(f"batch {number} is an empty {type(batch).__name__}")
        tensor = batch[0]
    else:
        tensor = batch
    if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
        raise DataError(
            f"batch {number} holds {_describe(tensor)}, not a tensor with a batch axis: "
            f"give Tensors, (tensor, ...) tuples or lists, or dicts with key {INPUTS_KEY!r}"
        )
    return tensor


def _pooled(output: Any, layer: str, sequence_axis: int) -> torch.Tensor:
    """A new float32 tensor, one row per sample, from what the layer returned."""
    if isinstance(output, tuple | list) and not isinstance(output, PackedSequence) and output:
        output = output[0]
    if isinstance(output, PackedSequence):
        raise DataError(
            f"layer {layer!r} returns a PackedSequence: hook a layer after it is padded, "
            "or feed the model padded batches"
        )
    if not isinstance(output, torch.Tensor) or output.dim() == 0:
        raise DataError(
            f"layer {layer!r} returns {_describe(output)}, not a tensor with a batch axis"
        )
    values = output.detach()
    if values.dim() == 3:
        return values.float().mean(dim=sequence_axis)
    return values.to(torch.float32, copy=True).reshape(values.shape[0], -1)


def _check_finite(rows: np.ndarray, layer: str, where: str, first_row: int) -> None:
    finite = np.isfinite(rows)
    if finite.all():
        return
    bad_rows = int((~finite).any(axis=1).sum())
    raise InvalidValueError(
        f"layer {layer!r} gave {int((~finite).sum())} non-finite values (NaN or inf) in "
        f"{bad_rows} of the {len(rows)} rows of {where} "
        f"(rows {first_row} to {first_row + len(rows) - 1} of the inputs)"
    )


def _batch_first(module: torch.nn.Module) -> bool | None:
    """The layer's `batch_first`, else its first submodule's (a Transformer layer's attention)."""
    for submodule in module.modules():
        flag = getattr(submodule, "batch_first", None)
        if isinstance(flag, bool):
            return flag
    return None


def _model_device(model: torch.nn.Module) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def _available(names: list[str]) -> str:
    if not names:
        return "the model has no named layers"
    listed = ", ".join(repr(name) for name in names[:LISTED_LAYERS])
    rest = len(names) - LISTED_LAYERS
    more = f" and {rest} more" if rest > 0 else ""
    return f"the model's layers are {listed}{more}"


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "a 0-d tensor"
    return f"a {type(value).__name__}"


def embedding_drift(
    model: torch.nn.Module,
    layer: str,
    reference_inputs: Iterable[Any],
    batch_inputs: Iterable[Any],
    *,
    config: Any = None,
) -> DatasetDrift:
    """Drift of a model's embeddings: MMD between `layer`'s activations on the reference
    inputs and on the batch inputs (each a uniform sample of at most
    `drift.mmd_max_samples` rows), standardised by the reference activations.

    Returns a `DatasetDrift` named `embedding_mmd`, decided alone at `drift.alpha`:
    `drifted` is `p_value < alpha`, which is `statistic > threshold`. Pass it to
    `monitoring.evaluate` or `evaluate_and_log` as `dataset_tests=[...]` to have it decided
    again with the batch's features (multiple-testing control included) and logged as
    `drift/dataset/embedding_mmd`. Within a batch evaluation that runs the model,
    `drift.embedding_layer` does the same without a second pass over the inputs.
    """
    drift = config if config is not None else DriftConfig()
    limit = drift.mmd_max_samples
    reference = capture_activations(model, layer, reference_inputs, max_rows=limit, seed=drift.seed)
    batch = capture_activations(model, layer, batch_inputs, max_rows=limit, seed=drift.seed + 1)
    test = embedding_test(reference, batch, drift, n=len(batch))
    return test.decided(test.p_value < drift.alpha)
