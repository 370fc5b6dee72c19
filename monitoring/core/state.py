"""Serialised accumulator states: named numpy arrays and JSON values in one byte string.

An accumulator's `to_state()` returns `pack(...)` of what it holds; `from_state()` reads it
back with `unpack`. The format is numpy's `.npz` (no pickle, so a state from an untrusted
executor cannot run code) with the JSON values in one extra array, so a state travels
between processes and machines (a Spark executor and its driver) and is compact.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from monitoring.errors import InvalidValueError

_JSON = "__json__"
_NARROWED = "__narrowed__"  # name -> the dtype an integer array had before it was narrowed
_NARROW_FROM = 4096  # integer arrays of at least this many elements travel narrowed
_NARROW_TYPES = (np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32)


def pack(arrays: Mapping[str, np.ndarray] | None = None, **values: Any) -> bytes:
    """`arrays` stored as arrays, `values` (JSON-ready) as one JSON document.

    Large integer arrays (counts per reference value: most are 0 or small) travel in the
    narrowest integer type that holds them, and come back from `unpack` in their own: a
    Spark partition's state is several times smaller, exactly."""
    buffer = io.BytesIO()
    payload = dict(arrays or {})
    if _JSON in payload or _NARROWED in values:
        raise InvalidValueError(f"{_JSON!r} is reserved in an accumulator state")
    narrowed = {}
    for name, array in payload.items():
        small = _narrowed(array)
        if small is not None:
            narrowed[name] = array.dtype.str
            payload[name] = small
    document = {**values, _NARROWED: narrowed} if narrowed else values
    payload[_JSON] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(buffer, **payload)
    return buffer.getvalue()


def _narrowed(array: Any) -> np.ndarray | None:
    """`array` in a narrower integer type that holds every value, or None."""
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iu":
        return None
    if array.size < _NARROW_FROM or array.dtype.itemsize == 1:
        return None
    low, high = int(array.min()), int(array.max())
    for kind in _NARROW_TYPES:
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max and np.dtype(kind).itemsize < array.itemsize:
            return array.astype(kind)
    return None


def unpack(state: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the JSON values that `pack` stored."""
    try:
        with np.load(io.BytesIO(state), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (ValueError, OSError) as exc:
        raise InvalidValueError(f"not an accumulator state: {exc}") from exc
    values = json.loads(arrays.pop(_JSON).tobytes().decode()) if _JSON in arrays else {}
    for name, dtype in values.pop(_NARROWED, {}).items():
        arrays[name] = arrays[name].astype(np.dtype(dtype))
    return arrays, values


def pack_many(states: list[bytes]) -> bytes:
    """Several states (a container's members, in order) as one."""
    arrays = {f"s{i}": np.frombuffer(state, dtype=np.uint8) for i, state in enumerate(states)}
    return pack(arrays, count=len(states))


def unpack_many(state: bytes) -> list[bytes]:
    """The states that `pack_many` stored, in order."""
    arrays, values = unpack(state)
    return [arrays[f"s{i}"].tobytes() for i in range(values["count"])]


def arrow_bytes(frame: pd.DataFrame) -> bytes:
    """A DataFrame as an Arrow IPC stream (dtypes kept, no pickle)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def arrow_frame(state: bytes) -> pd.DataFrame:
    """The DataFrame that `arrow_bytes` stored."""
    return pa.ipc.open_stream(state).read_all().to_pandas()
