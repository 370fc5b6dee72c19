"""Make one pass's connection read-only at the database, and leave it as it was found.

The second guard of a SQL source (the first, `sql_statement`, refuses a query that is
not one read statement): whatever the query does, the database refuses to write.

- SQLite: ``PRAGMA query_only = ON`` for the pass; the previous value is put back after.
- PostgreSQL: the pass runs in a read-only transaction. On a connection outside a
  transaction (every connection a source opens, and most that users lend), the pass
  begins one, issues ``SET TRANSACTION READ ONLY`` and rolls it back at the end. On a
  lent connection already inside a transaction, the pass opens a savepoint, issues the
  same statement in it and rolls the savepoint back at the end: PostgreSQL undoes a
  setting made in a rolled-back savepoint, so the user's transaction is read-write and
  intact afterwards. A connection in AUTOCOMMIT mode has no transaction to mark, and
  is refused (it could not stream rows through a server-side cursor either).
- Other dialects: no database-level guard; only the statement check applies.

After setting it, the database is asked whether the connection is read-only
(``PRAGMA query_only``, ``SHOW transaction_read_only``); when it says no, the pass is
refused rather than run writable. Nothing is left changed on a connection that the source
did not open: settings are put back, and a transaction the pass began is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monitoring.errors import SourceError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

__all__ = ["GUARDED_DIALECTS", "read_only"]

GUARDED_DIALECTS = ("sqlite", "postgresql")
"""Dialects whose connections are made read-only by the database itself."""


@contextmanager
def read_only(connection: Connection, where: str) -> Iterator[None]:
    """Within the block, ``connection`` cannot write (see the module docstring).
    ``where`` names the database in errors (its URL with the password masked)."""
    from sqlalchemy.exc import SQLAlchemyError

    dialect = connection.dialect.name
    if dialect not in GUARDED_DIALECTS:
        yield
        return
    began = None if connection.in_transaction() else connection.begin()
    undo: list[Callable[[], object]] = []
    if began is not None:
        undo.append(lambda: began.rollback() if began.is_active else None)
    try:
        try:
            setting = (
                _sqlite(connection, undo)
                if dialect == "sqlite"
                else _postgresql(connection, undo, nested=began is None)
            )
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot make the connection to {where} read-only: {exc}") from exc
        if setting is not None:
            raise SourceError(
                f"cannot make the connection to {where} read-only: the database did not take "
                f"{setting}; the query is not run on a connection that could write"
            )
        yield
    except BaseException:
        _restore(undo, where, quiet=True)  # the error in flight says more
        raise
    _restore(undo, where, quiet=False)


def _restore(undo: list[Callable[[], object]], where: str, *, quiet: bool) -> None:
    """Undo the pass's settings, last first; a failure is raised unless ``quiet``."""
    from sqlalchemy.exc import SQLAlchemyError

    failure: SQLAlchemyError | None = None
    for step in reversed(undo):
        try:
            step()
        except SQLAlchemyError as exc:
            failure = failure or exc
    if failure is not None and not quiet:
        raise SourceError(
            f"cannot restore the connection to {where} after reading: {failure}"
        ) from failure


def _sqlite(connection: Connection, undo: list[Callable[[], object]]) -> str | None:
    """Set ``query_only``; the setting the database did not take, or None."""
    previous = int(connection.exec_driver_sql("PRAGMA query_only").scalar() or 0)
    connection.exec_driver_sql("PRAGMA query_only = ON")
    undo.append(lambda: connection.exec_driver_sql(f"PRAGMA query_only = {previous}"))
    if connection.exec_driver_sql("PRAGMA query_only").scalar() != 1:
        return "PRAGMA query_only = ON"
    return None


def _postgresql(
    connection: Connection, undo: list[Callable[[], object]], *, nested: bool
) -> str | None:
    """Mark the transaction (or a savepoint in it) read-only; the setting the database
    did not take, or None."""
    if nested:
        savepoint = connection.begin_nested()
        undo.append(lambda: savepoint.rollback() if savepoint.is_active else None)
    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    if connection.exec_driver_sql("SHOW transaction_read_only").scalar() != "on":
        # AUTOCOMMIT: there is no transaction to mark.
        return "SET TRANSACTION READ ONLY (is the connection in AUTOCOMMIT mode?)"
    return None
