"""How long a call to the tracking server may take, and whether an error means "unreachable".

MLflow retries a failed HTTP request 7 times with a backoff factor of 2 and waits 120 s for
each answer: a dead server holds a command for minutes (254 s measured for one lookup).
Our calls run under shorter bounds unless the user set MLflow's own variables:

    MLFLOW_HTTP_REQUEST_MAX_RETRIES     4   retries of one request
    MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR  1   sleeps 0, 2, 4, 8 s between them (plus up to 1 s jitter)
    MLFLOW_HTTP_REQUEST_TIMEOUT        20   seconds to wait for an answer

so a refused connection fails in about 15 s (long enough to ride out a server restart) and
a server that accepts but never answers in about 2 minutes. Cleaning up after such a
failure (marking a run FAILED, releasing a lock) is one try of 5 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"
BOUNDED = {RETRIES: "4", BACKOFF: "1", TIMEOUT: "20"}
QUICK = {RETRIES: "0", BACKOFF: "0", TIMEOUT: "5"}

_NETWORK_ERRORS = (
    "ConnectionError",  # requests, builtins
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "TimeoutError",
    "RetryError",
    "MaxRetryError",
    "ProtocolError",
    "NewConnectionError",
    "RemoteDisconnected",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "BrokenPipeError",
    "OperationalError",  # sqlalchemy: the database behind a direct store went away
)


@contextmanager
def _environment(values: Mapping[str, str], *, force: bool) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if force or saved[name] is None:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bounded_requests() -> AbstractContextManager[None]:
    """MLflow calls inside run under `BOUNDED`, except what the user set explicitly."""
    return _environment(BOUNDED, force=False)


def quick_requests() -> AbstractContextManager[None]:
    """One short try per call (5 s, or less when the timeout in force is shorter): for
    clean-up after the server already failed."""
    current = os.environ.get(TIMEOUT, BOUNDED[TIMEOUT])
    timeout = min(int(QUICK[TIMEOUT]), int(current)) if current.isdigit() else QUICK[TIMEOUT]
    return _environment({**QUICK, TIMEOUT: str(timeout)}, force=True)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_error(error: BaseException) -> BaseException | None:
    """The first error in the chain that says the store could not be reached or answered
    with a server error (None when the store refused what was sent, or it is ours)."""
    for current in _chain(error):
        if type(current).__name__ in _NETWORK_ERRORS:
            return current
    for current in _chain(error):
        text = str(current)
        if text.startswith("API request to") and (
            "failed with exception" in text or "error code 5" in text
        ):
            return current
    return None


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the store could not be reached."""
    return _network_error(error) is not None


_SYMPTOMS = (
    "Connection refused",
    "Read timed out",
    "timed out",
    "Connection reset",
    "Connection aborted",
    "RemoteDisconnected",
    "Remote end closed connection",
    "too many 5",
    "error code 5",
)


def describe(error: BaseException) -> str:
    """A short reason: for the store not answering, the symptom ("ConnectionError:
    Connection refused"); otherwise the error's type and first line."""
    network = _network_error(error)
    if network is not None:
        text = " ".join(str(e) for e in _chain(network))
        symptom = next((s for s in _SYMPTOMS if s in text), None)
        name = type(network).__name__
        return f"{name}: {symptom}" if symptom else name
    first = (str(error).strip().splitlines() or [""])[0]
    if len(first) > 300:
        first = first[:300] + "..."
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
