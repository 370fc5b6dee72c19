"""SQL sources never write: a query that is not one read statement is refused before it
runs, through the Python API and the CLI, on SQLite and on the real PostgreSQL; and the
database keeps the connection read-only for what no text check can see (a SELECT that
calls a writing function), without leaving a lent connection changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from monitoring.cli.main import main
from monitoring.collect.sources import SqlSource
from monitoring.collect.sources.read_only import read_only
from monitoring.collect.sources.sql_statement import check_read_statement
from monitoring.errors import SourceError
from monitoring.evaluation.batch import evaluate
from monitoring.evaluation.fit import fit_reference

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROWS = pd.DataFrame({"x": [float(i) for i in range(30)], "label": ["a", "b", "c"] * 10})

# (query with {t} for the table, what the refusal says); each would change the database.
WRITES = [
    pytest.param("DROP TABLE {t}", "it starts with DROP", id="drop"),
    pytest.param("CREATE TABLE {t}_intruder (a INTEGER)", "it starts with CREATE", id="create"),
    pytest.param("DELETE FROM {t}", "it starts with DELETE", id="delete"),
    pytest.param("DELETE FROM {t} RETURNING *", "it starts with DELETE", id="delete-returning"),
    pytest.param("UPDATE {t} SET x = 0", "it starts with UPDATE", id="update"),
    pytest.param("SELECT * FROM {t}; DROP TABLE {t}", "it holds 2 statements", id="multi"),
]


def _message_names_the_query(message: str, query: str) -> None:
    assert "the query is refused before it runs" in message
    assert " ".join(query.split()) in message


# --- the statement check, without a database -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "dialect"),
    [
        pytest.param("SELECT * FROM t WHERE a = :a", "sqlite", id="select"),
        pytest.param("  select 1;  -- trailing comment", "sqlite", id="trailing-semicolon"),
        pytest.param("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "sqlite", id="with"),
        pytest.param("VALUES (1), (2)", "sqlite", id="values"),
        pytest.param("(SELECT 1) UNION (SELECT 2)", "postgresql", id="parenthesised"),
        pytest.param("SELECT 'x; DROP TABLE t' AS s", "sqlite", id="semicolon-in-string"),
        pytest.param("SELECT 'it''s; DELETE' AS s", None, id="doubled-quote"),
        pytest.param('SELECT "update", t.delete FROM t', None, id="quoted-and-qualified-names"),
        pytest.param("/* DROP TABLE t; */ SELECT 1", None, id="write-in-comment"),
        pytest.param("SELECT id::text FROM t", "postgresql", id="cast"),
        pytest.param("SELECT $$a; DROP TABLE t$$", "postgresql", id="dollar-string"),
        pytest.param("SELECT 1 /* a /* nested */ ; */", "postgresql", id="nested-comment"),
    ],
)
def test_one_read_statement_is_accepted(query: str, dialect: str | None) -> None:
    check_read_statement(query, dialect)


@pytest.mark.parametrize(
    ("query", "dialect", "why"),
    [
        pytest.param("SELECT 1; DROP TABLE t", "sqlite", "2 statements", id="multi"),
        pytest.param("SELECT 1 /* ; */ ; DROP TABLE t", "sqlite", "2 statements", id="comment"),
        pytest.param("SELECT 'a'';' ; DROP TABLE t", None, "2 statements", id="doubled-quote"),
        pytest.param(
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "postgresql",
            "uses DELETE",
            id="writing-with",
        ),
        pytest.param("SELECT * INTO copy FROM t", "postgresql", "uses INTO", id="select-into"),
        pytest.param("SELECT * FROM t FOR UPDATE", "postgresql", "uses UPDATE", id="for-update"),
        pytest.param("EXPLAIN ANALYZE DELETE FROM t", None, "starts with EXPLAIN", id="explain"),
        pytest.param("PRAGMA query_only = 0", "sqlite", "starts with PRAGMA", id="pragma"),
        pytest.param("ATTACH 'x.db' AS x", "sqlite", "starts with ATTACH", id="attach"),
        pytest.param("SELECT 'open", None, "unterminated", id="unterminated-string"),
        pytest.param("SELECT 1 /* open", None, "unterminated", id="unterminated-comment"),
        pytest.param(" ; ", None, "no statement", id="empty"),
        # PostgreSQL reads one statement here, SQLite three: both readings must pass.
        pytest.param("SELECT 1 /* /* */ ; DROP TABLE t; */", None, "statements", id="nesting"),
        pytest.param("SELECT $$; DROP TABLE t; $$", "sqlite", "statements", id="dollar-sqlite"),
        # One string for SQLite, a string then a DROP for MySQL's backslash escapes.
        pytest.param("SELECT 'a\\''; DROP TABLE t; -- '", "mysql", "2 statements", id="mysql"),
        pytest.param("SELECT 'a\\''; DROP TABLE t; -- '", None, "2 statements", id="any"),
    ],
)
def test_anything_else_is_refused_with_the_query(
    query: str, dialect: str | None, why: str
) -> None:
    with pytest.raises(SourceError, match=why) as excinfo:
        check_read_statement(query, dialect)

    _message_names_the_query(str(excinfo.value), query)


# --- SQLite -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    engine = sa.create_engine(url)
    ROWS.to_sql("victim", engine, index=False)
    engine.dispose()
    return url


def _intact(url: str, table: str) -> None:
    """The table holds ROWS, and no table was added next to it."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            left = pd.read_sql(sa.text(f'SELECT * FROM "{table}" ORDER BY x'), connection)
            tables = sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    pd.testing.assert_frame_equal(left, ROWS)
    assert f"{table}_intruder" not in tables


@pytest.mark.parametrize(("query", "why"), WRITES)
def test_sqlite_writes_are_refused_through_the_python_api(
    sqlite_url: str, query: str, why: str
) -> None:
    query = query.format(t="victim")
    reference = fit_reference(ROWS)

    for attempt in (
        lambda: SqlSource(sqlite_url, query),
        lambda: fit_reference(sqlite_url, query=query),
        lambda: evaluate(sqlite_url, reference, query=query),
    ):
        with pytest.raises(SourceError, match=why) as excinfo:
            attempt()
        _message_names_the_query(str(excinfo.value), query)

    _intact(sqlite_url, "victim")


def _cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _cli_attempts(url: str, query: str, tmp_path: Path) -> dict[str, object]:
    reference = tmp_path / "reference.csv"
    ROWS.to_csv(reference, index=False)
    return {
        "evaluate": _cli("evaluate", url, "--query", query, "--reference", reference),
        "reference fit": _cli("reference", "fit", url, "--query", query),
        "fetch": _cli("fetch", "--db-url", url, "--query", query, "--out", tmp_path / "o.csv"),
    }


@pytest.mark.parametrize(("query", "why"), WRITES)
def test_sqlite_writes_are_refused_through_the_cli(
    tracking_uri: str, sqlite_url: str, tmp_path: Path, query: str, why: str
) -> None:
    query = query.format(t="victim")

    results = _cli_attempts(sqlite_url, query, tmp_path)

    for command, result in results.items():
        assert result.exit_code == 1, (command, result.output)  # type: ignore[attr-defined]
        line = result.stderr.strip().splitlines()[-1]  # type: ignore[attr-defined]
        assert line.startswith("error: the query is refused before it runs"), (command, line)
        assert why in line and " ".join(query.split()) in line, (command, line)
    assert not (tmp_path / "o.csv").exists()
    _intact(sqlite_url, "victim")


def test_sqlite_connection_is_query_only_for_the_pass_and_restored(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            with read_only(connection, "shop.db"), pytest.raises(sa.exc.OperationalError):
                connection.exec_driver_sql("CREATE TABLE victim_intruder (a INTEGER)")
            chunks = list(SqlSource(connection, "SELECT * FROM victim").iter_chunks(7))
            in_transaction = connection.in_transaction()
            query_only = connection.exec_driver_sql("PRAGMA query_only").scalar()
            connection.exec_driver_sql("CREATE TABLE lent_still_writes (a INTEGER)")
            connection.commit()
    finally:
        engine.dispose()

    assert len(pd.concat(chunks)) == len(ROWS)
    assert (query_only, in_transaction) == (0, False)
    _intact(sqlite_url, "victim")


# --- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_victim() -> Iterator[tuple[sa.Engine, str]]:
    """A throw-away table (and sequence) in database `test`, dropped afterwards."""
    engine = sa.create_engine(POSTGRES_URL)
    table = f"victim_{uuid.uuid4().hex[:10]}"
    ROWS.to_sql(table, engine, index=False)
    with engine.begin() as connection:
        connection.exec_driver_sql(f'CREATE SEQUENCE "{table}_seq"')
    yield engine, table
    with engine.begin() as connection:
        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
        connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}_intruder"')
        connection.exec_driver_sql(f'DROP SEQUENCE IF EXISTS "{table}_seq"')
    engine.dispose()


def _quoted(query: str, table: str) -> str:
    return query.replace("{t}_intruder", f'"{table}_intruder"').format(t=f'"{table}"')


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "why"), WRITES)
def test_postgres_writes_are_refused_through_the_python_api(
    pg_victim: tuple[sa.Engine, str], query: str, why: str
) -> None:
    engine, table = pg_victim
    query = _quoted(query, table)
    reference = fit_reference(ROWS)

    for attempt in (
        lambda: SqlSource(POSTGRES_URL, query),
        lambda: SqlSource(engine, query),
        lambda: fit_reference(POSTGRES_URL, query=query),
        lambda: evaluate(POSTGRES_URL, reference, query=query),
    ):
        with pytest.raises(SourceError, match=why) as excinfo:
            attempt()
        _message_names_the_query(str(excinfo.value), query)

    _intact(POSTGRES_URL, table)


@pytest.mark.postgres
@pytest.mark.parametrize(("query", "why"), WRITES)
def test_postgres_writes_are_refused_through_the_cli(
    tracking_uri: str, pg_victim: tuple[sa.Engine, str], tmp_path: Path, query: str, why: str
) -> None:
    _, table = pg_victim
    query = _quoted(query, table)

    results = _cli_attempts(POSTGRES_URL, query, tmp_path)

    for command, result in results.items():
        assert result.exit_code == 1, (command, result.output)  # type: ignore[attr-defined]
        line = result.stderr.strip().splitlines()[-1]  # type: ignore[attr-defined]
        assert line.startswith("error: the query is refused before it runs"), (command, line)
        assert why in line and " ".join(query.split()) in line, (command, line)
    _intact(POSTGRES_URL, table)


@pytest.mark.postgres
@pytest.mark.parametrize("lent", ["url", "engine", "connection", "connection-in-transaction"])
def test_postgres_refuses_a_select_that_writes(
    pg_victim: tuple[sa.Engine, str], lent: str
) -> None:
    engine, table = pg_victim
    query = f"SELECT nextval('\"{table}_seq\"') AS n"  # one read statement that writes

    with engine.connect() as connection:
        if lent == "connection-in-transaction":
            connection.exec_driver_sql(f'INSERT INTO "{table}" VALUES (100.0, \'z\')')
        bind = {"url": POSTGRES_URL, "engine": engine}.get(lent, connection)
        with pytest.raises(SourceError, match="read-only transaction") as excinfo:
            list(SqlSource(bind, query).iter_chunks())  # type: ignore[arg-type]
        # The lent connection is as it was: writable, its own transaction (if any) kept.
        read_write = connection.exec_driver_sql("SHOW transaction_read_only").scalar()
        kept = connection.exec_driver_sql(f'SELECT count(*) FROM "{table}"').scalar()
        connection.rollback()

    assert "nextval" in str(excinfo.value)
    assert read_write == "off"
    assert kept == len(ROWS) + (lent == "connection-in-transaction")
    with engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT last_value FROM \"{table}_seq\"").scalar() == 1
        called = connection.exec_driver_sql(f'SELECT is_called FROM "{table}_seq"').scalar()
    assert called is False  # nextval never ran
    _intact(POSTGRES_URL, table)


@pytest.mark.postgres
def test_postgres_lent_connection_reads_then_writes_as_before(
    pg_victim: tuple[sa.Engine, str],
) -> None:
    engine, table = pg_victim

    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")  # the user's transaction is open
        rows = len(pd.concat(SqlSource(connection, f'SELECT * FROM "{table}"').iter_chunks(4)))
        still_open = connection.in_transaction()
        connection.exec_driver_sql(f'INSERT INTO "{table}" VALUES (100.0, \'z\')')
        connection.rollback()

    assert (rows, still_open) == (len(ROWS), True)
    _intact(POSTGRES_URL, table)


@pytest.mark.postgres
def test_postgres_autocommit_connection_is_refused(pg_victim: tuple[sa.Engine, str]) -> None:
    engine, table = pg_victim

    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        with pytest.raises(SourceError, match="AUTOCOMMIT"):
            list(SqlSource(connection, f'SELECT * FROM "{table}"').iter_chunks())
        default = connection.exec_driver_sql("SHOW default_transaction_read_only").scalar()

    assert default == "off"
