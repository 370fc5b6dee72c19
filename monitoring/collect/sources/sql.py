"""A SQL query as a source: SQLAlchemy 2.x, bound ``:name`` parameters, streamed in chunks.

Values are always bound by the driver (``sqlalchemy.text`` with parameters), never
formatted into the SQL. The query's placeholders and the given parameters are checked
against each other before any connection is made. Rows are fetched ``chunk_size`` at a
time from a server-side cursor where the dialect has one (``stream_results``), so memory
holds one chunk whatever the size of the result.

Read-only: a query that is not one read statement (SELECT, WITH ... SELECT, VALUES) is
refused when the source is built, before any connection (`sql_statement`), and each pass
runs on a connection that the database itself keeps from writing (`read_only`: SQLite
``PRAGMA query_only``, a PostgreSQL read-only transaction), undone after the pass.

Secrets: the URL is only ever shown masked (`monitoring.core.masking`), in
``describe()`` (logged to MLflow) and in every error, whose driver text is scrubbed of the
password and secret query values too.

Ownership: a URL gets its own engine, disposed at the end of each pass; an Engine passed
in lends a connection that the pass closes (the engine stays untouched); a Connection
passed in is used as is and never closed, and its execution options are left alone (the
streaming options go on the statement, because ``Connection.execution_options()`` changes
a connection in place in SQLAlchemy 2); its read-only setting lasts for the pass only (a
savepoint or a transaction the pass rolls back, ``PRAGMA query_only`` put back).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from monitoring.collect.sources.base import DEFAULT_CHUNK_SIZE, check_chunk_size
from monitoring.collect.sources.read_only import read_only
from monitoring.collect.sources.sql_statement import check_read_statement
from monitoring.core.masking import mask_url, scrub, url_secrets
from monitoring.errors import DatabaseUnreachableError, QueryParameterError, SourceError

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import URL, Connection, Engine

__all__ = ["SqlSource", "mask_url", "parse_params", "query_placeholders"]

_FIRST_TABLE = re.compile(
    r"\b(?:from|join)\s+((?:\"[^\"]+\"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:\"[^\"]+\"|[A-Za-z_][\w$]*))*)",
    re.IGNORECASE,
)
_KEY = re.compile(r"[A-Za-z_]\w*")
_INT = re.compile(r"[+-]?(?:0|[1-9]\d*)")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
def query_placeholders(query: str) -> tuple[str, ...]:
    """The ``:name`` placeholders of ``query``, in order of first appearance."""
    from sqlalchemy import text

    return tuple(text(query).compile().params)


def parse_params(items: Sequence[str]) -> dict[str, object]:
    """Parse CLI ``--param name=value`` items into query parameters.

    The item is split at the first ``=``. The value becomes an int (``42``, ``-3``) or a
    float (``0.5``, ``1e-3``) when it is written as one, else stays a string. Numbers with
    leading zeros (``007``) stay strings, as they are usually codes; quoting the value
    (``code='42'`` or ``code="42"``) keeps any value a string. A blank item is skipped.
    """
    params: dict[str, object] = {}
    for item in items:
        if not item.strip():
            continue  # an unset MLproject parameter (`-P param=` gives `--param ''`)
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise QueryParameterError(
                f"query parameter {item!r} must be written name=value, with name a "
                "letter or underscore followed by letters, digits or underscores"
            )
        if key in params:
            raise QueryParameterError(f"query parameter {key!r} is given twice")
        params[key] = _convert(raw)
    return params


def _convert(raw: str) -> object:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw) and not re.match(r"[+-]?0\d", raw):
        return float(raw)
    return raw


def _check_params(query: str, params: Mapping[str, object]) -> None:
    """Raise QueryParameterError unless placeholders and parameters match one to one."""
    expected = query_placeholders(query)
    missing = [name for name in expected if name not in params]
    extra = sorted(set(params) - set(expected))
    if not missing and not extra:
        return
    problems = []
    if missing:
        problems.append("no value for " + ", ".join(f":{name}" for name in missing))
    if extra:
        problems.append("no placeholder for " + ", ".join(repr(name) for name in extra))
    wanted = ", ".join(f":{name}" for name in expected) or "no parameters"
    raise QueryParameterError(f"{'; '.join(problems)} (the query expects {wanted})")


def _table_name(query: str) -> str:
    match = _FIRST_TABLE.search(query)
    if match is None:
        return "query"
    return re.sub(r"\s+", "", match.group(1)).replace('"', "")


class SqlSource:
    """The rows of one SQL query, with bound parameters, streamed in chunks.

    ``url_or_connectable`` is a SQLAlchemy URL (``sqlite:///x.db``,
    ``postgresql+psycopg://user:pw@host/db``), an ``Engine`` or a ``Connection``.
    """

    def __init__(
        self,
        url_or_connectable: str | URL | Engine | Connection,
        query: str,
        params: Mapping[str, object] | None = None,
        *,
        name: str | None = None,
    ) -> None:
        from sqlalchemy.engine import URL, Connection, Engine, make_url
        from sqlalchemy.exc import ArgumentError

        if isinstance(url_or_connectable, str | URL):
            try:
                self._url = make_url(url_or_connectable)
            except ArgumentError:
                raise SourceError(
                    f"not a database URL: {mask_url(str(url_or_connectable))}"
                ) from None
            self._bind: Engine | Connection | None = None
        elif isinstance(url_or_connectable, Engine | Connection):
            self._url = url_or_connectable.engine.url
            self._bind = url_or_connectable
        else:
            raise SourceError(
                "SqlSource needs a URL, an Engine or a Connection, "
                f"got {type(url_or_connectable).__name__}"
            )
        if not isinstance(query, str) or not query.strip():
            raise SourceError("the SQL query is empty")
        self._query = query.strip()
        self._params = dict(params or {})
        check_read_statement(self._query, self._url.get_backend_name())
        _check_params(self._query, self._params)
        self._name = name or f"sql:{_table_name(self._query)}"
        plain_url = self._url.render_as_string(hide_password=False)
        self._masked_url = mask_url(plain_url)
        self._secrets = url_secrets(plain_url)
        # A pass opens its own connection unless one was lent: only then may it run in
        # another thread than the caller's (a Connection belongs to its thread).
        self.read_ahead = not isinstance(self._bind, Connection)
        # A lent Engine or Connection belongs to this process: a forked child must not use
        # it (`track/backfill_ahead.py`); a URL's engine is made by the pass that uses it.
        self.shares_connection = self._bind is not None

    @property
    def name(self) -> str:
        """The given name, else ``sql:`` and the first table the query reads."""
        return self._name

    @property
    def query(self) -> str:
        """The query text."""
        return self._query

    def describe(self) -> str:
        """The URL with its password masked, the query and its parameters."""
        lines = [self._masked_url, self._query]
        if self._params:
            lines.append("params: " + ", ".join(f"{k}={v!r}" for k, v in self._params.items()))
        return "\n".join(lines)

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[pd.DataFrame]:
        """Run the query and yield its rows, ``chunk_size`` at a time."""
        return self._chunks(check_chunk_size(chunk_size))

    def _chunks(self, chunk_size: int) -> Iterator[pd.DataFrame]:
        import pandas as pd
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        statement = text(self._query).execution_options(
            stream_results=True, max_row_buffer=chunk_size
        )
        with ExitStack() as stack:
            connection = self._connect(stack)
            stack.enter_context(read_only(connection, self._masked_url))
            try:
                result = connection.execute(statement, self._params)
            except SQLAlchemyError as exc:
                raise self._query_error(exc) from exc
            stack.callback(result.close)  # before the read-only scope ends
            if not result.returns_rows:
                raise SourceError(
                    f"the query on {self._masked_url} returned no result set; "
                    "a source reads the rows of a SELECT"
                )
            columns = list(result.keys())
            rows = 0
            while True:
                try:
                    batch = result.fetchmany(chunk_size)
                except SQLAlchemyError as exc:
                    raise self._query_error(exc) from exc
                if not batch:
                    break
                chunk = pd.DataFrame.from_records(batch, columns=columns, coerce_float=True)
                chunk.index = pd.RangeIndex(rows, rows + len(chunk))
                rows += len(chunk)
                yield chunk
            if rows == 0:
                yield pd.DataFrame(columns=columns)

    def _connect(self, stack: ExitStack) -> Connection:
        """The connection of this pass; what it opens is registered on ``stack``."""
        from sqlalchemy import create_engine
        from sqlalchemy.engine import Connection
        from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

        if isinstance(self._bind, Connection):
            return self._bind
        engine = self._bind
        if engine is None:
            try:
                engine = create_engine(self._url)
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise SourceError(
                    f"cannot use database URL {self._masked_url}: {self._scrub(exc)}"
                ) from exc
            stack.callback(engine.dispose)
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise DatabaseUnreachableError(
                f"cannot connect to {self._masked_url}: {self._scrub(exc.orig or exc)}"
            ) from exc
        stack.enter_context(connection)
        return connection

    def _query_error(self, exc: Exception) -> SourceError:
        orig = getattr(exc, "orig", None) or exc
        return SourceError(f"query failed on {self._masked_url}: {self._scrub(orig)}")

    def _scrub(self, error: BaseException | Any) -> str:
        """The error's message, with any password or secret of the URL masked."""
        return scrub(str(error).strip(), self._secrets)
