"""`python -m monitoring.cli` that stops at one point, for test_faults.py to kill it there.

    python tests/fault_cli.py POINT MARKER <monitoring arguments>

POINT is `pass` (after the first chunk of the batch was read), `logging` (the batch run is
created and its artifacts uploaded, its dataset inputs not yet logged) or `history` (the
batch run is FINISHED, the history run not yet written). There the process writes MARKER
and sleeps for at most two minutes, so that the test knows where it is when it kills it.
Not a test module: pytest collects only test_*.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _pause(marker: str) -> None:
    Path(marker).write_text("here", encoding="utf-8")
    time.sleep(120)


def _stop_at(point: str, marker: str) -> None:
    if point == "pass":
        import monitoring.evaluation.batch as batch
        import monitoring.track.pipeline as pipeline

        evaluate = batch.evaluate

        def paused_evaluate(*args, **kwargs):  # noqa: ANN002, ANN003
            def progress(rows: int) -> None:
                if rows:
                    _pause(marker)

            return evaluate(*args, **{**kwargs, "progress": progress})

        # in this process, and in the child that evaluates early (track/early_evaluation.py)
        pipeline.evaluate = batch.evaluate = paused_evaluate
    elif point == "logging":
        from mlflow import MlflowClient

        log_inputs = MlflowClient.log_inputs

        def paused_log_inputs(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            _pause(marker)
            return log_inputs(self, *args, **kwargs)

        MlflowClient.log_inputs = paused_log_inputs
    elif point == "history":
        import monitoring.track.history_runs as history_runs

        log = history_runs._log

        def paused_log(*args, **kwargs):  # noqa: ANN002, ANN003
            _pause(marker)
            return log(*args, **kwargs)

        history_runs._log = paused_log
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    _stop_at(sys.argv[1], sys.argv[2])
    from monitoring.cli.main import main

    main(sys.argv[3:], prog_name="monitoring")
