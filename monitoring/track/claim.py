"""One writer per model version at a time, over MLflow alone: a lock made of runs.

MLflow has no compare-and-swap, but a tag is a register that every client reads and writes
atomically, which is all Lamport's bakery algorithm needs. To take the lock of (model,
version), an evaluation

1. creates a lock run in the `monitoring-locks` experiment, RUNNING, tagged with the model,
   the version and its owner (host, boot, process id and start): "choosing a ticket";
2. reads the RUNNING lock runs of that version and tags its own with `monitoring.ticket` =
   1 + the largest ticket among them;
3. waits until every other RUNNING lock run of that version has a ticket and a larger
   (ticket, run id) than its own. Then it holds the lock: it logs, then deletes its lock run.

Two evaluations never hold the lock together: whichever read the other's ticket waits for
it, and one that had not chosen yet is waited for until it has. Order is first come, first
served. A lock run whose owner is gone (a process of this machine that no longer exists,
or no sign of life, `monitoring.heartbeat`, for `stale_after` seconds from another machine)
is marked FAILED with `monitoring.error` and deleted by whoever waits on it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from monitoring.errors import TrackingError
from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.bounds import quick_requests
from monitoring.track.experiments import experiment_id

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

OWNER = "monitoring.owner"
OUTBOX_ID = "monitoring.outbox_id"
TICKET = "monitoring.ticket"
HEARTBEAT = "monitoring.heartbeat"
KIND_LOCK = "lock"
LOCK_EXPERIMENT = "monitoring-locks"
POLL_FIRST, POLL_MAX = 0.05, 0.5  # seconds between two looks at the lock runs
_HELD: set[str] = set()  # the lock runs this process holds (or is taking) right now


def _process_start(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot (Linux), else ""."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


@cache
def _machine() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def owner_token() -> str:
    """Who is writing: machine (host name and boot id), process id and process start."""
    pid = os.getpid()
    return f"{_machine()}:{pid}:{_process_start(pid)}"


def owner_alive(token: str) -> bool | None:
    """Whether the owner process still runs; None when it ran on another machine (or the
    token is not ours to read)."""
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _machine() or not parts[1].isdigit():
        return None
    _, pid, started = parts
    if started:
        return _process_start(int(pid)) == started
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_sign_of_life(run: Run) -> float:
    """Seconds since the epoch of the run's start or its latest heartbeat."""
    beat = run.data.tags.get(HEARTBEAT, "")
    latest = max(run.info.start_time or 0, int(beat) if beat.isdigit() else 0)
    return latest / 1000


def abandoned_reason(run: Run, stale_after: float) -> str | None:
    """Why the RUNNING `run` counts as abandoned, or None while its owner may be at work."""
    token = run.data.tags.get(OWNER, "")
    if token == owner_token() and run.data.tags.get(tags.KIND) == KIND_LOCK:
        if run.info.run_id in _HELD:
            return None
        return "abandoned: this process could not release it after a failure"
    alive = owner_alive(token) if token else None
    if alive is False:
        return f"abandoned: its process ({token}) is gone"
    idle = time.time() - last_sign_of_life(run)
    if alive is None and idle > stale_after:
        return f"abandoned: no sign of life for {idle:.0f} s (owner {token or 'unknown'})"
    return None


def mark_abandoned(client: MlflowClient, run_id: str, reason: str, *, delete: bool) -> None:
    """FAILED with the reason in `monitoring.error` (and deleted); another waiter may be
    doing the same, so a refusal is fine."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_tag(run_id, tags.ERROR, reason)
        client.set_terminated(run_id, "FAILED")
        if delete:
            client.delete_run(run_id)
    except MlflowException:
        pass


def lock_filter(model_name: str, version: str) -> str:
    return (
        f"tags.`{tags.KIND}` = '{KIND_LOCK}' and "
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}' and "
        f"tags.`{tags.MODEL_VERSION}` = '{quote_value(version)}' and "
        "attributes.status = 'RUNNING'"
    )


def _ticket(run: Run) -> int | None:
    value = run.data.tags.get(TICKET, "")
    return int(value) if value.isdigit() else None


class VersionLock:
    """`with VersionLock(client, "churn", "3"):` logs as the only writer of churn version 3.

    `timeout` bounds the wait (default `stale_after`); `touch()` is a sign of life for
    waiters on other machines, to call between long steps.
    """

    def __init__(
        self,
        client: MlflowClient,
        model_name: str,
        version: str,
        *,
        stale_after: float = 600.0,
        timeout: float | None = None,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.version = version
        self.stale_after = stale_after
        self.timeout = stale_after if timeout is None else timeout
        self.run_id: str | None = None
        self._experiment: str | None = None

    def _running(self) -> list[Run]:
        return list(
            self.client.search_runs(
                [self._experiment],  # type: ignore[list-item]
                filter_string=lock_filter(self.model_name, self.version),
                max_results=1000,
            )
        )

    def acquire(self) -> None:
        self._experiment = experiment_id(self.client, LOCK_EXPERIMENT)
        run = self.client.create_run(
            self._experiment,
            run_name=f"lock-{self.model_name}-{self.version}",
            tags={
                tags.KIND: KIND_LOCK,
                tags.MODEL_NAME: self.model_name,
                tags.MODEL_VERSION: self.version,
                OWNER: owner_token(),
            },
        )
        self.run_id = run.info.run_id
        _HELD.add(self.run_id)
        tickets = [t for r in self._running() if (t := _ticket(r)) is not None]
        mine = (max(tickets, default=0) + 1, self.run_id)
        self.client.set_tag(self.run_id, TICKET, str(mine[0]))
        deadline = time.monotonic() + self.timeout
        delay = POLL_FIRST
        while True:
            blockers = [r for r in self._running() if self._blocks(r, mine)]
            if not blockers:
                return
            if time.monotonic() > deadline:
                holder = blockers[0]
                raise TrackingError(
                    f"waited {self.timeout:.0f} s for the lock of {self.model_name} version "
                    f"{self.version} held by run {holder.info.run_id} "
                    f"({holder.data.tags.get(OWNER, 'owner unknown')}); see `monitoring doctor`"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    def _blocks(self, run: Run, mine: tuple[int, str]) -> bool:
        if run.info.run_id == self.run_id:
            return False
        ticket = _ticket(run)
        if ticket is not None and (ticket, run.info.run_id) > mine:
            return False
        reason = abandoned_reason(run, self.stale_after)
        if reason is not None:
            mark_abandoned(self.client, run.info.run_id, f"lock {reason}", delete=True)
            return False
        return True

    def touch(self) -> None:
        """A sign of life (see `abandoned_reason`)."""
        if self.run_id is not None:
            self.client.set_tag(self.run_id, HEARTBEAT, str(int(time.time() * 1000)))

    def release(self) -> None:
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        _HELD.discard(run_id)
        self.client.set_terminated(run_id, "FINISHED")
        self.client.delete_run(run_id)

    def __enter__(self) -> VersionLock:
        try:
            self.acquire()
        except BaseException:
            self._release_quietly()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.release()
        else:
            self._release_quietly()

    def _release_quietly(self) -> None:
        """After a failure the store may be gone: one short try, then the owner's death
        (or staleness) frees the lock for the next one."""
        try:
            with quick_requests():
                self.release()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            if self.run_id is not None:
                _HELD.discard(self.run_id)
            self.run_id = None


class VersionLease:
    """A version's lock held across the publishes of one process (a backfill), so that each
    batch does not take and free it (8 requests); held for at most `hold` seconds at a time,
    so that another writer of the version waits no longer than that (then the lock is freed
    and taken again, and that writer may get in between). A failure frees it."""

    def __init__(
        self,
        client: MlflowClient,
        model_name: str,
        version: str,
        *,
        stale_after: float = 600.0,
        hold: float = 5.0,
    ) -> None:
        self._make = lambda: VersionLock(client, model_name, version, stale_after=stale_after)
        self.hold = hold
        self._lock: VersionLock | None = None
        self._since = 0.0

    @contextmanager
    def held(self) -> Iterator[VersionLock]:
        """The lock, taken when not held or held for `hold` seconds already."""
        if self._lock is not None and time.monotonic() - self._since > self.hold:
            self.release()
        if self._lock is None:
            lock = self._make()
            lock.__enter__()
            self._lock, self._since = lock, time.monotonic()
        try:
            yield self._lock
        except BaseException:
            lock, self._lock = self._lock, None
            lock._release_quietly()
            raise

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> VersionLease:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.release()
        elif self._lock is not None:
            lock, self._lock = self._lock, None
            lock._release_quietly()
