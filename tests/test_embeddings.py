"""capture_activations: a layer's output, one float32 row per sample, on small generated models.

Activations are compared with a direct computation of the sub-network up to the layer
(tolerance 1e-6); images are 1x8x8 and token sequences length 7, both from seeded torch
generators, and the models are built under a fixed torch seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

from monitoring.errors import (
    ConfigError,
    DataError,
    EmptyBatchError,
    InvalidValueError,
    ModelError,
)
from monitoring.measure.embeddings import LISTED_LAYERS, capture_activations, layer_names

TOLERANCE = 1e-6
N_IMAGES = 50  # not a multiple of the batch size 16: the last batch is short
VOCABULARY, SEQUENCE = 20, 7


class SmallCnn(nn.Module):
    """Conv2d -> ReLU -> AdaptiveAvgPool2d -> Flatten -> Dropout -> Linear `features` -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.5)  # changes the features unless the model is in eval mode
        self.features = nn.Linear(4, 6)
        self.features_relu = nn.ReLU(inplace=True)  # overwrites the features' output in place
        self.head = nn.Linear(6, 3)
        self.aux_head = nn.Linear(6, 2)  # not called by forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(self.flatten(self.pool(self.relu(self.conv(x)))))
        return self.head(self.features_relu(self.features(hidden)))


class TextModel(nn.Module):
    """Embedding -> LSTM -> last step -> head, on (batch, seq) token ids."""

    def __init__(self, *, batch_first: bool) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Embedding(VOCABULARY, 8)
        self.lstm = nn.LSTM(8, 5, batch_first=batch_first)
        self.head = nn.Linear(5, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(tokens)
        if not self.batch_first:
            embedded = embedded.transpose(0, 1)  # (seq, batch, features)
        _, (hidden, _) = self.lstm(embedded)
        return self.head(hidden[-1])


class TransformerTextModel(nn.Module):
    """Embedding -> TransformerEncoder (`batch_first` lives in its attention) -> mean -> head."""

    def __init__(self, *, batch_first: bool) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.embed = nn.Embedding(VOCABULARY, 8)
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8, 2)

    def encoded(self, tokens: torch.Tensor) -> torch.Tensor:
        """The encoder's output as (batch, seq, features) whatever its layout."""
        if self.batch_first:
            return self.encoder(self.embed(tokens))
        return self.encoder(self.embed(tokens).transpose(0, 1)).transpose(0, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoded(tokens).mean(dim=1))


class PackingModel(nn.Module):
    """An LSTM fed a PackedSequence, which it returns packed."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((len(x),), x.shape[1])
        _, (hidden, _) = self.lstm(pack_padded_sequence(x, lengths, batch_first=True))
        return hidden[-1]


class FailingModel(nn.Module):
    """Runs `layer`, then raises."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.layer(x)
        raise RuntimeError("boom")


def built(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory()


def images(n: int, *, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def tokens(n: int, *, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCABULARY, (n, SEQUENCE), generator=generator)


def cnn_features(model: SmallCnn, x: torch.Tensor) -> np.ndarray:
    """The sub-network up to `features`, in eval mode (dropout is the identity there)."""
    with torch.no_grad():
        return model.features(model.flatten(model.pool(model.relu(model.conv(x))))).numpy()


def labelled_loader(x: torch.Tensor) -> DataLoader:
    return DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=16)


def dict_batches(x: torch.Tensor) -> Iterator[dict[str, Any]]:
    return ({"inputs": part, "ids": None} for part in x.split(16))


def all_hooks(model: nn.Module) -> list[Any]:
    return [hook for module in model.modules() for hook in module._forward_hooks.values()]


INPUT_KINDS = [
    pytest.param(labelled_loader, id="dataloader-of-x-y"),
    pytest.param(lambda x: x, id="one-tensor"),
    pytest.param(lambda x: list(x.split(16)), id="list-of-tensors"),
    pytest.param(lambda x: [[part] for part in x.split(16)], id="list-batches"),
    pytest.param(dict_batches, id="dict-batches"),
    pytest.param(lambda x: TensorDataset(x, torch.zeros(len(x))), id="map-style-dataset"),
]


@pytest.mark.parametrize("make_inputs", INPUT_KINDS)
def test_cnn_features_equal_the_sub_network(make_inputs):
    model = built(SmallCnn)
    x = images(N_IMAGES)

    result = capture_activations(model, "features", make_inputs(x))

    assert result.dtype == np.float32
    assert result.shape == (N_IMAGES, 6)
    np.testing.assert_allclose(result, cnn_features(model.eval(), x), rtol=0, atol=TOLERANCE)


def test_a_4d_output_is_flattened_per_sample():
    model = built(SmallCnn)
    x = images(N_IMAGES)

    result = capture_activations(model, "conv", labelled_loader(x))

    with torch.no_grad():
        expected = model.conv(x).reshape(N_IMAGES, -1).numpy()
    assert result.shape == (N_IMAGES, 4 * 6 * 6)
    np.testing.assert_allclose(result, expected, rtol=0, atol=TOLERANCE)


def test_layer_names_are_the_named_modules_without_the_root():
    assert layer_names(built(SmallCnn)) == [
        "conv",
        "relu",
        "pool",
        "flatten",
        "dropout",
        "features",
        "features_relu",
        "head",
        "aux_head",
    ]


@pytest.mark.parametrize(
    "batch_first", [pytest.param(True, id="batch-first"), pytest.param(False, id="seq-first")]
)
def test_lstm_tuple_output_is_mean_pooled_over_the_sequence(batch_first):
    model = built(lambda: TextModel(batch_first=batch_first))
    ids = tokens(40)

    result = capture_activations(model, "lstm", DataLoader(TensorDataset(ids), batch_size=16))

    batch_first_lstm = nn.LSTM(8, 5, batch_first=True)
    batch_first_lstm.load_state_dict(model.lstm.state_dict())
    with torch.no_grad():
        outputs, _ = batch_first_lstm(model.embed(ids))
    assert result.shape == (40, 5)
    np.testing.assert_allclose(result, outputs.mean(dim=1).numpy(), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "batch_first", [pytest.param(True, id="batch-first"), pytest.param(False, id="seq-first")]
)
def test_a_transformer_encoder_is_pooled_over_its_sequence_axis(batch_first):
    model = built(lambda: TransformerTextModel(batch_first=batch_first)).eval()
    ids = tokens(40)

    result = capture_activations(model, "encoder", DataLoader(TensorDataset(ids), batch_size=16))

    with torch.no_grad():
        expected = torch.cat([model.encoded(part).mean(dim=1) for part in ids.split(16)])
    assert result.shape == (40, 8)
    np.testing.assert_allclose(result, expected.numpy(), rtol=0, atol=TOLERANCE)


def test_embedding_output_is_mean_pooled_over_the_sequence():
    model = built(lambda: TextModel(batch_first=True))
    ids = tokens(40)

    result = capture_activations(model, "embed", ids)

    with torch.no_grad():
        expected = model.embed(ids).mean(dim=1).numpy()
    assert result.shape == (40, 8)
    np.testing.assert_allclose(result, expected, rtol=0, atol=TOLERANCE)


def test_unknown_layer_is_a_config_error_listing_the_layers():
    model = built(SmallCnn)

    with pytest.raises(ConfigError, match=r"unknown layer 'nope'") as error:
        capture_activations(model, "nope", images(4))

    assert "'conv'" in str(error.value)
    assert "'features'" in str(error.value)
    assert "'aux_head'" in str(error.value)
    assert all_hooks(model) == []


def test_a_long_layer_list_is_truncated_with_a_count():
    model = nn.Sequential(*(nn.Identity() for _ in range(LISTED_LAYERS + 12)))

    with pytest.raises(ConfigError, match=r"and 12 more$") as error:
        capture_activations(model, "nope", torch.zeros(2, 3))

    assert f"'{LISTED_LAYERS - 1}'" in str(error.value)
    assert f"'{LISTED_LAYERS}'" not in str(error.value)


def test_the_root_is_not_a_layer():
    with pytest.raises(ConfigError, match=r"unknown layer ''"):
        capture_activations(built(SmallCnn), "", images(4))


def test_the_model_runs_in_eval_mode_and_every_mode_is_restored():
    model = built(SmallCnn)
    model.train()
    model.conv.eval()  # a mixed state, e.g. a frozen part of a model in training
    x = images(N_IMAGES)

    result = capture_activations(model, "features", x)

    assert model.training
    assert not model.conv.training
    assert model.dropout.training
    assert all_hooks(model) == []
    np.testing.assert_allclose(result, cnn_features(model.eval(), x), rtol=0, atol=TOLERANCE)


def test_the_hook_is_removed_and_the_mode_restored_when_the_forward_raises():
    model = built(FailingModel)
    model.train()

    with pytest.raises(ModelError, match=r"batch 0: RuntimeError: boom"):
        capture_activations(model, "layer", torch.zeros(4, 3))

    assert model.layer._forward_hooks == {}
    assert model.training
    assert model.layer.training


def test_a_layer_off_the_forward_path_is_named_in_the_error():
    model = built(SmallCnn)

    with pytest.raises(ConfigError, match=r"layer 'aux_head' did not run .* forward path"):
        capture_activations(model, "aux_head", labelled_loader(images(20)))

    assert all_hooks(model) == []


def sampled_indices(sample: np.ndarray, full: np.ndarray) -> np.ndarray:
    """The row of `full` that each row of `sample` equals (within TOLERANCE); one each."""
    matches = np.isclose(sample[:, None, :], full[None, :, :], rtol=0, atol=TOLERANCE).all(axis=2)
    assert (matches.sum(axis=1) == 1).all()  # rows of random inputs are far apart
    return matches.argmax(axis=1)


def test_max_rows_keeps_a_sample_of_the_full_rows_in_stream_order():
    model = built(SmallCnn)
    loader = labelled_loader(images(1000))
    full = capture_activations(model, "features", loader)

    sample = capture_activations(model, "features", loader, max_rows=100)

    matches = (sample[:, None, :] == full[None, :, :]).all(axis=2)
    indices = matches.argmax(axis=1)
    assert sample.shape == (100, 6)
    assert (matches.sum(axis=1) == 1).all()
    assert len(set(indices)) == 100
    assert (np.diff(indices) > 0).all()


def test_max_rows_gives_the_same_rows_for_the_same_seed_whatever_the_batches():
    model = built(SmallCnn)
    x = images(1000)
    full = capture_activations(model, "features", x)

    by_16 = capture_activations(model, "features", labelled_loader(x), max_rows=100, seed=3)
    again = capture_activations(model, "features", labelled_loader(x), max_rows=100, seed=3)
    by_333 = capture_activations(model, "features", list(x.split(333)), max_rows=100, seed=3)
    other_seed = capture_activations(model, "features", labelled_loader(x), max_rows=100, seed=4)

    np.testing.assert_array_equal(by_16, again)
    np.testing.assert_array_equal(sampled_indices(by_16, full), sampled_indices(by_333, full))
    assert set(sampled_indices(by_16, full)) != set(sampled_indices(other_seed, full))


def test_max_rows_above_the_row_count_keeps_every_row():
    model = built(SmallCnn)
    loader = labelled_loader(images(N_IMAGES))

    result = capture_activations(model, "features", loader, max_rows=1000)

    np.testing.assert_array_equal(result, capture_activations(model, "features", loader))


@pytest.mark.parametrize(
    "max_rows",
    [
        pytest.param(0, id="zero"),
        pytest.param(-5, id="negative"),
        pytest.param(2.5, id="float"),
        pytest.param(True, id="bool"),
    ],
)
def test_max_rows_must_be_a_positive_integer(max_rows):
    with pytest.raises(ConfigError, match=r"`max_rows` must be an integer >= 1"):
        capture_activations(built(SmallCnn), "features", images(4), max_rows=max_rows)


@pytest.mark.parametrize(
    "inputs",
    [
        pytest.param([], id="no-batches"),
        pytest.param(torch.zeros(0, 1, 8, 8), id="zero-row-tensor"),
        pytest.param([torch.zeros(0, 1, 8, 8)] * 3, id="zero-row-batches"),
    ],
)
def test_empty_inputs_are_an_empty_batch_error(inputs):
    with pytest.raises(EmptyBatchError, match=r"no rows .* layer 'features'"):
        capture_activations(built(SmallCnn), "features", inputs)


def test_non_finite_activations_name_the_layer_and_the_count():
    x = images(20)
    x[17, 0, 3, 3] = float("nan")  # one pixel: every feature of sample 17 is NaN

    with pytest.raises(
        InvalidValueError,
        match=r"layer 'features' gave 6 non-finite values .* 1 of the 4 rows of batch 1",
    ):
        capture_activations(built(SmallCnn), "features", labelled_loader(x))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        pytest.param([{"x": torch.zeros(2, 1, 8, 8)}], r"without the key 'inputs'", id="dict"),
        pytest.param([()], r"batch 0 is an empty tuple", id="empty-tuple"),
        pytest.param([np.zeros((2, 1, 8, 8))], r"batch 0 holds a ndarray", id="ndarray"),
        pytest.param([torch.tensor(1.0)], r"batch 0 holds a 0-d tensor", id="scalar"),
    ],
)
def test_a_batch_of_an_unknown_kind_is_a_data_error(inputs, message):
    with pytest.raises(DataError, match=message):
        capture_activations(built(SmallCnn), "features", inputs)


def test_a_packed_sequence_output_is_a_data_error():
    model = built(PackingModel)

    with pytest.raises(DataError, match=r"layer 'lstm' returns a PackedSequence"):
        capture_activations(model, "lstm", torch.zeros(4, 5, 3))

    assert all_hooks(model) == []


def test_a_model_without_parameters_runs_on_cpu():
    result = capture_activations(nn.Sequential(nn.Flatten()), "0", images(5))

    assert result.shape == (5, 64)


def test_an_explicit_device_moves_the_inputs():
    model = built(SmallCnn)
    x = images(N_IMAGES)

    result = capture_activations(model, "features", labelled_loader(x), device="cpu")

    np.testing.assert_allclose(result, cnn_features(model.eval(), x), rtol=0, atol=TOLERANCE)
