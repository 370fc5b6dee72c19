"""The batch side of drift: each column counted on its fitted reference's scale.

One accumulator per monitored column (`NumericalCounts`, `CategoricalCounts`), updated
from its own pool task; what a column's update derives from the chunk (the values sorted
once, the category codes, the normal scores) is left in `chunk.derived` for the steps that
run after it. Every state only adds counts, so profiles of disjoint parts of a batch merge
exactly. `BatchCounts` holds the columns of one batch (the `profile.json` artifact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitoring.collect.columns import LabelCoder, numeric_values
from monitoring.core.accumulator import Chunk
from monitoring.core.state import pack, pack_many, unpack, unpack_many
from monitoring.errors import InvalidValueError
from monitoring.measure.reference import CategoricalReference, NumericalReference, Reference
from monitoring.stats.ecdf import (
    SupportCounts,
    count_sorted_on_support,
    empty_support_counts,
    support_index,
)
from monitoring.stats.sorted_column import SortedColumn

# Keys of what a column's update leaves in `chunk.derived`, with the column's name.
SORTED = "sorted"  # (SORTED, column): the chunk's values as a SortedColumn
CODES = "codes"  # (CODES, column): category codes (vocabulary, unseen, missing last)
NORMAL_SCORES = "normal_scores"  # (NORMAL_SCORES, column): `ColumnScorer` of the sorted values

ColumnScorer = Callable[[SortedColumn], np.ndarray]
"""Per-row scores computed from a column's sorted values in the column's own task
(the multivariate tests' normal scores), so that they run side by side too."""


@dataclass
class NumericalCounts:
    """Counts of one numeric column of the batch on the reference's bins and support."""

    reference: NumericalReference
    counts: np.ndarray
    support: SupportCounts
    n_missing: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    below: int = 0  # values under the reference's minimum, by more than `margin`
    above: int = 0  # values over the reference's maximum, by more than `margin`
    margin: float = 0.0
    scorer: ColumnScorer | None = field(default=None, repr=False, compare=False)
    _support_index: pd.Index | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(
        cls,
        reference: NumericalReference,
        scorer: ColumnScorer | None = None,
        *,
        range_margin: float = 0.0,
    ) -> NumericalCounts:
        """`range_margin`: how far past the reference's range a value counts as outside it,
        as a share of the reference's interdecile range (its outer bin edges; the whole
        range with fewer than two edges), so a negligible shift is not a broken value."""
        edges = reference.edges
        spread = float(edges[-1] - edges[0]) if len(edges) >= 2 else 0.0
        if spread <= 0 and reference.minimum is not None and reference.maximum is not None:
            spread = reference.maximum - reference.minimum
        return cls(
            reference,
            np.zeros(len(reference.counts), dtype=np.int64),
            empty_support_counts(len(reference.support)),
            margin=range_margin * spread,
            scorer=scorer,
        )

    @property
    def column(self) -> str:
        return self.reference.column

    def update(self, chunk: Chunk) -> None:
        """Add the chunk's values of this column (a bad value is named with its row)."""
        values = numeric_values(
            chunk.frame[self.column], column=self.column, offset=chunk.offset, where=chunk.where
        )
        ordered = SortedColumn(values)
        self.add(ordered)
        chunk.derived[SORTED, self.column] = ordered
        if self.scorer is not None:
            chunk.derived[NORMAL_SCORES, self.column] = self.scorer(ordered)

    def add(self, column: SortedColumn) -> None:
        """Add one chunk's values, sorted once (`SortedColumn`)."""
        present = column.sorted
        self.counts += column.bin_counts(self.reference.edges)
        self.n_missing += column.n_missing
        if self._support_index is None:
            self._support_index = support_index(self.reference.support)  # once per pass
        self.support = self.support + count_sorted_on_support(present, self._support_index)
        self.total += float(present.sum())
        self.total_sq += float(np.dot(present, present))
        low, high = self.reference.minimum, self.reference.maximum
        if low is not None and high is not None and present.size:
            self.below += int(np.searchsorted(present, low - self.margin, side="left"))
            above = np.searchsorted(present, high + self.margin, side="right")
            self.above += int(present.size - above)

    def merge(self, other: NumericalCounts) -> NumericalCounts:
        self.counts += other.counts
        self.support = self.support + other.support
        self.n_missing += other.n_missing
        self.total += other.total
        self.total_sq += other.total_sq
        self.below += other.below
        self.above += other.above
        return self

    def result(self) -> NumericalCounts:
        return self

    def to_state(self) -> bytes:
        arrays = {
            "counts": self.counts,
            "equal": self.support.equal,
            "gap": self.support.gap,
            "gap_sum": self.support.gap_sum,
        }
        return pack(
            arrays,
            n_missing=self.n_missing,
            total=self.total,
            total_sq=self.total_sq,
            below=self.below,
            above=self.above,
        )

    def from_state(self, state: bytes) -> NumericalCounts:
        arrays, values = unpack(state)
        return NumericalCounts(
            self.reference,
            arrays["counts"],
            SupportCounts(arrays["equal"], arrays["gap"], arrays["gap_sum"]),
            n_missing=values["n_missing"],
            total=values["total"],
            total_sq=values["total_sq"],
            below=values["below"],
            above=values["above"],
            margin=self.margin,
            scorer=self.scorer,
        )

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


@dataclass
class CategoricalCounts:
    """Counts of one categorical column over the reference vocabulary + unseen bucket."""

    reference: CategoricalReference
    counts: np.ndarray
    n_missing: int = 0
    _coder: LabelCoder | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, reference: CategoricalReference) -> CategoricalCounts:
        return cls(reference, np.zeros(len(reference.vocabulary) + 1, dtype=np.int64))

    @property
    def column(self) -> str:
        return self.reference.column

    def update(self, chunk: Chunk) -> None:
        """Add the chunk's values of this column, as codes over the vocabulary."""
        if self._coder is None:
            self._coder = LabelCoder(self.reference.vocabulary)
        codes = self._coder.codes(chunk.frame[self.column])
        self.add(codes)
        chunk.derived[CODES, self.column] = codes

    def add(self, codes: np.ndarray) -> None:
        """Add category codes (`columns.label_codes`: unseen, then missing, last)."""
        tally = np.bincount(codes, minlength=len(self.counts) + 1)
        self.counts += tally[:-1]
        self.n_missing += int(tally[-1])

    def merge(self, other: CategoricalCounts) -> CategoricalCounts:
        self.counts += other.counts
        self.n_missing += other.n_missing
        return self

    def result(self) -> CategoricalCounts:
        return self

    def to_state(self) -> bytes:
        return pack({"counts": self.counts}, n_missing=self.n_missing)

    def from_state(self, state: bytes) -> CategoricalCounts:
        arrays, values = unpack(state)
        return CategoricalCounts(self.reference, arrays["counts"], values["n_missing"])

    @property
    def n(self) -> int:
        return int(self.counts.sum())


ColumnCounts = NumericalCounts | CategoricalCounts


@dataclass
class BatchCounts:
    """Every monitored column of a batch, on the reference's scale."""

    reference: Reference
    columns: dict[str, ColumnCounts] = field(default_factory=dict)

    @classmethod
    def empty(
        cls,
        reference: Reference,
        scorers: Mapping[str, ColumnScorer] | None = None,
        *,
        range_margin: float = 0.0,
    ) -> BatchCounts:
        """Empty counts of every reference column; `scorers` adds per-column scores,
        `range_margin` is `quality.range_margin` (`NumericalCounts.empty`)."""
        scorers = scorers or {}
        columns: dict[str, ColumnCounts] = {}
        for column, fitted in reference.profiles.items():
            if isinstance(fitted, NumericalReference):
                columns[column] = NumericalCounts.empty(
                    fitted, scorers.get(column), range_margin=range_margin
                )
            else:
                columns[column] = CategoricalCounts.empty(fitted)
        return cls(reference, columns)

    def update(self, chunk: Chunk) -> None:
        """Every column in turn (the engine runs `update_steps` side by side instead)."""
        for step in self.update_steps():
            step(chunk)

    def update_steps(self) -> list[Callable[[Chunk], None]]:
        """One update per column, for the engine's parallel steps."""
        return [counts.update for counts in self.columns.values()]

    def merge(self, other: BatchCounts) -> BatchCounts:
        for column, counts in self.columns.items():
            self.columns[column] = counts.merge(other.columns[column])  # type: ignore[arg-type]
        return self

    def result(self) -> BatchCounts:
        return self

    def to_state(self) -> bytes:
        return pack_many([counts.to_state() for counts in self.columns.values()])

    def from_state(self, state: bytes) -> BatchCounts:
        states = unpack_many(state)
        if len(states) != len(self.columns):
            raise InvalidValueError(
                f"a state of {len(states)} columns cannot load into {len(self.columns)}"
            )
        loaded = {
            column: counts.from_state(one)
            for (column, counts), one in zip(self.columns.items(), states, strict=True)
        }
        return BatchCounts(self.reference, loaded)  # type: ignore[arg-type]

    def to_dict(self, n_rows: int) -> dict[str, object]:
        """A JSON-ready profile: histograms and counts per column (`profile.json`)."""
        out: dict[str, object] = {"n_rows": n_rows, "reference_id": self.reference.id}
        columns: dict[str, object] = {}
        for column, counts in self.columns.items():
            fitted = self.reference.profiles[column]
            entry: dict[str, object] = {
                "role": fitted.role,
                "kind": fitted.kind,
                "n": counts.n,
                "n_missing": counts.n_missing,
                "counts": counts.counts.tolist(),
                "reference_counts": fitted.counts.tolist(),
            }
            if isinstance(counts, NumericalCounts):
                entry["edges"] = counts.reference.edges.tolist()
                entry["mean"] = counts.mean
                entry["reference_mean"] = counts.reference.mean
            else:
                entry["categories"] = [*counts.reference.vocabulary, "(unseen)"]
            columns[column] = entry
        out["columns"] = columns
        return out
