"""The finished batch runs of one model version, read from the store once per process.

Judging a batch (alert rules, row volume) and appending it to the version's history run
both need the version's earlier batches. Reading them costs one search over every batch
run, with all its metrics: once per batch that is twice per evaluation, and quadratic over
a backfill of hundreds of batches. `KnownBatches` reads them once (from the history run's
table when it is current) and adds each run this process logs. It is only ever a
shortcut: the history run's digest of the batch run ids it was built from tells
`sync_history` when the store holds runs this process did not see (an evaluation running
elsewhere), and then the store is read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.errors import NoRunsError
from monitoring.track.history import run_row
from monitoring.track.history_table import read_for_compare

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run


class KnownBatches:
    """The finished batch runs of (model name, version) as this process last knew them."""

    def __init__(self, client: MlflowClient, model_name: str, version: str) -> None:
        self.client = client
        self.model_name = model_name
        self.version = version
        self._frame: pd.DataFrame | None = None
        self._references: set[str] = set()

    def frame(self) -> pd.DataFrame:
        """The runs (as `read_batch_runs` returns them, oldest first; empty when there are
        none), read from the store on first use: from the history run's table when it is
        current (`track/history_table.py`: 0.05 s for a year of daily batches where the
        search of every batch run took 1.7-1.9 s on SQLite), else from the runs."""
        if self._frame is None:
            try:
                (found,) = read_for_compare(self.client, self.model_name, versions=[self.version])
                runs = found.runs
                if found.from_table:  # stored in batch order; the runs come by start time
                    runs = runs.sort_values(["start_time", "run_id"], kind="stable")
                self._frame = runs.reset_index(drop=True)
            except NoRunsError:
                self._frame = pd.DataFrame()
        return self._frame

    def batch_ids(self) -> set[str]:
        frame = self.frame()
        return set(frame["batch_id"]) if "batch_id" in frame else set()

    def logged(self, run: Run, replaced: Iterable[str] = ()) -> None:
        """Add a run this process logged, and forget the runs it replaced (deleted)."""
        frame = self.frame()
        gone = set(replaced) | {run.info.run_id}
        if "run_id" in frame:
            frame = frame[~frame["run_id"].isin(gone)]
        row = pd.DataFrame([run_row(run)])
        self._frame = row if frame.empty else pd.concat([frame, row], ignore_index=True)

    def stored(self, reference_id: str, *, add: bool = False) -> bool:
        """Whether this process stored (or found stored) the reference `reference_id`;
        `add` records that it did."""
        if add:
            self._references.add(reference_id)
        return reference_id in self._references

    def forget(self) -> None:
        """Read the store again on next use (after a failure left the state unknown)."""
        self._frame = None
