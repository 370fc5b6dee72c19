"""The exceptions that `monitoring` raises, named for what is wrong.

    MonitoringError                 base of everything below; the CLI turns it into exit code 1
    ├── ConfigError                 a setting is invalid ("`drift.bins` must be ..."); a ValueError
    ├── SchemaError                 the columns do not fit the roles or the reference
    │   ├── ColumnNotFoundError     a named column is missing; a KeyError
    │   └── DtypeMismatchError      a column's type differs from the reference's
    ├── DataError                   the values are unusable
    │   ├── EmptyBatchError         no rows at all
    │   └── InvalidValueError       NaN-only, inf, unparsable or unseen values; a ValueError
    ├── SourceError                 a file, query or database cannot be read
    │   ├── DatabaseUnreachableError
    │   └── QueryParameterError     a `:name` in the query has no value, or a value has no `:name`
    ├── NotFittedError              a reference is used before it is fitted
    ├── ModelError                  a model URI cannot be resolved or run
    └── TrackingError               the tracking store refuses, cannot be reached or lacks a run
        ├── TrackingUnreachableError
        ├── NotLoggedError          a finished evaluation could not be logged: kept in the outbox
        ├── DuplicateBatchError     the batch id exists for this model version (use replace)
        ├── NoRunsError             no finished batch run matches the model, versions or dates
        └── NoteError               a note cannot be written or found (run, text, sample or note id)

The three that are also builtins keep `except ValueError` / `except KeyError` written
before they existed working. Messages name the column, file, row or setting at fault and
never contain a password.
"""

from __future__ import annotations

__all__ = [
    "ColumnNotFoundError",
    "ConfigError",
    "DataError",
    "DatabaseUnreachableError",
    "DtypeMismatchError",
    "DuplicateBatchError",
    "EmptyBatchError",
    "InvalidValueError",
    "ModelError",
    "MonitoringError",
    "NoRunsError",
    "NotFittedError",
    "NoteError",
    "NotLoggedError",
    "QueryParameterError",
    "SchemaError",
    "SourceError",
    "TrackingError",
    "TrackingUnreachableError",
]


class MonitoringError(Exception):
    """Base class: every error the library raises on purpose."""


class ConfigError(MonitoringError, ValueError):
    """A configuration value (or a setting passed as an argument) is invalid."""


class SchemaError(MonitoringError):
    """Columns do not match the declared roles or the reference."""


class ColumnNotFoundError(SchemaError, KeyError):
    """A column named in the schema, the reference or a report is absent."""

    def __str__(self) -> str:
        return Exception.__str__(self)  # KeyError's own would quote the message


class DtypeMismatchError(SchemaError):
    """A column's type differs from what the reference was fitted on."""


class DataError(MonitoringError):
    """Values in the data cannot be evaluated."""


class EmptyBatchError(DataError):
    """The batch (or reference) has no rows."""


class InvalidValueError(DataError, ValueError):
    """A value is out of domain: inf, unparsable, all-NaN column, unseen label."""


class SourceError(MonitoringError):
    """A source (file, query, database) cannot be read."""


class DatabaseUnreachableError(SourceError):
    """The database does not answer or refuses the connection."""


class QueryParameterError(SourceError):
    """Query placeholders and given parameters do not match."""


class NotFittedError(MonitoringError):
    """A reference or accumulator is used before it is fitted."""


class ModelError(MonitoringError):
    """A model URI does not resolve, cannot be loaded, or fails on the batch."""


class TrackingError(MonitoringError):
    """The MLflow tracking store refuses an operation or lacks what it is asked for."""


class TrackingUnreachableError(TrackingError):
    """The MLflow tracking server cannot be reached."""


class NotLoggedError(TrackingError):
    """A batch was evaluated but not (completely) logged; the evaluation is kept in the
    local outbox, and `monitoring sync` logs it later."""


class DuplicateBatchError(TrackingError):
    """The batch id was already evaluated for this model version."""


class NoRunsError(TrackingError):
    """No finished batch run matches the request (model, versions, time range)."""


class NoteError(TrackingError):
    """A note cannot be written or found (bad run, text, sample ids or note id)."""
