"""A forked child process that works beside this one, with the guards that keep it safe.

Importing MLflow and writing to its store keep one core busy in the process that logs;
the evaluation of the same batch (or of a backfill's next partitions) needs nothing of
the store, so it can run in a forked child on the other core instead of a thread that
would wait on the GIL. Fork copies only the calling thread: a lock that another thread or
a native pool (PyTorch's OpenMP threads, a Spark gateway) held stays held in the child,
which would wait forever. So a child is forked only on Linux, with one thread, without
PyTorch loaded and without a Spark session (`fork_is_safe`); it dies with its parent
(PR_SET_PDEATHSIG), and a parent waiting for it gives up when it used no CPU for
IDLE_S seconds (`ForkedChild.receive`). MONITORING_EARLY_EVALUATION=0 turns it off.

The child is an optimisation only: every caller does the work in-process when the child
fails in any way, so results and errors are those of one process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "MONITORING_EARLY_EVALUATION"
UNSAFE_AFTER_FORK = ("torch",)  # its native thread pools hang a forked child that uses it
POLL_S = 0.5
IDLE_S = 20.0  # a child that used no CPU this long is stuck (or waits on a slow database)


def fork_is_safe() -> bool:
    """Whether a child may be forked now (see the module docstring)."""
    import threading

    if sys.platform != "linux" or os.environ.get(ENV, "1") == "0":
        return False
    _let_idle_pools_go()
    return (
        threading.active_count() == 1
        and not any(name in sys.modules for name in UNSAFE_AFTER_FORK)
        and not _spark_running()
    )


def _let_idle_pools_go(timeout: float = 1.0) -> None:
    """Let the idle threads of MLflow's artifact repositories exit. Each repository starts
    a thread pool (threads named `Mlflow<class>_N`) on its first upload or download, and is
    freed only by the cyclic garbage collector, which then ends the pool's threads: after
    a download, they would keep a backfill from forking until the collector happened to
    run."""
    import gc
    import threading
    import time

    lingering = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.name.startswith("Mlflow")
    ]
    if not lingering:
        return
    gc.collect()
    deadline = time.monotonic() + timeout
    for thread in lingering:
        thread.join(max(0.0, deadline - time.monotonic()))


def _spark_running() -> bool:
    """Whether this process drives Spark (a JVM gateway or a Spark Connect channel, which a
    child cannot share). Importing MLflow imports pyspark when installed: that alone is
    no reason not to fork."""
    context = sys.modules.get("pyspark.context")
    if context is not None and context.SparkContext._active_spark_context is not None:
        return True
    return "pyspark.sql.connect.session" in sys.modules


def cpu_ticks(pid: int) -> int:
    """User and system CPU ticks of process `pid` so far (-1 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def scratch_folder(prefix: str) -> Path:
    """A new temporary folder for a child's files, named with this process's id; the ones
    of the same `prefix` whose process is gone (killed with SIGKILL: nothing could remove
    them) are removed first."""
    import shutil
    import tempfile

    for stale in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        owner = stale.name[len(prefix) :].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class ForkedChild:
    """A child running `target(connection, *args)`, and this end of their duplex pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self._connection, theirs = context.Pipe(duplex=True)
        self.process = context.Process(target=_run, args=(target, theirs, *args), daemon=True)
        self.process.start()
        theirs.close()
        self.outcome = ""  # why the last receive got nothing ("" while all went well)

    def send(self, message: Any) -> bool:
        """Send `message` to the child; False when it is gone."""
        try:
            self._connection.send(message)
        except (OSError, ValueError):
            return False
        return True

    def receive(self) -> Any | None:
        """The child's next message; None when it exited without one, or used no CPU for
        IDLE_S seconds (stuck: killed). `outcome` then says which."""
        used, still = cpu_ticks(self.process.pid), 0.0
        try:
            while not self._connection.poll(POLL_S):
                if not self.process.is_alive():
                    if self._connection.poll():
                        break
                    self.outcome = "died without a report"
                    return None
                now = cpu_ticks(self.process.pid)
                still = still + POLL_S if now == used else 0.0
                used = now
                if still >= IDLE_S:
                    self.process.kill()
                    self.outcome = f"stuck: no CPU used for {IDLE_S:.0f} s"
                    return None
            return self._connection.recv()
        except (EOFError, OSError):
            self.outcome = "died without a report"
            return None

    def stop(self) -> None:
        """Kill the child (when still running) and close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self._connection.close()

    def finish(self) -> None:
        """Wait for a child that has sent its last message, and close the pipe."""
        self._connection.close()
        self.process.join()


def _run(target: Callable[..., None], connection: Any, *args: Any) -> None:
    import gc

    _die_with_parent()
    # What the parent left unreachable is not the child's to collect: a finalizer run here
    # could close a connection the parent still uses (libpq says goodbye on its socket).
    gc.freeze()
    try:
        target(connection, *args)
    finally:
        connection.close()


def _die_with_parent() -> None:
    """Ask Linux to kill this child when its parent dies (a killed command must not leave
    it working): prctl(PR_SET_PDEATHSIG, SIGKILL), best effort."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
