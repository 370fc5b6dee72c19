"""The local outbox: a finished evaluation is written here before it is logged to MLflow.

One folder per evaluation, named by its entry id, under the outbox folder (first of:
MONITORING_OUTBOX, `tracking.outbox`, `$XDG_CACHE_HOME/monitoring/outbox`,
`~/.cache/monitoring/outbox`):

    <id>/entry.json      what the run holds: metrics, params, tags, dataset inputs, and where
                         it goes (store, experiment, model version, batch id, replace)
    <id>/artifacts/      the run's artifact files, as they will be uploaded
    <id>/report.pkl      only when the judgement against earlier batches (alert rules, row
                         volume) could not be made: the report and configuration to make it

An entry is written under a dot-name and renamed when complete, so a reader never sees half
of one; it is removed only after its run is FINISHED in the store (`monitoring sync`).
Nothing here talks to MLflow.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.errors import TrackingError
from monitoring.track.registry import ModelInfo

ENV = "MONITORING_OUTBOX"
FORMAT = 1
ENTRY_FILE = "entry.json"
REPORT_FILE = "report.pkl"


def outbox_folder(configured: str | None = None) -> Path:
    """MONITORING_OUTBOX, else `tracking.outbox`, else the user's cache folder."""
    value = os.environ.get(ENV) or configured
    if value:
        return Path(value).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "monitoring" / "outbox"


@dataclass(frozen=True)
class Entry:
    """One evaluation waiting to be logged (see the module docstring)."""

    folder: Path
    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def model(self) -> ModelInfo:
        return ModelInfo(**self.data["model"])

    @property
    def batch_id(self) -> str:
        return str(self.data["batch_id"])

    @property
    def created(self) -> int:
        """Milliseconds since the epoch."""
        return int(self.data["created"])

    @property
    def judged(self) -> bool:
        return bool(self.data.get("judged", True))

    @property
    def artifacts(self) -> Path:
        return self.folder / "artifacts"

    def describe(self) -> str:
        model = self.model
        return f"batch {self.batch_id!r} of {model.name} version {model.version}"

    def unjudged(self) -> tuple[Any, Any]:
        """(report, config) of an entry written before it could be judged."""
        with (self.folder / REPORT_FILE).open("rb") as file:
            return pickle.load(file)  # noqa: S301 - our own file, written by `write_entry`


def new_entry_id() -> str:
    return uuid.uuid4().hex


def staging_folder(outbox: Path, entry_id: str) -> Path:
    """An empty folder to write an entry into; `commit_entry` publishes it."""
    folder = outbox / f".tmp-{entry_id}"
    try:
        (folder / "artifacts").mkdir(parents=True)
    except OSError as error:
        raise TrackingError(
            f"the outbox {outbox} cannot be written ({error}); set MONITORING_OUTBOX or "
            "`tracking.outbox` to a writable folder"
        ) from error
    return folder


def commit_entry(
    folder: Path, data: Mapping[str, Any], *, unjudged: tuple[Any, Any] | None = None
) -> Entry:
    """Write entry.json (and report.pkl) into the staging `folder`, then rename it to
    its id: from now on the entry exists."""
    content = {"format": FORMAT, **data}
    if unjudged is not None:
        content["judged"] = False
        with (folder / REPORT_FILE).open("wb") as file:
            pickle.dump(unjudged, file, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / ENTRY_FILE).write_text(json.dumps(content, indent=1), encoding="utf-8")
    final = folder.parent / str(data["id"])
    os.replace(folder, final)
    return Entry(final, content)


def read_entry(folder: Path) -> Entry | None:
    """The entry in `folder`, or None when it is not a complete one."""
    try:
        data = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "id" not in data:
        return None
    return Entry(folder, data)


def list_entries(outbox: Path) -> list[Entry]:
    """Complete entries, oldest first."""
    if not outbox.is_dir():
        return []
    found = [read_entry(p) for p in outbox.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted((e for e in found if e is not None), key=lambda e: (e.created, e.id))


def remove_entry(entry: Entry) -> None:
    """Gone for good: renamed away first, so a reader never sees a half-deleted entry."""
    trash = entry.folder.parent / f".del-{entry.id}-{time.monotonic_ns()}"
    try:
        os.replace(entry.folder, trash)
    except FileNotFoundError:
        return  # another sync removed it
    shutil.rmtree(trash, ignore_errors=True)


def clear_staging(outbox: Path, older_than: float = 3600.0) -> None:
    """Remove staging folders that a killed process left (older than an hour)."""
    if not outbox.is_dir():
        return
    now = time.time()
    for path in outbox.iterdir():
        if path.name.startswith((".tmp-", ".del-")) and now - path.stat().st_mtime > older_than:
            shutil.rmtree(path, ignore_errors=True)
