"""Notes on batch runs in MLflow: artifacts `notes/<note_id>.md`, run and version tags.

The public API (`monitoring.add_note`, `monitoring.list_notes`, `monitoring.show_note`)
writes and reads them on the configured tracking store unless given a `client`:

    note = monitoring.add_note(run_id, verdict="model-error", text="...", sample_ids=["17"])
    monitoring.list_notes(model_name="churn"), monitoring.show_note(note.note_id)

The run's artifacts are the truth; its tags are recomputed from them on every note:

    monitoring.notes.count            how many notes the run has
    monitoring.notes.latest_verdict   the verdict of the newest note
    monitoring.notes.ignored_samples  comma-separated sample ids of its anomaly-ignore notes
    monitoring.notes.id_prefix        run_id[:8], so `show_note` finds a note id's run

When the run's model version is registered, the version also gets
`monitoring.notes.<batch_id>.<note_id>` = "<verdict>: <first 200 chars of the text>" and
`monitoring.notes.count` (its notes across batches), so the registry page shows them.
Every check runs before the first write.

Several writers may add notes to one run at the same moment (threads, processes,
people): each note id ends with a random suffix, so no note overwrites another, and the
counts are written then verified: after setting them, a writer reads the notes (or the
version's note tags) again and sets the counts once more if another note arrived
meanwhile, up to `SYNC_ROUNDS` times. The last writer to finish has seen every note.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Container, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from monitoring.collect.sources import mask_url
from monitoring.errors import NoteError, TrackingError
from monitoring.explain.notes import (
    Note,
    RowNumbers,
    check_sample_ids,
    check_text,
    check_verdict,
    clean_sample_ids,
    ignored_samples,
    next_note_id,
    note_id_prefix,
    sort_key,
    utc_now,
)
from monitoring.measure.sample_table import SAMPLES_FILE, read_sample_ids
from monitoring.track import tags
from monitoring.track.batch_run import quote_value
from monitoring.track.client import make_client
from monitoring.track.experiments import all_experiments
from monitoring.track.history import iter_runs
from monitoring.track.keys import safe_component

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

NOTES_DIR = "notes"
PREFIX = "monitoring.notes."
COUNT = f"{PREFIX}count"
LATEST_VERDICT = f"{PREFIX}latest_verdict"
IGNORED_SAMPLES = f"{PREFIX}ignored_samples"
ID_PREFIX = f"{PREFIX}id_prefix"
VERSION_TEXT_CHARS = 200
"""Characters of the text copied into the model-version tag."""
MAX_RUN_TAG_CHARS = 8000
"""MLflow's limit on a run tag value (the ignored-samples tag must fit)."""
SYNC_ROUNDS = 20
"""How many times a writer re-reads the notes to settle the counts when other notes keep
arriving while it writes them (each round: read, set the tags, read again)."""


_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _get_run(client: MlflowClient, run_id: str) -> Run:
    """The run; NoteError when there is no such run, TrackingError when the store fails."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException as error:
        where = mask_url(client.tracking_uri)
        if error.error_code in _NOT_FOUND:
            raise NoteError(f"run {run_id!r} does not exist in {where}") from None
        raise TrackingError(f"reading run {run_id!r} from {where} failed: {error}") from None


def _batch_run(client: MlflowClient, run_id: str) -> Run:
    """The run, when it exists, is a batch run, finished and not deleted."""
    run = _get_run(client, run_id)
    kind = run.data.tags.get(tags.KIND)
    if kind != tags.KIND_BATCH:
        raise NoteError(
            f"run {run_id} is not a batch run ({tags.KIND}={kind or 'unset'}): notes are "
            "written on the run of an evaluated batch"
        )
    if run.info.lifecycle_stage == "deleted":
        raise NoteError(f"batch run {run_id} is deleted (replaced by a re-evaluation)")
    if run.info.status != "FINISHED":
        raise NoteError(f"batch run {run_id} is {run.info.status}, not FINISHED")
    return run


def _download(client: MlflowClient, run_id: str, path: str, folder: str) -> Path:
    return Path(client.download_artifacts(run_id, path, folder))


def _batch_sample_ids(client: MlflowClient, run: Run) -> tuple[Container[str], str]:
    """The sample ids a note on `run` may name, and what they are in words (for errors).

    With an id column: every id of the batch (`samples.parquet`), or only the worst
    samples' for a run logged before that artifact existed. Without one: row numbers.
    """
    run_id = run.info.run_id
    names = {item.path for item in client.list_artifacts(run_id)}
    with tempfile.TemporaryDirectory() as folder:
        schema = {}
        if "schema.json" in names:
            schema = json.loads(_download(client, run_id, "schema.json", folder).read_text())
        column = schema.get("id")
        if column and SAMPLES_FILE in names:
            ids = read_sample_ids(_download(client, run_id, SAMPLES_FILE, folder))
            return ids, (
                f"its batch holds {len(ids):,} distinct sample ids (its {column!r} column, "
                f"kept in {SAMPLES_FILE})"
            )
        if not column:
            rows = int(run.data.metrics.get("data/n_rows", 0))
            return RowNumbers(rows), (
                f"its batch has no id column: a sample id is a row number, 0 to {rows - 1}"
            )
        worst = pd.DataFrame()
        if "worst_samples.csv" in names:
            path = _download(client, run_id, "worst_samples.csv", folder)
            worst = pd.read_csv(path, dtype=str, keep_default_na=False)
    ids = set(worst[column]) if column in worst.columns else set()
    return ids, (
        f"it was logged before {SAMPLES_FILE} kept every sample id of a batch, so only its "
        f"{len(ids)} worst samples can be noted (their {column!r} column in "
        "worst_samples.csv); re-evaluate the batch with --replace to note any of its samples"
    )


def run_notes(client: MlflowClient, run_id: str) -> list[Note]:
    """Every note of the run, oldest first."""
    items = [i for i in client.list_artifacts(run_id, NOTES_DIR) if i.path.endswith(".md")]
    if not items:
        return []
    out = []
    with tempfile.TemporaryDirectory() as folder:
        local = _download(client, run_id, NOTES_DIR, folder)
        for item in items:
            text = (local / Path(item.path).name).read_text(encoding="utf-8")
            try:
                out.append(Note.from_markdown(text))
            except NoteError as error:
                raise NoteError(f"run {run_id} artifact {item.path}: {error}") from None
    return sorted(out, key=sort_key)


def _note_keys(client: MlflowClient, note: Note) -> frozenset[str] | None:
    """The version's note tags, or None when the version is not (or no longer) registered."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version(note.model_name, note.model_version)
    except MlflowException:
        return None
    return frozenset(k for k in version.tags if k.startswith(PREFIX) and k != COUNT)


def _write_version_tags(client: MlflowClient, note: Note) -> None:
    """The note's tag on its registered version, then the version's count, verified."""
    if note.model_version == tags.UNVERSIONED or _note_keys(client, note) is None:
        return
    key = f"{PREFIX}{safe_component(note.batch_id)}.{note.note_id}"
    text = f"{note.verdict}: {note.text[:VERSION_TEXT_CHARS]}"
    client.set_model_version_tag(note.model_name, note.model_version, key, text)
    seen = _note_keys(client, note)
    for _ in range(SYNC_ROUNDS):
        if seen is None:
            return
        client.set_model_version_tag(note.model_name, note.model_version, COUNT, str(len(seen)))
        again = _note_keys(client, note)
        if again == seen:
            return
        seen = again


def _write_run_tags(client: MlflowClient, run_id: str, note: Note) -> None:
    """The run's tags from its notes as stored, re-read until no note arrived meanwhile."""
    from mlflow.entities import RunTag

    notes = run_notes(client, run_id)
    for _ in range(SYNC_ROUNDS):
        if note.note_id not in {n.note_id for n in notes}:
            raise TrackingError(f"note {note.note_id} is not among run {run_id}'s notes")
        run_tags = _run_tags(run_id, notes)
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in run_tags.items()])
        again = run_notes(client, run_id)
        if [n.note_id for n in again] == [n.note_id for n in notes]:
            return
        notes = again


def _run_tags(run_id: str, notes: list[Note]) -> dict[str, str]:
    ignored = ",".join(ignored_samples(notes))
    if len(ignored) > MAX_RUN_TAG_CHARS:
        raise NoteError(
            f"the ignored sample ids of run {run_id} would exceed MLflow's "
            f"{MAX_RUN_TAG_CHARS}-character tag limit"
        )
    return {
        COUNT: str(len(notes)),
        LATEST_VERDICT: notes[-1].verdict,
        IGNORED_SAMPLES: ignored,
        ID_PREFIX: note_id_prefix(notes[-1].note_id),
    }


def add_note(
    run_id: str,
    *,
    verdict: str,
    text: str,
    sample_ids: Iterable[str] = (),
    author: str | None = None,
    client: MlflowClient | None = None,
) -> Note:
    """Write a note on batch run `run_id` and update the run's (and version's) tags.

    `verdict` is one of `monitoring.explain.notes.VERDICTS` (`anomaly-ignore` leaves the
    samples out of `perf/<metric>_excl_ignored` when the batch is re-evaluated with
    `replace`); `text` is Markdown; `author` defaults to $USER. The run must be a finished
    batch run and every sample id one of its batch's: an id of its id column (compared as
    strings with `samples.parquet`; for runs logged before that artifact, with
    `worst_samples.csv`), or a row number when the batch has no id column. Nothing is
    written when a check fails: ConfigError for an unknown verdict, NoteError otherwise;
    TrackingError when the store refuses a write. `client` defaults to the configured
    tracking store (MLFLOW_TRACKING_URI, else ./mlflow.db).
    """
    client = make_client() if client is None else client
    check_verdict(verdict)
    text = check_text(text)
    samples = clean_sample_ids(sample_ids)
    run = _batch_run(client, run_id)
    if samples:
        available, held = _batch_sample_ids(client, run)
        check_sample_ids(samples, available, run_id=run_id, held=held)
    existing = run_notes(client, run_id)
    run_tags = run.data.tags
    note = Note(
        note_id=next_note_id(run_id, (n.note_id for n in existing)),
        run_id=run_id,
        model_name=run_tags.get(tags.MODEL_NAME, "model"),
        model_version=run_tags.get(tags.MODEL_VERSION, tags.UNVERSIONED),
        batch_id=run_tags.get(tags.BATCH_ID, run_id),
        sample_ids=samples,
        verdict=verdict,
        author=(author or os.environ.get("USER") or "unknown").strip() or "unknown",
        created=utc_now(),
        text=text,
    )
    _run_tags(run_id, [*existing, note])  # the checks on the tags, before any write
    try:
        client.log_text(run_id, note.to_markdown(), f"{NOTES_DIR}/{note.note_id}.md")
        _write_run_tags(client, run_id, note)
        _write_version_tags(client, note)
    except NoteError:
        raise
    except Exception as error:
        raise TrackingError(
            f"writing note {note.note_id} on run {run_id} failed: {error}"
        ) from error
    return note


def _runs_with_notes(client: MlflowClient, filter_string: str) -> list[Run]:
    ids = [e.experiment_id for e in all_experiments(client)]
    return list(iter_runs(client, ids, filter_string)) if ids else []


def list_notes(
    *,
    model_name: str,
    version: str | None = None,
    verdict: str | None = None,
    client: MlflowClient | None = None,
) -> list[Note]:
    """The notes on the batch runs of `model_name`, oldest first.

    `version` keeps one model version (`none`: unregistered), `verdict` one verdict.
    Searches every experiment; deleted (replaced) runs are not searched. `client` defaults
    to the configured tracking store (MLFLOW_TRACKING_URI, else ./mlflow.db).
    """
    client = make_client() if client is None else client
    if verdict is not None:
        check_verdict(verdict)
    parts = [
        f"tags.`{tags.KIND}` = '{tags.KIND_BATCH}'",
        f"tags.`{tags.MODEL_NAME}` = '{quote_value(model_name)}'",
        f"tags.`{COUNT}` != ''",
    ]
    if version is not None:
        parts.append(f"tags.`{tags.MODEL_VERSION}` = '{quote_value(version)}'")
    notes: list[Note] = []
    for run in _runs_with_notes(client, " and ".join(parts)):
        notes += run_notes(client, run.info.run_id)
    if verdict is not None:
        notes = [n for n in notes if n.verdict == verdict]
    return sorted(notes, key=sort_key)


def show_note(note_id: str, *, client: MlflowClient | None = None) -> Note:
    """The note `note_id` (as `add_note` returned it), found through its run-id prefix in
    every experiment; NoteError when no run, or more than one, holds it. `client` defaults
    to the configured tracking store (MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    from mlflow.exceptions import MlflowException

    client = make_client() if client is None else client
    prefix = note_id_prefix(note_id)
    runs = _runs_with_notes(client, f"tags.`{ID_PREFIX}` = '{quote_value(prefix)}'")
    found: list[Note] = []
    for run in runs:
        path = f"{NOTES_DIR}/{note_id}.md"
        if not any(i.path == path for i in client.list_artifacts(run.info.run_id, NOTES_DIR)):
            continue
        with tempfile.TemporaryDirectory() as folder:
            try:
                local = _download(client, run.info.run_id, path, folder)
            except MlflowException:
                continue
            found.append(Note.from_markdown(local.read_text(encoding="utf-8")))
    if not found:
        raise NoteError(f"no note {note_id!r} in {mask_url(client.tracking_uri)}")
    if len(found) > 1:
        runs_text = ", ".join(n.run_id for n in found)
        raise NoteError(f"note id {note_id!r} is ambiguous: it exists in runs {runs_text}")
    return found[0]


def ignored_sample_ids(client: MlflowClient, run_id: str) -> tuple[str, ...]:
    """The sample ids that the run's anomaly-ignore notes exclude from performance."""
    value = _get_run(client, run_id).data.tags.get(IGNORED_SAMPLES, "")
    return tuple(v for v in value.split(",") if v)
