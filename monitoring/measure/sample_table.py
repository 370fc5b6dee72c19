"""Every sample of a batch, one row each in batch order: the `samples.parquet` artifact.

`SampleTable` keeps the id column's values as the batch streams by, so that a batch run can
say which sample ids it holds (a note may name any of them, and a re-evaluation leaves the
`anomaly-ignore` ones out of `perf/<metric>_excl_ignored`). The table has one column now,
`ID`; further per-sample columns (the predicted label, class probabilities) can be added
beside it without changing how the ids are read.

Integer ids keep their integer type; any other id is kept as the text that matching reads
(`collect.columns.label_values`: whole floats print as integers, missing stays missing),
so a note's id compares as a string with both. The file is zstd-compressed Parquet with
the ids delta-encoded when they are integers. Per million rows (measured; README, "What a
batch run holds"): 6 KB for sequential integer ids, 8.1 MB for random 64-bit ones, 0.4 MB
for patterned text ids (`s-0000001`), 19.8 MB for random UUID4 text. Memory while
evaluating: 8 bytes per integer id, the text plus 4 bytes for any other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from monitoring.collect.columns import label_values
from monitoring.core.accumulator import Chunk

ID = "id"
"""The column of `samples.parquet` that holds each sample's id."""
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
    """The batch's sample ids, in batch order (`result()`: a one-column Arrow table)."""

    def __init__(self, column: str) -> None:
        self.column = column
        self._parts: list[pa.Array] = []

    def update(self, chunk: Chunk) -> None:
        if self.column in chunk.frame.columns:
            self._parts.append(id_array(chunk.frame[self.column]))

    def merge(self, other: SampleTable) -> SampleTable:
        self._parts += other._parts
        return self

    def result(self) -> pa.Table:
        """Column `ID`: int64 when every chunk's ids were integers, else text."""
        parts = self._parts
        if any(p.type != pa.int64() for p in parts):
            parts = [_as_text(p) for p in parts]
        kind = parts[0].type if parts else pa.string()
        return pa.table({ID: pa.chunked_array(parts, type=kind)})

    def to_state(self) -> bytes:
        """The ids as an Arrow IPC stream (their type kept, no pickle)."""
        table = self.result()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def from_state(self, state: bytes) -> SampleTable:
        twin = SampleTable(self.column)
        ids = pa.ipc.open_stream(state).read_all().column(ID)
        twin._parts = list(ids.chunks)
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
