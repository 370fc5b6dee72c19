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
of the one-process path. The fork's guards are `track/forked.py`'s;
MONITORING_EARLY_EVALUATION=0 turns it off.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitoring.track import forked
from monitoring.track.forked import ForkedChild
from monitoring.track.reference_cache import is_cached

if TYPE_CHECKING:
    from monitoring.core.config import MonitoringConfig
    from monitoring.evaluation.report import BatchReport

PLOTS = "plots"


@dataclass(frozen=True)
class EarlyResult:
    """What the child made: the report, and the folder of its plots (None: none drawn)."""

    report: BatchReport
    plots: Path | None


class EarlyEvaluation:
    """A child process evaluating one batch; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, child: ForkedChild, folder: Path) -> None:
        self._child = child
        self._process = child.process
        self.folder = folder
        self.outcome = ""  # "ok", or what the child failed with (after `result()`)

    def result(self) -> EarlyResult | None:
        """The child's report and plots, or None when it failed (evaluate in-process)."""
        outcome = self._child.receive()
        self._child.finish()
        self.outcome = outcome[-1] if outcome else self._child.outcome
        if not outcome or outcome[0] != "ok":
            return None
        self.outcome = "ok"
        report, drawn = outcome[1], outcome[2]
        return EarlyResult(report, self.folder / PLOTS if drawn else None)

    def cancel(self) -> None:
        """Stop the child (when the store refused the batch before its report was needed)."""
        self._child.stop()

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
    (the batch holds its predictions), and a fork that is safe now (`forked.fork_is_safe`:
    Linux, one thread, no PyTorch, no Spark session)."""
    return (
        forked.fork_is_safe()
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
    folder = forked.scratch_folder("monitoring-early-")
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
    return EarlyEvaluation(ForkedChild(_child, job), folder)


def _child(connection: Any, job: dict[str, Any]) -> None:
    """In the child: evaluate, draw the plots a batch run of this report gets, send."""
    try:
        report = _evaluate(job)
        drawn = draw_ahead(report, job["config"], job["folder"] / PLOTS)
        connection.send(("ok", report, drawn))
    except BaseException as error:  # noqa: BLE001 - the parent evaluates again in-process
        with contextlib.suppress(Exception):
            connection.send(("failed", f"{type(error).__name__}: {error}"))


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
