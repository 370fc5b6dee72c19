"""Labels that arrive after a batch was evaluated: read, checked, joined to the batch's
samples (`samples.parquet`: id, prediction, class scores) and measured.

Labels may come in parts: each part is merged with those known so far, and the realized
performance is always computed on every label known. An id given twice in one part is
refused, and so is a new label for an id that already has a different one; ids that are not
in the batch are counted and left out. Nothing here talks to MLflow (`track.labels` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring.collect.columns import label_values, numeric_values
from monitoring.collect.sources.opening import open_source
from monitoring.core.accumulator import Chunk
from monitoring.core.config import PerformanceConfig
from monitoring.errors import ColumnNotFoundError, DataError
from monitoring.measure.performance.outputs import ModelOutputs, PerformanceAccumulator
from monitoring.measure.performance.tests import PerformanceTest, performance_tests
from monitoring.measure.reference import Reference
from monitoring.measure.sample_table import ID, PREDICTION, SCORE_PREFIX

__all__ = ["LABEL", "LabelJoin", "join_labels", "measure_labels", "read_label_part"]

LABEL = "label"  # the column of the known labels (labels.parquet: ID, LABEL)
_CHUNK_ROWS = 100_000


def read_label_part(
    source: Any,
    *,
    id_column: str,
    target: str,
    query: str | None = None,
    params: Mapping[str, object] | None = None,
    numeric: bool = False,
) -> pd.DataFrame:
    """One part of labels: `ID` (text, as `samples.parquet` ids compare) and `LABEL` (text;
    a float with `numeric`, a regressor's), rows without a label left out. A missing
    column, a row without an id or an id given twice is a DataError naming it."""
    opened = open_source(source, query=query, params=params)
    where = f"labels {opened.describe()}"
    parts, offset = [], 0
    for chunk in opened.iter_chunks(_CHUNK_ROWS):
        for column in (id_column, target):
            if column not in chunk.columns:
                raise ColumnNotFoundError(
                    f"labels {opened.describe()} have no column {column!r}; columns: "
                    f"{', '.join(map(str, chunk.columns))}"
                )
        ids = pd.Series(label_values(chunk[id_column]), dtype=object)
        if ids.isna().any():
            row = offset + int(ids.isna().to_numpy().argmax())
            raise DataError(f"labels {opened.describe()}: row {row} has no {id_column!r}")
        labels = (
            pd.Series(numeric_values(chunk[target], column=target, offset=offset, where=where))
            if numeric
            else pd.Series(label_values(chunk[target]), dtype=object)
        )
        parts.append(pd.DataFrame({ID: ids.astype(str).to_numpy(), LABEL: labels.to_numpy()}))
        offset += len(chunk)
    part = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[ID, LABEL])
    repeated = part[ID].duplicated(keep=False)
    if repeated.any():
        rows = part.index[repeated & (part[ID] == part.loc[repeated, ID].iloc[0])].tolist()
        raise DataError(
            f"labels {opened.describe()}: id {part.loc[rows[0], ID]!r} is given "
            f"{len(rows)} times (rows {', '.join(map(str, rows[:5]))}); "
            f"{int(part.loc[repeated, ID].nunique())} id(s) repeat. Give each id once"
        )
    return part[part[LABEL].notna()].reset_index(drop=True)


@dataclass(frozen=True)
class LabelJoin:
    """The labels known for a batch after one more part, and what the part brought."""

    known: pd.DataFrame  # ID, LABEL: every label of the batch's ids known so far
    n_batch: int  # rows of the batch
    n_new: int  # labels of this part for ids of the batch that had none
    n_unknown: int  # labels of this part for ids that are not in the batch

    @property
    def coverage(self) -> float:
        """The share of the batch's rows that have a label."""
        return len(self.known) / self.n_batch if self.n_batch else 0.0


def join_labels(
    sample_ids: pd.Series, previous: pd.DataFrame | None, part: pd.DataFrame
) -> LabelJoin:
    """Merge `part` with the `previous` labels of the batch whose ids are `sample_ids`
    (text). A label that differs from the one already known for its id is a DataError."""
    in_batch = part[ID].isin(set(sample_ids))
    fresh = part[in_batch]
    known = previous if previous is not None else pd.DataFrame(columns=[ID, LABEL])
    both = fresh.merge(known, on=ID, how="inner", suffixes=("", "_known"))
    changed = both[both[LABEL].astype(str) != both[f"{LABEL}_known"].astype(str)]
    if len(changed):
        first = changed.iloc[0]
        raise DataError(
            f"id {first[ID]!r} already has the label {first[f'{LABEL}_known']!r}; this part "
            f"gives {first[LABEL]!r} ({len(changed)} id(s) differ). Labels attached to a "
            "batch are final: fix the source, or re-evaluate the batch with --replace"
        )
    added = fresh[~fresh[ID].isin(set(known[ID]))]
    merged = pd.concat([known, added], ignore_index=True)
    return LabelJoin(merged, int(sample_ids.size), len(added), int((~in_batch).sum()))


def measure_labels(
    reference: Reference, samples: pd.DataFrame, known: pd.DataFrame, config: PerformanceConfig
) -> tuple[dict[str, float], tuple[PerformanceTest, ...]]:
    """Realized performance of the labelled samples, measured as a batch's (the same
    accumulator), and its tests against the reference's own performance."""
    schema = reference.schema
    frame = samples.merge(known, on=ID, how="inner")
    scores = {c: f"{SCORE_PREFIX}{c}" for c in reference.classes}
    outputs = ModelOutputs(
        task=str(schema.task),
        target=LABEL,
        prediction=PREDICTION,
        scores={c: col for c, col in scores.items() if col in frame.columns},
        classes=reference.classes,
    )
    chunk = Chunk(frame, 0, "labels joined to the batch")
    outputs.check_labels(chunk)
    accumulator = PerformanceAccumulator(outputs)
    accumulator.update(chunk)
    return accumulator.result(), performance_tests(
        reference.performance, accumulator.metrics, config
    )
