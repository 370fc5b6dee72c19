"""The sources: every kind yields chunks that add up to the data, and fails by naming the fault.

SQL is tested against a real SQLite file and the real PostgreSQL server at 127.0.0.1:5432
(`postgres` marker); nothing in pandas or SQLAlchemy is mocked.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitoring.collect.sources import (
    CsvSource,
    DataFrameSource,
    FolderSource,
    ParquetSource,
    Source,
    SqlSource,
    mask_url,
    open_source,
    parse_params,
)
from monitoring.errors import (
    ConfigError,
    DatabaseUnreachableError,
    QueryParameterError,
    SourceError,
)

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLOSED_PORT_URL = "postgresql+psycopg://monitor:s3cr3t-pw@127.0.0.1:1/test"
FRAME = pd.DataFrame(
    {
        "id": range(10),
        "score": [i / 4 for i in range(10)],
        "label": [f"class-{i % 3}" for i in range(10)],
    }
)
CHUNK_SIZES = [
    pytest.param(1, id="chunk-1"),
    pytest.param(3, id="chunk-3"),
    pytest.param(10, id="chunk-10"),
    pytest.param(1000, id="chunk-1000"),
]
INJECTION = "x'; DROP TABLE data; --"

Builder = Callable[[Path, pd.DataFrame, ExitStack], Source]


def write_sqlite(tmp_path: Path, df: pd.DataFrame) -> str:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    df.to_sql("data", engine, index=False)
    engine.dispose()
    return url


def write_folder(tmp_path: Path, df: pd.DataFrame, suffix: str) -> Path:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "_SUCCESS").touch()
    for part, start in enumerate(range(0, max(len(df), 1), 4)):  # one file when empty
        piece = df.iloc[start : start + 4]
        path = folder / f"part-{part}{suffix}"
        (piece.to_csv if suffix == ".csv" else piece.to_parquet)(path, index=False)
    return folder


def csv_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    df.to_csv(tmp_path / "data.csv", index=False)
    return CsvSource(tmp_path / "data.csv")


def tsv_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    df.to_csv(tmp_path / "data.tsv", sep="\t", index=False)
    return CsvSource(tmp_path / "data.tsv")


def csv_gz_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    df.to_csv(tmp_path / "data.csv.gz", index=False)
    return CsvSource(tmp_path / "data.csv.gz")


def parquet_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    df.to_parquet(tmp_path / "data.parquet", index=False)
    return ParquetSource(tmp_path / "data.parquet")


def csv_folder_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    return FolderSource(write_folder(tmp_path, df, ".csv"))


def parquet_folder_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    return FolderSource(write_folder(tmp_path, df, ".parquet"))


def dataframe_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    return DataFrameSource(df)


def sqlite_url_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    return SqlSource(write_sqlite(tmp_path, df), "SELECT * FROM data ORDER BY id")


def sqlite_engine_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    engine = sa.create_engine(write_sqlite(tmp_path, df))
    stack.callback(engine.dispose)
    return SqlSource(engine, "SELECT * FROM data ORDER BY id")


def sqlite_connection_source(tmp_path: Path, df: pd.DataFrame, stack: ExitStack) -> Source:
    engine = sa.create_engine(write_sqlite(tmp_path, df))
    stack.callback(engine.dispose)
    return SqlSource(stack.enter_context(engine.connect()), "SELECT * FROM data ORDER BY id")


BUILDERS = [
    pytest.param(csv_source, id="csv"),
    pytest.param(tsv_source, id="tsv"),
    pytest.param(csv_gz_source, id="csv-gz"),
    pytest.param(parquet_source, id="parquet"),
    pytest.param(csv_folder_source, id="folder-csv"),
    pytest.param(parquet_folder_source, id="folder-parquet"),
    pytest.param(dataframe_source, id="dataframe"),
    pytest.param(sqlite_url_source, id="sqlite-url"),
    pytest.param(sqlite_engine_source, id="sqlite-engine"),
    pytest.param(sqlite_connection_source, id="sqlite-connection"),
]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as resources:
        yield resources


@pytest.fixture(scope="module")
def pg_table() -> Iterator[tuple[sa.Engine, str]]:
    """FRAME in a table of the real PostgreSQL, under a name unique to this run."""
    engine = sa.create_engine(POSTGRES_URL)
    table = f"monitoring_sources_{uuid.uuid4().hex[:12]}"
    FRAME.to_sql(table, engine, index=False)
    yield engine, table
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


# --- every source: the chunks add up to the data -------------------------------------------


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("build", BUILDERS)
def test_chunks_concatenate_to_the_data(
    build: Builder, chunk_size: int, tmp_path: Path, stack: ExitStack
) -> None:
    chunks = list(build(tmp_path, FRAME, stack).iter_chunks(chunk_size))

    assert max(len(chunk) for chunk in chunks) <= chunk_size
    decoded = pd.concat([_decoded(chunk) for chunk in chunks])
    pd.testing.assert_frame_equal(decoded, FRAME)  # index = row position too


def _decoded(chunk: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns (Parquet strings are read dictionary-encoded) as their values."""
    categorical = [c for c in chunk.columns if isinstance(chunk[c].dtype, pd.CategoricalDtype)]
    return chunk.astype({c: chunk[c].cat.categories.dtype for c in categorical})


def test_parquet_strings_come_as_categoricals_of_the_same_values(tmp_path: Path) -> None:
    path = tmp_path / "batch.parquet"
    FRAME.to_parquet(path, index=False)
    strings = [c for c in FRAME.columns if pd.api.types.is_string_dtype(FRAME[c])]

    for chunk in ParquetSource(path).iter_chunks(4):
        assert strings and all(chunk[c].dtype == "category" for c in strings)
        original = FRAME.loc[chunk.index, strings]
        pd.testing.assert_frame_equal(_decoded(chunk)[strings], original)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 7, 1000])
def test_parquet_chunks_have_the_chunk_size_whatever_the_row_groups(
    tmp_path: Path, chunk_size: int
) -> None:
    """pyarrow ends its batches with the row groups; chunks are regrouped to the chunk size
    (strings in other row groups have other dictionaries: the values stay the same)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.concat([FRAME] * 3, ignore_index=True)
    frame["label"] = [f"class-{i % 7}" for i in range(len(frame))]
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=4)

    chunks = list(ParquetSource(path).iter_chunks(chunk_size))

    sizes = [len(chunk) for chunk in chunks]
    assert sizes == [chunk_size] * (len(frame) // chunk_size) + (
        [len(frame) % chunk_size] if len(frame) % chunk_size else []
    )
    pd.testing.assert_frame_equal(pd.concat([_decoded(c) for c in chunks]), frame)


@pytest.mark.parametrize("build", BUILDERS)
def test_each_pass_starts_afresh(build: Builder, tmp_path: Path, stack: ExitStack) -> None:
    source = build(tmp_path, FRAME, stack)

    first, second = list(source.iter_chunks(4)), list(source.iter_chunks(4))

    assert isinstance(source, Source)
    pd.testing.assert_frame_equal(pd.concat(first), pd.concat(second))


@pytest.mark.parametrize("build", BUILDERS)
def test_zero_rows_yield_one_empty_frame_with_the_columns(
    build: Builder, tmp_path: Path, stack: ExitStack
) -> None:
    chunks = list(build(tmp_path, FRAME.iloc[0:0], stack).iter_chunks(3))

    assert [len(chunk) for chunk in chunks] == [0]
    assert list(chunks[0].columns) == list(FRAME.columns)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        pytest.param(csv_source, "data.csv", id="csv"),
        pytest.param(parquet_source, "data.parquet", id="parquet"),
        pytest.param(csv_folder_source, "folder", id="folder"),
    ],
)
def test_a_file_source_is_named_by_its_file(
    build: Builder, name: str, tmp_path: Path, stack: ExitStack
) -> None:
    source = build(tmp_path, FRAME, stack)

    assert source.name == name
    assert source.describe() == str(tmp_path / name)


def test_an_empty_csv_file_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")

    assert list(CsvSource(tmp_path / "empty.csv").iter_chunks()) == []


def test_dataframe_chunks_are_copies() -> None:
    df = FRAME.copy()
    chunk = next(DataFrameSource(df).iter_chunks(3))

    chunk.loc[0, "score"] = 99.0

    assert df.loc[0, "score"] == 0.0


@st.composite
def small_frames(draw: st.DrawFn) -> pd.DataFrame:
    """Frames of 1-40 rows with an int, a float and a text column that CSV keeps intact."""
    rows = draw(st.integers(1, 40))

    def column(values: st.SearchStrategy[object]) -> list[object]:
        return draw(st.lists(values, min_size=rows, max_size=rows))

    return pd.DataFrame(
        {
            "i": column(st.integers(-(2**53), 2**53)),
            "f": column(st.floats(-1e12, 1e12, allow_nan=False)),
            "s": ["w_" + str(word) for word in column(st.text("abcxyz ", max_size=6))],
        }
    )


def csv_file(tmp_path: Path, df: pd.DataFrame) -> Source:
    df.to_csv(tmp_path / "p.csv", index=False)
    return CsvSource(tmp_path / "p.csv", read_options={"float_precision": "round_trip"})


def parquet_file(tmp_path: Path, df: pd.DataFrame) -> Source:
    df.to_parquet(tmp_path / "p.parquet", index=False)
    return ParquetSource(tmp_path / "p.parquet")


def in_memory(tmp_path: Path, df: pd.DataFrame) -> Source:
    return DataFrameSource(df)


PROPERTY_SOURCES = [
    pytest.param(csv_file, id="csv"),
    pytest.param(parquet_file, id="parquet"),
    pytest.param(in_memory, id="dataframe"),
]


@pytest.mark.parametrize("build", PROPERTY_SOURCES)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(df=small_frames(), chunk_size=st.integers(1, 50))
def test_property_chunks_rebuild_any_frame(
    build: Callable[[Path, pd.DataFrame], Source],
    df: pd.DataFrame,
    chunk_size: int,
    tmp_path: Path,
) -> None:
    chunks = list(build(tmp_path, df).iter_chunks(chunk_size))

    assert len(chunks) == math.ceil(len(df) / chunk_size)
    assert all(len(chunk) <= chunk_size for chunk in chunks)
    pd.testing.assert_frame_equal(pd.concat([_decoded(chunk) for chunk in chunks]), df)


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize(
    "connectable",
    [
        pytest.param(lambda engine: POSTGRES_URL, id="url"),
        pytest.param(lambda engine: engine, id="engine"),
    ],
)
def test_postgres_chunks_concatenate_to_the_table(
    pg_table: tuple[sa.Engine, str],
    connectable: Callable[[sa.Engine], object],
    chunk_size: int,
) -> None:
    engine, table = pg_table
    source = SqlSource(connectable(engine), f'SELECT * FROM "{table}" ORDER BY id')  # type: ignore[arg-type]

    chunks = list(source.iter_chunks(chunk_size))

    assert source.name == f"sql:{table}"
    assert max(len(chunk) for chunk in chunks) <= chunk_size
    pd.testing.assert_frame_equal(pd.concat(chunks), FRAME)


@pytest.mark.postgres
def test_postgres_binds_a_hostile_value(pg_table: tuple[sa.Engine, str]) -> None:
    engine, table = pg_table
    source = SqlSource(
        engine, f'SELECT * FROM "{table}" WHERE label = :label', {"label": INJECTION}
    )

    chunks = list(source.iter_chunks())

    assert [len(chunk) for chunk in chunks] == [0]
    with engine.connect() as connection:
        assert connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar() == 10


@pytest.mark.postgres
def test_postgres_connection_survives_an_abandoned_pass(pg_table: tuple[sa.Engine, str]) -> None:
    engine, table = pg_table
    with engine.connect() as connection:
        chunks = SqlSource(connection, f'SELECT * FROM "{table}" ORDER BY id').iter_chunks(2)
        first = next(chunks)
        chunks.close()

        count = connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar()

    assert list(first["id"]) == [0, 1]
    assert count == 10


# --- SQL: parameters, ownership, errors ------------------------------------------------------


def test_a_hostile_value_is_bound_not_spliced(tmp_path: Path) -> None:
    url = write_sqlite(tmp_path, FRAME)
    source = SqlSource(url, "SELECT * FROM data WHERE label = :label", {"label": INJECTION})

    chunks = list(source.iter_chunks())

    assert [len(chunk) for chunk in chunks] == [0]
    assert len(pd.concat(SqlSource(url, "SELECT * FROM data").iter_chunks())) == 10


@pytest.mark.parametrize(
    ("query", "params", "named"),
    [
        pytest.param(
            "SELECT * FROM data WHERE id >= :start AND id < :stop",
            {"start": 1},
            ":stop",
            id="missing",
        ),
        pytest.param(
            "SELECT * FROM data WHERE id >= :start", {"start": 1, "stpo": 2}, "'stpo'", id="extra"
        ),
        pytest.param("SELECT * FROM data", {"start": 1}, "'start'", id="extra-none-expected"),
    ],
)
def test_parameters_must_match_placeholders_before_connecting(
    query: str, params: dict[str, object], named: str
) -> None:
    # The URL points at a closed port: reaching it would raise DatabaseUnreachableError.
    with pytest.raises(QueryParameterError, match="the query expects") as excinfo:
        SqlSource(CLOSED_PORT_URL, query, params)

    assert named in str(excinfo.value)


def test_a_postgres_cast_is_not_a_placeholder() -> None:
    source = SqlSource(CLOSED_PORT_URL, "SELECT id::text FROM data WHERE id = :id", {"id": 1})

    assert source.name == "sql:data"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(CLOSED_PORT_URL, id="postgres-closed-port"),
        pytest.param(
            f"sqlite:///{Path('/nonexistent-folder-4b1f/data.db')}", id="sqlite-no-folder"
        ),
    ],
)
def test_an_unreachable_database_is_named_without_its_password(url: str) -> None:
    with pytest.raises(DatabaseUnreachableError) as excinfo:
        list(SqlSource(url, "SELECT 1").iter_chunks())

    assert "s3cr3t-pw" not in str(excinfo.value)
    assert mask_url(url) in str(excinfo.value)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("SELECT * FROM missing_table", "no such table: missing_table", id="no-table"),
        pytest.param("SELECT id FRM data", "syntax error", id="syntax"),
    ],
)
def test_a_bad_query_is_a_source_error_with_the_database_message(
    tmp_path: Path, query: str, message: str
) -> None:
    url = write_sqlite(tmp_path, FRAME)

    with pytest.raises(SourceError, match=message) as excinfo:
        list(SqlSource(url, query).iter_chunks())

    assert not isinstance(excinfo.value, DatabaseUnreachableError)


@pytest.mark.parametrize(
    "stop_after",
    [pytest.param(1000, id="full-pass"), pytest.param(1, id="abandoned-pass")],
)
def test_a_connection_passed_in_stays_open_and_unchanged(
    tmp_path: Path, stack: ExitStack, stop_after: int
) -> None:
    engine = sa.create_engine(write_sqlite(tmp_path, FRAME))
    stack.callback(engine.dispose)
    connection = stack.enter_context(engine.connect())
    chunks = SqlSource(connection, "SELECT * FROM data").iter_chunks(3)

    consumed = [chunk for _, chunk in zip(range(stop_after), chunks, strict=False)]
    chunks.close()

    assert consumed
    assert not connection.closed
    assert "stream_results" not in connection.get_execution_options()
    assert connection.execute(sa.text("SELECT count(*) FROM data")).scalar() == 10


def test_an_engine_passed_in_stays_usable(tmp_path: Path, stack: ExitStack) -> None:
    engine = sa.create_engine(write_sqlite(tmp_path, FRAME))
    stack.callback(engine.dispose)

    rows = len(pd.concat(SqlSource(engine, "SELECT * FROM data").iter_chunks(4)))

    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM data")).scalar() == rows


@pytest.mark.parametrize(
    ("query", "params", "name"),
    [
        pytest.param(
            "SELECT * FROM predictions WHERE day = :day",
            {"day": "2024-01-01"},
            "sql:predictions",
            id="from",
        ),
        pytest.param(
            'select p.x from "analytics"."events" p join users u on p.u = u.id',
            {},
            "sql:analytics.events",
            id="quoted-schema",
        ),
        pytest.param("SELECT 1 AS one", {}, "sql:query", id="no-table"),
    ],
)
def test_sql_name_is_the_first_table(query: str, params: dict[str, object], name: str) -> None:
    assert SqlSource("sqlite://", query, params).name == name


def test_sql_describe_masks_the_password_and_shows_the_query() -> None:
    query = "SELECT * FROM predictions WHERE day = :day"
    source = SqlSource(CLOSED_PORT_URL, query, {"day": "2024-01-01"}, name="daily")

    described = source.describe()

    assert source.name == "daily"
    assert "s3cr3t-pw" not in described
    assert "monitor:***@127.0.0.1:1/test" in described
    assert query in described
    assert "day='2024-01-01'" in described


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param(
            "postgresql+psycopg://bob:s3cr3t@db:5432/prod",
            "postgresql+psycopg://bob:***@db:5432/prod",
            id="sqlalchemy",
        ),
        pytest.param("sqlite:///data.db", "sqlite:///data.db", id="no-password"),
        pytest.param(
            "failed to reach https://bob:p%40ss@host/x today",
            "failed to reach https://bob:***@host/x today",
            id="url-inside-text",
        ),
        pytest.param(
            "mssql+pyodbc://host/db?driver=x&PWD=hunter2",
            "mssql+pyodbc://host/db?PWD=***&driver=x",
            id="password-in-query-string",
        ),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --- open_source and parse_params ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        pytest.param("data.csv", CsvSource, id="csv"),
        pytest.param("data.CSV.gz", CsvSource, id="csv-gz"),
        pytest.param("data.tsv", CsvSource, id="tsv"),
        pytest.param("data.parquet", ParquetSource, id="parquet"),
        pytest.param(Path("data.pq"), ParquetSource, id="pq-path"),
        pytest.param(FRAME, DataFrameSource, id="dataframe"),
    ],
)
def test_open_source_picks_the_reader(spec: object, kind: type) -> None:
    assert isinstance(open_source(spec), kind)


def test_open_source_reads_a_tsv_by_tabs(tmp_path: Path) -> None:
    FRAME.to_csv(tmp_path / "data.tsv", sep="\t", index=False)

    chunks = open_source(str(tmp_path / "data.tsv")).iter_chunks()

    pd.testing.assert_frame_equal(pd.concat(chunks), FRAME)


def test_open_source_opens_a_folder(tmp_path: Path) -> None:
    assert isinstance(open_source(write_folder(tmp_path, FRAME, ".csv")), FolderSource)


def test_open_source_returns_a_source_as_is() -> None:
    source = DataFrameSource(FRAME)

    assert open_source(source) is source


def test_open_source_turns_a_url_into_a_query(tmp_path: Path) -> None:
    url = write_sqlite(tmp_path, FRAME)

    source = open_source(url, query="SELECT * FROM data WHERE id < :n", params={"n": 4})

    assert isinstance(source, SqlSource)
    assert len(pd.concat(source.iter_chunks())) == 4


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        pytest.param("sqlite:///data.db", {}, "needs a query \\(--query\\)", id="url-no-query"),
        pytest.param("data.csv", {"query": "SELECT 1"}, "query cannot be used", id="file-query"),
        pytest.param(
            "data.parquet",
            {"read_options": {"sep": ";"}},
            "read_options cannot be used",
            id="parquet-read-options",
        ),
        pytest.param(FRAME, {"query": "SELECT 1"}, "query cannot be used", id="frame-query"),
        pytest.param("data.xlsx", {}, "no such file or folder; use .*\\.parquet", id="xlsx"),
        pytest.param(42, {}, "cannot read data from a int", id="int"),
    ],
)
def test_open_source_rejects(spec: object, options: dict[str, object], message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(spec, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "params"),
    [
        pytest.param(["n=5", "m=-3"], {"n": 5, "m": -3}, id="int"),
        pytest.param(["f=0.25", "e=1e-3"], {"f": 0.25, "e": 0.001}, id="float"),
        pytest.param(["day=2024-01-01"], {"day": "2024-01-01"}, id="date-stays-text"),
        pytest.param(["code=007"], {"code": "007"}, id="leading-zero-stays-text"),
        pytest.param(["code='42'", 'x="1.5"'], {"code": "42", "x": "1.5"}, id="quoted-stays-text"),
        pytest.param(["expr=a=b"], {"expr": "a=b"}, id="split-at-first-equals"),
        pytest.param(["empty="], {"empty": ""}, id="empty-value"),
        pytest.param(["word=nan"], {"word": "nan"}, id="nan-stays-text"),
        pytest.param(["", "day=3", " "], {"day": 3}, id="blank-items-skipped"),
    ],
)
def test_parse_params(items: list[str], params: dict[str, object]) -> None:
    assert parse_params(items) == params


@pytest.mark.parametrize(
    ("items", "named"),
    [
        pytest.param(["novalue"], "'novalue'", id="no-equals"),
        pytest.param(["=5"], "'=5'", id="empty-key"),
        pytest.param(["my key=1"], "'my key=1'", id="space-in-key"),
        pytest.param(["a=1", "a=2"], "'a' is given twice", id="twice"),
    ],
)
def test_parse_params_rejects(items: list[str], named: str) -> None:
    with pytest.raises(QueryParameterError) as excinfo:
        parse_params(items)

    assert named in str(excinfo.value)


# --- file errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(CsvSource("missing-4b1f.csv"), id="csv"),
        pytest.param(ParquetSource("missing-4b1f.parquet"), id="parquet"),
        pytest.param(FolderSource("missing-4b1f"), id="folder"),
    ],
)
def test_a_missing_path_is_named(source: Source) -> None:
    with pytest.raises(SourceError, match="not found: missing-4b1f"):
        list(source.iter_chunks())


@pytest.mark.parametrize(
    "chunk_size", [pytest.param(1, id="chunk-1"), pytest.param(1000, id="chunk-1000")]
)
def test_a_malformed_csv_row_names_file_and_line(tmp_path: Path, chunk_size: int) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4\n5,6\n7,8,9\n10,11\n")

    with pytest.raises(SourceError, match=r"bad\.csv: malformed row at line 5"):
        list(CsvSource(tmp_path / "bad.csv").iter_chunks(chunk_size))


@pytest.mark.parametrize(
    ("text", "options", "named", "copies"),
    [
        pytest.param("a,b,a\n1,2,3\n", None, "'a'", "'a.1'", id="twice"),
        pytest.param("a,a,b,a\n1,2,3,4\n", None, "'a'", "'a.1', 'a.2'", id="three-times"),
        pytest.param(
            "# made by hand\nx;y;x\n1;2;3\n",
            {"sep": ";", "comment": "#"},
            "'x'",
            "'x.1'",
            id="read-options",
        ),
    ],
)
def test_a_csv_header_naming_a_column_twice_is_refused(
    tmp_path: Path, text: str, options: dict[str, str] | None, named: str, copies: str
) -> None:
    (tmp_path / "dup.csv").write_text(text)

    with pytest.raises(SourceError, match=rf"dup\.csv: the header names column\(s\) {named}"):
        list(CsvSource(tmp_path / "dup.csv", read_options=options).iter_chunks())
    with pytest.raises(SourceError, match=f"pandas would read the copies as {copies}"):
        list(CsvSource(tmp_path / "dup.csv", read_options=options).iter_chunks())


def test_a_csv_column_named_like_a_copy_is_kept(tmp_path: Path) -> None:
    (tmp_path / "ok.csv").write_text("a,a.1\n1,2\n")

    assert list(next(CsvSource(tmp_path / "ok.csv").iter_chunks()).columns) == ["a", "a.1"]


def test_a_parquet_schema_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([[1, 2], [3, 4]], names=["a", "a"]), tmp_path / "dup.parquet")

    with pytest.raises(SourceError, match=r"dup\.parquet: the schema names column\(s\) 'a'"):
        list(ParquetSource(tmp_path / "dup.parquet").iter_chunks())


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"id,score\n1,2\n", id="csv-inside"),
    ],
)
def test_a_damaged_parquet_file_is_named(tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    path = tmp_path / "damaged.parquet"
    FRAME.to_parquet(path)
    path.write_bytes(damage(path.read_bytes()))

    with pytest.raises(SourceError, match="damaged.parquet"):
        list(ParquetSource(path).iter_chunks())


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({}, "holds no data files", id="empty"),
        pytest.param({".hidden.csv": "a\n1\n"}, "holds no data files", id="only-hidden"),
        pytest.param({"a.csv": "a\n1\n", "b.parquet": ""}, "mixes CSV", id="mixed"),
        pytest.param(
            {"a.csv": "a\n1\n", "notes.txt": ""},
            "neither CSV nor Parquet: notes.txt",
            id="stray-file",
        ),
        pytest.param(
            {"a.csv": "a,b\n1,2\n", "b.csv": "a,b\n1,2\n3,4,5\n"},
            r"b\.csv: malformed row at line 3",
            id="bad-second-file",
        ),
        pytest.param(
            {"a.csv": "a,b\n1,2\n", "b.csv": "a,c\n1,2\n"},
            r"b\.csv: the columns differ.*missing \['b'\], unexpected \['c'\]",
            id="other-columns",
        ),
    ],
)
def test_a_bad_folder_is_named(tmp_path: Path, files: dict[str, str], message: str) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text(content)

    with pytest.raises(SourceError, match=message):
        list(FolderSource(folder).iter_chunks())


def test_a_folder_aligns_reordered_columns(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.csv").write_text("x,y\n1,2\n")
    (folder / "b.csv").write_text("y,x\n4,3\n")

    combined = pd.concat(FolderSource(folder).iter_chunks())

    pd.testing.assert_frame_equal(combined, pd.DataFrame({"x": [1, 3], "y": [2, 4]}))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: CsvSource("x.csv").iter_chunks(0), id="chunk-size-0"),
        pytest.param(lambda: DataFrameSource(FRAME).iter_chunks(-1), id="chunk-size-negative"),
        pytest.param(lambda: CsvSource("x.csv", read_options={"chunksize": 5}), id="read-options"),
    ],
)
def test_a_bad_setting_is_a_config_error(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError, match="must"):
        make()


def test_sources_that_know_their_rows_announce_them(tmp_path):
    """A DataFrame's length and a Parquet footer's count, before any pass; a file that
    cannot be read announces nothing (its pass names the fault), nor does a CSV file."""
    from monitoring.collect.sources.base import expected_rows

    frame = pd.DataFrame({"x": range(7), "c": list("abcdefg")})
    frame.to_parquet(tmp_path / "seven.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    frame.to_csv(tmp_path / "seven.csv", index=False)
    assert expected_rows(DataFrameSource(frame)) == 7
    assert expected_rows(ParquetSource(tmp_path / "seven.parquet")) == 7
    assert expected_rows(ParquetSource(tmp_path / "broken.parquet")) is None
    assert expected_rows(ParquetSource(tmp_path / "missing.parquet")) is None
    assert expected_rows(CsvSource(tmp_path / "seven.csv")) is None
