"""A small tabular classifier in PyTorch that carries its own preprocessing.

The contract the monitoring library relies on for a PyTorch model: ``preprocess(df)`` turns a
batch DataFrame into the input tensor, ``forward`` returns logits and ``classes`` names their
columns. Everything the preprocessing learned (means, sds, vocabularies) lives on the module,
so ``mlflow.pytorch.log_model(model, serialization_format="pickle")`` and ``load_model`` give
back this class, whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from monitoring.errors import ColumnNotFoundError, DataError

__all__ = ["TabularClassifier", "predict_frame", "train_classifier"]


class TabularClassifier(nn.Module):
    """An MLP over standardised numeric and one-hot categorical columns.

    Numeric values are standardised with the training means and sds, a missing value becoming
    the mean (0 after scaling). Each categorical column is one-hot encoded over its training
    vocabulary plus one last "unknown" slot, which takes unseen and missing values.
    """

    def __init__(
        self,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        classes: Sequence[str],
        means: Sequence[float],
        sds: Sequence[float],
        vocabularies: Mapping[str, Sequence[str]],
        hidden: Sequence[int] = (32, 32),
    ) -> None:
        super().__init__()
        self.numeric: list[str] = list(numeric)
        self.categorical: list[str] = list(categorical)
        self.feature_columns: list[str] = [*self.numeric, *self.categorical]
        self.classes: list[str] = list(classes)
        self.vocabularies: dict[str, list[str]] = {
            name: list(vocabularies[name]) for name in self.categorical
        }
        self.register_buffer("mean", torch.tensor(list(means), dtype=torch.float64))
        self.register_buffer("sd", torch.tensor(list(sds), dtype=torch.float64))
        layers: list[nn.Module] = []
        width = self.input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, len(self.classes)))
        self.net = nn.Sequential(*layers)

    @property
    def input_dim(self) -> int:
        """Width of the tensor that ``preprocess`` returns."""
        return len(self.numeric) + sum(len(v) + 1 for v in self.vocabularies.values())

    def preprocess(self, df: pd.DataFrame) -> torch.Tensor:
        """The float32 input tensor (rows x ``input_dim``) for the rows of ``df``."""
        missing = [name for name in self.feature_columns if name not in df.columns]
        if missing:
            raise ColumnNotFoundError(f"the model needs column(s) {missing}, absent from the data")
        values = df[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        mean = self.mean.numpy()
        values = (np.where(np.isnan(values), mean, values) - mean) / self.sd.numpy()
        blocks = [values.astype(np.float32)]
        rows = np.arange(len(df))
        for name in self.categorical:
            vocabulary = self.vocabularies[name]
            slots = {value: slot for slot, value in enumerate(vocabulary)}
            known = df[name].map(lambda v, slots=slots: slots.get(str(v)) if pd.notna(v) else None)
            codes = known.to_numpy(dtype=np.float64, na_value=np.nan)
            codes = np.where(np.isnan(codes), len(vocabulary), codes).astype(np.int64)
            onehot = np.zeros((len(df), len(vocabulary) + 1), dtype=np.float32)
            onehot[rows, codes] = 1.0
            blocks.append(onehot)
        return torch.from_numpy(np.concatenate(blocks, axis=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, one column per class in ``classes`` order."""
        return self.net(x)


def train_classifier(
    df: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    target: str,
    epochs: int = 15,
    seed: int = 0,
    hidden: Sequence[int] = (32, 32),
    batch_size: int = 512,
    learning_rate: float = 5e-3,
) -> TabularClassifier:
    """Fit a ``TabularClassifier`` on ``df`` with mini-batch Adam, deterministically.

    Training runs on one CPU thread under a forked torch RNG seeded with ``seed``, so the same
    data and arguments give the same weights and the caller's RNG and thread count are kept.
    """
    absent = [name for name in [*numeric, *categorical, target] if name not in df.columns]
    if absent:
        raise ColumnNotFoundError(f"the training data has no column(s) {absent}")
    if df[target].isna().any():
        raise DataError(f"the target `{target}` has missing values")
    labels = df[target].astype(str)
    classes = sorted(labels.unique())
    if len(classes) < 2:
        raise DataError(f"the target `{target}` needs at least 2 classes, got {classes}")
    values = df[list(numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
    means = np.nanmean(values, axis=0)
    sds = np.nanstd(values, axis=0)
    sds = np.where(sds > 0, sds, 1.0)
    vocabularies = {name: sorted(df[name].dropna().astype(str).unique()) for name in categorical}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = TabularClassifier(
                numeric=numeric,
                categorical=categorical,
                classes=classes,
                means=means.tolist(),
                sds=sds.tolist(),
                vocabularies=vocabularies,
                hidden=hidden,
            )
            x = model.preprocess(df)
            y = torch.tensor(labels.map(classes.index).to_numpy(dtype=np.int64))
            optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
            generator = torch.Generator().manual_seed(seed)
            model.train()
            for _ in range(epochs):
                for batch in torch.randperm(len(df), generator=generator).split(batch_size):
                    optimizer.zero_grad()
                    loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                    loss.backward()
                    optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def predict_frame(
    model: TabularClassifier, df: pd.DataFrame, *, chunk_size: int = 8_192
) -> pd.DataFrame:
    """Predicted label and softmax probability per class (``proba_<class>``), indexed like df.

    Puts ``model`` in eval mode; scores ``chunk_size`` rows at a time under ``torch.no_grad``.
    """
    outputs = []
    model.eval()
    with torch.no_grad():
        for begin in range(0, len(df), chunk_size):
            logits = model(model.preprocess(df.iloc[begin : begin + chunk_size]))
            outputs.append(torch.softmax(logits, dim=1).numpy())
    proba = (
        np.concatenate(outputs) if outputs else np.empty((0, len(model.classes)), dtype=np.float32)
    )
    frame = pd.DataFrame(
        {f"proba_{name}": proba[:, k].astype(np.float64) for k, name in enumerate(model.classes)},
        index=df.index,
    )
    frame.insert(0, "prediction", np.asarray(model.classes)[proba.argmax(axis=1)])
    return frame
