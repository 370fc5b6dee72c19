"""Stored references kept on local disk by id, so that an evaluation can read one without
the tracking store.

A reference id is the digest of every fitted number (`Reference.id`), and loading its files
checks that digest again (`load_reference_files`): a cached copy is either the reference or
refused, never stale. The command line uses it to start evaluating a batch while MLflow is
still being imported and the store opened (`track/early_evaluation.py`); the store is still
asked whether the reference is logged there.

Folder: MONITORING_REFERENCE_CACHE, else `$XDG_CACHE_HOME/monitoring/references`, else
`~/.cache/monitoring/references`; one sub-folder per id, written under a dot-name and
renamed when complete. Nothing here talks to MLflow.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from monitoring.errors import MonitoringError
from monitoring.measure.reference import Reference
from monitoring.measure.reference_files import load_reference_files, save_reference

ENV = "MONITORING_REFERENCE_CACHE"


def cache_folder() -> Path:
    value = os.environ.get(ENV)
    if value:
        return Path(value).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "monitoring" / "references"


def _safe(reference_id: str) -> bool:
    return bool(reference_id) and reference_id.isalnum()


def cached_reference(reference_id: str) -> Reference | None:
    """The cached reference `reference_id`, or None (not cached, or refused by its digest
    check, in which case the copy is removed)."""
    folder = cache_folder() / reference_id
    if not _safe(reference_id) or not folder.is_dir():
        return None
    try:
        reference = load_reference_files(folder)
    except (MonitoringError, OSError, ValueError, KeyError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return reference if reference.id == reference_id else None


def is_cached(reference_id: str) -> bool:
    """Whether a copy of `reference_id` is on disk (not yet checked: `cached_reference` does)."""
    return _safe(reference_id) and (cache_folder() / reference_id).is_dir()


def _install(reference_id: str, write: Callable[[Path], object]) -> None:
    """`write` the reference's files into a dot-folder, then rename it into place. Best
    effort: a cache that cannot be written only costs the next evaluation some time."""
    if not _safe(reference_id) or is_cached(reference_id):
        return
    root = cache_folder()
    staging = root / f".{reference_id}-{uuid.uuid4().hex[:8]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        write(staging)
        os.replace(staging, root / reference_id)
    except OSError:
        pass  # another process cached it first, or the disk refused
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def keep_files(reference_id: str, files: str | Path) -> None:
    """Copy a reference's files (as `save_reference` wrote them) into the cache."""
    _install(reference_id, lambda staging: shutil.copytree(files, staging))


def keep(reference: Reference) -> None:
    """Cache a reference held in memory (one just fitted)."""
    _install(reference.id, lambda staging: save_reference(reference, staging))
