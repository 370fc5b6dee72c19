"""Embedding drift inside a pass: one layer's activations, captured while the model runs
over the reference (at fit) and over each batch, compared by the MMD test.

`drift.embedding_layer` names the layer. The pass's prepare step runs the model on each
chunk with a forward hook on that layer (`embeddings.LayerHook.capturing`) and leaves the
chunk's activations, one float32 row per sample, in `chunk.derived[EMBEDDINGS]`:

- at fit, `ActivationSample` keeps a uniform sample of at most `drift.mmd_max_samples` of
  them (the rows with the smallest random keys, `multivariate_pass.ScoreSample`, seeded by
  `drift.seed`), stored with the reference as its `EmbeddingReference`;
- for a batch, `EmbeddingPass` keeps the same kind of sample (seed `drift.seed` + 1) and
  its result is the test: both samples standardised by the reference sample's mean and
  standard deviation per unit (a unit constant in the reference is left unscaled), then
  `multivariate.mmd_drift`, named `embedding_mmd`, decided with the input features.

The samples are bounded whatever the batch's size: memory is 4 * width bytes a row, at
most `drift.mmd_max_samples` rows a side. torch is not imported here.
"""

from __future__ import annotations

import numpy as np

from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig
from monitoring.core.state import pack, unpack
from monitoring.errors import ConfigError
from monitoring.measure.multivariate import DatasetDrift, mmd_drift
from monitoring.measure.multivariate_pass import MIN_MMD_ROWS, ScoreSample
from monitoring.measure.reference import EmbeddingReference

EMBEDDINGS = "embeddings"
"""`chunk.derived` key: the chunk's activations of the embedding layer, (rows, width)."""

EMBEDDING_METHOD = "embedding_mmd"


class ActivationSample:
    """A uniform sample of at most `size` rows of the activations a pass's prepare step left
    in `chunk.derived[EMBEDDINGS]` (an accumulator; two samples merge into that of both)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.rows = ScoreSample(size, seed)

    def update(self, chunk: Chunk) -> None:
        found = chunk.derived.get(EMBEDDINGS)
        if found is not None and len(found):
            self.rows.add(found, chunk.offset)

    def merge(self, other: ActivationSample) -> ActivationSample:
        self.rows.merge(other.rows)
        return self

    @property
    def seen(self) -> int:
        """Rows the sample was drawn from."""
        return self.rows.n

    def result(self) -> np.ndarray:
        """The sampled rows (float32; in the order of their random keys)."""
        return np.asarray(self.rows.rows, dtype=np.float32)

    def to_state(self) -> bytes:
        arrays = {"rows": self.rows.rows, "keys": self.rows.keys} if self.rows.n else {}
        return pack(arrays, n=self.rows.n)

    def from_state(self, state: bytes) -> ActivationSample:
        arrays, values = unpack(state)
        twin = ActivationSample(self.size, self.seed)
        if values["n"]:
            twin.rows._keep(arrays["rows"], arrays["keys"], values["n"])
        return twin


def embedding_test(
    reference: np.ndarray, batch: np.ndarray, config: DriftConfig, *, n: int
) -> DatasetDrift:
    """The MMD test between two samples of activations, both standardised by the reference
    sample's mean and standard deviation per unit; undecided (see `DatasetDrift.decided`)."""
    center = reference.mean(axis=0, dtype=np.float64)
    scale = reference.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0  # a unit that never moves in the reference: left unscaled
    return mmd_drift(
        (reference - center) / scale, (batch - center) / scale, config, method=EMBEDDING_METHOD, n=n
    )


class EmbeddingPass:
    """The batch's side of the embedding test (see the module docstring): active when
    `drift.embedding_layer` is set; the reference must then hold that layer's activations."""

    def __init__(self, reference: EmbeddingReference | None, config: DriftConfig) -> None:
        self.reference = reference
        self.config = config
        self.layer = config.embedding_layer
        self.sample: ActivationSample | None = None
        self._warnings: list[str] = []
        if self.layer is None:
            if reference is not None:
                self._warnings.append(
                    f"no embedding test: the reference keeps activations of layer "
                    f"{reference.layer!r} but `drift.embedding_layer` is not set"
                )
            return
        if reference is None:
            raise ConfigError(
                f"`drift.embedding_layer` is {self.layer!r} but the reference keeps no "
                "activations: fit it with the model and that layer (`monitoring reference "
                "fit --model-uri URI --embedding-layer NAME`, or `fit_reference(..., "
                "model=...)` with `drift.embedding_layer` set)"
            )
        if reference.layer != self.layer:
            raise ConfigError(
                f"`drift.embedding_layer` is {self.layer!r} but the reference keeps the "
                f"activations of layer {reference.layer!r}: use that layer, or refit"
            )
        self.sample = ActivationSample(config.mmd_max_samples, config.seed + 1)

    @property
    def warnings(self) -> list[str]:
        """What the pass could not test, for the report."""
        sample = self.sample
        if sample is not None and sample.seen < MIN_MMD_ROWS:
            few = f"the batch gave {sample.seen} rows of activations, fewer than {MIN_MMD_ROWS}"
            return [*self._warnings, f"no embedding test: {few}"]
        return list(self._warnings)

    @property
    def active(self) -> bool:
        """Whether the model's activations are captured and tested in this pass."""
        return self.sample is not None

    def update(self, chunk: Chunk) -> None:
        if self.sample is not None:
            self.sample.update(chunk)

    def merge(self, other: EmbeddingPass) -> EmbeddingPass:
        if self.sample is not None and other.sample is not None:
            self.sample.merge(other.sample)
        return self

    def result(self) -> tuple[DatasetDrift, ...]:
        """The embedding test (undecided), when both sides have enough rows."""
        sample, reference = self.sample, self.reference
        if sample is None or reference is None or sample.seen < MIN_MMD_ROWS:
            return ()
        return (embedding_test(reference.sample, sample.result(), self.config, n=sample.seen),)

    def to_state(self) -> bytes:
        return self.sample.to_state() if self.sample is not None else pack()

    def from_state(self, state: bytes) -> EmbeddingPass:
        twin = EmbeddingPass.__new__(EmbeddingPass)
        twin.__dict__.update(self.__dict__)
        twin._warnings = list(self._warnings)
        if self.sample is not None:
            twin.sample = self.sample.from_state(state)
        return twin
