"""The multivariate tests of `drift.multivariate`, fed chunk by chunk as one accumulator.

Each numeric column's normal scores are computed in that column's own task
(`batch_counts.NORMAL_SCORES`, through `scorers()`); this accumulator stacks them per
chunk and keeps what the tests need: the sum of the reconstruction errors, and for `mmd`
a uniform sample of rows (the rows with the smallest keys, each a hash of its row number:
two samples merge into the sample of both, however the batch was split).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitoring.core.accumulator import Chunk
from monitoring.core.config import DriftConfig
from monitoring.core.row_keys import row_keys
from monitoring.core.state import pack, unpack
from monitoring.measure.batch_counts import NORMAL_SCORES, ColumnScorer
from monitoring.measure.multivariate import (
    MMD,
    RECONSTRUCTION,
    DatasetDrift,
    ReconstructionModel,
    mmd_drift,
)
from monitoring.measure.reference import Reference

MIN_MMD_ROWS = 10  # the MMD test needs at least this many rows on each side


class ScoreSample:
    """A uniform sample of at most `size` rows of a stream of score matrices."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.rows = np.empty((0, 0))
        self.keys = np.empty(0)
        self.n = 0

    def add(self, rows: np.ndarray, first_row: int) -> None:
        """Add rows whose first is row `first_row` of the batch."""
        self._keep(rows, row_keys(self.seed, first_row, len(rows)), len(rows))

    def _keep(self, rows: np.ndarray, keys: np.ndarray, n: int) -> None:
        pooled_keys = np.concatenate([self.keys, keys])
        pooled = rows if self.n == 0 else np.concatenate([self.rows, rows])
        keep = np.argsort(pooled_keys, kind="stable")[: self.size]
        self.rows, self.keys = pooled[keep], pooled_keys[keep]
        self.n += n

    def merge(self, other: ScoreSample) -> None:
        if other.n:
            self._keep(other.rows, other.keys, other.n)


class MultivariatePass:
    """The configured multivariate tests over a batch (see the module docstring)."""

    def __init__(self, reference: Reference, config: DriftConfig):
        model: ReconstructionModel | None = reference.multivariate
        self.config = config
        self.model = model
        self.reconstruction = False
        self.error_sum = 0.0
        self.n = 0
        self.sample: ScoreSample | None = None
        self.warnings: list[str] = []
        if model is None:
            return
        self.reconstruction = RECONSTRUCTION in config.multivariate
        if MMD in config.multivariate:
            if model.sample is None or len(model.sample) < MIN_MMD_ROWS:
                self.warnings.append(
                    "no MMD test: the reference keeps no sample of rows for it (refit it)"
                )
            else:
                self.sample = ScoreSample(config.mmd_max_samples, config.seed)

    @property
    def columns(self) -> tuple[str, ...]:
        """The numeric columns whose normal scores the configured tests read."""
        active = self.reconstruction or self.sample is not None
        return self.model.columns if active and self.model is not None else ()

    def scorers(self) -> dict[str, ColumnScorer]:
        """Per column, its normal scores from its sorted values (run in its own task)."""
        model = self.model
        if model is None:
            return {}

        def scorer(j: int) -> ColumnScorer:
            return lambda ordered: model.column_scores(j, ordered)

        return {column: scorer(j) for j, column in enumerate(self.columns)}

    def update(self, chunk: Chunk) -> None:
        """Add one chunk's normal scores (uncentred), left by the column tasks."""
        if not self.columns:
            return
        assert self.model is not None
        zt = np.stack([chunk.derived[NORMAL_SCORES, c] for c in self.columns])
        zt -= self.model.center[:, None]
        if self.reconstruction:
            errors = self.model.errors_of_columns(zt)
            self.error_sum += float(errors.sum())
            self.n += len(errors)
        if self.sample is not None:
            self.sample.add(zt.T, chunk.offset)

    def merge(self, other: MultivariatePass) -> MultivariatePass:
        self.error_sum += other.error_sum
        self.n += other.n
        if self.sample is not None and other.sample is not None:
            self.sample.merge(other.sample)
        return self

    def result(self) -> tuple[DatasetDrift, ...]:
        out = []
        config = self.config
        if self.reconstruction and self.n and self.model is not None:
            mean, p_value, effect = self.model.test(self.error_sum, self.n)
            out.append(
                DatasetDrift(
                    method=RECONSTRUCTION,
                    statistic=mean,
                    p_value=p_value,
                    threshold=self.model.threshold(self.n, config.alpha),
                    effect=effect,
                    min_effect=config.min_effect_multivariate,
                    n=self.n,
                )
            )
        sample = self.sample
        if sample is not None and self.model is not None and sample.n >= MIN_MMD_ROWS:
            assert self.model.sample is not None
            out.append(mmd_drift(self.model.sample, sample.rows, config, method=MMD, n=sample.n))
        return tuple(out)

    def to_state(self) -> bytes:
        arrays: dict[str, Any] = {}
        sample_n = 0
        if self.sample is not None:
            arrays = {"rows": self.sample.rows, "keys": self.sample.keys}
            sample_n = self.sample.n
        return pack(arrays, error_sum=self.error_sum, n=self.n, sample_n=sample_n)

    def from_state(self, state: bytes) -> MultivariatePass:
        arrays, values = unpack(state)
        twin = MultivariatePass.__new__(MultivariatePass)
        twin.__dict__.update(self.__dict__)
        twin.warnings = list(self.warnings)
        twin.error_sum, twin.n = values["error_sum"], values["n"]
        if self.sample is not None:
            twin.sample = ScoreSample(self.sample.size, self.config.seed)
            if values["sample_n"]:
                twin.sample._keep(arrays["rows"], arrays["keys"], values["sample_n"])
        return twin

