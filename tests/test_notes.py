"""Notes on batch runs: the Markdown format, the run and version tags, the public API, the
CLI, bad input."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import make_frame
from mlflow import MlflowClient

from monitoring import (
    ConfigError,
    Note,
    NoteError,
    add_note,
    evaluate_and_log,
    fit_reference,
    list_notes,
    show_note,
)
from monitoring.cli.notes import notes
from monitoring.explain.notes import (
    MAX_NOTE_TEXT_BYTES,
    VERDICTS,
    check_text,
    ignored_samples,
    next_note_id,
)
from monitoring.track import log_reference
from monitoring.track.models import register_pytorch_model
from monitoring.track.notes import ignored_sample_ids, run_notes

NOTE = Note(
    note_id="1a2b3c4d-1",
    run_id="1a2b3c4d" + "0" * 24,
    model_name="churn",
    model_version="none",
    batch_id="b: 1",
    sample_ids=("3", "17"),
    verdict="anomaly-ignore",
    author="alice",
    created="2026-11-27T17:29:28.123456Z",
    text="Two rows are test traffic.",
)


def _batch(
    client: MlflowClient,
    model_name: str = "churn",
    *,
    frame: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    model_uri: str | None = None,
) -> str:
    return evaluate_and_log(
        make_frame(300, seed=2) if frame is None else frame,
        reference=make_frame(1000, seed=1) if reference is None else reference,
        batch_id="b1",
        model_name=model_name,
        model_uri=model_uri,
        client=client,
    ).run_id


def _artifacts(client: MlflowClient, run_id: str) -> list[str]:
    return [i.path for i in client.list_artifacts(run_id, "notes")]


def _notes_tags(client: MlflowClient, run_id: str) -> dict[str, str]:
    tags = client.get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith("monitoring.notes.")}


def _run(*args: str):
    return CliRunner().invoke(notes, [str(a) for a in args], catch_exceptions=False)


# --- the format (pure) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Two rows are test traffic.", id="plain"),
        pytest.param("# Finding\n\n---\n\nkey: value\n\n\n", id="markdown-with-rules"),
        pytest.param("  indented\nnaïve ünïcode ✓  ", id="blanks-and-unicode"),
    ],
)
def test_markdown_round_trips_exactly(text):
    note = replace(NOTE, text=text)
    markdown = note.to_markdown()
    assert Note.from_markdown(markdown) == note
    assert Note.from_markdown(markdown).to_markdown() == markdown


def test_markdown_fields_are_a_table_that_mlflow_renders():
    """MLflow's Markdown viewer has no front matter: a `---` block rendered as one huge
    heading. A table renders as a table, and the values stay JSON."""
    assert NOTE.to_markdown().splitlines()[:12] == [
        "| field | value |",
        "|---|---|",
        '| note_id | "1a2b3c4d-1" |',
        f'| run_id | "{NOTE.run_id}" |',
        '| model_name | "churn" |',
        '| model_version | "none" |',
        '| batch_id | "b: 1" |',
        '| sample_ids | ["3", "17"] |',
        '| verdict | "anomaly-ignore" |',
        '| author | "alice" |',
        '| created | "2026-11-27T17:29:28.123456Z" |',
        "",
    ]


def test_a_pipe_in_a_value_does_not_break_the_table():
    note = replace(NOTE, author="a|b", batch_id="x\\|y")
    markdown = note.to_markdown()
    assert markdown.splitlines()[9] == '| author | "a\\u007cb" |'
    assert Note.from_markdown(markdown) == note


def test_notes_written_with_the_earlier_front_block_still_read():
    old = "\n".join(
        ["---"]
        + [f"{k}: {json.dumps(v)}" for k, v in NOTE.to_dict().items() if k != "text"]
        + ["---", "", NOTE.text, ""]
    )
    assert Note.from_markdown(old) == NOTE


@pytest.mark.parametrize(
    "markdown",
    [
        pytest.param("just text\n", id="no-front-block"),
        pytest.param(NOTE.to_markdown().replace('| author | "alice" |\n', ""), id="missing-field"),
        pytest.param(NOTE.to_markdown().replace('"alice"', "alice"), id="not-json"),
        pytest.param(NOTE.to_markdown().replace("|\n\nTwo", "|\nTwo"), id="no-blank-line"),
        pytest.param(NOTE.to_markdown().replace("Two rows are test traffic.", " "), id="blank"),
        pytest.param(NOTE.to_markdown().rstrip("\n"), id="no-final-newline"),
        pytest.param(NOTE.to_markdown().replace("anomaly-ignore", "fine"), id="bad-verdict"),
    ],
)
def test_from_markdown_refuses_what_is_not_a_note(markdown):
    with pytest.raises((NoteError, ConfigError)):
        Note.from_markdown(markdown)


def test_unknown_verdict_error_lists_every_verdict():
    with pytest.raises(ConfigError) as error:
        replace(NOTE, verdict="fine")
    assert all(v in str(error.value) for v in VERDICTS)


def _id_pattern(run_id: str, n: int) -> str:
    return rf"{run_id[:8]}-{n}-[0-9a-f]{{8}}"


def test_note_ids_count_from_one_per_run_and_end_with_a_random_suffix():
    assert next_note_id("abcdef0123", [], suffix="0a1b2c3d") == "abcdef01-1-0a1b2c3d"
    written = ["abcdef01-9", "abcdef01-10-00ff00ff", "abcdef01-2"]  # before and after suffixes
    assert next_note_id("abcdef0123", written, suffix="0a1b2c3d") == "abcdef01-11-0a1b2c3d"
    drawn = {next_note_id("abcdef0123", written) for _ in range(100)}
    assert len(drawn) == 100
    assert all(re.fullmatch(_id_pattern("abcdef0123", 11), i) for i in drawn)


def test_note_text_is_limited_in_bytes_of_utf8():
    assert check_text("é" * (MAX_NOTE_TEXT_BYTES // 2)) == "é" * (MAX_NOTE_TEXT_BYTES // 2)
    with pytest.raises(NoteError, match=f"65,538 bytes, over the limit of {MAX_NOTE_TEXT_BYTES:,}"):
        check_text("é" * (MAX_NOTE_TEXT_BYTES // 2 + 1))


def test_ignored_samples_come_from_anomaly_ignore_notes_only():
    found = ignored_samples(
        [
            NOTE,
            replace(NOTE, verdict="label-error", sample_ids=("5",)),
            replace(NOTE, sample_ids=("17", "8")),
        ]
    )
    assert found == ("3", "17", "8")


# --- a store shared by the tests that only read: written by its fixture alone -------------


@dataclass(frozen=True)
class Store:
    uri: str
    batch: str  # model "churn", no notes: bad input must leave it so
    reference: str
    noted: str  # model "noted": two notes
    notes: tuple[Note, Note]
    other: str  # model "other": one note
    shifted: str  # ids are row + 1000: one note on id 1003
    rows: str  # no id column: one note on row 3


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    folder = tmp_path_factory.mktemp("notes-store")
    uri = f"sqlite:///{folder}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        batch = _batch(client)
        reference = log_reference(client, fit_reference(make_frame(1000, seed=1)))
        noted = _batch(client, "noted")
        first = add_note(
            noted,
            verdict="anomaly-ignore",
            text="Bot traffic.\n",
            sample_ids=["3", "48"],
            client=client,
        )
        second = add_note(
            noted,
            verdict="label-error",
            text="Mislabeled.",
            sample_ids=[" 90"],
            author="b",
            client=client,
        )
        other = _batch(client, "other")
        add_note(other, verdict="drift", text="Not the same model.", client=client)
        shifted = _batch(client, "shifted", frame=make_frame(300, seed=2).eval("id = id + 1000"))
        add_note(shifted, verdict="other", text="By id.", sample_ids=["1003"], client=client)
        rows = _batch(
            client,
            "rows",
            frame=make_frame(300, seed=2).drop(columns="id"),
            reference=make_frame(1000, seed=1).drop(columns="id"),
        )
        add_note(rows, verdict="other", text="By row.", sample_ids=["3"], client=client)
    return Store(uri, batch, reference, noted, (first, second), other, shifted, rows)


@pytest.fixture
def store_client(store, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    return MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)


def test_notes_are_markdown_artifacts_that_parse_back(store, store_client):
    first, second = store.notes
    assert re.fullmatch(_id_pattern(store.noted, 1), first.note_id)
    assert re.fullmatch(_id_pattern(store.noted, 2), second.note_id)
    assert sorted(_artifacts(store_client, store.noted)) == [
        f"notes/{first.note_id}.md",
        f"notes/{second.note_id}.md",
    ]
    local = store_client.download_artifacts(store.noted, f"notes/{first.note_id}.md")
    with open(local, encoding="utf-8") as handle:
        assert Note.from_markdown(handle.read()) == first
    assert run_notes(store_client, store.noted) == [first, second]
    assert (first.batch_id, first.model_name, first.model_version) == ("b1", "noted", "none")
    assert (first.text, second.sample_ids, second.author) == ("Bot traffic.", ("90",), "b")


def test_run_tags_after_two_notes(store, store_client):
    assert _notes_tags(store_client, store.noted) == {
        "monitoring.notes.count": "2",
        "monitoring.notes.latest_verdict": "label-error",
        "monitoring.notes.ignored_samples": "3,48",
        "monitoring.notes.id_prefix": store.noted[:8],
    }
    assert ignored_sample_ids(store_client, store.noted) == ("3", "48")
    assert ignored_sample_ids(store_client, store.batch) == ()


def test_list_filters_and_show_finds_across_runs(store, store_client):
    first, second = store.notes
    assert list_notes(model_name="noted", client=store_client) == [first, second]
    assert list_notes(model_name="noted", verdict="label-error", client=store_client) == [second]
    assert list_notes(model_name="noted", version="none", client=store_client) == [first, second]
    assert list_notes(model_name="noted", version="1", client=store_client) == []
    assert list_notes(model_name="churn", client=store_client) == []
    assert [n.run_id for n in list_notes(model_name="other", client=store_client)] == [store.other]
    assert show_note(second.note_id, client=store_client) == second


def test_reading_defaults_to_the_configured_store(store, store_client):
    first, second = store.notes  # store_client set MLFLOW_TRACKING_URI to the store
    assert list_notes(model_name="noted") == [first, second]
    assert show_note(second.note_id) == second


def test_writing_defaults_to_the_configured_store(client):
    run_id = _batch(client)  # `client` set MLFLOW_TRACKING_URI to its store
    note = add_note(run_id, verdict="drift", text="Seasonal.")
    assert list_notes(model_name="churn", client=client) == [note]


@pytest.mark.parametrize(
    ("which", "kept", "refused", "held"),
    [
        pytest.param(
            "shifted",
            "1003",
            "3",
            r"its batch holds 300 distinct sample ids \(its 'id' column, kept in samples.parquet",
            id="id-column",
        ),
        pytest.param(
            "rows",
            "3",
            "300",
            "its batch has no id column: a sample id is a row number, 0 to 299",
            id="row-without-id-column",
        ),
    ],
)
def test_sample_ids_are_the_id_column_else_the_row(
    store, store_client, which, kept, refused, held
):
    run_id = getattr(store, which)
    assert [n.sample_ids for n in run_notes(store_client, run_id)] == [(kept,)]
    with pytest.raises(NoteError, match=f"'{refused}' is not in batch run {run_id}: {held}"):
        add_note(run_id, verdict="other", text="x", sample_ids=[refused], client=store_client)
    assert _notes_tags(store_client, run_id)["monitoring.notes.count"] == "1"


class _Threshold(torch.nn.Module):
    classes = ["a", "b"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([-inputs[:, :1], inputs[:, :1]], dim=1)


def test_notes_on_a_registered_version_become_version_tags(client):
    info = register_pytorch_model(client, _Threshold(), name="churn")
    run_id = _batch(client, model_uri=info.uri)
    long_text = "Sensor glitch. " * 30
    first = add_note(
        run_id, verdict="data-quality", text=long_text, sample_ids=["3"], client=client
    )
    second = add_note(run_id, verdict="drift", text="Seasonal.", client=client)
    version_tags = client.get_model_version("churn", info.version).tags
    assert {k: v for k, v in version_tags.items() if k.startswith("monitoring.notes.")} == {
        f"monitoring.notes.b1.{first.note_id}": f"data-quality: {long_text.strip()[:200]}",
        f"monitoring.notes.b1.{second.note_id}": "drift: Seasonal.",
        "monitoring.notes.count": "2",
    }
    assert list_notes(model_name="churn", version=info.version, client=client) == [first, second]


# --- bad input: refused, and nothing written ------------------------------------------------


BAD_INPUT = [
    pytest.param("missing", {}, NoteError, "does not exist", id="unknown-run"),
    pytest.param("reference", {}, NoteError, "not a batch run", id="reference-run"),
    pytest.param("batch", {"sample_ids": ["3", "999"]}, NoteError, "'999'", id="unknown-sample"),
    pytest.param("batch", {"verdict": "fine"}, ConfigError, "anomaly-ignore", id="bad-verdict"),
    pytest.param("batch", {"text": " \n "}, NoteError, "empty", id="empty-text"),
    pytest.param(
        "batch",
        {"text": "x" * (MAX_NOTE_TEXT_BYTES + 1)},
        NoteError,
        "over the limit of 65,536",
        id="oversize-text",
    ),
]


def _run_id(store: Store, which: str) -> str:
    return {"missing": "f" * 32, "batch": store.batch, "reference": store.reference}[which]


@pytest.mark.parametrize(("which", "change", "error", "message"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(
    store, store_client, which, change, error, message
):
    options = {"verdict": "other", "text": "a finding", "sample_ids": ["3"], **change}
    with pytest.raises(error, match=message):
        add_note(_run_id(store, which), **options, client=store_client)
    for run_id in (store.batch, store.reference):
        assert _artifacts(store_client, run_id) == []
        assert _notes_tags(store_client, run_id) == {}


@pytest.mark.parametrize(("which", "change", "error", "message"), BAD_INPUT)
def test_cli_bad_input_exits_1_and_writes_nothing(
    store, store_client, which, change, error, message
):
    options = {"verdict": "other", "text": "a finding", "sample_ids": ["3"], **change}
    result = _run(
        "add",
        "--run-id",
        _run_id(store, which),
        "--verdict",
        options["verdict"],
        "--text",
        options["text"],
        "--sample-ids",
        ",".join(options["sample_ids"]),
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert _artifacts(store_client, store.batch) == []
    assert _notes_tags(store_client, store.batch) == {}


@pytest.mark.parametrize(
    ("text_options", "message"),
    [
        pytest.param([], "exactly one of --text and --file", id="neither"),
        pytest.param(["--text", "x", "--file", "n.md"], "exactly one of", id="both"),
        pytest.param(["--file", "no-such-note.md"], "cannot read the note file", id="no-file"),
    ],
)
def test_cli_needs_exactly_one_readable_text(store, store_client, text_options, message):
    result = _run("add", "--run-id", store.batch, "--verdict", "other", *text_options)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert _artifacts(store_client, store.batch) == []
    assert _notes_tags(store_client, store.batch) == {}


@pytest.mark.parametrize(
    ("note_id", "message"),
    [
        pytest.param("abcdef01-1", "no note 'abcdef01-1'", id="unknown"),
        pytest.param("not a note id", "is not a note id", id="malformed"),
    ],
)
def test_show_unknown_note_id(store_client, note_id, message):
    with pytest.raises(NoteError, match=message):
        show_note(note_id, client=store_client)
    shown = _run("show", note_id)
    assert shown.exit_code == 1 and message in shown.stderr


# --- the CLI on a fresh store ------------------------------------------------------------


def test_cli_add_list_show(client, tmp_path):
    run_id = _batch(client)
    (tmp_path / "finding.md").write_text("# Bot traffic\n\nIgnore both.\n", encoding="utf-8")
    added = _run(
        "add", "--run-id", run_id, "--sample-ids", "3,48", "--verdict", "anomaly-ignore",
        "--file", tmp_path / "finding.md", "--author", "carol",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    first_id = added.stdout.strip()
    second = _run("add", "--run-id", run_id, "--verdict", "drift", "--text", "Seasonal.")
    second_id = second.stdout.strip()
    assert re.fullmatch(_id_pattern(run_id, 1), first_id)
    assert re.fullmatch(_id_pattern(run_id, 2), second_id)

    table = _run("list", "--model-name", "churn")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "note_id", "created", "version", "batch_id", "verdict", "samples", "author", "text"
    ]  # fmt: skip
    assert first_id in lines[1] and "anomaly-ignore" in lines[1] and "# Bot traffic" in lines[1]

    listed = _run("list", "--model-name", "churn", "--verdict", "drift", "--format", "json")
    assert [n["note_id"] for n in json.loads(listed.stdout)] == [second_id]

    shown = _run("show", first_id)
    assert shown.exit_code == 0
    assert shown.stdout == show_note(first_id, client=client).to_markdown()
    assert Note.from_markdown(shown.stdout).text == "# Bot traffic\n\nIgnore both."
    assert ignored_sample_ids(client, run_id) == ("3", "48")


# --- writers at the same moment ---------------------------------------------------------

WRITERS = 8


def _worst_ids(client: MlflowClient, run_id: str) -> list[str]:
    local = client.download_artifacts(run_id, "worst_samples.csv")
    return pd.read_csv(local, dtype=str)["id"].tolist()


def _add_at_once(run_id: str, writer: int, sample: str, barrier) -> str:
    """One writer's note, added when every writer is ready (a thread or a process)."""
    barrier.wait(timeout=120)
    note = add_note(
        run_id, verdict="anomaly-ignore", text=f"writer {writer}", sample_ids=[sample]
    )
    return note.note_id


def _add_in_process(run_id: str, writer: int, sample: str, barrier, results) -> None:
    results.put(_add_at_once(run_id, writer, sample, barrier))


def _all_kept(client: MlflowClient, run_id: str, ids: list[str], samples: list[str]) -> None:
    notes = run_notes(client, run_id)
    assert len(set(ids)) == WRITERS
    assert sorted(n.note_id for n in notes) == sorted(ids)
    assert sorted(n.text for n in notes) == sorted(f"writer {w}" for w in range(WRITERS))
    tags = _notes_tags(client, run_id)
    assert tags["monitoring.notes.count"] == str(WRITERS)
    assert sorted(tags["monitoring.notes.ignored_samples"].split(",")) == sorted(samples)


def test_notes_added_by_threads_at_the_same_moment_are_all_kept(client):
    run_id = _batch(client)
    samples = _worst_ids(client, run_id)[:WRITERS]
    barrier = threading.Barrier(WRITERS)

    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [
            pool.submit(_add_at_once, run_id, w, samples[w], barrier) for w in range(WRITERS)
        ]
        ids = [f.result(timeout=300) for f in futures]

    _all_kept(client, run_id, ids, samples)


@pytest.mark.slow
def test_notes_added_by_processes_at_the_same_moment_are_all_kept(client):
    run_id = _batch(client)
    samples = _worst_ids(client, run_id)[:WRITERS]
    # Each process starts clean from a server that imported the library once: no MLflow
    # engine or SQLite connection of this process is shared with them.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["monitoring.track.notes", "test_notes"])
    barrier, results = context.Barrier(WRITERS), context.Queue()
    writers = [
        context.Process(target=_add_in_process, args=(run_id, w, samples[w], barrier, results))
        for w in range(WRITERS)
    ]
    for writer in writers:
        writer.start()
    ids = [results.get(timeout=300) for _ in writers]
    for writer in writers:
        writer.join(timeout=60)

    assert [w.exitcode for w in writers] == [0] * WRITERS
    _all_kept(client, run_id, ids, samples)


# --- through a real tracking server ------------------------------------------------------


@pytest.mark.slow
def test_round_trip_through_a_tracking_server(start_server):
    uri = start_server("sqlite")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = _batch(client)
    note = add_note(run_id, verdict="anomaly-ignore", text="Bots.", sample_ids=["3"], client=client)
    assert show_note(note.note_id, client=client) == note
    assert list_notes(model_name="churn", client=client) == [note]
    assert _run("show", note.note_id).stdout == note.to_markdown()
    assert ignored_sample_ids(client, run_id) == ("3",)
