"""export_source: a source becomes one CSV or Parquet file, whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from monitoring.collect.export import ExportSummary, export_source
from monitoring.collect.sources import DataFrameSource, Source, SqlSource
from monitoring.errors import SourceError

FRAME = pd.DataFrame(
    {
        "id": range(20),
        "score": [i / 8 for i in range(20)],
        "label": [f"class-{i % 4}" for i in range(20)],
    }
)
FORMATS = [
    pytest.param(".csv", pd.read_csv, id="csv"),
    pytest.param(".parquet", pd.read_parquet, id="parquet"),
]


class ListSource:
    """A Source over given frames; an exception in the list is raised when reached."""

    name = "frames"

    def __init__(self, *items: pd.DataFrame | Exception) -> None:
        self._items = items

    def describe(self) -> str:
        return f"{len(self._items)} frames"

    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[pd.DataFrame]:
        for item in self._items:
            if isinstance(item, Exception):
                raise item
            yield item


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    FRAME.to_sql("data", engine, index=False)
    engine.dispose()
    return url


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty folder for the output, so that leftovers are easy to see."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    "chunk_size",
    [
        pytest.param(1, id="chunk-1"),
        pytest.param(7, id="chunk-7"),
        pytest.param(1000, id="chunk-1000"),
    ],
)
@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_a_query_round_trips(
    sqlite_url: str,
    out_dir: Path,
    suffix: str,
    read: Callable[[Path], pd.DataFrame],
    chunk_size: int,
) -> None:
    source = SqlSource(sqlite_url, "SELECT * FROM data ORDER BY id")

    summary = export_source(source, out_dir / f"export{suffix}", chunk_size=chunk_size)

    assert isinstance(summary, ExportSummary)
    assert (summary.path, summary.rows, summary.columns) == (
        out_dir / f"export{suffix}",
        20,
        ("id", "score", "label"),
    )
    assert summary.seconds >= 0
    assert [p.name for p in out_dir.iterdir()] == [f"export{suffix}"]
    pd.testing.assert_frame_equal(read(summary.path), FRAME)


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_progress_reports_rows_so_far(
    sqlite_url: str, out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    seen: list[int] = []
    source = SqlSource(sqlite_url, "SELECT * FROM data ORDER BY id")

    export_source(source, out_dir / f"export{suffix}", chunk_size=7, progress=seen.append)

    assert seen == [0, 7, 14, 20]  # 0: the export starts


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_a_failure_midway_leaves_no_file(
    out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    source = ListSource(FRAME.iloc[:5], SourceError("the second chunk is unreadable"))

    with pytest.raises(SourceError, match="the second chunk is unreadable"):
        export_source(source, out_dir / f"export{suffix}")

    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_a_failure_midway_keeps_the_previous_export(
    out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    out = out_dir / f"export{suffix}"
    export_source(DataFrameSource(FRAME), out)
    failing = ListSource(FRAME.iloc[:5] * 2, SourceError("the second chunk is unreadable"))

    with pytest.raises(SourceError):
        export_source(failing, out)

    assert [p.name for p in out_dir.iterdir()] == [out.name]
    pd.testing.assert_frame_equal(read(out), FRAME)


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_zero_rows_still_write_the_columns(
    sqlite_url: str, out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    source = SqlSource(sqlite_url, "SELECT * FROM data WHERE id < :low", {"low": 0})

    summary = export_source(source, out_dir / f"empty{suffix}")

    assert summary.rows == 0
    assert list(read(summary.path).columns) == ["id", "score", "label"]
    assert len(read(summary.path)) == 0


def test_no_rows_and_no_columns_is_an_error(out_dir: Path) -> None:
    with pytest.raises(SourceError, match="query returned no rows and no columns"):
        export_source(ListSource(), out_dir / "empty.csv")

    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("out", "message"),
    [
        pytest.param("export.xlsx", r"must end with \.csv, \.parquet, \.pq", id="suffix"),
        pytest.param("missing/export.csv", "does not exist", id="no-folder"),
    ],
)
def test_a_bad_destination_is_refused(out_dir: Path, out: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        export_source(DataFrameSource(FRAME), out_dir / out)

    assert list(out_dir.iterdir()) == []


def test_parquet_gives_an_all_null_column_the_type_seen_later(out_dir: Path) -> None:
    df = pd.DataFrame({"late": pd.Series([None, None, None, 4, 5], dtype=object), "id": range(5)})

    export_source(DataFrameSource(df), out_dir / "late.parquet", chunk_size=3)

    table = pq.read_table(out_dir / "late.parquet")
    assert table.schema.field("late").type == pa.int64()
    assert table.column("late").to_pylist() == [None, None, None, 4, 5]
    assert [p.name for p in out_dir.iterdir()] == ["late.parquet"]


def test_parquet_writes_categorical_chunks_as_their_values(out_dir: Path) -> None:
    # A Parquet source reads strings dictionary-encoded; each chunk has its own categories.
    first = pd.DataFrame({"c": pd.Categorical(["a", None]), "id": [0, 1]})
    second = pd.DataFrame({"c": pd.Categorical(["b"] * 200 + [str(i) for i in range(200)])})
    second["id"] = range(2, 402)

    export_source(ListSource(first, second), out_dir / "strings.parquet")

    table = pq.read_table(out_dir / "strings.parquet")
    written = table.schema.field("c").type
    assert pa.types.is_string(written) or pa.types.is_large_string(written), written
    assert table.column("c").to_pylist() == ["a", None, *second["c"].astype(str)]


def test_parquet_widens_int_to_float(out_dir: Path) -> None:
    source = ListSource(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [2.5]}))

    export_source(source, out_dir / "wide.parquet")

    table = pq.read_table(out_dir / "wide.parquet")
    assert table.schema.field("x").type == pa.float64()
    assert table.column("x").to_pylist() == [1.0, 2.0, 2.5]


def test_parquet_keeps_int_when_a_later_chunk_has_nulls(out_dir: Path) -> None:
    source = ListSource(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [np.nan, 3.0]}))

    export_source(source, out_dir / "ints.parquet")

    table = pq.read_table(out_dir / "ints.parquet")
    assert table.schema.field("x").type == pa.int64()
    assert table.column("x").to_pylist() == [1, 2, None, 3]


def test_parquet_names_a_column_whose_types_conflict(out_dir: Path) -> None:
    source = ListSource(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": ["a", "b"]}))

    with pytest.raises(
        SourceError, match="column 'x' is (large_)?string from row 2 but int64 before"
    ):
        export_source(source, out_dir / "conflict.parquet")

    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_chunks_with_other_columns_are_refused(
    out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    source = ListSource(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [2]}))

    with pytest.raises(SourceError, match=r"row 1: .*missing \['a'\], unexpected \['b'\]"):
        export_source(source, out_dir / f"other{suffix}")

    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(("suffix", "read"), FORMATS)
def test_reordered_columns_follow_the_first_chunk(
    out_dir: Path, suffix: str, read: Callable[[Path], pd.DataFrame]
) -> None:
    source = ListSource(pd.DataFrame({"a": [1], "b": [2]}), pd.DataFrame({"b": [4], "a": [3]}))

    summary = export_source(source, out_dir / f"reordered{suffix}")

    pd.testing.assert_frame_equal(read(summary.path), pd.DataFrame({"a": [1, 3], "b": [2, 4]}))


def test_list_source_is_a_source() -> None:
    assert isinstance(ListSource(), Source)
