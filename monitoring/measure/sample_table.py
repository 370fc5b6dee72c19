"""Every sample of a batch, one row each in batch order: the `samples.parquet` artifact.

`SampleTable` keeps the id column's values as the batch streams by, so that a batch run can
say which sample ids it holds (a note may name any of them, and a re-evaluation leaves the
`anomaly-ignore` ones out of `perf/<metric>_excl_ignored`). Beside `ID` it keeps each
sample's prediction and class scores, when the batch has them: what joining labels that
arrive late to the batch they belong to needs (issue 18).

Integer ids keep their integer type; any other id is kept as the text that matching reads
(`collect.columns.label_values`: whole floats print as integers, missing stays missing),
so a note's id compares as a string with both. The file is zstd-compressed Parquet with
the ids delta-encoded when they are integers. Per million rows (measured; README, "What a
batch run holds"): 6 KB for sequential integer ids, 8.1 MB for random 64-bit ones, 0.4 MB
for patterned text ids (`s-0000001`), 19.8 MB for random UUID4 text. Memory while
evaluating: 8 bytes per integer id, the text plus 4 bytes for any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from monitoring.collect.columns import label_values
from monitoring.core.accumulator import Chunk

ID = "id"
"""The column of `samples.parquet` that holds each sample's id."""
PREDICTION = "prediction"
"""Its column of predicted labels (or values), when the batch has predictions."""
SCORE_PREFIX = "proba_"
"""Its columns of class scores: `proba_<class>`."""
SAMPLES_FILE = "samples.parquet"
"""The artifact's name in a batch run."""
COMPRESSION = "zstd"


def id_array(ids: pd.Series) -> pa.Array:
    """A chunk's ids: integers as int64, anything else as `label_values` text."""
    if pd.api.types.is_integer_dtype(ids.dtype) and not pd.api.types.is_unsigned_integer_dtype(
        ids.dtype
    ):
        return pa.array(ids.to_numpy(dtype=np.int64, na_value=0), mask=ids.isna().to_numpy())
    if pd.api.types.is_object_dtype(ids.dtype) or isinstance(ids.dtype, pd.StringDtype):
        try:  # text already: no factorising of a million distinct strings
            return pa.array(ids, type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # mixed values: printed one by one below
    return pa.array(label_values(ids), type=pa.string(), from_pandas=True)


def _as_text(array: pa.Array) -> pa.Array:
    return array if pa.types.is_string(array.type) else array.cast(pa.string())


class SampleTable:
    """The batch's samples in batch order (`result()`: an Arrow table): column `ID`, and
    once `keep_predictions` was called, `PREDICTION` (the label as text, or the value for
    regression) and one `proba_<class>` column (float32) per class score."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.prediction: str | None = None
        self.numeric_prediction = False
        self.scores: dict[str, str] = {}
        self._parts: list[pa.Table] = []

    def keep_predictions(
        self, prediction: str, scores: Mapping[str, str], *, numeric: bool = False
    ) -> None:
        """Keep each sample's prediction (column `prediction` of the chunks) and class
        scores (class -> column): what joining late labels to the batch needs."""
        self.prediction, self.scores, self.numeric_prediction = prediction, dict(scores), numeric

    def update(self, chunk: Chunk) -> None:
        frame = chunk.frame
        if self.column not in frame.columns:
            return
        columns = {ID: id_array(frame[self.column])}
        if self.prediction is not None and self.prediction in frame.columns:
            values = frame[self.prediction]
            columns[PREDICTION] = (
                pa.array(pd.to_numeric(values, errors="coerce"), type=pa.float64())
                if self.numeric_prediction
                else pa.array(label_values(values), type=pa.string(), from_pandas=True)
            )
        for label, score in self.scores.items():
            if score in frame.columns:
                values = pd.to_numeric(frame[score], errors="coerce").to_numpy(np.float32)
                columns[f"{SCORE_PREFIX}{label}"] = pa.array(values, type=pa.float32())
        self._parts.append(pa.table(columns))

    def merge(self, other: SampleTable) -> SampleTable:
        self._parts += other._parts
        return self

    def result(self) -> pa.Table:
        """`ID` int64 when every chunk's ids were integers, else text; the other columns
        as `keep_predictions` said (a column some chunk lacked is null there)."""
        parts = self._parts
        if not parts:
            return pa.table({ID: pa.array([], type=pa.string())})
        if any(p.schema.field(ID).type != pa.int64() for p in parts):
            parts = [p.set_column(0, ID, _as_text(p.column(ID).combine_chunks())) for p in parts]
        return pa.concat_tables(parts, promote_options="default")

    def to_state(self) -> bytes:
        """The table as an Arrow IPC stream (its types kept, no pickle)."""
        table = self.result()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def from_state(self, state: bytes) -> SampleTable:
        twin = SampleTable(self.column)
        twin.prediction, twin.scores = self.prediction, dict(self.scores)
        twin.numeric_prediction = self.numeric_prediction
        table = pa.ipc.open_stream(state).read_all()
        twin._parts = [table] if table.num_rows else []
        return twin


def write_samples(table: pa.Table, path: Path) -> None:
    """`table` as zstd Parquet; integer ids delta-encoded (sequential ids cost ~nothing)."""
    import pyarrow.parquet as pq  # only when a run is written

    delta = {ID: "DELTA_BINARY_PACKED"} if table.schema.field(ID).type == pa.int64() else None
    pq.write_table(
        table,
        path,
        compression=COMPRESSION,
        use_dictionary=False,
        column_encoding=delta,
    )


def read_sample_ids(path: Path) -> set[str]:
    """The ids that `write_samples` stored, as the strings a note's ids are compared with."""
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=[ID]).column(ID)
    return {v for v in _as_text(ids.combine_chunks()).to_pylist() if v is not None}
