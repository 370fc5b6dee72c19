"""ChunkDataset, chunk_loader and LoaderSource: every row once, the order restorable.

Each kind of source is read with and without DataLoader workers (the default start method,
fork on Linux) at several chunk sizes; the data files live in ``tmp_path``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from torch.utils.data import DataLoader

from monitoring.collect.sources import SqlSource, open_source
from monitoring.collect.sources.loader_source import LoaderSource
from monitoring.collect.sources.torch_dataset import Chunk, ChunkDataset, chunk_loader
from monitoring.errors import ColumnNotFoundError, ConfigError, InvalidValueError, SourceError
from monitoring.evaluation.batch import evaluate

FEATURES = ["x", "y"]
FRAME = pd.DataFrame(
    {
        "id": range(23),
        "x": [np.nan if i % 5 == 2 else i / 4 for i in range(23)],
        "y": [float(i % 7) for i in range(23)],
        "color": [f"c{i % 3}" for i in range(23)],
    }
)
# Files of a folder: rows 0-6, an empty file, rows 7-15, rows 16-22.
FOLDER_PIECES = [(0, 7), (7, 7), (7, 16), (16, 23)]

Spec = Any  # what chunk_loader accepts: a path, a Source or a DataFrame
Builder = Callable[[Path], Spec]


def csv_file(tmp_path: Path) -> Spec:
    FRAME.to_csv(tmp_path / "data.csv", index=False)
    return tmp_path / "data.csv"


def parquet_row_groups(tmp_path: Path) -> Spec:
    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    pq.write_table(table, tmp_path / "data.parquet", row_group_size=5)  # 5 row groups
    return tmp_path / "data.parquet"


def csv_folder(tmp_path: Path) -> Spec:
    folder = tmp_path / "csv-folder"
    folder.mkdir()
    for part, (start, stop) in enumerate(FOLDER_PIECES):
        FRAME.iloc[start:stop].to_csv(folder / f"part-{part}.csv", index=False)
    return folder


def parquet_folder(tmp_path: Path) -> Spec:
    folder = tmp_path / "parquet-folder"
    folder.mkdir()
    for part, (start, stop) in enumerate(FOLDER_PIECES):
        FRAME.iloc[start:stop].to_parquet(folder / f"part-{part}.parquet", index=False)
    return folder


def write_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    FRAME.to_sql("data", engine, index=False)
    engine.dispose()
    return url


def sqlite_query(tmp_path: Path) -> Spec:
    return SqlSource(write_sqlite(tmp_path), "SELECT * FROM data ORDER BY id")


def dataframe(tmp_path: Path) -> Spec:
    return FRAME


SOURCES = [
    pytest.param(csv_file, id="csv"),
    pytest.param(parquet_row_groups, id="parquet-row-groups"),
    pytest.param(csv_folder, id="folder-csv"),
    pytest.param(parquet_folder, id="folder-parquet"),
    pytest.param(sqlite_query, id="sqlite"),
    pytest.param(dataframe, id="dataframe"),
]
WORKERS = [pytest.param(0, id="in-process"), pytest.param(2, id="2-workers")]
CHUNK_SIZES = [pytest.param(1, id="chunk-1"), pytest.param(4, id="chunk-4")]
CHUNK_SIZES += [pytest.param(100, id="chunk-100")]


def source_rows(spec: Spec, chunk_size: int) -> pd.DataFrame:
    """The source's own pass, concatenated, numbered from 0."""
    return pd.concat(open_source(spec).iter_chunks(chunk_size), ignore_index=True)


def rows_of(chunks: list[Chunk]) -> pd.DataFrame:
    """The rows of the non-empty chunks, in the order given, numbered from 0."""
    return pd.concat([c.frame for c in chunks if len(c.frame)], ignore_index=True)


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id", ignore_index=True)


def ids_and_count(frame: pd.DataFrame) -> dict[str, Any]:
    """A picklable transform: what the chunk holds, in plain Python values."""
    return {"rows": len(frame), "ids": frame["id"].tolist()}


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("build", SOURCES)
def test_every_row_once_and_position_restores_the_order(tmp_path, build, workers, chunk_size):
    spec = build(tmp_path)
    chunks = list(chunk_loader(spec, chunk_size=chunk_size, num_workers=workers))
    expected = source_rows(spec, chunk_size)
    assert_frame_equal(by_id(rows_of(chunks)), by_id(expected))
    in_order = sorted(chunks, key=lambda c: c.position)
    assert_frame_equal(rows_of(in_order), expected)
    assert max(len(c.frame) for c in chunks) <= chunk_size


@pytest.mark.parametrize("build", SOURCES)
def test_ordered_loader_source_gives_the_source_order(tmp_path, build):
    spec = build(tmp_path)
    source = LoaderSource(chunk_loader(spec, chunk_size=3, num_workers=2), ordered=True)
    frames = list(source.iter_chunks(2))
    assert_frame_equal(pd.concat(frames, ignore_index=True), source_rows(spec, 3))
    assert max(len(f) for f in frames) <= 2


@pytest.mark.parametrize("build", SOURCES)
def test_unordered_loader_source_gives_every_row_once(tmp_path, build):
    spec = build(tmp_path)
    frames = list(LoaderSource(chunk_loader(spec, chunk_size=4, num_workers=2)).iter_chunks())
    assert_frame_equal(by_id(pd.concat(frames, ignore_index=True)), by_id(source_rows(spec, 4)))


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("build", SOURCES)
def test_feature_tensors_are_float32_with_nan_where_missing(tmp_path, build, workers):
    chunks = list(
        chunk_loader(build(tmp_path), chunk_size=4, num_workers=workers, features=FEATURES)
    )
    tensors = torch.cat([c.tensors for c in chunks])
    assert [tuple(c.tensors.shape) for c in chunks] == [(len(c.frame), 2) for c in chunks]
    assert tensors.dtype == torch.float32
    frames = [c.frame[FEATURES].to_numpy(np.float32, na_value=np.nan) for c in chunks]
    np.testing.assert_array_equal(tensors.numpy(), np.concatenate(frames))
    assert int(torch.isnan(tensors).sum()) == int(FRAME[FEATURES].isna().sum().sum()) > 0


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("build", SOURCES)
def test_transform_gives_the_tensors(tmp_path, build, workers):
    chunks = list(
        chunk_loader(build(tmp_path), chunk_size=4, num_workers=workers, transform=ids_and_count)
    )
    assert [c.tensors for c in chunks] == [ids_and_count(c.frame) for c in chunks]


def test_object_columns_of_numbers_and_nulls_become_float_tensors():
    frame = pd.DataFrame({"x": [None, None], "y": [1, None]}, dtype=object)  # as SQL gives
    (chunk,) = ChunkDataset(frame, features=FEATURES)
    expected = np.array([[np.nan, 1.0], [np.nan, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(chunk.tensors.numpy(), expected)


def test_without_features_or_transform_there_are_no_tensors():
    assert {c.tensors for c in ChunkDataset(FRAME, chunk_size=5)} == {None}


def test_folder_chunks_are_numbered_within_their_file(tmp_path):
    chunks = list(ChunkDataset(parquet_folder(tmp_path), chunk_size=4))
    assert [(c.part, c.offset, len(c.frame), c.last) for c in chunks] == [
        (0, 0, 4, False),
        (0, 4, 3, True),
        (1, 0, 0, True),
        (2, 0, 4, False),
        (2, 4, 4, False),
        (2, 8, 1, True),
        (3, 0, 4, False),
        (3, 4, 3, True),
    ]
    assert [list(c.frame.index) for c in chunks][:2] == [[0, 1, 2, 3], [4, 5, 6]]


def test_parquet_row_groups_are_split_among_workers(tmp_path):
    loader = chunk_loader(parquet_row_groups(tmp_path), chunk_size=3, num_workers=2)
    positions = sorted(c.position for c in loader)
    assert positions == [(0, o) for o in (0, 3, 5, 8, 10, 13, 15, 18, 20)]


def sqlite_engine(tmp_path: Path, request: pytest.FixtureRequest) -> SqlSource:
    engine = sa.create_engine(write_sqlite(tmp_path))
    request.addfinalizer(engine.dispose)
    return SqlSource(engine, "SELECT * FROM data")


def sqlite_connection(tmp_path: Path, request: pytest.FixtureRequest) -> SqlSource:
    engine = sa.create_engine(write_sqlite(tmp_path))
    request.addfinalizer(engine.dispose)
    connection = engine.connect()
    request.addfinalizer(connection.close)
    return SqlSource(connection, "SELECT * FROM data")


LENT = [
    pytest.param(sqlite_engine, id="engine"),
    pytest.param(sqlite_connection, id="connection"),
]


@pytest.mark.parametrize("lent", LENT)
def test_a_lent_connection_with_workers_is_refused(tmp_path, request, lent):
    with pytest.raises(SourceError, match="cannot be shared by DataLoader worker processes"):
        chunk_loader(lent(tmp_path, request), num_workers=2)


@pytest.mark.parametrize("lent", LENT)
def test_a_lent_connection_is_refused_inside_a_worker(tmp_path, request, lent):
    loader = DataLoader(ChunkDataset(lent(tmp_path, request)), batch_size=None, num_workers=1)
    batches = iter(loader)
    # torch leaves an iterator whose worker raised in a reference cycle, and collecting it
    # waits 5 s per worker: stop its workers now instead.
    request.addfinalizer(batches._shutdown_workers)
    with pytest.raises(SourceError, match="give the database URL"):
        next(batches)


@pytest.mark.parametrize("lent", LENT)
def test_a_lent_connection_works_in_process_and_stays_open(tmp_path, request, lent):
    source = lent(tmp_path, request)
    assert sum(len(c.frame) for c in chunk_loader(source, chunk_size=5)) == len(FRAME)
    assert sum(len(c.frame) for c in chunk_loader(source, chunk_size=5)) == len(FRAME)


BAD_CALLS = [
    pytest.param(
        lambda: ChunkDataset(FRAME, features=["x"], transform=ids_and_count),
        ConfigError,
        "not both",
        id="features-and-transform",
    ),
    pytest.param(lambda: ChunkDataset(FRAME, features="x"), ConfigError, "list", id="features-str"),
    pytest.param(
        lambda: ChunkDataset(FRAME, features=[]), ConfigError, "at least", id="no-feature"
    ),
    pytest.param(
        lambda: ChunkDataset(FRAME, chunk_size=0), ConfigError, "chunk_size", id="chunk-0"
    ),
    pytest.param(
        lambda: chunk_loader(FRAME, num_workers=-1), ConfigError, "num_workers", id="workers--1"
    ),
    pytest.param(
        lambda: chunk_loader(FRAME, batch_size=8), ConfigError, "batch_size", id="batch-size"
    ),
    pytest.param(
        lambda: list(ChunkDataset(FRAME, features=["x", "z"])),
        ColumnNotFoundError,
        r"\['z'\] not found",
        id="missing-feature",
    ),
    pytest.param(
        lambda: list(ChunkDataset(FRAME, features=["color"])),
        InvalidValueError,
        "'color' holds",
        id="text-feature",
    ),
    pytest.param(
        lambda: list(LoaderSource([[FRAME]]).iter_chunks()),
        SourceError,
        "yielded a list",
        id="list-items",
    ),
    pytest.param(
        lambda: list(ChunkDataset("missing.parquet")), SourceError, "missing.parquet", id="no-file"
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_CALLS)
def test_bad_calls_raise_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_one_shot_iterator_gives_one_pass():
    source = LoaderSource(iter([FRAME]))
    assert sum(len(f) for f in source.iter_chunks()) == len(FRAME)
    with pytest.raises(SourceError, match="one-shot iterator, already read"):
        list(source.iter_chunks())


def test_long_frames_are_split_to_the_chunk_size():
    assert [len(f) for f in LoaderSource([FRAME]).iter_chunks(10)] == [10, 10, 3]


def test_a_pass_without_rows_gives_one_empty_frame_with_the_columns():
    empty = [Chunk(p, 0, FRAME.iloc[:0], last=True) for p in range(3)]
    frames = list(LoaderSource(empty, ordered=True).iter_chunks())
    assert [(len(f), list(f.columns)) for f in frames] == [(0, list(FRAME.columns))]


def test_in_order_chunks_are_yielded_without_waiting():
    chunks = [Chunk(0, start, FRAME.iloc[start : start + 5]) for start in range(0, 23, 5)]
    seen: list[int] = []

    def arrive() -> Iterator[Chunk]:
        for chunk in chunks:
            seen.append(chunk.offset)
            yield chunk

    first = next(LoaderSource(arrive(), ordered=True).iter_chunks())
    assert (first.index[0], seen) == (0, [0])


def test_loader_source_names_the_source_it_reads(tmp_path):
    source = LoaderSource(chunk_loader(csv_file(tmp_path), num_workers=2))
    assert source.name == "data.csv"
    assert (
        source.describe()
        == f"{tmp_path / 'data.csv'} (read through a torch DataLoader with 2 workers, any order)"
    )


@st.composite
def shuffled_parts(draw: st.DrawFn) -> tuple[list[int], list[Chunk]]:
    """Parts of random sizes (some empty) cut in random chunks, arriving in random order."""
    sizes = draw(st.lists(st.integers(0, 12), min_size=1, max_size=5))
    chunk_size = draw(st.integers(1, 5))
    chunks, start = [], 0
    for part, size in enumerate(sizes):
        offsets = list(range(0, size, chunk_size)) or [0]
        for offset in offsets:
            frame = pd.DataFrame(
                {"id": range(start + offset, start + min(offset + chunk_size, size))}
            )
            chunks.append(Chunk(part, offset, frame, last=offset == offsets[-1]))
        start += size
    random.Random(draw(st.integers(0, 2**32))).shuffle(chunks)
    return list(range(start)), chunks


@settings(max_examples=60, deadline=None, derandomize=True)
@given(case=shuffled_parts())
def test_ordered_loader_source_restores_any_arrival_order(case):
    ids, chunks = case
    frames = list(LoaderSource(chunks, ordered=True).iter_chunks())
    assert [i for f in frames for i in f["id"]] == ids


def generated(n: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(shift, 1.0, n),
            "channel": rng.choice(["web", "shop", "phone"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def batch_csv(tmp_path: Path, batch: pd.DataFrame) -> Path:
    batch.to_csv(tmp_path / "batch.csv", index=False)
    return tmp_path / "batch.csv"


def batch_parquet_folder(tmp_path: Path, batch: pd.DataFrame) -> Path:
    (tmp_path / "batch").mkdir()
    for part, start in enumerate(range(0, len(batch), 70)):
        batch.iloc[start : start + 70].to_parquet(tmp_path / "batch" / f"{part}.parquet")
    return tmp_path / "batch"


@pytest.mark.parametrize(
    "write",
    [pytest.param(batch_csv, id="csv"), pytest.param(batch_parquet_folder, id="folder-parquet")],
)
def test_evaluating_through_a_dataloader_gives_the_same_drift(tmp_path, write):
    reference = generated(500, seed=1, shift=0.0)
    path = write(tmp_path, generated(300, seed=2, shift=0.4))
    direct = evaluate(path, reference)
    loaded = evaluate(LoaderSource(chunk_loader(path, chunk_size=40, num_workers=2)), reference)
    assert_frame_equal(loaded.drift_table, direct.drift_table, rtol=1e-12)
    assert (loaded.n_rows, loaded.source_name) == (direct.n_rows, direct.source_name)
