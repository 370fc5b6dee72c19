"""Refuse, before it runs, a query that is not one read statement.

A source reads rows; it never changes a database. `check_read_statement` accepts a query
only when it is exactly one statement that starts with ``SELECT``, ``WITH`` or ``VALUES``
(after any opening parentheses) and nowhere uses a word that writes (`WRITE_WORDS`:
``DELETE`` inside a ``WITH``, ``SELECT ... INTO`` a new table, ``FOR UPDATE`` locks...).
It is the first of two guards: the connection itself is then made read-only by the
database (`monitoring.collect.sources.read_only`), which also stops what no text check
can see, such as a function with side effects.

The query is tokenized the way the database will read it, so that comments, string
literals and quoted identifiers can neither hide a second statement nor trigger a false
refusal (``SELECT 'a; DROP TABLE t'`` is one read). Databases disagree on some lexical
rules; each `Reading` is one set of rules, chosen by the dialect's name, and a dialect
this module does not know is checked under every reading: the query must pass them all.

- SQLite: ``'...'`` strings (``''`` escapes a quote), ``"..."`` and backquoted names,
  ``--`` and ``/* */`` comments that do not nest.
- PostgreSQL: the same, plus ``E'...'`` strings with backslash escapes, ``$tag$...$tag$``
  strings and ``/* */`` comments that nest.
- MySQL/MariaDB: backslash escapes in every string, ``#`` comments.

Unterminated strings, names or comments are refused: what the database would make of
them is not what this module can vouch for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitoring.errors import SourceError

__all__ = ["READ_STARTS", "WRITE_WORDS", "Reading", "check_read_statement", "statements"]

READ_STARTS = ("SELECT", "WITH", "VALUES")
"""The first word of a statement that reads."""

WRITE_WORDS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "INTO", "DROP", "CREATE", "ALTER"}
    | {"TRUNCATE", "GRANT", "REVOKE"}
)
"""Words refused anywhere outside literals and quoted names: in a query that starts like a
read, they write (a data-modifying ``WITH``, ``SELECT ... INTO``, ``FOR UPDATE``). A column
named so must be quoted (``"update"``)."""

SHOWN_CHARS = 200
"""Characters of the query quoted in an error message."""


@dataclass(frozen=True)
class Reading:
    """One database's lexical rules, as far as statements, literals and comments go."""

    name: str
    backslash_strings: bool = False  # '\'' escapes a quote in every string (MySQL)
    escape_strings: bool = False  # E'...' strings with backslash escapes (PostgreSQL)
    dollar_strings: bool = False  # $tag$ ... $tag$ (PostgreSQL)
    nested_comments: bool = False  # /* /* */ */ is one comment (PostgreSQL)
    hash_comments: bool = False  # '#' starts a comment (MySQL)


SQLITE = Reading("sqlite")
POSTGRESQL = Reading("postgresql", escape_strings=True, dollar_strings=True, nested_comments=True)
MYSQL = Reading("mysql", backslash_strings=True, hash_comments=True)
READINGS = {"sqlite": (SQLITE,), "postgresql": (POSTGRESQL,), "mysql": (MYSQL,)}
READINGS["mariadb"] = READINGS["mysql"]
ALL_READINGS = (SQLITE, POSTGRESQL, MYSQL)

_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$")
_SEPARATOR = ";"


def _shown(query: str) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 3] + "..."


def _quoted_end(query: str, start: int, quote: str, backslash: bool) -> int:
    """The index just past the literal that opens at ``start`` with ``quote``; a doubled
    quote stays inside it, and so does a backslash-escaped one when ``backslash``."""
    i = start + 1
    while i < len(query):
        char = query[i]
        if backslash and char == "\\":
            i += 2
            continue
        if char == quote:
            if query.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    raise _refusal(query, f"it has an unterminated {quote}...{quote}")


def _comment_end(query: str, start: int, nested: bool) -> int:
    depth, i = 1, start + 2
    while i < len(query):
        if query.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        elif nested and query.startswith("/*", i):
            depth += 1
            i += 2
        else:
            i += 1
    raise _refusal(query, "it has an unterminated /* comment")


def _tokens(query: str, reading: Reading) -> Iterator[str]:
    """The query's words (upper-cased) and punctuation, without whitespace, comments,
    literals or quoted names; a word after '.' or ':' (a qualified or bound name) is
    yielded as '.name'."""
    i, n = 0, len(query)
    previous = ""
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
        elif query.startswith("--", i) or (reading.hash_comments and char == "#"):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
        elif query.startswith("/*", i):
            i = _comment_end(query, i, reading.nested_comments)
        elif char == "'":
            i = _quoted_end(query, i, "'", reading.backslash_strings)
            previous = "'"
            yield previous
        elif char in "\"`":
            i = _quoted_end(query, i, char, backslash=False)
            previous = '"'
            yield previous
        elif char == "$" and reading.dollar_strings and (tag := _DOLLAR_TAG.match(query, i)):
            end = query.find(tag.group(), tag.end())
            if end < 0:
                raise _refusal(query, f"it has an unterminated {tag.group()} string")
            i = end + len(tag.group())
            previous = "'"
            yield previous
        elif word := _WORD.match(query, i):
            i = word.end()
            text = word.group()
            if reading.escape_strings and text in ("E", "e") and query.startswith("'", i):
                i = _quoted_end(query, i, "'", backslash=True)
                previous = "'"
            elif previous in (".", ":"):
                previous = "." + text
            else:
                previous = text.upper()
            yield previous
        else:
            i += 1
            previous = char
            yield char


def statements(query: str, reading: Reading) -> list[list[str]]:
    """The query's non-empty statements under ``reading``, each as its tokens."""
    out: list[list[str]] = [[]]
    for token in _tokens(query, reading):
        if token == _SEPARATOR:
            out.append([])
        else:
            out[-1].append(token)
    return [tokens for tokens in out if tokens]


def _refusal(query: str, why: str) -> SourceError:
    return SourceError(
        f"the query is refused before it runs: {why}; a source runs one read statement "
        f"({', '.join(READ_STARTS[:-1])} or {READ_STARTS[-1]}) and never writes. "
        f"Query: {_shown(query)}"
    )


def check_read_statement(query: str, dialect: str | None = None) -> None:
    """SourceError, naming the query, unless it is one read statement under the lexical
    rules of ``dialect`` (``"sqlite"``, ``"postgresql"``, ...; None or unknown: all)."""
    for reading in READINGS.get(dialect or "", ALL_READINGS):
        found = statements(query, reading)
        if not found:
            raise _refusal(query, "it holds no statement")
        if len(found) > 1:
            raise _refusal(query, f"it holds {len(found)} statements")
        tokens = found[0]
        first = next((t for t in tokens if t != "("), "")
        if first not in READ_STARTS:
            shown = first if _WORD.fullmatch(first) else repr(first)
            raise _refusal(query, f"it starts with {shown}")
        written = next((t for t in tokens if t in WRITE_WORDS), None)
        if written is not None:
            raise _refusal(query, f"it uses {written}, which writes")
