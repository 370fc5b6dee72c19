"""Evaluate a batch in a forked process while this one imports MLflow and opens its store.

`monitoring evaluate` spends one to two seconds importing MLflow and opening the tracking
store before it can ask anything of it, on a machine with cores to spare. The evaluation
itself needs only the batch and the reference, and a stored reference is kept on local
disk by id (`track/reference_cache.py`). So when the reference is cached, the command
forks a child that reads the batch, evaluates it and draws its plots, while the parent
opens the store and makes its checks (the model version, a batch id already taken, the
reference logged there); `evaluate_and_log` then takes the child's report and plots.

The child is an optimisation only: when it fails in any way (bad data included), the
parent evaluates in-process as it would have without it, so errors and results are those
of the one-process path. Linux only (fork after imports is safe there and cheap);
MONITORING_EARLY_EVALUATION=0 turns it off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.track.reference_cache import is_cached

if TYPE_CHECKING:
    from monitoring.core.config import MonitoringConfig
    from monitoring.evaluation.report import BatchReport

ENV = "MONITORING_EARLY_EVALUATION"
PLOTS = "plots"
UNSAFE_AFTER_FORK = ("torch",)  # its native thread pools hang a forked child that uses it
POLL_S = 0.5
IDLE_S = 20.0  # a child that used no CPU this long is stuck (or waits on a slow database)


def _cpu_ticks(pid: int) -> int:
    """User and system CPU ticks of process `pid` so far (-1 when unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


@dataclass(frozen=True)
class EarlyResult:
    """What the child made: the report, and the folder of its plots (None: none drawn)."""

    report: BatchReport
    plots: Path | None


class EarlyEvaluation:
    """A child process evaluating one batch; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, process: Any, connection: Any, folder: Path) -> None:
        self._process = process
        self._connection = connection
        self.folder = folder
        self.outcome = ""  # "ok", or what the child failed with (after `result()`)

    def result(self) -> EarlyResult | None:
        """The child's report and plots, or None when it failed (evaluate in-process)."""
        try:
            outcome = self._connection.recv() if self._answers() else None
        except (EOFError, OSError):
            outcome = None
        finally:
            self._connection.close()
            self._process.join()
        self.outcome = outcome[-1] if outcome else self.outcome or "died without a report"
        if not outcome or outcome[0] != "ok":
            return None
        self.outcome = "ok"
        report, drawn = outcome[1], outcome[2]
        return EarlyResult(report, self.folder / PLOTS if drawn else None)

    def _answers(self) -> bool:
        """Wait for the child's answer; False when it exited without one, or used no CPU
        for IDLE_S seconds (stuck: killed, and the parent evaluates in-process)."""
        used, still = _cpu_ticks(self._process.pid), 0.0
        while not self._connection.poll(POLL_S):
            if not self._process.is_alive():
                return self._connection.poll()
            now = _cpu_ticks(self._process.pid)
            still = still + POLL_S if now == used else 0.0
            used = now
            if still >= IDLE_S:
                self._process.kill()
                self.outcome = f"stuck: no CPU used for {IDLE_S:.0f} s"
                return False
        return True

    def cancel(self) -> None:
        """Stop the child (when the store refused the batch before its report was needed)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._connection.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def available(
    reference: object,
    config: MonitoringConfig,
    *,
    engine: str,
    replace: bool,
    model_uri: str | None,
) -> bool:
    """Whether this evaluation can start early: a cached stored reference, the local
    engine, no replaced run (its ignored samples are read from the store), no model to run
    (the batch holds its predictions), Linux, no thread but this one and no PyTorch
    loaded. A fork copies only the calling thread: a lock that another thread, or a native
    pool such as PyTorch's, held stays held in the child, which would wait forever."""
    import threading

    return (
        sys.platform == "linux"
        and os.environ.get(ENV, "1") != "0"
        and threading.active_count() == 1
        and not any(name in sys.modules for name in UNSAFE_AFTER_FORK)
        and engine == "local"
        and not replace
        and not model_uri
        and config.drift.embedding_layer is None
        and isinstance(reference, str)
        and is_cached(reference)
    )


def start(
    source: Any,
    reference_id: str,
    config: MonitoringConfig,
    *,
    batch_id: str | None,
    query: str | None,
    params: Mapping[str, object] | None,
    progress: Callable[[int], None] | None = None,
) -> EarlyEvaluation:
    """Fork the child that evaluates `source` against the cached reference `reference_id`."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    folder = Path(tempfile.mkdtemp(prefix="monitoring-early-"))
    job = {
        "source": source,
        "reference_id": reference_id,
        "config": config,
        "batch_id": batch_id,
        "query": query,
        "params": params,
        "progress": progress,
        "folder": folder,
    }
    process = context.Process(target=_child, args=(send, job), daemon=True)
    process.start()
    send.close()
    return EarlyEvaluation(process, receive, folder)


def _child(connection: Any, job: dict[str, Any]) -> None:
    """In the child: evaluate, draw the plots a batch run of this report gets, send."""
    _die_with_parent()
    try:
        report = _evaluate(job)
        drawn = draw_ahead(report, job["config"], job["folder"] / PLOTS)
        connection.send(("ok", report, drawn))
    except BaseException as error:  # noqa: BLE001 - the parent evaluates again in-process
        with contextlib.suppress(Exception):
            connection.send(("failed", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def _die_with_parent() -> None:
    """Ask Linux to kill this child when its parent dies (a killed `monitoring evaluate`
    must not leave it evaluating): prctl(PR_SET_PDEATHSIG, SIGKILL), best effort."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def _evaluate(job: dict[str, Any]) -> BatchReport:
    from monitoring.errors import NotFittedError
    from monitoring.evaluation.batch import evaluate
    from monitoring.track.reference_cache import cached_reference

    reference = cached_reference(job["reference_id"])
    if reference is None:
        raise NotFittedError(f"reference {job['reference_id']} is no longer cached")
    return evaluate(
        job["source"],
        reference,
        config=job["config"],
        batch_id=job["batch_id"],
        query=job["query"],
        params=job["params"],
        progress=job["progress"],
    )


def draw_ahead(report: BatchReport, config: MonitoringConfig, folder: Path) -> bool:
    """Draw into `folder` the plots `render_batch_run` would draw, as far as the report
    alone tells (whether any were drawn): with `plots = "findings"` a batch whose own
    status is ok gets none (judging it against the earlier batches may still raise it;
    rendering then draws them). Used before the run is rendered, where a core is free."""
    from monitoring.track.batch_run import draw_plots, plots_wanted
    from monitoring.track.keys import key_map

    if not plots_wanted(config.evaluation.plots, report.status):
        return False
    keys = key_map([c.column for c in report.columns])
    draw_plots(report, folder, keys, config.evaluation.plot_top_features)
    return True
